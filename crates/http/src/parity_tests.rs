//! Cross-provider parity: equivalent Twilio and Meta webhooks (the same inbound text, the same
//! template button tap, each status, a failure outside the window), each through its own
//! webhook route on its own hub, append the same domain events, once the provider-specific
//! parts are set aside: provider ids, the provider's own clock (Meta only), the provider's
//! `details`, and the error code, compared by what it means (`classify_code`) rather than by
//! number.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;
use wagate_domain::classify::classify_code;
use wagate_domain::ProviderKind;

use super::{app, call, fixture, signature, twilio, TestApp};

const TWILIO: [(&str, &str); 6] = [
    ("/webhooks/twilio/inbound", "twilio_inbound_text.form"),
    (
        "/webhooks/twilio/inbound",
        "twilio_inbound_button_reply.form",
    ),
    ("/webhooks/twilio/status", "twilio_status_sent.form"),
    ("/webhooks/twilio/status", "twilio_status_delivered.form"),
    ("/webhooks/twilio/status", "twilio_status_read.form"),
    ("/webhooks/twilio/status", "twilio_status_failed_63016.form"),
];

const META: [&str; 6] = [
    "meta_webhook_inbound_text.json",
    "meta_webhook_inbound_button_reply.json",
    "meta_webhook_status_sent.json",
    "meta_webhook_status_delivered.json",
    "meta_webhook_status_read.json",
    "meta_webhook_status_failed_131047.json",
];

/// The log's events as exported, without what is the provider's own.
fn comparable(app: &TestApp, provider: ProviderKind) -> Vec<(String, Value)> {
    app.hub
        .events_after(0, 10_000)
        .expect("events")
        .into_iter()
        .map(|logged| {
            let line = wagate_export::ExportedEvent::from_parts(
                logged.position,
                &logged.event.stream().to_string(),
                1,
                "id",
                &logged.event,
            );
            let mut payload = line.payload.clone();
            for own in ["provider_ref", "provider_at", "details"] {
                payload.remove(own);
            }
            if let Some(code) = payload.get("error_code").and_then(Value::as_u64) {
                let class = classify_code(provider, u32::try_from(code).expect("code"));
                payload.insert("error_code".into(), Value::String(format!("{class:?}")));
            }
            (line.event_type.clone(), Value::Object(payload))
        })
        .collect()
}

#[tokio::test]
async fn equivalent_twilio_and_meta_webhooks_append_the_same_domain_events() {
    let via_twilio = app();
    for (route, file) in TWILIO {
        let answer = call(
            &via_twilio,
            twilio(route, fixture(file), Some(&signature(file))),
        )
        .await;
        assert!(answer.status.is_success(), "{file}: {}", answer.text());
    }
    let via_meta = app();
    for file in META {
        let request = Request::post("/webhooks/meta")
            .header("X-Hub-Signature-256", signature(file))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(fixture(file)))
            .expect("request");
        let answer = call(&via_meta, request).await;
        assert_eq!(answer.status, StatusCode::OK, "{file}: {}", answer.text());
        assert_eq!(answer.json()["rejected"], 0, "{file}");
    }
    let twilio_events = comparable(&via_twilio, ProviderKind::Twilio);
    let meta_events = comparable(&via_meta, ProviderKind::Meta);
    let types: Vec<&str> = twilio_events.iter().map(|(t, _)| t.as_str()).collect();
    // Two inbound messages (the text opens the window, the tap too), four statuses that match
    // no message of this hub, kept on their provider ids' streams.
    assert_eq!(
        types,
        [
            "InboundReceived",
            "InboundReceived",
            "UnmatchedStatusReceived",
            "UnmatchedStatusReceived",
            "UnmatchedStatusReceived",
            "UnmatchedStatusReceived",
        ]
    );
    assert_eq!(twilio_events, meta_events);
}
