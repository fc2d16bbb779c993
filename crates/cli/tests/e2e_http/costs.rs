//! Issue 18's cost ledger against the real binary: a price table file, three template sends
//! claimed and accepted by the test as the dispatcher, Meta status webhooks (one `delivered`
//! with a `pricing` object, one `read` without `delivered` billed as marketing, one only
//! `sent`), then `GET /v1/costs?by=template|month` and `wagate costs` give the exact sums.

use std::process::Command;

use serde_json::{json, Value};
use wagate_providers::{meta, Secret};

use crate::support::*;

const PRICES: &str = r#"
# An example table for the test, not real rates.
[[prices]]
category = "utility"
country = "CH"
provider = "0.05"
fee = "0.005"
currency = "USD"
from = "2026-01-01"

[[prices]]
category = "marketing"
country = "*"
provider = "0.1"
fee = "0.005"
currency = "USD"
from = "2026-01-01"
"#;

const CONTACTS: [&str; 3] = ["+41790000001", "+41790000002", "+41790000003"];

async fn post_ok(hub: &Hub, token: &str, path: &str, body: Value) -> Value {
    let response = hub.post_as(token, path, body).await;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A signed Meta status webhook for `wamid`.
async fn meta_status(hub: &Hub, wamid: &str, recipient: &str, status: &str, pricing: Value) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let mut item = json!({"id": wamid, "status": status, "timestamp": now.to_string(),
                          "recipient_id": recipient.trim_start_matches('+')});
    if !pricing.is_null() {
        item["pricing"] = pricing;
    }
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102938475610293", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15555550100", "phone_number_id": "109876543210987"},
            "statuses": [item]
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

async fn costs(hub: &Hub, by: &str) -> Value {
    let response = hub
        .get_as(AUDITOR_TOKEN, &format!("/v1/costs?by={by}"))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

#[tokio::test]
async fn delivered_template_sends_are_summed_by_template_and_month() {
    let dir = tempfile::tempdir().expect("dir");
    let table = dir.path().join("prices.toml");
    std::fs::write(&table, PRICES).expect("write the table");
    let data = dir.path().join("data");
    let table_arg = table.to_str().expect("utf-8 path");
    let hub = start_with(
        &data,
        &[
            ("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
            ("WAGATE_META_APP_SECRET", META_APP_SECRET),
        ],
        &["--no-dispatch", "--price-table", table_arg],
    );
    let setup = [
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
            "/v1/templates",
            json!({"content_sid": TEMPLATE, "name": "viewing_reminder", "language": "en",
                   "category": "utility", "placeholders": ["1", "2"]}),
        ),
        (
            "/v1/templates/HX0123456789abcdef0123456789abcdef/status",
            json!({"status": "approved"}),
        ),
    ];
    for (path, body) in setup {
        post_ok(&hub, API_TOKEN, path, body).await;
    }
    let month_before = chrono::Utc::now().format("%Y-%m").to_string();
    let wording = hub.published_wording().await;
    for (n, contact) in CONTACTS.iter().enumerate() {
        post_ok(
            &hub,
            API_TOKEN,
            &format!("/v1/contacts/{contact}/opt-in"),
            json!({"source": "web_form", "evidence": "https://example.com/f/1",
                   "recorded_by": "e2e", "wording_version": wording}),
        )
        .await;
        let sent = post_ok(&hub, AGENT_TOKEN, "/v1/messages", template_send(contact)).await;
        let id = sent["message_id"].as_str().expect("id").to_owned();
        let claim = post_ok(
            &hub,
            DISPATCHER_TOKEN,
            &format!("/v1/messages/{id}/claim"),
            json!({}),
        )
        .await;
        post_ok(
            &hub,
            DISPATCHER_TOKEN,
            &format!("/v1/messages/{id}/outcome"),
            json!({"attempt": claim["attempt"], "accepted": {
                "provider_ref": format!("wamid.COST{n}"), "provider_status": "accepted"}}),
        )
        .await;
    }
    // 1: delivered, Meta reports utility (0.05 + 0.005 to CH).
    meta_status(
        &hub,
        "wamid.COST0",
        CONTACTS[0],
        "delivered",
        json!({"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"}),
    )
    .await;
    // 2: read without delivered, Meta billed it as marketing (0.1 + 0.005 by the `*` rate).
    meta_status(
        &hub,
        "wamid.COST1",
        CONTACTS[1],
        "sent",
        json!({"billable": true, "pricing_model": "PMP", "category": "marketing", "type": "regular"}),
    )
    .await;
    meta_status(&hub, "wamid.COST1", CONTACTS[1], "read", Value::Null).await;
    // 3: only sent: not charged.
    meta_status(&hub, "wamid.COST2", CONTACTS[2], "sent", Value::Null).await;
    let month_after = chrono::Utc::now().format("%Y-%m").to_string();

    let by_template = costs(&hub, "template").await;
    assert_eq!(by_template["by"], "template");
    let expected = |key: &str| {
        json!({"key": key, "messages": 2, "billable": 2, "unpriced": 0, "provider": "0.150000",
               "fee": "0.010000", "total": "0.160000", "currency": "USD"})
    };
    assert_eq!(
        by_template["groups"],
        json!([expected(TEMPLATE)]),
        "{by_template}"
    );
    assert_eq!(
        by_template["totals"],
        json!([expected("")]),
        "{by_template}"
    );

    let by_month = costs(&hub, "month").await;
    let month = by_month["groups"][0]["key"]
        .as_str()
        .expect("a month")
        .to_owned();
    assert!(month == month_before || month == month_after, "{by_month}");
    assert_eq!(by_month["groups"], json!([expected(&month)]), "{by_month}");

    let bad = hub.get_as(AUDITOR_TOKEN, "/v1/costs?by=day").await;
    assert_eq!(bad.status(), 400);
    let bad = bad.text().await.expect("body");
    assert!(
        bad.contains("campaign, workflow, template, sender, month"),
        "{bad}"
    );
    let agent = hub.get_as(AGENT_TOKEN, "/v1/costs").await;
    assert_eq!(agent.status(), 403);

    let output = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args([
            "costs",
            "--by",
            "month",
            "--hub",
            &hub.url(""),
            "--token",
            AUDITOR_TOKEN,
        ])
        .env("WAGATE_LOG", "warn")
        .output()
        .expect("wagate costs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("month"), "{text}");
    for (line, key) in [(lines[1], month.as_str()), (lines[2], "TOTAL")] {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            cells,
            [key, "2", "2", "0", "0.150000", "0.010000", "0.160000", "USD"],
            "{text}"
        );
    }
}
