//! Issue 18's "Done when", end to end from the binary with the sandbox: a 1,000-row campaign
//! uploaded as CSV previews (allowed, refused by rule, the limit's headroom), runs within the
//! portfolio's messaging limit (500, `on_limit: wait`: exactly 500 go out, the rest wait), is
//! cancelled halfway (the rest withdrawn, nothing sent after the cancel), its counts are right,
//! its cost is estimated before and reported after delivery (`GET /v1/costs?by=campaign`), and
//! `wagate audit` finds the log clean.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{self, Hub};
use crate::SANDBOX_SENDER;

const ROWS: usize = 1000;
const LIMIT: u32 = 500;

/// The test's price table: every utility message costs 0.01 (Meta) + 0.005 (fee) USD, so the
/// 500 delivered rows cost exactly 7.5.
const PRICES: &str = r#"
[[prices]]
category = "utility"
country = "*"
provider = "0.01"
fee = "0.005"
currency = "USD"
from = "2026-01-01"
"#;
const COST: &str = "7.500000";

fn number(row: usize) -> String {
    format!("+4179100{row:04}")
}

/// Rows 11–15 opted out after opting in; rows 16–20 never opted in; every other row opted in.
fn opted_in(row: usize) -> bool {
    !(16..=20).contains(&row)
}

fn opted_out(row: usize) -> bool {
    (11..=15).contains(&row)
}

async fn post(hub: &Hub, path: &str, body: Value) {
    let response = hub.post(path, body).await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

/// Records the consent of every row, a few requests at a time.
async fn consent(hub: &Hub) {
    let wording = hub.published_wording().await;
    let mut tasks = tokio::task::JoinSet::new();
    for row in 1..=ROWS {
        if !opted_in(row) {
            continue;
        }
        let http = hub.http.clone();
        let url = hub.url(&format!("/v1/contacts/{}/opt-in", number(row)));
        let out = hub.url(&format!("/v1/contacts/{}/opt-out", number(row)));
        let token = hub.token.clone();
        let wording = wording.clone();
        tasks.spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(&token)
                .json(
                    &json!({"source": "web_form", "evidence": "https://example.com/f/1",
                              "recorded_by": "e2e", "wording_version": wording}),
                )
                .send()
                .await
                .expect("opt-in");
            assert!(response.status().is_success(), "{}", response.status());
            if opted_out(row) {
                let response = http
                    .post(out)
                    .bearer_auth(&token)
                    .json(&json!({"source": "operator", "detail": "asked by phone"}))
                    .send()
                    .await
                    .expect("opt-out");
                assert!(response.status().is_success(), "{}", response.status());
            }
        });
        if tasks.len() >= 16 {
            tasks.join_next().await.expect("task").expect("task ok");
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task ok");
    }
}

async fn campaign(hub: &Hub, id: &str) -> Value {
    hub.get(&format!("/v1/campaigns/{id}"))
        .await
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_thousand_row_campaign_previews_runs_within_the_limit_and_is_cancelled_halfway() {
    let data = tempfile::tempdir().expect("tempdir");
    let prices = data.path().join("prices.toml");
    std::fs::write(&prices, PRICES).expect("write the price table");
    let hub = support::start_with(
        &data.path().join("hub"),
        &[("WAGATE_PRICE_TABLE", prices.to_str().expect("utf-8 path"))],
        &[],
    );
    // Registered fast, so the run takes seconds (the runner paces at the sender's rate).
    post(
        &hub,
        "/v1/senders",
        json!({"address": SANDBOX_SENDER, "provider": "sandbox", "rate_per_second": 1000}),
    )
    .await;
    post(
        &hub,
        &format!("/v1/senders/{SANDBOX_SENDER}/authorize"),
        json!({"by": "e2e"}),
    )
    .await;
    post(
        &hub,
        "/v1/templates",
        json!({"content_sid": support::TEMPLATE, "name": "deal_alert", "language": "en",
               "category": "utility", "placeholders": ["1", "2"]}),
    )
    .await;
    post(
        &hub,
        &format!("/v1/templates/{}/status", support::TEMPLATE),
        json!({"status": "approved"}),
    )
    .await;
    post(
        &hub,
        "/v1/portfolios/default/messaging-limit",
        json!({"limit": LIMIT}),
    )
    .await;
    consent(&hub).await;

    // The list, as CSV: header `to,<placeholder>,…`.
    let mut csv = String::from("to,1,2\n");
    for row in 1..=ROWS {
        csv.push_str(&format!(
            "{},Buyer {row},\"Flat {row}, Zürich\"\n",
            number(row)
        ));
    }
    let response = hub
        .http
        .post(hub.url("/v1/campaigns"))
        .bearer_auth(&hub.token)
        .query(&[
            ("sender", SANDBOX_SENDER),
            ("workflow", "appointment_scheduling"),
            ("template_sid", support::TEMPLATE),
            ("on_limit", "wait"),
        ])
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status().as_u16(), 201);
    let created: Value = response.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["rows"], ROWS);
    assert_eq!(created["state"], "draft");

    // The preview records nothing and counts the limit cumulatively.
    let before = hub.events().await.len();
    let preview: Value = hub
        .get(&format!("/v1/campaigns/{id}/preview"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(preview["allowed"], LIMIT, "{preview}");
    assert_eq!(preview["refused"], json!({"no_opt_in": 5, "opted_out": 5}));
    assert_eq!(preview["limit_headroom"], LIMIT);
    assert_eq!(preview["outside_window"], LIMIT);
    assert_eq!(preview["waiting"], ROWS as u32 - LIMIT - 10);
    assert_eq!(preview["refused_rows"][0]["row"], 11);
    assert_eq!(preview["estimated_cost"]["total"], COST, "{preview}");
    assert_eq!(preview["estimated_cost"]["currency"], "USD");
    assert_eq!(preview["estimated_cost"]["unpriced_rows"], 0);
    assert_eq!(
        hub.events().await.len(),
        before,
        "a preview records nothing"
    );

    // Start: exactly the limit's worth go out, the 10 bad rows are refused, the rest wait.
    let started = hub
        .post(&format!("/v1/campaigns/{id}/start"), json!({}))
        .await;
    assert_eq!(started.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let view = campaign(&hub, &id).await;
        if view["counts"]["allowed"] == LIMIT && view["counts"]["refused"] == 10 {
            break;
        }
        assert!(Instant::now() < deadline, "the campaign stalled: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It holds at the limit (the runner looks again every second; nothing more is allowed).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let held = campaign(&hub, &id).await;
    assert_eq!(held["state"], "running");
    assert_eq!(held["counts"]["allowed"], LIMIT);
    assert_eq!(held["counts"]["queued"], ROWS as u32 - LIMIT - 10);

    // Cancel halfway: the rest is withdrawn.
    let cancelled: Value = hub
        .post(&format!("/v1/campaigns/{id}/cancel"), json!({}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["counts"]["withdrawn"], ROWS as u32 - LIMIT - 10);
    assert_eq!(cancelled["counts"]["queued"], 0);
    assert_eq!(
        cancelled["refused_by_rule"],
        json!({"no_opt_in": 5, "opted_out": 5})
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The log: one row outcome per processed row, none after the cancel, every sent row's
    // message allowed in the same append.
    let events = hub.events().await;
    let of_type = |name: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["type"] == name && e["payload"]["campaign"] == id)
            .collect()
    };
    let sent = of_type("CampaignRowSent");
    let refused = of_type("CampaignRowRefused");
    let cancel = of_type("CampaignCancelled");
    assert_eq!(sent.len(), LIMIT as usize);
    assert_eq!(refused.len(), 10);
    assert_eq!(cancel.len(), 1);
    let cancel_position = cancel[0]["position"].as_u64().expect("position");
    assert!(sent
        .iter()
        .chain(refused.iter())
        .all(|e| e["position"].as_u64().expect("position") < cancel_position));
    let mut rows: Vec<u64> = sent
        .iter()
        .chain(refused.iter())
        .map(|e| e["payload"]["row"].as_u64().expect("row"))
        .collect();
    rows.sort_unstable();
    rows.dedup();
    assert_eq!(rows.len(), LIMIT as usize + 10, "a row processed twice");
    let template_sent = events
        .iter()
        .filter(|e| e["type"] == "TemplateSent")
        .count();
    assert_eq!(template_sent, LIMIT as usize);

    // The sandbox carries the allowed ones on; the funnel counts them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = campaign(&hub, &id).await;
        if view["counts"]["delivered"] == LIMIT {
            break;
        }
        assert!(Instant::now() < deadline, "messages not delivered: {view}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // What it cost: the delivered rows, priced by the table, under the campaign's id.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let costs: Value = hub
            .get("/v1/costs?by=campaign")
            .await
            .json()
            .await
            .expect("json");
        let group = costs["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .find(|g| g["key"] == id.as_str())
            .cloned();
        if let Some(group) = group.filter(|g| g["messages"] == LIMIT) {
            assert_eq!(group["total"], COST, "{costs}");
            assert_eq!(group["currency"], "USD");
            assert_eq!(group["unpriced"], 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cost for the campaign: {costs}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The campaign's sends are audited like any other.
    let audit = std::process::Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["audit", "--hub", &hub.base])
        .env("WAGATE_API_TOKEN", &hub.token)
        .output()
        .expect("run wagate audit");
    assert!(
        audit.status.success(),
        "audit: {}\n{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
}
