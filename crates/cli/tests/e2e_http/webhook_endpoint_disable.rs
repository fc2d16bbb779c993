//! Issue 16's delivery log, "disabled after failing too long" and manual retry, through the
//! real binary and a local receiver: a failing receiver's attempts are listed, numbered, with
//! their status (`GET /v1/webhook-endpoints/{id}/deliveries`, `wagate endpoints deliveries`);
//! after `WAGATE_WEBHOOK_DISABLE_AFTER_DAYS` (a few seconds here) the endpoint is `disabled` and
//! a `webhook_endpoint_disabled` review item is open; once the receiver is fixed,
//! `wagate endpoints retry` re-enables it and every event arrives, in log order, none lost.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::*;

const RECEIVER_PATH: &str = "/wagate-events";

/// 0.00005 days: 4.32 seconds of continuous failure disables the endpoint.
const DISABLE_AFTER_DAYS: &str = "0.00005";

/// A local receiving endpoint that answers 503 while `failing`, else 204, and keeps each
/// request's parsed body with whether it was acknowledged.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(Value, bool)>>>,
    failing: Arc<AtomicBool>,
}

impl Respond for Receiver {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let failing = self.failing.load(Ordering::SeqCst);
        let body = serde_json::from_slice(&request.body).expect("a JSON delivery");
        self.seen.lock().expect("lock").push((body, !failing));
        ResponseTemplate::new(if failing { 503 } else { 204 })
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

    fn attempts(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    /// The positions acknowledged, in arrival order.
    fn acknowledged(&self) -> Vec<u64> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(body, _)| body["position"].as_u64().expect("position"))
            .collect()
    }
}

/// Polls `probe` until it answers `Some`, for at most a minute.
async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn json_of(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn endpoint(hub: &Hub, id: &str) -> Value {
    let list = json_of(hub.get("/v1/webhook-endpoints").await).await;
    list["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .find(|endpoint| endpoint["id"] == id)
        .expect("the endpoint")
        .clone()
}

/// An explicit opt-in of the test contact: its log position.
async fn opt_in(hub: &Hub) -> u64 {
    let response = hub
        .post(
            &format!("/v1/contacts/{CONTACT}/opt-in"),
            json!({"source": "web_form", "evidence": "https://example.com/f/3", "recorded_by": "e2e",
                   "wording_version": "v1"}),
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

/// Runs `wagate endpoints ARGS…` against `hub` with the operator token: its stdout.
fn endpoints_cli(hub: &Hub, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .arg("endpoints")
        .args(args)
        .args(["--hub", &hub.base])
        .env("WAGATE_API_TOKEN", &hub.token)
        .env("WAGATE_LOG", "warn")
        .output()
        .expect("run wagate endpoints");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

#[tokio::test]
async fn a_receiver_failing_too_long_is_disabled_listed_and_retried_without_loss() {
    let receiver = Receiver::default();
    let server = receiver.serve().await;
    let data = tempfile::tempdir().expect("tempdir");
    let hub = start_with(
        data.path(),
        &[
            ("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
            ("WAGATE_META_APP_SECRET", META_APP_SECRET),
            ("WAGATE_WEBHOOK_DISABLE_AFTER_DAYS", DISABLE_AFTER_DAYS),
        ],
        &[],
    );
    hub.ready().await;
    let registered = hub
        .post(
            "/v1/webhook-endpoints",
            json!({"url": format!("{}{RECEIVER_PATH}", server.uri()), "events": ["opted_in"]}),
        )
        .await;
    assert_eq!(registered.status(), 201);
    let id = registered.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // The receiver fails from the first event on.
    receiver.failing.store(true, Ordering::SeqCst);
    let mut expected = Vec::new();
    for _ in 0..3 {
        expected.push(opt_in(&hub).await);
    }

    // After failing continuously for the threshold, it is disabled.
    let disabled = eventually("the endpoint disabled", || async {
        let endpoint = endpoint(&hub, &id).await;
        (endpoint["state"] == "disabled").then_some(endpoint)
    })
    .await;
    assert!(disabled["disabled_at"].is_string(), "{disabled}");
    assert!(disabled["failing_since"].is_string(), "{disabled}");
    assert!(disabled["last_success_at"].is_null(), "{disabled}");
    let reason = disabled["disabled_reason"].as_str().expect("a reason");
    assert!(reason.contains("503"), "{reason}");
    assert!(receiver.acknowledged().is_empty());

    // The delivery log (an auditor may read it): every failed attempt, newest first, numbered
    // 1, 2, … for the first event (nothing overtook it), each with the receiver's 503.
    let log = json_of(
        hub.get_as(
            AUDITOR_TOKEN,
            &format!("/v1/webhook-endpoints/{id}/deliveries"),
        )
        .await,
    )
    .await;
    assert_eq!(log["endpoint"]["state"], "disabled");
    let attempts = log["deliveries"].as_array().expect("deliveries");
    assert!(attempts.len() >= 2, "{log}");
    let attempted = receiver.attempts();
    assert_eq!(attempts.len(), attempted, "{log}");
    for (newest_first, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt["position"], expected[0], "{attempt}");
        assert_eq!(attempt["type"], "opted_in");
        assert_eq!(attempt["status"], 503);
        assert_eq!(attempt["acknowledged"], false);
        assert_eq!(
            attempt["attempt"].as_u64(),
            Some((attempts.len() - newest_first) as u64),
            "{log}"
        );
    }
    // `limit` keeps the newest; an unknown endpoint is 404; an agent may not look.
    let two = json_of(
        hub.get(&format!("/v1/webhook-endpoints/{id}/deliveries?limit=2"))
            .await,
    )
    .await;
    assert_eq!(two["deliveries"].as_array().expect("deliveries").len(), 2);
    assert_eq!(two["deliveries"][0], attempts[0]);
    let unknown = hub
        .get("/v1/webhook-endpoints/ep_00000000000000000000000000000000/deliveries")
        .await;
    assert_eq!(unknown.status(), 404);
    let bad_limit = hub
        .get(&format!("/v1/webhook-endpoints/{id}/deliveries?limit=0"))
        .await;
    assert_eq!(bad_limit.status(), 400);
    let agent = hub
        .get_as(
            AGENT_TOKEN,
            &format!("/v1/webhook-endpoints/{id}/deliveries"),
        )
        .await;
    assert_eq!(agent.status(), 403);

    // One open review item says so, naming the endpoint.
    let review = json_of(
        hub.get("/v1/review?state=open&reason=webhook_endpoint_disabled")
            .await,
    )
    .await;
    let items = review["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{review}");
    assert!(
        items[0]["detail"].as_str().expect("detail").contains(&id),
        "{review}"
    );

    // Disabled: nothing more is attempted (a backoff would have retried within 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(receiver.attempts(), attempted);

    // The CLI's table shows the failures.
    let table = endpoints_cli(&hub, &["deliveries", &id, "--limit", "3"]);
    assert!(table.contains("disabled"), "{table}");
    assert!(table.contains("503 failed"), "{table}");
    assert_eq!(
        table.matches("503 failed").count(),
        attempts.len().min(3),
        "{table}"
    );

    // The receiver is fixed; a manual retry re-enables the endpoint and everything arrives.
    receiver.failing.store(false, Ordering::SeqCst);
    let retried = endpoints_cli(&hub, &["retry", &id]);
    assert!(
        retried.contains(&id) && retried.contains("active"),
        "{retried}"
    );
    let arrived = eventually("every event after the retry", || async {
        let positions = receiver.acknowledged();
        (positions.len() >= expected.len()).then_some(positions)
    })
    .await;
    assert_eq!(arrived, expected, "in log order, none lost, none repeated");

    // The endpoint is healthy again, and the log records the disable and the re-enable.
    let healthy = eventually("the endpoint healthy", || async {
        let endpoint = endpoint(&hub, &id).await;
        (endpoint["failing_since"].is_null()
            && endpoint["delivered_through"].as_u64() >= expected.last().copied())
        .then_some(endpoint)
    })
    .await;
    assert_eq!(healthy["state"], "active");
    assert!(healthy["last_success_at"].is_string(), "{healthy}");
    assert!(healthy["disabled_at"].is_null(), "{healthy}");
    let types: Vec<String> = hub
        .events()
        .await
        .iter()
        .map(|event| event["type"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(types.contains(&"WebhookEndpointDisabled".to_owned()));
    assert!(types.contains(&"WebhookEndpointEnabled".to_owned()));
    let table = endpoints_cli(&hub, &["deliveries", &id]);
    assert!(table.contains("204 ok"), "{table}");
    assert!(table.contains("last success"), "{table}");
}

#[test]
fn a_bad_disable_threshold_stops_serve_naming_the_setting() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path().join("data"))
        .env("WAGATE_WEBHOOK_DISABLE_AFTER_DAYS", "-1")
        .env("WAGATE_LOG", "warn")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("WAGATE_WEBHOOK_DISABLE_AFTER_DAYS"),
        "{stderr}"
    );
}
