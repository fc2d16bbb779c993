//! Issue 14's review queue and alerts against the real binary, a local fake Discord and a fake
//! signed endpoint: a permanent failure, a free-text opt-out request and an in-doubt expiry each
//! raise one review item and one alert on each sink; a restart sends no alert again; Discord's
//! 429 `retry_after` is waited for; an operator resolves, an agent may not.

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wagate_providers::{meta, Secret};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::*;

const ALERT_SECRET: &str = "e2e-alert-secret";
const DISCORD_PATH: &str = "/api/webhooks/123/e2e-token";

/// A signed Meta webhook: one text message from the contact (the ops page's browser test uses
/// it too).
pub(crate) async fn meta_inbound(hub: &Hub, id: &str, text: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102938475610293", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15555550100", "phone_number_id": "109876543210987"},
            "contacts": [{"profile": {"name": "Lea"}, "wa_id": "41790000001"}],
            "messages": [{"from": "41790000001", "id": format!("wamid.E2E{id}"),
                          "timestamp": now.to_string(), "type": "text", "text": {"body": text}}]
        }}]}]
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
}

/// Sends a template message as the agent and claims it as the dispatcher: (id, attempt).
async fn send_and_claim(hub: &Hub) -> (String, u64) {
    let sent = hub
        .post_as(AGENT_TOKEN, "/v1/messages", template_send(CONTACT))
        .await;
    assert_eq!(sent.status(), 202);
    let id = sent.json::<Value>().await.expect("json")["message_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let claim = hub
        .post_as(
            DISPATCHER_TOKEN,
            &format!("/v1/messages/{id}/claim"),
            json!({}),
        )
        .await;
    assert_eq!(
        claim.status(),
        200,
        "{}",
        claim.text().await.unwrap_or_default()
    );
    let attempt = claim.json::<Value>().await.expect("json")["attempt"]
        .as_u64()
        .expect("attempt");
    (id, attempt)
}

async fn review(hub: &Hub, query: &str) -> Vec<Value> {
    let response = hub.get(&format!("/v1/review{query}")).await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.expect("json")["items"]
        .as_array()
        .expect("items")
        .clone()
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of an unlabelled series on the hub's `/metrics`.
async fn metric(hub: &Hub, name: &str) -> Option<String> {
    let text = hub
        .get("/metrics")
        .await
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .map(str::to_owned)
}

async fn posts(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("json body")
}

fn start_hub(data: &std::path::Path, discord: &MockServer, generic: &MockServer) -> Hub {
    let discord_url = format!("{}{DISCORD_PATH}", discord.uri());
    let generic_url = format!("{}/alerts", generic.uri());
    start_with(
        data,
        &[
            ("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
            ("WAGATE_META_APP_SECRET", META_APP_SECRET),
            ("WAGATE_DISCORD_WEBHOOK_URL", &discord_url),
            ("WAGATE_ALERT_WEBHOOK_URL", &generic_url),
            ("WAGATE_ALERT_WEBHOOK_SECRET", ALERT_SECRET),
            ("WAGATE_IN_DOUBT_TIMEOUT_SECONDS", "1"),
        ],
        &["--no-dispatch"],
    )
}

#[tokio::test]
async fn needs_a_person_items_are_queued_alerted_once_and_resolved_by_an_operator() {
    let discord = MockServer::start().await;
    // The first alert is rate-limited for half a second; the rest are taken.
    Mock::given(method("POST"))
        .and(path(DISCORD_PATH))
        .respond_with(ResponseTemplate::new(429).set_body_json(
            json!({"message": "You are being rate limited.", "retry_after": 0.5, "global": false}),
        ))
        .up_to_n_times(1)
        .mount(&discord)
        .await;
    Mock::given(method("POST"))
        .and(path(DISCORD_PATH))
        .respond_with(ResponseTemplate::new(204))
        .mount(&discord)
        .await;
    let generic = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/alerts"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&generic)
        .await;

    let data = tempfile::tempdir().expect("tempdir");
    let hub = start_hub(data.path(), &discord, &generic);
    hub.ready().await;

    // A permanent failure: the provider refused the number.
    let (failed, attempt) = send_and_claim(&hub).await;
    let outcome = hub
        .post_as(
            DISPATCHER_TOKEN,
            &format!("/v1/messages/{failed}/outcome"),
            json!({"attempt": attempt, "rejected": {"provider": "twilio", "code": 21211,
                   "http_status": 400, "message": "The 'To' number is not a valid phone number."}}),
        )
        .await;
    assert_eq!(
        outcome.status(),
        200,
        "{}",
        outcome.text().await.unwrap_or_default()
    );
    // A free-text opt-out request.
    meta_inbound(&hub, "freetext1", "Please stop messaging me, thanks").await;
    // An in-doubt expiry: claimed, no outcome, past the (1 s) timeout.
    let (doubtful, _) = send_and_claim(&hub).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = hub
        .post_as(
            DISPATCHER_TOKEN,
            &format!("/v1/messages/{doubtful}/expire-in-doubt"),
            json!({}),
        )
        .await;
    assert_eq!(expired.status(), 200);

    let items = review(&hub, "?state=open").await;
    let reasons: Vec<&str> = items
        .iter()
        .map(|item| item["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(
        reasons,
        ["permanent_failure", "opt_out_request", "in_doubt_expired"],
        "{items:?}"
    );
    assert_eq!(items[0]["message_id"], failed.as_str());
    assert_eq!(items[0]["contact"], CONTACT);
    assert_eq!(items[1]["contact"], CONTACT);
    assert_eq!(items[2]["message_id"], doubtful.as_str());
    for item in &items {
        assert_eq!(item["state"], "open");
        assert!(item["raised_at"].is_string() && item["id"].is_u64());
    }

    // One alert per item on each sink; Discord's first answer was a 429, waited out.
    wait_for("three alerts on each sink", async || {
        posts(&discord).await.len() == 4 && posts(&generic).await.len() == 3
    })
    .await;
    // Counted on /metrics through the facade: six taken, the 429 waited out (not a failure).
    wait_for("six alerts counted as sent", async || {
        metric(&hub, "wagate_alerts_sent_total").await.as_deref() == Some("6")
    })
    .await;
    assert_eq!(
        metric(&hub, "wagate_alerts_failed_total").await.as_deref(),
        Some("0")
    );
    let discord_posts = posts(&discord).await;
    assert_eq!(
        body(&discord_posts[0]),
        body(&discord_posts[1]),
        "the limited alert again"
    );
    let contents: Vec<String> = discord_posts[1..]
        .iter()
        .map(|request| {
            body(request)["content"]
                .as_str()
                .expect("content")
                .to_owned()
        })
        .collect();
    assert!(
        contents[0].contains("Message failed permanently") && contents[0].contains(CONTACT),
        "{contents:?}"
    );
    assert!(contents[1].contains("Possible opt-out"), "{contents:?}");
    assert!(
        contents[2].contains("Send in doubt expired"),
        "{contents:?}"
    );
    let embed = &body(&discord_posts[2])["embeds"][0];
    let fields = embed["fields"].to_string();
    assert!(fields.contains("https://hub.example.com/ops"), "{fields}");
    assert!(fields.contains("confirm_opt_out"), "what to do: {fields}");
    // The generic endpoint's requests are signed over the timestamp and the body.
    for request in posts(&generic).await {
        let timestamp = request
            .headers
            .get("x-wagate-timestamp")
            .expect("timestamp");
        let signature = request
            .headers
            .get("x-wagate-signature")
            .expect("signature");
        let mut mac = Hmac::<Sha256>::new_from_slice(ALERT_SECRET.as_bytes()).expect("key");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(&request.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(signature.to_str().expect("ascii"), expected);
        assert_eq!(body(&request)["type"], "review_item_raised");
    }
    let generic_reasons: Vec<Value> = posts(&generic)
        .await
        .iter()
        .map(|request| body(request)["item"]["reason"].clone())
        .collect();
    assert_eq!(
        generic_reasons,
        reasons.iter().map(|r| json!(r)).collect::<Vec<_>>()
    );

    // Resolving: an agent may not, an operator may (the alert says so too).
    let opt_out_id = items[1]["id"].as_u64().expect("id");
    let resolve_path = format!("/v1/review/{opt_out_id}/resolve");
    let decision = json!({"decision": "confirm_opt_out", "note": "asked to stop in writing"});
    let agent = hub
        .post_as(AGENT_TOKEN, &resolve_path, decision.clone())
        .await;
    assert_eq!(agent.status(), 403);
    let resolved = hub.post(&resolve_path, decision).await;
    assert_eq!(resolved.status(), 200);
    let resolved: Value = resolved.json().await.expect("json");
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["resolution"]["by"], "api");
    let contact: Value = hub
        .get(&format!("/v1/contacts/{CONTACT}"))
        .await
        .json()
        .await
        .expect("contact");
    assert_eq!(contact["consent"]["state"], "opted_out", "{contact}");
    wait_for("the resolution's alert", async || {
        posts(&discord).await.len() == 5
    })
    .await;
    assert!(body(&posts(&discord).await[4])["content"]
        .as_str()
        .expect("content")
        .starts_with("Resolved"));
    assert_eq!(review(&hub, "?state=open").await.len(), 2);

    // A restart: the same items, the same ids, and no alert sent again.
    let status = hub.terminate();
    assert!(status.success(), "{status}");
    let before_discord = posts(&discord).await.len();
    let before_generic = posts(&generic).await.len();
    let hub = start_hub(data.path(), &discord, &generic);
    let after: Vec<Value> = review(&hub, "").await;
    assert_eq!(
        after
            .iter()
            .map(|item| item["id"].clone())
            .collect::<Vec<_>>(),
        items
            .iter()
            .map(|item| item["id"].clone())
            .collect::<Vec<_>>()
    );
    // Something new after the restart is alerted (so the outbox runs), and only that.
    let paused = hub
        .post(
            &format!("/v1/templates/{TEMPLATE}/status"),
            json!({"status": "paused", "reason": "quality dropped"}),
        )
        .await;
    assert_eq!(paused.status(), 200);
    wait_for("the new item's alert", async || {
        posts(&discord).await.len() == before_discord + 1
            && posts(&generic).await.len() == before_generic + 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(posts(&discord).await.len(), before_discord + 1);
    assert_eq!(posts(&generic).await.len(), before_generic + 1);
    let last = posts(&generic).await;
    assert_eq!(
        body(last.last().expect("last"))["item"]["reason"],
        "template_not_sendable"
    );
}
