//! Issue 16's outgoing event webhooks against the real binary and a local receiver: events
//! arrive signed (`Wagate-Signature: t=…,v1=…`) and in log order; a receiver that fails for a
//! while then gets every event in order; a SIGKILL in the middle of a delivery and a restart
//! leave no gap; a tampered body or signature fails the verification docs/webhooks.md documents.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::review_alerts::meta_inbound;
use crate::support::*;

const RECEIVER_PATH: &str = "/wagate-events";

/// One request the receiver saw: its raw body, its signature header, whether it answered 2xx.
type Seen = (Vec<u8>, String, bool);

/// A local receiving endpoint that can be made to fail or to answer slowly.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    failing: Arc<AtomicBool>,
    delay: Arc<Mutex<Duration>>,
}

impl Respond for Receiver {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let failing = self.failing.load(Ordering::SeqCst);
        let signature = request
            .headers
            .get("Wagate-Signature")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.seen
            .lock()
            .expect("lock")
            .push((request.body.clone(), signature, !failing));
        let answer = if failing {
            ResponseTemplate::new(503)
        } else {
            ResponseTemplate::new(204)
        };
        answer.set_delay(*self.delay.lock().expect("lock"))
    }
}

impl Receiver {
    async fn serve(&self) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(RECEIVER_PATH))
            .respond_with(self.clone())
            .mount(&server)
            .await;
        server
    }

    /// The bodies answered 2xx, parsed.
    fn acknowledged(&self) -> Vec<Value> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, _, ok)| *ok)
            .map(|(body, _, _)| serde_json::from_slice(body).expect("json body"))
            .collect()
    }

    fn attempts(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    async fn wait_for(&self, what: &str, done: impl Fn(&Receiver) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The verification docs/webhooks.md documents, step by step: parse `t` and every `v1`, refuse
/// a `t` more than 5 minutes from now, compute HMAC-SHA256(secret, "<t>.<raw body>") in hex and
/// compare it in constant time with each `v1`.
fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), &'static str> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value.to_owned()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("no timestamp")?;
    if (now - timestamp).abs() > 300 {
        return Err("timestamp outside the tolerance");
    }
    for signature in signatures {
        let Ok(expected) = hex::decode(&signature) else {
            continue;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        if mac.verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    Err("no matching signature")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Registers `url` for `events` as the operator: (id, secret).
async fn register(hub: &Hub, url: &str, events: &[&str]) -> (String, String) {
    let response = hub
        .post(
            "/v1/webhook-endpoints",
            json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    (
        body["id"].as_str().expect("id").to_owned(),
        body["secret"].as_str().expect("secret").to_owned(),
    )
}

/// An explicit opt-in of the test contact (recorded every time: each is a receipt).
async fn opt_in(hub: &Hub) -> u64 {
    let wording = hub.published_wording().await;
    let response = hub
        .post(
            &format!("/v1/contacts/{CONTACT}/opt-in"),
            json!({"source": "web_form", "evidence": "https://example.com/f/2", "recorded_by": "e2e",
                   "wording_version": wording}),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());
    hub.events()
        .await
        .iter()
        .filter(|event| event["type"] == "OptedIn")
        .map(|event| event["position"].as_u64().expect("position"))
        .max()
        .expect("an OptedIn")
}

#[tokio::test]
async fn events_arrive_signed_and_in_log_order_and_tampering_fails_verification() {
    let receiver = Receiver::default();
    let server = receiver.serve().await;
    let data = tempfile::tempdir().expect("tempdir");
    let hub = start(data.path());
    hub.ready().await;

    // Only https, or http to a loopback host; an agent may not register.
    let refused = hub
        .post(
            "/v1/webhook-endpoints",
            json!({"url": "http://agent.example.com/x", "events": ["opted_out"]}),
        )
        .await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.expect("text").contains("url"));
    let unknown = hub
        .post(
            "/v1/webhook-endpoints",
            json!({"url": "https://agent.example.com/x", "events": ["delivered"]}),
        )
        .await;
    assert_eq!(unknown.status(), 400);
    let agent = hub
        .post_as(
            AGENT_TOKEN,
            "/v1/webhook-endpoints",
            json!({"url": "https://agent.example.com/x", "events": ["opted_out"]}),
        )
        .await;
    assert_eq!(agent.status(), 403);

    let url = format!("{}{RECEIVER_PATH}", server.uri());
    let (id, secret) = register(&hub, &url, &["inbound_message", "opted_out", "opted_in"]).await;
    assert!(id.starts_with("ep_") && secret.starts_with("whsec_"));

    // hello, STOP (a keyword: an inbound message and an opt-out), START (inbound and opt-in).
    meta_inbound(&hub, "WH1", "hello").await;
    meta_inbound(&hub, "WH2", "STOP").await;
    meta_inbound(&hub, "WH3", "START").await;
    receiver
        .wait_for("5 deliveries", |r| r.acknowledged().len() >= 5)
        .await;

    let delivered = receiver.acknowledged();
    let types: Vec<&str> = delivered
        .iter()
        .map(|d| d["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "inbound_message",
            "inbound_message",
            "opted_out",
            "inbound_message",
            "opted_in"
        ]
    );
    // Each carries its event's id, position and data as the log has them, in log order.
    let log = hub.events().await;
    let mut last = 0;
    for delivery in &delivered {
        let position = delivery["position"].as_u64().expect("position");
        assert!(position > last, "in log order: {delivered:?}");
        last = position;
        let event = log
            .iter()
            .find(|event| event["position"] == position)
            .expect("a logged event");
        assert_eq!(delivery["id"], event["event_id"]);
        assert_eq!(delivery["event_type"], event["type"]);
        assert_eq!(delivery["data"], event["payload"]);
    }
    assert_eq!(delivered[1]["data"]["text"], "STOP");

    // Every request verifies with the secret; a tampered body, signature or secret does not.
    let seen = receiver.seen.lock().expect("lock").clone();
    for (body, header, _) in &seen {
        assert_eq!(verify(&secret, header, body, now()), Ok(()), "{header}");
    }
    let (body, header, _) = &seen[0];
    let mut tampered = body.clone();
    let at = tampered
        .iter()
        .position(|b| *b == b'h')
        .expect("a letter to change");
    tampered[at] = b'j';
    assert!(verify(&secret, header, &tampered, now()).is_err());
    let mut bad_header = header.clone();
    let last_char = bad_header.pop().expect("hex");
    bad_header.push(if last_char == '0' { '1' } else { '0' });
    assert!(verify(&secret, &bad_header, body, now()).is_err());
    assert!(verify("whsec_other", header, body, now()).is_err());
    assert!(verify(&secret, header, body, now() + 3600).is_err());

    // The list shows who registered it, without the secret; a deletion stops deliveries.
    let list: Value = hub
        .get("/v1/webhook-endpoints")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["endpoints"][0]["id"], id.as_str());
    // The operator token of these tests is named `api`.
    assert_eq!(list["endpoints"][0]["created_by"], "api");
    assert!(list["endpoints"][0].get("secret").is_none());
    let deleted = hub
        .http
        .delete(hub.url(&format!("/v1/webhook-endpoints/{id}")))
        .bearer_auth(&hub.token)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 200);
    let types: Vec<String> = log
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(types.contains(&"WebhookEndpointRegistered".to_owned()));
    // The export (the feed is the export's format) holds no secret.
    let feed = hub
        .get("/v1/events?after=0")
        .await
        .text()
        .await
        .expect("feed");
    assert!(!feed.contains(&secret));
}

/// A ready hub on `data` with `receiver` (served by the returned server) registered for
/// `opted_in`.
async fn hub_with_receiver(data: &std::path::Path, receiver: &Receiver) -> (Hub, MockServer) {
    let server = receiver.serve().await;
    let hub = start(data);
    hub.ready().await;
    register(
        &hub,
        &format!("{}{RECEIVER_PATH}", server.uri()),
        &["opted_in"],
    )
    .await;
    (hub, server)
}

#[tokio::test]
async fn a_receiver_failing_for_a_while_then_gets_every_event_in_order() {
    let receiver = Receiver::default();
    let data = tempfile::tempdir().expect("tempdir");
    let (hub, _server) = hub_with_receiver(data.path(), &receiver).await;

    receiver.failing.store(true, Ordering::SeqCst);
    let mut expected = Vec::new();
    for _ in 0..5 {
        expected.push(opt_in(&hub).await);
    }
    receiver
        .wait_for("3 failed attempts", |r| r.attempts() >= 3)
        .await;
    receiver.failing.store(false, Ordering::SeqCst);
    receiver
        .wait_for("every event", |r| r.acknowledged().len() >= expected.len())
        .await;
    let positions: Vec<u64> = receiver
        .acknowledged()
        .iter()
        .map(|d| d["position"].as_u64().expect("position"))
        .collect();
    assert_eq!(positions, expected);
    // The list says how far deliveries got, once the progress is saved.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list: Value = hub
            .get("/v1/webhook-endpoints")
            .await
            .json()
            .await
            .expect("json");
        let through = list["endpoints"][0]["delivered_through"]
            .as_u64()
            .expect("delivered_through");
        if through >= expected[expected.len() - 1] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "delivered_through stays at {through}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The failed attempts were all of the first event: nothing overtook it.
    let seen = receiver.seen.lock().expect("lock").clone();
    for (body, _, ok) in &seen {
        if !ok {
            let body: Value = serde_json::from_slice(body).expect("json");
            assert_eq!(body["position"], expected[0]);
        }
    }
}

#[tokio::test]
async fn a_sigkill_in_the_middle_of_deliveries_and_a_restart_leave_no_gap() {
    let receiver = Receiver::default();
    *receiver.delay.lock().expect("lock") = Duration::from_millis(300);
    let data = tempfile::tempdir().expect("tempdir");
    let (hub, _server) = hub_with_receiver(data.path(), &receiver).await;
    let mut expected = Vec::new();
    for _ in 0..8 {
        expected.push(opt_in(&hub).await);
    }
    receiver.wait_for("3 requests", |r| r.attempts() >= 3).await;
    // SIGKILL while a delivery waits for its answer.
    drop(hub);
    let delivered_before = receiver.attempts();
    assert!(
        delivered_before < expected.len(),
        "the kill came too late to test anything"
    );
    *receiver.delay.lock().expect("lock") = Duration::ZERO;
    let hub = start(data.path());
    receiver
        .wait_for("every event after the restart", |r| {
            let positions: Vec<u64> = r
                .acknowledged()
                .iter()
                .map(|d| d["position"].as_u64().expect("position"))
                .collect();
            expected.iter().all(|p| positions.contains(p))
        })
        .await;
    let positions: Vec<u64> = receiver
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|(body, _, _)| {
            serde_json::from_slice::<Value>(body).expect("json")["position"]
                .as_u64()
                .expect("position")
        })
        .collect();
    // In order by first arrival, nothing missing, and only what the crash left unacknowledged
    // in its batch repeated.
    let mut first: Vec<u64> = Vec::new();
    for position in &positions {
        if !first.contains(position) {
            first.push(*position);
        }
    }
    assert_eq!(first, expected, "{positions:?}");
    assert!(
        positions.len() - expected.len() <= delivered_before,
        "{positions:?}"
    );
    drop(hub);
}
