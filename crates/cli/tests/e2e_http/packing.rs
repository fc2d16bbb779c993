//! Packing through the binary: a hub told to keep no event unpacked
//! (`WAGATE_UNPACKED_TAIL_EVENTS=0`) packs its log into blocks while it runs, and everything
//! keeps answering as before, across a restart (docs/storage.md, "Packing"); the restart (with a
//! small sled cache, `WAGATE_SLED_CACHE_MIB`) packs the webhooks' de-duplication keys, which
//! still refuse a retried webhook.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wagate_providers::twilio::{compute_signature, SigningAlgorithm, SortedParams};
use wagate_providers::Secret;

use crate::support::*;

const PACK_EVERYTHING: &[(&str, &str)] = &[
    ("WAGATE_UNPACKED_TAIL_EVENTS", "0"),
    ("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
];
/// The restart: the same, with a small sled page cache.
const PACK_EVERYTHING_SMALL_CACHE: &[(&str, &str)] = &[
    ("WAGATE_UNPACKED_TAIL_EVENTS", "0"),
    ("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
    ("WAGATE_SLED_CACHE_MIB", "4"),
];
const CONTACT: &str = "+41790000042";

fn status_callback(n: usize) -> (Vec<u8>, String) {
    let body = format!(
        "MessageSid=SM{n:032x}&MessageStatus=delivered&To=whatsapp%3A%2B41790000001&From=whatsapp%3A%2B15555550100"
    );
    let signature = compute_signature(
        &Secret::new(TWILIO_AUTH_TOKEN),
        SigningAlgorithm::HmacSha1,
        &format!("{PUBLIC_URL}/webhooks/twilio/status"),
        &SortedParams::from_form(body.as_bytes()),
    );
    (body.into_bytes(), signature)
}

async fn metric(hub: &Hub, name: &str) -> u64 {
    let metrics = hub.get("/metrics").await.text().await.expect("metrics");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

async fn packed_position(hub: &Hub) -> u64 {
    metric(hub, "wagate_store_packed_position").await
}

/// Waits until the hub has packed at least `at_least` positions (bounded: a guard against a
/// hung suite, not a timing assertion).
async fn wait_packed(hub: &Hub, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let packed = packed_position(hub).await;
        if packed >= at_least {
            return packed;
        }
        assert!(
            Instant::now() < deadline,
            "packed only up to {packed}, waiting for {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn contact(hub: &Hub) -> Value {
    let response = hub.get(&format!("/v1/contacts/{CONTACT}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_hub_that_packs_its_log_answers_as_before_across_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start_with(dir.path(), PACK_EVERYTHING, &[]);
    hub.ready().await;
    let wording = hub.published_wording().await;
    let opt_in = hub
        .post(
            &format!("/v1/contacts/{CONTACT}/opt-in"),
            serde_json::json!({"source": "api", "evidence": "e2e", "recorded_by": "e2e", "wording_version": wording}),
        )
        .await;
    assert_eq!(opt_in.status(), 200);
    for _ in 0..10 {
        let sent = hub.post("/v1/messages", template_send(CONTACT)).await;
        assert_eq!(sent.status(), 202);
    }
    for n in 0..150 {
        let (body, signature) = status_callback(n);
        let status = hub
            .twilio("/webhooks/twilio/status", body, &signature)
            .await
            .status();
        assert!(status.is_success(), "{status}");
    }
    // 10 sends, 150 callbacks, the start-up's registrations: several whole blocks.
    let packed = wait_packed(&hub, 128).await;
    let events = hub.events().await;
    assert!(packed < events.len() as u64 + 1, "{packed}");
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().expect("position"))
        .collect();
    assert_eq!(positions, (1..=events.len() as u64).collect::<Vec<_>>());
    let before = contact(&hub).await;

    // De-duplication, the contact's consent and its stream's version still hold on packed events.
    let (body, signature) = status_callback(3);
    let again = hub
        .twilio("/webhooks/twilio/status", body, &signature)
        .await
        .status();
    assert!(again.is_success(), "{again}");
    assert_eq!(
        hub.events().await.len(),
        events.len(),
        "a duplicate adds nothing"
    );
    let sent = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(sent.status(), 202);
    let status = hub.terminate();
    assert!(status.success(), "{status}");

    let hub = start_with(dir.path(), PACK_EVERYTHING_SMALL_CACHE, &[]);
    hub.ready().await;
    // The first walk after an open packs every durable key: the 150 callbacks' keys.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&hub, "wagate_store_keys_packed_total").await < 150 {
        assert!(Instant::now() < deadline, "the keys were not packed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before_retry = hub.events().await.len();
    let (body, signature) = status_callback(7);
    let retried = hub
        .twilio("/webhooks/twilio/status", body, &signature)
        .await;
    assert!(retried.status().is_success(), "{}", retried.status());
    assert_eq!(
        hub.events().await.len(),
        before_retry,
        "a retry of a callback whose key is packed adds nothing"
    );
    let after = hub.events().await;
    assert_eq!(
        after[..events.len()],
        events[..],
        "the log reads back unchanged"
    );
    let reread = contact(&hub).await;
    assert_eq!(reread["consent"], before["consent"]);
    assert_eq!(reread["version"], before["version"]);
    let stop = hub
        .post(
            &format!("/v1/contacts/{CONTACT}/opt-out"),
            serde_json::json!({"detail": "e2e"}),
        )
        .await;
    assert!(stop.status().is_success(), "{}", stop.status());
    let refused = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(
        refused.status(),
        422,
        "an opt-out on a packed contact holds"
    );
    assert!(packed_position(&hub).await >= packed);
    let status = hub.terminate();
    assert!(status.success(), "{status}");

    // The offline tools read the packed folder too.
    let audit = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["audit", "--data"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run audit");
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let export = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["export", "--data"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run export");
    assert!(export.status.success());
    let exported = String::from_utf8(export.stdout).expect("utf-8");
    assert!(exported.lines().count() > events.len());
}
