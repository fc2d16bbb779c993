//! Closing a consent campaign through the real binary (issue 15): `wagate consent campaign
//! close ID` (the API's `POST /v1/consent/campaigns/{id}/close`) appends `ConsentCampaignClosed`
//! once; the page then answers 410 saying it is closed and records nothing; a signed inbound with
//! the campaign's code confirms nothing from it (not even a request made while it was open) and
//! is an ordinary inbound; STOP still works.

use serde_json::Value;

use crate::consent::{campaign, local, meta_text, open_form, receipts, send_to, submit};
use crate::support::*;

/// A number no other step opts in.
const PERSON: &str = "+41791234568";

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `wagate consent campaign close ID` against the running hub.
fn close_with_cli(hub: &Hub, code: &str) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wagate"));
    for (name, _) in std::env::vars() {
        if name.starts_with("WAGATE_") {
            command.env_remove(name);
        }
    }
    command
        .args(["consent", "campaign", "close", code])
        .env("WAGATE_HUB", &hub.base)
        .env("WAGATE_API_TOKEN", &hub.token)
        .env("WAGATE_LOG", "warn")
        .output()
        .expect("run wagate consent campaign close")
}

#[tokio::test]
async fn a_closed_campaign_records_nothing_and_its_code_is_an_ordinary_inbound() {
    let data = tempfile::tempdir().expect("dir");
    let hub = start(data.path());
    hub.ready().await;
    let campaign = campaign(&hub).await;
    let code = campaign["id"].as_str().expect("id").to_owned();
    assert!(campaign.get("closed_at").is_none(), "{campaign}");
    let page = local(&hub, campaign["page_url"].as_str().expect("page"));
    let digits = PERSON.trim_start_matches('+');

    // A request made while it is open stays pending.
    let csrf = open_form(&hub, &page).await;
    let (status, html) = submit(
        &hub,
        &page,
        &[("csrf", &csrf), ("number", PERSON), ("agree", "yes")],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let form_csrf = open_form(&hub, &page).await;

    // Closed through the CLI: one event, then the same answer and nothing appended.
    let before = hub.events().await.len();
    let output = close_with_cli(&hub, &code);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&format!("campaign {code} closed at")),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let events = hub.events().await;
    assert_eq!(
        types(&events[before..]),
        ["ConsentCampaignClosed"],
        "{events:?}"
    );
    let again = hub
        .post(
            &format!("/v1/consent/campaigns/{code}/close"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.expect("json");
    assert!(again["closed_at"].is_string(), "{again}");
    assert_eq!(
        hub.events().await.len(),
        before + 1,
        "closing twice appends once"
    );
    let unknown = hub
        .post(
            "/v1/consent/campaigns/WG-NOSUCH1/close",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(unknown.status(), 404);

    // The page says it is closed, and a submission (even with a form rendered while open)
    // records nothing.
    let shown = hub.http.get(&page).send().await.expect("page");
    assert_eq!(shown.status(), 410);
    let html = shown.text().await.expect("html");
    assert!(html.contains("id=\"closed-campaign\""), "{html}");
    assert!(
        !html.contains("name=\"csrf\""),
        "no form on a closed page: {html}"
    );
    let before = hub.events().await.len();
    let (status, html) = submit(
        &hub,
        &page,
        &[
            ("csrf", &form_csrf),
            ("number", "+41791234569"),
            ("agree", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 410, "{html}");
    assert!(html.contains("closed"), "{html}");
    assert_eq!(hub.events().await.len(), before, "nothing recorded");

    // The campaign's prefilled message to its own sender: an ordinary inbound, no opt-in.
    let prefilled = campaign["prefilled_message"].as_str().expect("prefilled");
    meta_text(&hub, digits, "15555550100", "CLOSED1", prefilled).await;
    let events = hub.events().await;
    assert_eq!(types(&events[before..]), ["InboundReceived"], "{events:?}");
    let pending = receipts(&hub, PERSON).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["state"], "pending");
    assert_eq!(
        hub.post("/v1/messages", send_to(PERSON)).await.status(),
        422,
        "no template without a confirmed opt-in"
    );

    // STOP still works.
    meta_text(&hub, digits, "15555550100", "CLOSED2", "STOP").await;
    let contact: Value = hub
        .get(&format!("/v1/contacts/{PERSON}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(contact["consent"]["state"], "opted_out", "{contact}");
}
