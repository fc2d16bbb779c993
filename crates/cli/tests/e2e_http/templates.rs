//! Templates from creation to approval against local fakes of Twilio's Content API and Meta's
//! Graph API: create → submit → pending → approved (sendable) → paused (refused, naming the
//! rule), with the poller running every second; Meta's status webhook; the operator's 409.

use std::time::Duration;

use serde_json::{json, Value};
use wagate_providers::{meta, Secret};
use wiremock::matchers::{basic_auth, body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
const CONTENT_SID: &str = "HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const WABA: &str = "102290129340398";

/// Registers and authorizes a sender of `provider` and opts the contact in.
async fn sendable_contact(hub: &Hub, sender: &str, provider: &str) {
    let mut register = json!({"address": sender, "provider": provider});
    if provider == "meta" {
        register["meta_phone_number_id"] = json!("1098");
    }
    let wording = hub.published_wording().await;
    let calls = [
        ("/v1/senders".to_owned(), register),
        (
            format!("/v1/senders/{sender}/authorize"),
            json!({"by": "ops@example.com"}),
        ),
        (
            format!("/v1/contacts/{CONTACT}/opt-in"),
            json!({"source": "web_form", "evidence": "https://example.com/f/1", "recorded_by": "e2e", "wording_version": wording}),
        ),
    ];
    for (route, body) in calls {
        let response = hub.post(&route, body).await;
        assert!(
            response.status().is_success(),
            "{route}: {}",
            response.status()
        );
    }
}

/// A dry-run send of the template `id`: 202 when allowed, 422 with the rule when refused.
async fn try_send(hub: &Hub, sender: &str, id: &str) -> (u16, Value) {
    try_send_media(hub, sender, id, json!([])).await
}

/// A dry-run send carrying `media` (a Cloud API template with a media header needs its media).
async fn try_send_media(hub: &Hub, sender: &str, id: &str, media: Value) -> (u16, Value) {
    let response = hub
        .post(
            "/v1/messages?dry_run=true",
            json!({"to": CONTACT, "from": sender, "workflow": "appointment_scheduling",
                   "template": {"id": id, "variables": {"1": "Lea"}, "media": media}}),
        )
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// The image the Meta template's header takes at send time.
fn header_media() -> Value {
    json!([{"type": "image", "url": "https://cdn.example.com/p/2.jpg"}])
}

async fn listed(hub: &Hub, id: &str) -> Value {
    let all: Vec<Value> = hub.get("/v1/templates").await.json().await.expect("json");
    all.into_iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not listed"))
}

/// Polls `GET /v1/templates` until `id` has `status` (the poller runs every second).
async fn wait_for_status(hub: &Hub, id: &str, status: &str) -> Value {
    for _ in 0..100 {
        let template = listed(hub, id).await;
        if template["status"] == status {
            return template;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} never became {status}: {}", listed(hub, id).await);
}

fn twilio_listing(status: &str, reason: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "contents": [{"sid": CONTENT_SID, "friendly_name": "viewing_update", "language": "en",
            "types": {"twilio/text": {"body": "Hello {{1}}, your viewing is confirmed."}},
            "approval_requests": {"name": "viewing_update", "category": "UTILITY",
                "status": status, "rejection_reason": reason}}],
        "meta": {"page": 0, "page_size": 50, "next_page_url": null}}))
}

#[tokio::test]
async fn a_twilio_template_goes_from_creation_to_approval_and_a_pause_stops_it() {
    let content = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/Content"))
        .and(basic_auth(ACCOUNT_SID, TWILIO_AUTH_TOKEN))
        .and(body_json(json!({
            "friendly_name": "viewing_update", "language": "en",
            "variables": {"1": "Lea"},
            "types": {"twilio/text": {"body": "Hello {{1}}, your viewing is confirmed."}}})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": CONTENT_SID})))
        .expect(1)
        .mount(&content)
        .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/v1/Content/{CONTENT_SID}/ApprovalRequests/whatsapp"
        )))
        .and(body_json(
            json!({"name": "viewing_update", "category": "UTILITY"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "name": "viewing_update", "category": "UTILITY", "content_type": "twilio/text",
            "status": "received", "rejection_reason": "", "allow_category_change": true})))
        .expect(1)
        .mount(&content)
        .await;
    // Nothing exists at Twilio before wagate creates it.
    Mock::given(method("GET"))
        .and(path("/v1/ContentAndApprovals"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"contents": [], "meta": {"next_page_url": null}})),
        )
        .mount(&content)
        .await;

    let dir = tempfile::tempdir().expect("dir");
    let hub = start_with(
        dir.path(),
        &[
            ("WAGATE_TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
            ("WAGATE_TWILIO_CONTENT_API_BASE", &content.uri()),
            ("WAGATE_TEMPLATE_SYNC_SECONDS", "1"),
        ],
        &["--no-dispatch"],
    );
    sendable_contact(&hub, SENDER, "twilio").await;

    // A placeholder at the very end is refused before Twilio hears of it.
    let bad = hub
        .post(
            "/v1/templates",
            json!({"provider": "twilio", "name": "viewing_update", "language": "en",
                   "category": "utility", "body": "Your viewing is confirmed, {{1}}"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.expect("json");
    assert_eq!(bad["error"]["field"], "body", "{bad}");

    let created = hub
        .post(
            "/v1/templates",
            json!({"provider": "twilio", "name": "viewing_update", "language": "en",
                   "category": "utility", "body": "Hello {{1}}, your viewing is confirmed.",
                   "examples": {"1": "Lea"}}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    assert_eq!(created["id"], CONTENT_SID);
    assert_eq!(created["status"], "pending");

    let pending = listed(&hub, CONTENT_SID).await;
    assert_eq!(pending["source"], "provider");
    assert_eq!(pending["language"], "en");
    assert_eq!(pending["name"], "viewing_update");
    let (status, refusal) = try_send(&hub, SENDER, CONTENT_SID).await;
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["error"]["rule"], "template_not_approved");

    // Twilio approves it: the poller finds out, and it may be sent.
    content.reset().await;
    Mock::given(method("GET"))
        .and(path("/v1/ContentAndApprovals"))
        .respond_with(twilio_listing("approved", ""))
        .mount(&content)
        .await;
    wait_for_status(&hub, CONTENT_SID, "approved").await;
    let (status, allowed) = try_send(&hub, SENDER, CONTENT_SID).await;
    assert_eq!(status, 202, "{allowed}");

    // Then paused for its quality: refused again, naming the rule and the provider's reason.
    content.reset().await;
    Mock::given(method("GET"))
        .and(path("/v1/ContentAndApprovals"))
        .respond_with(twilio_listing("paused", "quality: SECOND_PAUSE"))
        .mount(&content)
        .await;
    let paused = wait_for_status(&hub, CONTENT_SID, "paused").await;
    assert_eq!(paused["source"], "provider");
    assert_eq!(paused["reason"], "quality: SECOND_PAUSE");
    let (status, refusal) = try_send(&hub, SENDER, CONTENT_SID).await;
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["error"]["rule"], "template_not_approved");
    let message = refusal["error"]["message"].as_str().expect("message");
    assert!(message.contains("paused"), "{message}");

    // An operator cannot approve what Twilio paused; nothing is appended.
    let head = hub.events().await.len();
    let forced = hub
        .post(
            &format!("/v1/templates/{CONTENT_SID}/status"),
            json!({"status": "approved"}),
        )
        .await;
    assert_eq!(forced.status(), 409);
    let forced: Value = forced.json().await.expect("json");
    assert_eq!(forced["error"]["code"], "conflict", "{forced}");
    assert_eq!(hub.events().await.len(), head);

    // Each status change was appended once, with the provider's reason, however often it polled.
    let events = hub.events().await;
    let reported: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "TemplateStatusReported")
        .collect();
    let statuses: Vec<&str> = reported
        .iter()
        .map(|e| e["payload"]["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["pending", "approved", "paused"], "{reported:?}");
    let created_event = events
        .iter()
        .find(|e| e["type"] == "TemplateCreated")
        .expect("TemplateCreated");
    assert_eq!(created_event["payload"]["provider"], "twilio");
    assert_eq!(
        created_event["payload"]["body"],
        "Hello {{1}}, your viewing is confirmed."
    );
}

async fn meta_webhook(hub: &Hub, value: Value) -> Value {
    let body = json!({"object": "whatsapp_business_account",
        "entry": [{"id": WABA, "time": 1751247548,
                   "changes": [{"field": "message_template_status_update", "value": value}]}]})
    .to_string();
    let signature = meta::compute_signature(&Secret::new(META_APP_SECRET), body.as_bytes());
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
    response.json().await.expect("summary")
}

fn meta_listing(status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": [{"name": "listing_update", "language": "de", "status": status,
                  "category": "MARKETING", "id": "572279198452421"}],
        "paging": {"cursors": {"before": "a", "after": "b"}}}))
}

#[tokio::test]
async fn a_meta_template_is_created_approved_by_webhook_and_paused_by_the_poll() {
    let graph = MockServer::start().await;
    let templates_path = format!("/v21.0/{WABA}/message_templates");
    Mock::given(method("POST"))
        .and(path(templates_path.as_str()))
        .and(header("authorization", "Bearer meta-e2e-token"))
        .and(body_json(json!({
            "name": "listing_update", "language": "de", "category": "MARKETING",
            "parameter_format": "positional",
            "components": [
                {"type": "HEADER", "format": "IMAGE",
                 "example": {"header_handle": ["4::aW1hZ2UvanBlZw==:e2e"]}},
                {"type": "BODY", "text": "Hallo {{1}}, ein neues Objekt wartet auf Sie.",
                 "example": {"body_text": [["Lea"]]}},
                {"type": "BUTTONS", "buttons": [
                    {"type": "URL", "text": "Details", "url": "https://example.com/p/1"}]}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "572279198452421", "status": "PENDING", "category": "MARKETING"}),
        ))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("GET"))
        .and(path(templates_path.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .mount(&graph)
        .await;
    // The header's sample goes through the Resumable Upload API first
    // (templates_media.rs checks the upload's requests).
    Mock::given(method("POST"))
        .and(path("/v21.0/7654321/uploads"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "upload:e2e"})))
        .expect(1)
        .mount(&graph)
        .await;
    Mock::given(method("POST"))
        .and(path("/v21.0/upload:e2e"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"h": "4::aW1hZ2UvanBlZw==:e2e"})),
        )
        .expect(1)
        .mount(&graph)
        .await;

    let dir = tempfile::tempdir().expect("dir");
    let hub = start_with(
        dir.path(),
        &[
            ("WAGATE_META_ACCESS_TOKEN", "meta-e2e-token"),
            ("WAGATE_META_APP_SECRET", META_APP_SECRET),
            ("WAGATE_META_API_BASE", &graph.uri()),
            ("WAGATE_META_WABA_ID", WABA),
            ("WAGATE_META_APP_ID", "7654321"),
            ("WAGATE_TEMPLATE_SYNC_SECONDS", "1"),
        ],
        &["--no-dispatch"],
    );
    let sender = "whatsapp:+15555550199";
    sendable_contact(&hub, sender, "meta").await;

    let request = json!({"provider": "meta", "name": "listing_update", "language": "de",
        "category": "marketing", "body": "Hallo {{1}}, ein neues Objekt wartet auf Sie.",
        "header": {"format": "image", "value": "https://cdn.example.com/p/1.jpg"},
        "buttons": [{"type": "url", "text": "Details", "value": "https://example.com/p/1"}],
        "examples": {"1": "Lea"},
        "header_sample": {"file_name": "1.jpg", "content_type": "image/jpeg", "data_base64": "/9j/4AAQ"}});
    let created = hub.post("/v1/templates", request.clone()).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("json");
    let id = "listing_update@de";
    assert_eq!(created["id"], id);
    assert_eq!(created["status"], "pending");
    assert_eq!(created["provider_ref"], "572279198452421");
    // Meta knows a template by name and language: the same again is a conflict.
    assert_eq!(hub.post("/v1/templates", request).await.status(), 409);

    let (status, refusal) = try_send_media(&hub, sender, id, header_media()).await;
    assert_eq!(status, 422, "{refusal}");

    // Meta approves it by webhook (language as Meta's webhook spells it).
    graph.reset().await;
    Mock::given(method("GET"))
        .and(path(templates_path.as_str()))
        .respond_with(meta_listing("APPROVED"))
        .mount(&graph)
        .await;
    let summary = meta_webhook(
        &hub,
        json!({"event": "APPROVED", "message_template_id": 572279198452421_u64,
               "message_template_name": "listing_update", "message_template_language": "de",
               "reason": "NONE", "message_template_category": "MARKETING"}),
    )
    .await;
    // The notice itself (ProviderNoticeReceived) and the status it reports.
    assert_eq!(summary["appended"], 2, "{summary}");
    let approved = listed(&hub, id).await;
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["source"], "provider");
    let (status, allowed) = try_send_media(&hub, sender, id, header_media()).await;
    assert_eq!(status, 202, "{allowed}");

    // The webhook of the pause is lost; the backstop poll finds it.
    graph.reset().await;
    Mock::given(method("GET"))
        .and(path(templates_path.as_str()))
        .respond_with(meta_listing("PAUSED"))
        .mount(&graph)
        .await;
    wait_for_status(&hub, id, "paused").await;
    let (status, refusal) = try_send_media(&hub, sender, id, header_media()).await;
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["error"]["rule"], "template_not_approved");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("paused")),
        "{refusal}"
    );

    // A real (recorded) refusal is explained by the provider's report it relied on.
    let refused = hub
        .post(
            "/v1/messages",
            json!({"to": CONTACT, "from": sender, "workflow": "appointment_scheduling",
                   "template": {"id": id, "variables": {"1": "Lea"}, "media": header_media()}}),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let events = hub.events().await;
    let refusal = events
        .iter()
        .rfind(|e| e["type"] == "SendRefused")
        .expect("refusal recorded");
    let refused_id = refusal["payload"]["message_id"].as_str().expect("id");
    let explained: Value = hub
        .get(&format!("/v1/messages/{refused_id}/explain"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(explained["rule"], "template_not_approved");
    let pause = events
        .iter()
        .rfind(|e| e["type"] == "TemplateStatusReported" && e["payload"]["status"] == "paused")
        .expect("pause recorded");
    assert!(
        explained.to_string().contains(&format!(
            "\"position\":{}",
            pause["position"].as_u64().expect("position")
        )),
        "the pause is cited: {explained}"
    );

    // The pause's webhook arriving late changes nothing: only the notice itself is kept.
    let head = hub.events().await.len();
    let late = meta_webhook(
        &hub,
        json!({"event": "PAUSED", "message_template_id": 572279198452421_u64,
               "message_template_name": "listing_update", "message_template_language": "de",
               "reason": null}),
    )
    .await;
    assert_eq!(late["duplicates"], 1, "{late}");
    let after = hub.events().await;
    assert_eq!(after.len(), head + 1);
    assert_eq!(after[head]["type"], "ProviderNoticeReceived");

    let forced = hub
        .post(
            &format!("/v1/templates/{id}/status"),
            json!({"status": "approved"}),
        )
        .await;
    assert_eq!(forced.status(), 409);
    assert_eq!(hub.events().await.len(), head + 1, "a 409 appends nothing");
}
