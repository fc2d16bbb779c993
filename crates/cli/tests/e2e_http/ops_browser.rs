//! The ops page in a real headless browser: Debian's `chromium` driven through `chromedriver`
//! (WebDriver) with fantoccini, against the real `wagate serve`. Signs in with the operator's
//! token through the form, sees a refusal counted under its rule, resolves a review item (a
//! free-text opt-out request from a signed inbound) with the page's form, sees a campaign in the
//! Campaigns section, and keeps a screenshot
//! of the page at `target/artifacts/ops-page.png` (and a phone-width one beside it).
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them): where they are missing the
//! test fails, naming what to install, rather than passing without having looked.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{json, Value};

use crate::browser::{artifacts, browser, start_driver, text_of};
use crate::support::*;

#[tokio::test]
async fn an_operator_signs_in_and_sees_a_refusal_counted_under_its_rule() {
    let data = tempfile::tempdir().expect("dir");
    let hub = start(data.path());
    hub.ready().await;
    // A contact who never opted in: the send is refused, and recorded with its rule.
    let refused = hub
        .post("/v1/messages", template_send("+41790000002"))
        .await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.expect("error body");
    let rule = body["error"]["rule"].as_str().expect("rule").to_owned();
    // And one allowed send, for the funnel.
    let allowed = hub.post("/v1/messages", template_send(CONTACT)).await;
    assert_eq!(allowed.status(), 202);
    // A campaign, for the Campaigns section (created, not started: nothing is sent).
    let campaign = hub
        .post(
            "/v1/campaigns",
            json!({"sender": SENDER, "workflow": "appointment_scheduling",
                   "template": {"content_sid": TEMPLATE},
                   "rows": [{"to": CONTACT, "variables": {"1": "Lea", "2": "Thu 10:00"}}]}),
        )
        .await;
    assert_eq!(campaign.status(), 201);
    let campaign: Value = campaign.json().await.expect("campaign");
    let campaign_id = campaign["id"].as_str().expect("campaign id").to_owned();
    // A free-text opt-out request, through a signed inbound: a review item.
    crate::review_alerts::meta_inbound(&hub, "opsbrowser1", "Please stop messaging me, thanks")
        .await;
    let items: Value = hub
        .get("/v1/review?state=open&reason=opt_out_request")
        .await
        .json()
        .await
        .expect("review list");
    let item = &items["items"][0];
    assert_eq!(item["reason"], "opt_out_request", "{items}");
    let id = item["id"].as_u64().expect("item id");

    let driver = start_driver().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let client = browser(&driver, profile.path()).await;

    // No session: the page is the sign-in form, never data.
    client.goto(&hub.url("/ops")).await.expect("open /ops");
    let url = client.current_url().await.expect("url");
    assert_eq!(url.path(), "/ops/sign-in");
    assert!(client.find(Locator::Css("#refusals")).await.is_err());

    client
        .find(Locator::Css("#token"))
        .await
        .expect("token field")
        .send_keys(API_TOKEN)
        .await
        .expect("type the token");
    client
        .find(Locator::Css("#sign-in"))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("sign in");
    // The click returns before the answer's page has loaded: wait for the dashboard.
    if let Err(error) = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#refusals"))
        .await
    {
        panic!(
            "no dashboard after signing in ({error}):\n{}",
            client.source().await.unwrap_or_default()
        );
    }
    let url = client.current_url().await.expect("url");
    assert_eq!(url.path(), "/ops", "signed in, the page itself");

    let row = format!("#refusals tr[data-rule=\"{rule}\"]");
    assert_eq!(text_of(&client, &format!("{row} td.last-24h")).await, "1");
    assert_eq!(text_of(&client, &format!("{row} td.last-7d")).await, "1");
    let funnel = format!(
        "#funnel tr[data-workflow=\"appointment_scheduling\"][data-template=\"{TEMPLATE}\"]"
    );
    assert_eq!(
        text_of(&client, &format!("{funnel} td.requested")).await,
        "1"
    );
    assert_eq!(text_of(&client, &format!("{funnel} td.allowed")).await, "1");
    assert!(text_of(&client, "#store").await.contains("healthy"));
    let campaign_row =
        format!("#campaigns tr[data-campaign=\"{campaign_id}\"][data-state=\"draft\"]");
    assert!(text_of(&client, &campaign_row).await.contains("draft"));
    // The review item, at the anchor alerts link to, open, with the operator's form.
    let row = format!("#review-{id}");
    assert_eq!(text_of(&client, &format!("{row} td.state")).await, "open");
    assert!(text_of(&client, &row)
        .await
        .contains("Please stop messaging me"));

    // The screenshot shows the open item with its buttons.
    let screenshot = client.screenshot().await.expect("screenshot");
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG");
    let path = artifacts().join("ops-page.png");
    std::fs::write(&path, &screenshot).expect("write the screenshot");
    eprintln!("ops page screenshot: {}", path.display());

    // Readable on a phone: the same page at a phone's width.
    client
        .set_window_size(390, 844)
        .await
        .expect("phone-sized window");
    client.refresh().await.expect("reload");
    let phone = client.screenshot().await.expect("phone screenshot");
    std::fs::write(artifacts().join("ops-page-phone.png"), &phone).expect("write");

    client
        .set_window_size(1280, 1600)
        .await
        .expect("desktop-sized window");

    // Resolve it from the page: a note, then the decision's button.
    client
        .find(Locator::Css(&format!("{row} input[name=\"note\"]")))
        .await
        .expect("note field")
        .send_keys("asked by phone")
        .await
        .expect("type the note");
    client
        .find(Locator::Css(&format!(
            "{row} button[name=\"decision\"][value=\"confirm_opt_out\"]"
        )))
        .await
        .expect("confirm_opt_out button")
        .click()
        .await
        .expect("resolve");
    if let Err(error) = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(&format!("{row}[data-state=\"resolved\"]")))
        .await
    {
        panic!(
            "the item is not shown resolved ({error}):\n{}",
            client.source().await.unwrap_or_default()
        );
    }
    let url = client.current_url().await.expect("url");
    assert_eq!(url.path(), "/ops");
    assert_eq!(url.fragment(), Some(format!("review-{id}").as_str()));
    assert!(client
        .find(Locator::Css(&format!("{row} form")))
        .await
        .is_err());
    // Recorded as the operator's decision, with the opt-out it confirms.
    let resolved: Value = hub
        .get("/v1/review?state=resolved&reason=opt_out_request")
        .await
        .json()
        .await
        .expect("review list");
    let resolution = &resolved["items"][0]["resolution"];
    assert_eq!(resolved["items"][0]["id"], id, "{resolved}");
    assert_eq!(resolution["decision"], "confirm_opt_out");
    assert_eq!(resolution["note"], "asked by phone");
    let contact: Value = hub
        .get(&format!("/v1/contacts/{CONTACT}"))
        .await
        .json()
        .await
        .expect("contact");
    assert_eq!(contact["consent"]["state"], "opted_out", "{contact}");
    let after = client.screenshot().await.expect("screenshot");
    std::fs::write(artifacts().join("ops-page-resolved.png"), &after).expect("write");

    client.close().await.expect("close the browser");
}
