//! `wagate serve` with real-provider configuration speaks Twilio's and Meta's APIs: their base
//! URLs point at local fakes built from the fixtures (docs/providers.md), and the requests the
//! fakes receive are checked field by field.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{self, Hub};

const ACCOUNT_SID: &str = "AC3f9d2c41b7e85a06d1c4f0e9a2b7d315";
const TWILIO_SENDER: &str = "whatsapp:+15555550100";
/// The SID of `twilio_message_create_201.json`, which the status fixtures share.
const TWILIO_SID: &str = "SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61";
const META_SENDER: &str = "whatsapp:+15555550111";
const META_PHONE_NUMBER_ID: &str = "106540352242922";

async fn post_ok(hub: &Hub, path: &str, body: Value) {
    let response = hub.post(path, body).await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

async fn wait_for_event(hub: &Hub, id: &str, event_type: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view: Value = hub
            .get(&format!("/v1/messages/{id}"))
            .await
            .json()
            .await
            .expect("json");
        let found = view["history"]
            .as_array()
            .is_some_and(|history| history.iter().any(|e| e["type"] == event_type));
        if found {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "no {event_type} for {id}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

#[tokio::test]
pub(crate) async fn serve_sends_through_twilio_and_matches_its_callbacks() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        )))
        .and(header(
            "authorization",
            "Basic QUMzZjlkMmM0MWI3ZTg1YTA2ZDFjNGYwZTlhMmI3ZDMxNToxMjM0NQ==",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            support::fixture("twilio_message_create_201.json"),
            "application/json",
        ))
        .expect(1)
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
    post_ok(
        &hub,
        "/v1/senders",
        json!({"address": TWILIO_SENDER, "provider": "twilio"}),
    )
    .await;
    post_ok(
        &hub,
        &format!("/v1/senders/{TWILIO_SENDER}/authorize"),
        json!({"by": "e2e"}),
    )
    .await;
    post_ok(
        &hub,
        "/v1/templates",
        json!({"content_sid": support::TEMPLATE, "name": "viewing_reminder", "language": "en",
               "category": "utility", "placeholders": ["1", "2"]}),
    )
    .await;
    post_ok(
        &hub,
        &format!("/v1/templates/{}/status", support::TEMPLATE),
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
    let response = hub
        .post("/v1/messages", support::template_send(support::CONTACT))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.expect("json")["message_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let view = wait_for_event(&hub, &id, "DispatchSucceeded").await;
    let succeeded = view["history"]
        .as_array()
        .and_then(|h| h.iter().find(|e| e["type"] == "DispatchSucceeded"))
        .expect("succeeded");
    assert_eq!(succeeded["payload"]["provider_ref"], TWILIO_SID);

    // The request Twilio received: the Messages API form, exactly as Twilio specifies it (docs/providers.md).
    let requests = twilio.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let body = &requests[0].body;
    assert_eq!(
        form_field(body, "To").as_deref(),
        Some("whatsapp:+41790000001")
    );
    assert_eq!(form_field(body, "From").as_deref(), Some(TWILIO_SENDER));
    assert_eq!(
        form_field(body, "ContentSid").as_deref(),
        Some(support::TEMPLATE)
    );
    let variables: Value =
        serde_json::from_str(&form_field(body, "ContentVariables").expect("ContentVariables"))
            .expect("json");
    assert_eq!(variables, json!({"1": "Lea", "2": "Thu 10:00"}));
    assert_eq!(
        form_field(body, "StatusCallback"),
        Some(format!(
            "{}/webhooks/twilio/status?message_id={id}",
            support::PUBLIC_URL
        ))
    );
    assert!(
        form_field(body, "Body").is_none(),
        "templates go by ContentSid, never Body"
    );

    // Twilio's signed `read` callback (no message id in its URL) is matched by the SID.
    let file = "twilio_status_read.form";
    let response = hub
        .twilio(
            "/webhooks/twilio/status",
            support::fixture(file),
            &support::twilio_signature("/webhooks/twilio/status", file),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    let view: Value = hub
        .get(&format!("/v1/messages/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(view["status"], "read", "{view}");
}

#[tokio::test]
async fn serve_sends_through_the_cloud_api() {
    let meta = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{META_PHONE_NUMBER_ID}/messages")))
        .and(header("authorization", "Bearer meta-e2e-token"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            support::fixture("meta_send_response_template_200.json"),
            "application/json",
        ))
        .expect(1)
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
    post_ok(
        &hub,
        "/v1/senders",
        json!({"address": META_SENDER, "provider": "meta", "meta_phone_number_id": META_PHONE_NUMBER_ID}),
    )
    .await;
    post_ok(
        &hub,
        &format!("/v1/senders/{META_SENDER}/authorize"),
        json!({"by": "e2e"}),
    )
    .await;
    post_ok(
        &hub,
        "/v1/templates",
        json!({"content_sid": "viewing_reminder", "name": "viewing_reminder", "language": "en_US",
               "category": "utility", "placeholders": ["1"]}),
    )
    .await;
    post_ok(
        &hub,
        "/v1/templates/viewing_reminder/status",
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
    let send = json!({"to": support::CONTACT, "from": META_SENDER, "workflow": "status_update",
                      "template": {"content_sid": "viewing_reminder", "variables": {"1": "Lea"}}});
    let response = hub.post("/v1/messages", send).await;
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.expect("json")["message_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let view = wait_for_event(&hub, &id, "DispatchSucceeded").await;
    let succeeded = view["history"]
        .as_array()
        .and_then(|h| h.iter().find(|e| e["type"] == "DispatchSucceeded"))
        .expect("succeeded");
    assert!(succeeded["payload"]["provider_ref"]
        .as_str()
        .is_some_and(|r| r.starts_with("wamid.")));

    let requests = meta.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).expect("json body");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["to"], support::CONTACT);
    assert_eq!(body["type"], "template");
    assert_eq!(body["template"]["name"], "viewing_reminder");
    assert_eq!(body["template"]["language"]["code"], "en_US");
    assert_eq!(
        body["template"]["components"][0]["parameters"][0]["text"],
        "Lea"
    );
    assert_eq!(body["biz_opaque_callback_data"], id.as_str());
}
