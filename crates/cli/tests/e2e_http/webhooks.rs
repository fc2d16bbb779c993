//! Provider webhooks against the real binary.

use std::sync::Arc;

use serde_json::Value;
use wagate_providers::twilio::{compute_signature, SigningAlgorithm, SortedParams};
use wagate_providers::Secret;

use crate::support::*;

#[tokio::test]
pub(crate) async fn signed_fixtures_are_accepted_once_tampered_ones_rejected_and_audited() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    let path = "/webhooks/twilio/inbound";
    for file in [
        "twilio_inbound_text.form",
        "twilio_inbound_button_reply.form",
        "twilio_inbound_media.form",
    ] {
        let signature = twilio_signature(path, file);
        for _ in 0..2 {
            let response = hub.twilio(path, fixture(file), &signature).await;
            assert_eq!(response.status(), 200, "{file}");
            assert!(response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/xml")));
            let body = response.text().await.expect("body");
            assert_eq!(body, wagate_http::EMPTY_TWIML);
        }
    }
    let status_path = "/webhooks/twilio/status";
    for file in [
        "twilio_status_queued.form",
        "twilio_status_sent.form",
        "twilio_status_delivered.form",
        "twilio_status_read.form",
    ] {
        let signature = twilio_signature(status_path, file);
        for _ in 0..2 {
            let response = hub.twilio(status_path, fixture(file), &signature).await;
            assert!(
                response.status().is_success(),
                "{file}: {}",
                response.status()
            );
        }
    }
    for file in [
        "meta_webhook_inbound_text_unicode.json",
        "meta_webhook_status_failed_131047.json",
    ] {
        for _ in 0..2 {
            let response = hub
                .http
                .post(hub.url("/webhooks/meta"))
                .header("Content-Type", "application/json")
                .header("X-Hub-Signature-256", meta_signature(file))
                .body(fixture(file))
                .send()
                .await
                .expect("meta");
            assert_eq!(response.status(), 200, "{file}");
        }
    }

    let events = hub.events().await;
    let inbound = events
        .iter()
        .filter(|e| e["type"] == "InboundReceived")
        .count();
    let unmatched = events
        .iter()
        .filter(|e| e["type"] == "UnmatchedStatusReceived")
        .count();
    // 3 Twilio inbound + 1 Meta inbound; 4 Twilio statuses + 1 Meta status, each once.
    assert_eq!(inbound, 4, "{events:?}");
    assert_eq!(unmatched, 5, "{events:?}");
    let head = events.len();

    // Tampered: a changed body, a missing signature, a different URL, a bad Meta MAC.
    let mut tampered = fixture("twilio_status_delivered.form");
    tampered.extend_from_slice(b"&ErrorCode=63016");
    let delivered_signature = twilio_signature(status_path, "twilio_status_delivered.form");
    let answers = [
        hub.twilio(status_path, tampered, &delivered_signature)
            .await
            .status(),
        hub.twilio(status_path, fixture("twilio_status_delivered.form"), "")
            .await
            .status(),
        hub.twilio(
            "/webhooks/twilio/inbound",
            fixture("twilio_status_delivered.form"),
            &delivered_signature,
        )
        .await
        .status(),
        hub.http
            .post(hub.url("/webhooks/meta"))
            .header(
                "X-Hub-Signature-256",
                meta_signature("meta_webhook_inbound_text.json"),
            )
            .body(fixture("meta_webhook_inbound_text_unicode.json"))
            .send()
            .await
            .expect("meta")
            .status(),
    ];
    assert!(answers.iter().all(|s| *s == 403), "{answers:?}");
    assert_eq!(hub.events().await.len(), head, "nothing appended");
    let audit = audit_lines(dir.path());
    assert_eq!(audit.len(), 4, "{audit:?}");
    for line in &audit {
        assert_eq!(line["verdict"], "forbidden");
        assert!(line["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with("127.0.0.1:")));
        assert!(line["time"].is_string() && line["body_base64"].is_string());
    }

    let metrics = hub
        .http
        .get(hub.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            "wagate_http_requests_total{route=\"/webhooks/twilio/status\",verdict=\"duplicate\"} 4"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("wagate_webhook_duplicates_total{provider=\"twilio\"} 7"));
}

#[tokio::test]
pub(crate) async fn a_stop_makes_the_next_send_422_opted_out() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    let first = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(first.status(), 202);

    let path = "/webhooks/twilio/inbound";
    let stop = hub
        .twilio(
            path,
            fixture("twilio_inbound_stop.form"),
            &twilio_signature(path, "twilio_inbound_stop.form"),
        )
        .await;
    assert_eq!(stop.status(), 200);

    let refused = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["rule"], "opted_out", "{body}");

    // The message queued before the STOP is canceled at claim time.
    let pending: Value = hub
        .get_as(&hub.dispatcher, "/v1/dispatch/pending")
        .await
        .json()
        .await
        .expect("json");
    let id = pending["messages"][0]["message_id"]
        .as_str()
        .expect("pending message")
        .to_owned();
    let claim = hub
        .post_as(
            &hub.dispatcher,
            &format!("/v1/messages/{id}/claim"),
            Value::Null,
        )
        .await;
    assert_eq!(claim.status(), 422);
    let claim: Value = claim.json().await.expect("json");
    assert_eq!(claim["error"]["rule"], "opted_out");
}

#[tokio::test]
pub(crate) async fn concurrent_webhooks_and_commands_each_land_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = Arc::new(start(dir.path()));
    hub.ready().await;
    let secret = Secret::new(TWILIO_AUTH_TOKEN);
    let url = format!("{PUBLIC_URL}/webhooks/twilio/status");
    let callbacks: Vec<(String, String)> = (0..60)
        .map(|n| {
            let body = format!(
                "MessageSid=SM{n:032x}&MessageStatus=delivered&To=whatsapp%3A%2B41790000001&From=whatsapp%3A%2B15555550100"
            );
            let signature = compute_signature(
                &secret,
                SigningAlgorithm::HmacSha1,
                &url,
                &SortedParams::from_form(body.as_bytes()),
            );
            (body, signature)
        })
        .collect();
    let wording = hub.published_wording().await;
    let mut tasks = tokio::task::JoinSet::new();
    // Every callback three times, concurrently, interleaved with sends and opt-ins.
    for round in 0..3 {
        for (body, signature) in &callbacks {
            let hub = Arc::clone(&hub);
            let (body, signature) = (body.clone(), signature.clone());
            tasks.spawn(async move {
                let status = hub
                    .twilio("/webhooks/twilio/status", body.into_bytes(), &signature)
                    .await
                    .status();
                assert!(status.is_success(), "{status}");
            });
        }
        for n in 0..20 {
            let hub = Arc::clone(&hub);
            let wording = wording.clone();
            tasks.spawn(async move {
                let contact = format!("+4179100{round}{n:04}");
                let opt_in = hub
                    .post(
                        &format!("/v1/contacts/{contact}/opt-in"),
                        serde_json::json!({"source": "api", "evidence": "e2e", "recorded_by": "e2e", "wording_version": wording}),
                    )
                    .await
                    .status();
                assert_eq!(opt_in, 200);
                let sent = hub.post("/v1/messages", template_send(&contact)).await.status();
                assert_eq!(sent, 202);
            });
        }
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task");
    }
    let events = hub.events().await;
    let count = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(count("UnmatchedStatusReceived"), 60);
    assert_eq!(count("TemplateSent"), 60);
    assert_eq!(count("OptedIn"), 61);
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().expect("position"))
        .collect();
    assert!(positions.windows(2).all(|w| w[1] == w[0] + 1), "gap-free");
}
