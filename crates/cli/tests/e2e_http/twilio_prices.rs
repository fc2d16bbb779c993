//! Issue 18 point 4, Twilio: `wagate serve` with live Twilio credentials reads the price of a
//! message that reached a final status from the Message resource (a local fake answering the
//! recorded resource), records `ProviderPriceReported`, and the cost ledger charges Twilio's
//! amount instead of the table's provider price (the fee stays the table's).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

const ACCOUNT_SID: &str = "AC3f9d2c41b7e85a06d1c4f0e9a2b7d315";
const TWILIO_SENDER: &str = "whatsapp:+15555550100";
/// The SID of `twilio_message_create_201.json`, which the status fixtures share.
const TWILIO_SID: &str = "SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61";

const PRICES: &str = r#"
# An example table for the test, not real rates.
[[prices]]
category = "utility"
country = "CH"
provider = "0.05"
fee = "0.005"
currency = "USD"
from = "2026-01-01"
"#;

async fn post_ok(hub: &Hub, path: &str, body: Value) {
    let response = hub.post(path, body).await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

async fn wait_for_event(hub: &Hub, id: &str, event_type: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let view: Value = hub
            .get(&format!("/v1/messages/{id}"))
            .await
            .json()
            .await
            .expect("json");
        let found = view["history"]
            .as_array()
            .and_then(|history| history.iter().find(|e| e["type"] == event_type).cloned());
        if let Some(event) = found {
            return event;
        }
        assert!(
            Instant::now() < deadline,
            "no {event_type} for {id}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_final_twilio_message_is_charged_at_the_price_twilio_reports() {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        )))
        .respond_with(ResponseTemplate::new(201).set_body_raw(
            fixture("twilio_message_create_201.json"),
            "application/json",
        ))
        .mount(&twilio)
        .await;
    Mock::given(method("GET"))
        .and(path(format!(
            "/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{TWILIO_SID}.json"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("twilio_message_fetch_priced.json"),
            "application/json",
        ))
        .expect(1)
        .mount(&twilio)
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let table = dir.path().join("prices.toml");
    std::fs::write(&table, PRICES).expect("write the table");
    let hub = start_with(
        &dir.path().join("data"),
        &[
            ("WAGATE_TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
            ("WAGATE_TWILIO_API_BASE", &twilio.uri()),
        ],
        &["--price-table", table.to_str().expect("utf-8 path")],
    );
    post_ok(
        &hub,
        "/v1/senders",
        json!({"address": TWILIO_SENDER, "provider": "twilio"}),
    )
    .await;
    post_ok(
        &hub,
        &format!("/v1/senders/{TWILIO_SENDER}/authorize"),
        json!({"by": "e2e"}),
    )
    .await;
    post_ok(
        &hub,
        "/v1/templates",
        json!({"content_sid": TEMPLATE, "name": "viewing_reminder", "language": "en",
               "category": "utility", "placeholders": ["1", "2"]}),
    )
    .await;
    post_ok(
        &hub,
        &format!("/v1/templates/{TEMPLATE}/status"),
        json!({"status": "approved"}),
    )
    .await;
    let wording = hub.published_wording().await;
    post_ok(
        &hub,
        &format!("/v1/contacts/{CONTACT}/opt-in"),
        json!({"source": "web_form", "evidence": "https://example.com/f/1", "recorded_by": "e2e", "wording_version": wording}),
    )
    .await;
    let response = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.expect("json")["message_id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_for_event(&hub, &id, "DispatchSucceeded").await;

    let file = "twilio_status_read.form";
    let response = hub
        .twilio(
            "/webhooks/twilio/status",
            fixture(file),
            &twilio_signature("/webhooks/twilio/status", file),
        )
        .await;
    assert!(response.status().is_success(), "{}", response.status());

    let reported = wait_for_event(&hub, &id, "ProviderPriceReported").await;
    assert_eq!(reported["payload"]["amount_micros"], 5_000, "{reported}");
    assert_eq!(reported["payload"]["currency"], "USD", "{reported}");

    let costs: Value = hub
        .get_as(AUDITOR_TOKEN, "/v1/costs?by=template")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        costs["groups"],
        json!([{"key": TEMPLATE, "messages": 1, "billable": 1, "unpriced": 0,
                "provider": "0.005000", "fee": "0.005000", "total": "0.010000",
                "currency": "USD"}]),
        "{costs}"
    );
}
