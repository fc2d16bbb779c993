//! Rich freeform content (issue 13, point 4) from the real binary to local fakes of Twilio's
//! Messages API and Meta's Cloud API: media with a caption and quick-reply buttons are refused
//! while the window is closed (the window rule, as for text), and once the contact has written
//! they go out as the byte-checked requests of fixtures/providers/.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{self, Hub};

const ACCOUNT_SID: &str = "AC3f9d2c41b7e85a06d1c4f0e9a2b7d315";
/// The number the inbound fixtures of both providers write to.
const SENDER: &str = "whatsapp:+15555550100";
/// The phone-number id of `meta_webhook_inbound_text.json`.
const META_PHONE_NUMBER_ID: &str = "109876543210987";
const IMAGE: &str = "https://cdn.example.com/listings/42/living.jpg";
const CAPTION: &str = "The flat at Seestrasse 12, living room";

async fn post_ok(hub: &Hub, path: &str, body: Value) {
    let response = hub.post(path, body).await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

async fn register(hub: &Hub, sender: Value) {
    post_ok(hub, "/v1/senders", sender).await;
    post_ok(
        hub,
        &format!("/v1/senders/{SENDER}/authorize"),
        json!({"by": "e2e"}),
    )
    .await;
}

fn media_send() -> Value {
    json!({"to": support::CONTACT, "workflow": "lead_qualification",
           "media": {"type": "image", "url": IMAGE, "caption": CAPTION}})
}

fn buttons_send() -> Value {
    json!({"to": support::CONTACT, "workflow": "lead_qualification",
           "interactive": {"body": "Would you like to visit the flat on Thursday?", "buttons": [
               {"id": "visit:42:yes", "title": "Yes, Thursday"},
               {"id": "visit:42:other", "title": "Another day"},
               {"id": "visit:42:no", "title": "No, thanks"}]}})
}

/// Refused with `window_closed` and nothing sent.
async fn refused_while_closed(hub: &Hub, send: Value) {
    let response = hub.post("/v1/messages", send).await;
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["rule"], "window_closed", "{body}");
}

async fn queued(hub: &Hub, send: Value) -> String {
    let response = hub.post("/v1/messages", send).await;
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.expect("json");
    body["message_id"].as_str().expect("id").to_owned()
}

/// Waits (bounded) for the message's dispatch to end and returns its view.
async fn dispatched(hub: &Hub, id: &str, event_type: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view: Value = hub
            .get(&format!("/v1/messages/{id}"))
            .await
            .json()
            .await
            .expect("json");
        if view["history"]
            .as_array()
            .is_some_and(|history| history.iter().any(|e| e["type"] == event_type))
        {
            return view;
        }
        assert!(Instant::now() < deadline, "no {event_type}: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn twilio_media_goes_as_body_and_media_url_and_buttons_fail_without_a_call() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            support::fixture("twilio_message_create_201.json"),
            "application/json",
        ))
        .mount(&twilio)
        .await;
    let data = tempfile::tempdir().expect("tempdir");
    let hub = support::start_with(
        data.path(),
        &[
            ("WAGATE_TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("WAGATE_TWILIO_AUTH_TOKEN", support::TWILIO_AUTH_TOKEN),
            ("WAGATE_TWILIO_API_BASE", &twilio.uri()),
        ],
        &[],
    );
    register(&hub, json!({"address": SENDER, "provider": "twilio"})).await;
    refused_while_closed(&hub, media_send()).await;

    let file = "twilio_inbound_text.form";
    let response = hub
        .twilio(
            "/webhooks/twilio/inbound",
            support::fixture(file),
            &support::twilio_signature("/webhooks/twilio/inbound", file),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());

    let id = queued(&hub, media_send()).await;
    let view = dispatched(&hub, &id, "DispatchSucceeded").await;
    assert_eq!(view["intent"]["content"]["type"], "media", "{view}");
    let requests = twilio.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let expected = format!(
        "To=whatsapp%3A%2B41790000001&From=whatsapp%3A%2B15555550100\
         &Body=The+flat+at+Seestrasse+12%2C+living+room\
         &MediaUrl=https%3A%2F%2Fcdn.example.com%2Flistings%2F42%2Fliving.jpg\
         &StatusCallback=https%3A%2F%2Fhub.example.com%2Fwebhooks%2Ftwilio%2Fstatus%3Fmessage_id%3D{id}"
    );
    assert_eq!(String::from_utf8_lossy(&requests[0].body), expected);

    // Twilio needs a Content resource for buttons: the dispatch fails permanently, unsent.
    let id = queued(&hub, buttons_send()).await;
    dispatched(&hub, &id, "DispatchFailed").await;
    assert_eq!(twilio.received_requests().await.expect("recorded").len(), 1);

    // The log keeps what was sent.
    let events = hub.events().await;
    let rich: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "ReplySent")
        .map(|e| &e["payload"]["rich"])
        .collect();
    assert_eq!(rich[0]["url"], IMAGE, "{rich:?}");
    assert_eq!(rich[1]["buttons"][2]["id"], "visit:42:no", "{rich:?}");
}

#[tokio::test]
async fn cloud_api_media_and_buttons_match_the_fixtures() {
    let meta = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{META_PHONE_NUMBER_ID}/messages")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            support::fixture("meta_send_response_text_200.json"),
            "application/json",
        ))
        .mount(&meta)
        .await;
    let data = tempfile::tempdir().expect("tempdir");
    let hub = support::start_with(
        data.path(),
        &[
            ("WAGATE_META_ACCESS_TOKEN", "meta-e2e-token"),
            ("WAGATE_META_APP_SECRET", support::META_APP_SECRET),
            ("WAGATE_META_API_BASE", &meta.uri()),
        ],
        &[],
    );
    register(
        &hub,
        json!({"address": SENDER, "provider": "meta", "meta_phone_number_id": META_PHONE_NUMBER_ID}),
    )
    .await;
    refused_while_closed(&hub, buttons_send()).await;

    // The fixture's message, written now: the window runs from when the person wrote.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let body = String::from_utf8(support::fixture("meta_webhook_inbound_text.json"))
        .expect("utf-8")
        .replace("\"1795598102\"", &format!("\"{now}\""));
    let signature = wagate_providers::meta::compute_signature(
        &wagate_providers::Secret::new(support::META_APP_SECRET),
        body.as_bytes(),
    );
    let response = hub
        .http
        .post(hub.url("/webhooks/meta"))
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", signature)
        .body(body)
        .send()
        .await
        .expect("meta webhook");
    assert_eq!(response.status(), 200);

    let mut expected = Vec::new();
    for (send, fixture) in [
        (media_send(), "meta_send_request_image.json"),
        (buttons_send(), "meta_send_request_interactive_buttons.json"),
    ] {
        let id = queued(&hub, send).await;
        dispatched(&hub, &id, "DispatchSucceeded").await;
        let mut body: Value = serde_json::from_slice(&support::fixture(fixture)).expect("json");
        body["biz_opaque_callback_data"] = Value::String(id);
        expected.push(body);
    }
    let requests = meta.received_requests().await.expect("recorded");
    let sent: Vec<Value> = requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("json body"))
        .collect();
    assert_eq!(sent, expected);
}

/// A Cloud API template send with a header image: the request carries the header parameter
/// Meta requires, and the log keeps the media.
#[tokio::test]
async fn cloud_api_template_with_header_media_matches_the_fixture() {
    let meta = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{META_PHONE_NUMBER_ID}/messages")))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            support::fixture("meta_send_response_template_200.json"),
            "application/json",
        ))
        .mount(&meta)
        .await;
    let data = tempfile::tempdir().expect("tempdir");
    let hub = support::start_with(
        data.path(),
        &[
            ("WAGATE_META_ACCESS_TOKEN", "meta-e2e-token"),
            ("WAGATE_META_APP_SECRET", support::META_APP_SECRET),
            ("WAGATE_META_API_BASE", &meta.uri()),
        ],
        &[],
    );
    register(
        &hub,
        json!({"address": SENDER, "provider": "meta", "meta_phone_number_id": META_PHONE_NUMBER_ID}),
    )
    .await;
    post_ok(
        &hub,
        "/v1/templates",
        json!({"content_sid": "listing_update", "name": "listing_update", "language": "de",
               "category": "utility", "placeholders": ["1", "2"]}),
    )
    .await;
    post_ok(
        &hub,
        "/v1/templates/listing_update/status",
        json!({"status": "approved"}),
    )
    .await;
    let wording = hub.published_wording().await;
    post_ok(
        &hub,
        &format!("/v1/contacts/{}/opt-in", support::CONTACT),
        json!({"source": "web_form", "evidence": "https://example.com/f/1", "recorded_by": "e2e", "wording_version": wording}),
    )
    .await;
    // Plain http is refused before anything is recorded.
    let bad = json!({"to": support::CONTACT, "workflow": "status_update",
        "template": {"content_sid": "listing_update", "variables": {"1": "Ana", "2": "Mitte"},
                     "media": [{"type": "image", "url": "http://cdn.example.com/p/1.jpg"}]}});
    let response = hub.post("/v1/messages", bad).await;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["field"], "template.media.url", "{body}");

    let send = json!({"to": support::CONTACT, "workflow": "status_update",
        "template": {"content_sid": "listing_update", "variables": {"1": "Ana", "2": "Mitte"},
                     "media": [{"type": "image", "url": "https://cdn.example.com/p/1.jpg"}]}});
    let id = queued(&hub, send).await;
    dispatched(&hub, &id, "DispatchSucceeded").await;
    let requests = meta.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let sent: Value = serde_json::from_slice(&requests[0].body).expect("json body");
    let mut expected: Value =
        serde_json::from_slice(&support::fixture("meta_send_request_template_media.json"))
            .expect("json");
    expected["biz_opaque_callback_data"] = Value::String(id);
    assert_eq!(sent, expected);

    let events = hub.events().await;
    let sent = events
        .iter()
        .find(|e| e["type"] == "TemplateSent")
        .expect("TemplateSent");
    assert_eq!(
        sent["payload"]["media"],
        json!([{"card": null, "type": "image", "url": "https://cdn.example.com/p/1.jpg"}])
    );
}
