//! Everything a webhook says is kept (issue 13, point 5; point 2 for the account notices):
//! genuine signed webhooks of every shape the issue lists, posted to the real binary, and the
//! export checked for each of their values. Also: value-level errors beside a message do not
//! cost the message, a Twilio status whose `To` does not parse is accepted, `signup` lifts the
//! marketing pause, Meta's limit and quality notices set the portfolio's limit with Meta as the
//! actor, and a restricted account suspends its sender.

use serde_json::{json, Value};
use wagate_providers::twilio::{compute_signature, SigningAlgorithm, SortedParams};
use wagate_providers::Secret;

use crate::support::*;

const META_FILES: [&str; 9] = [
    "meta_webhook_inbound_rich.json",
    "meta_webhook_status_pricing.json",
    "meta_webhook_status_failed_131047.json",
    "meta_webhook_errors_beside_message.json",
    "meta_webhook_user_preferences_signup.json",
    "meta_webhook_phone_number_quality_update.json",
    "meta_webhook_business_capability_update.json",
    "meta_webhook_account_update_disabled.json",
    "meta_webhook_account_update_restriction.json",
];

const TWILIO_FILES: [(&str, &str); 4] = [
    ("/webhooks/twilio/inbound", "twilio_inbound_location.form"),
    ("/webhooks/twilio/inbound", "twilio_inbound_referral.form"),
    (
        "/webhooks/twilio/inbound",
        "twilio_inbound_button_reply.form",
    ),
    (
        "/webhooks/twilio/status",
        "twilio_status_failed_error_message.form",
    ),
];

/// Words that say which kind of webhook a body is, not what it says.
const ENVELOPE: [&str; 5] = [
    "whatsapp_business_account",
    "messages",
    "user_preferences",
    "whatsapp",
    "individual",
];

fn leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Null => {}
    }
}

/// Whether the exported JSON text holds `value` (as JSON escapes it, or as a status word).
fn holds(export: &str, value: &str) -> bool {
    let escaped = serde_json::to_string(value).expect("json");
    let escaped = &escaped[1..escaped.len() - 1];
    export.contains(escaped) || export.to_lowercase().contains(&value.to_lowercase())
}

async fn post_meta(hub: &Hub, body: Vec<u8>) -> reqwest::Response {
    let signature = wagate_providers::meta::compute_signature(&Secret::new(META_APP_SECRET), &body);
    hub.http
        .post(hub.url("/webhooks/meta"))
        .header("Content-Type", "application/json")
        .header("X-Hub-Signature-256", signature)
        .body(body)
        .send()
        .await
        .expect("POST /webhooks/meta")
}

async fn post_twilio(hub: &Hub, path: &str, body: Vec<u8>) -> reqwest::Response {
    let signature = compute_signature(
        &Secret::new(TWILIO_AUTH_TOKEN),
        SigningAlgorithm::HmacSha1,
        &format!("{PUBLIC_URL}{path}"),
        &SortedParams::from_form(&body),
    );
    hub.twilio(path, body, &signature).await
}

fn of_type<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == event_type).collect()
}

#[tokio::test]
async fn the_export_of_genuine_webhooks_holds_every_value_they_carry() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    for (path, body) in [
        (
            "/v1/senders",
            json!({"address": SENDER, "provider": "meta", "portfolio": "default",
                   "meta_phone_number_id": "109876543210987"}),
        ),
        (
            "/v1/senders/whatsapp:+15555550100/authorize",
            json!({"by": "ops@example.com"}),
        ),
        (
            "/v1/portfolios/default/messaging-limit",
            json!({"limit": 250}),
        ),
    ] {
        let response = hub.post(path, body).await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }

    for file in META_FILES {
        let response = post_meta(&hub, fixture(file)).await;
        assert_eq!(response.status(), 200, "{file}");
        let summary: Value = response.json().await.expect("summary");
        assert_eq!(summary["rejected"], 0, "{file}: {summary}");
    }
    for (path, file) in TWILIO_FILES {
        let response = post_twilio(&hub, path, fixture(file)).await;
        assert!(
            response.status().is_success(),
            "{file}: {}",
            response.status()
        );
    }
    // A status whose informational `To` does not parse is still a failure to record.
    let bad_to = String::from_utf8(fixture("twilio_status_undelivered_63024.form"))
        .expect("utf-8")
        .replace("To=whatsapp%3A%2B", "To=whatsapp%3A");
    let response = post_twilio(&hub, "/webhooks/twilio/status", bad_to.clone().into_bytes()).await;
    assert!(response.status().is_success(), "{}", response.status());

    let events = hub.events().await;
    let export = serde_json::to_string(&events).expect("json");
    for file in META_FILES {
        let mut values = Vec::new();
        leaves(
            &serde_json::from_slice(&fixture(file)).expect("json"),
            &mut values,
        );
        for value in values {
            if value.is_empty() || ENVELOPE.contains(&value.as_str()) {
                continue;
            }
            assert!(
                holds(&export, &value),
                "{file}: {value:?} is not in the export"
            );
        }
    }
    for (_, file) in TWILIO_FILES {
        for (key, value) in url::form_urlencoded::parse(&fixture(file)) {
            assert!(
                holds(&export, &value),
                "{file}: {key}={value:?} is not in the export"
            );
        }
    }
    for (key, value) in url::form_urlencoded::parse(bad_to.as_bytes()) {
        assert!(
            holds(&export, &value),
            "bad To: {key}={value:?} is not in the export"
        );
    }

    // The message beside value-level errors is ingested; the errors are a provider notice.
    assert!(export.contains("Still there?"));
    let notices = of_type(&events, "ProviderNoticeReceived");
    assert!(notices.iter().any(|n| n["payload"]["kind"] == "errors"));
    assert!(
        notices
            .iter()
            .all(|n| n["actor"]["kind"] == "webhook"
                && n["stream"] == "provider:meta:102938475610293")
    );

    // stop, then signup: the marketing pause is raised and lifted.
    let raised = of_type(&events, "FlagRaised");
    let cleared = of_type(&events, "FlagCleared");
    assert!(raised
        .iter()
        .any(|e| e["payload"]["flag"] == "marketing_paused"));
    assert!(cleared
        .iter()
        .any(|e| e["payload"]["flag"] == "marketing_paused"));

    // The limit follows Meta (10K from the capability update, after 2K from the quality
    // update), appended as Meta; the manual one was the operator's.
    let limits: Vec<(Value, Value)> = of_type(&events, "MessagingLimitChanged")
        .into_iter()
        .map(|e| (e["payload"]["limit"].clone(), e["actor"]["kind"].clone()))
        .collect();
    assert_eq!(
        limits,
        [
            (json!(250), json!("operator")),
            (json!(2000), json!("webhook")),
            (json!(10000), json!("webhook")),
        ]
    );
    // A ban suspends the account's sender, once.
    let suspended = of_type(&events, "SenderSuspended");
    assert_eq!(suspended.len(), 1, "{suspended:?}");
    assert!(suspended[0]["payload"]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("DISABLED_UPDATE")));
    let senders: Value = hub.get("/v1/senders").await.json().await.expect("json");
    assert_eq!(senders[0]["may_send"], false, "{senders}");

    // Every 2xx left a trace in the log, nothing went to the rejection log.
    assert_eq!(audit_lines(dir.path()), Vec::<Value>::new());
}
