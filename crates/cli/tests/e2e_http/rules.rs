//! Issue 11's rules against the real binary: consent ordered by when the person wrote (a late
//! START never re-opts-in over a newer STOP), provider times in the future refused, the 24 h
//! window per business number, and keyword consent only from the contact's own message.

use serde_json::{json, Value};
use wagate_providers::twilio::{compute_signature, SigningAlgorithm, SortedParams};
use wagate_providers::{meta, Secret};

use crate::support::*;

const OTHER_SENDER: &str = "whatsapp:+15555550199";

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// A signed Meta webhook: one text message from the contact to +15555550100, written at
/// `timestamp` (unix seconds) by Meta's clock.
async fn meta_inbound(hub: &Hub, id: &str, text: &str, timestamp: i64) -> Value {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102938475610293",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": "15555550100",
                        "phone_number_id": "109876543210987"
                    },
                    "contacts": [{"profile": {"name": "Lea"}, "wa_id": "41790000001"}],
                    "messages": [{
                        "from": "41790000001",
                        "id": format!("wamid.E2E{id}"),
                        "timestamp": timestamp.to_string(),
                        "type": "text",
                        "text": {"body": text}
                    }]
                }
            }]
        }]
    })
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

/// A signed Twilio inbound from the contact to `to` (Twilio gives no time of its own).
async fn twilio_inbound(hub: &Hub, sid: u32, to: &str, text: &str) {
    let body = format!(
        "MessageSid=SM{sid:032x}&From=whatsapp%3A%2B41790000001&To={}&Body={}&NumMedia=0",
        to.replace(':', "%3A").replace('+', "%2B"),
        text.replace(' ', "+")
    );
    let signature = compute_signature(
        &Secret::new(TWILIO_AUTH_TOKEN),
        SigningAlgorithm::HmacSha1,
        &format!("{PUBLIC_URL}/webhooks/twilio/inbound"),
        &SortedParams::from_form(body.as_bytes()),
    );
    let response = hub
        .twilio("/webhooks/twilio/inbound", body.into_bytes(), &signature)
        .await;
    assert_eq!(response.status(), 200);
}

async fn contact(hub: &Hub) -> Value {
    let response = hub.get(&format!("/v1/contacts/{CONTACT}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("contact")
}

async fn error_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("json");
    body["error"].clone()
}

#[tokio::test]
async fn a_late_start_does_not_reopt_in_over_a_newer_stop() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    let now = unix_now();

    let stop = meta_inbound(&hub, "STOP1", "STOP", now - 60).await;
    assert_eq!(stop["appended"], 1, "{stop}");
    assert_eq!(contact(&hub).await["consent"]["state"], "opted_out");

    // Meta delivers, late, a START written two minutes ago: before the STOP.
    let late = meta_inbound(&hub, "START1", "START", now - 120).await;
    assert_eq!(late["appended"], 1, "{late}");
    let view = contact(&hub).await;
    assert_eq!(view["consent"]["state"], "opted_out", "{view}");
    let send = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(error_of(send, 422).await["rule"], "opted_out");

    let events = hub.events().await;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(!types.ends_with(&["OptedIn"]), "{types:?}");
    let late_inbound = events
        .iter()
        .rev()
        .find(|e| e["type"] == "InboundReceived")
        .expect("the late START is recorded");
    assert!(
        late_inbound["payload"]["provider_at"].is_string(),
        "{late_inbound}"
    );
    let stop = events
        .iter()
        .find(|e| e["type"] == "OptedOut")
        .expect("the STOP");
    assert_ne!(
        stop["payload"]["evidence_at"], stop["payload"]["at"],
        "{stop}"
    );

    // A START written after the STOP does opt the contact in again.
    let start = meta_inbound(&hub, "START2", "START", now).await;
    assert_eq!(start["appended"], 1, "{start}");
    assert_eq!(contact(&hub).await["consent"]["state"], "opted_in");
    let send = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(send.status(), 202);
}

#[tokio::test]
async fn a_provider_time_in_the_future_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    let before = hub.events().await.len();
    let summary = meta_inbound(&hub, "FUTURE", "START", unix_now() + 3600).await;
    assert_eq!(summary["appended"], 0, "{summary}");
    assert_eq!(summary["rejected"], 1, "{summary}");
    assert_eq!(hub.events().await.len(), before, "nothing appended");
    let audit = audit_lines(dir.path());
    assert!(
        audit
            .iter()
            .any(|line| line.to_string().contains("timestamp")
                && line.to_string().contains("in the future")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn the_window_is_kept_per_sender() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    for (path, body) in [
        (
            "/v1/senders".to_owned(),
            json!({"address": OTHER_SENDER, "provider": "twilio"}),
        ),
        (
            format!("/v1/senders/{OTHER_SENDER}/authorize"),
            json!({"by": "ops@example.com"}),
        ),
    ] {
        let response = hub.post(&path, body).await;
        assert!(response.status().is_success(), "{path}");
    }
    // The contact writes to sender A only.
    twilio_inbound(&hub, 1, SENDER, "Is Thursday still ok?").await;

    let freeform = |from: &str| {
        json!({"to": CONTACT, "from": from, "workflow": "appointment_scheduling",
               "text": "Thursday at 10 works"})
    };
    let from_b = hub.post("/v1/messages", freeform(OTHER_SENDER)).await;
    let error = error_of(from_b, 422).await;
    assert_eq!(error["rule"], "window_closed", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("never written to whatsapp:+15555550199")),
        "{error}"
    );
    let from_a = hub.post("/v1/messages", freeform(SENDER)).await;
    assert_eq!(from_a.status(), 202);

    let view = contact(&hub).await;
    let windows = view["windows"].as_array().expect("windows");
    assert_eq!(windows.len(), 1, "{view}");
    assert_eq!(windows[0]["sender"], SENDER);
    assert!(windows[0]["open_until"].is_string());
    assert_eq!(view["window_open_until"], windows[0]["open_until"]);

    // Once the contact writes to B, B has its own window.
    twilio_inbound(&hub, 2, OTHER_SENDER, "and from you?").await;
    let from_b = hub.post("/v1/messages", freeform(OTHER_SENDER)).await;
    assert_eq!(from_b.status(), 202);
    assert_eq!(
        contact(&hub).await["windows"].as_array().map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn keyword_consent_comes_only_from_the_contact() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    let path = format!("/v1/contacts/{CONTACT}/opt-in");
    let opt_in = |body: Value| hub.post(&path, body);
    let wording = hub.published_wording().await;
    let before = hub.events().await.len();
    // Every opt-in cites a published wording: a made-up version is refused, naming it.
    let made_up = opt_in(
        json!({"source": "web_form", "evidence": "https://example.com/f/9",
                                "recorded_by": "ops", "wording_version": "v1"}),
    )
    .await;
    let error = error_of(made_up, 400).await;
    assert_eq!(error["field"], "wording_version", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("\"v1\"")),
        "{error}"
    );
    assert_eq!(hub.events().await.len(), before, "nothing appended");
    let keyword = opt_in(json!({"source": "keyword", "evidence": "START",
                                "recorded_by": "agent", "wording_version": wording}))
    .await;
    let error = error_of(keyword, 400).await;
    assert_eq!(error["field"], "source", "{error}");
    assert_eq!(hub.events().await.len(), before, "nothing appended");

    // After the contact's STOP, an opt-in needs evidence dated after it.
    let now = unix_now();
    meta_inbound(&hub, "STOP", "STOP", now - 30).await;
    let before = hub.events().await.len();
    let undated = opt_in(
        json!({"source": "web_form", "evidence": "https://example.com/f/2",
                                "recorded_by": "ops", "wording_version": wording}),
    )
    .await;
    assert_eq!(error_of(undated, 400).await["field"], "evidence_at");
    let stale = opt_in(
        json!({"source": "web_form", "evidence": "https://example.com/f/2",
                              "recorded_by": "ops", "wording_version": wording, "evidence_at": "2026-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(error_of(stale, 400).await["field"], "evidence_at");
    let future = opt_in(
        json!({"source": "web_form", "evidence": "https://example.com/f/2",
                               "recorded_by": "ops", "wording_version": wording, "evidence_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(error_of(future, 400).await["field"], "evidence_at");
    let garbled = opt_in(
        json!({"source": "web_form", "evidence": "https://example.com/f/2",
                                "recorded_by": "ops", "wording_version": wording, "evidence_at": "yesterday"}),
    )
    .await;
    assert_eq!(error_of(garbled, 400).await["field"], "evidence_at");
    assert_eq!(hub.events().await.len(), before, "nothing appended");

    let fresh = chrono::DateTime::from_timestamp(now - 10, 0)
        .expect("time")
        .to_rfc3339();
    let renewed = opt_in(
        json!({"source": "web_form", "evidence": "https://example.com/f/3",
                                "recorded_by": "ops", "wording_version": wording, "evidence_at": fresh}),
    )
    .await;
    assert_eq!(renewed.status(), 200);
    let view = contact(&hub).await;
    assert_eq!(view["consent"]["state"], "opted_in");
    assert!(
        view["consent"]["receipt"]["evidence_at"].is_string(),
        "{view}"
    );
}
