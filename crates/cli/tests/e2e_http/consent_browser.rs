//! Issue 15's hosted consent page in a real headless chromium (the harness of `browser`):
//! open the page, submit without ticking (refused, said on the page), submit properly, see the
//! click-to-chat link, confirm through a signed inbound carrying the campaign code, and see the
//! receipt with the wording version. Screenshots go to `target/artifacts/consent-*.png`.

use std::time::Duration;

use fantoccini::{Client, Locator};

use crate::browser::{artifacts, browser, start_driver, text_of};
use crate::consent::{campaign, local, meta_text, receipts, NEW_CONTACT, WORDING};
use crate::support::*;

async fn wait_for(client: &Client, css: &str) {
    if let Err(error) = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
    {
        panic!(
            "{css} never appeared ({error}):\n{}",
            client.source().await.unwrap_or_default()
        );
    }
}

async fn type_into(client: &Client, css: &str, text: &str) {
    client
        .find(Locator::Css(css))
        .await
        .expect(css)
        .send_keys(text)
        .await
        .expect("type");
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .expect(css)
        .click()
        .await
        .expect("click");
}

#[tokio::test]
async fn a_person_opts_in_on_the_page_and_confirms_on_whatsapp() {
    let data = tempfile::tempdir().expect("dir");
    let hub = start(data.path());
    hub.ready().await;
    let campaign = campaign(&hub).await;
    let version = campaign["wording_version"].as_str().expect("version");
    let page = local(&hub, campaign["page_url"].as_str().expect("page"));

    let driver = start_driver().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let client = browser(&driver, profile.path()).await;

    client.goto(&page).await.expect("open the page");
    assert_eq!(text_of(&client, "#wording").await, WORDING);
    assert_eq!(text_of(&client, "#wording-version").await, version);
    assert_eq!(
        client
            .find(Locator::Css("#number"))
            .await
            .expect("number")
            .attr("type")
            .await
            .expect("attr")
            .as_deref(),
        Some("tel")
    );
    assert!(!client
        .find(Locator::Css("#agree"))
        .await
        .expect("checkbox")
        .is_selected()
        .await
        .expect("state"));
    assert!(
        text_of(&client, "body").await.contains("STOP"),
        "says how to opt out"
    );
    std::fs::write(
        artifacts().join("consent-page.png"),
        client.screenshot().await.expect("screenshot"),
    )
    .expect("write");

    // Without ticking: refused, and the page says why.
    type_into(&client, "#number", "+41 79 123 45 67").await;
    click(&client, "#submit").await;
    wait_for(&client, "#consent-error").await;
    assert!(text_of(&client, "#consent-error")
        .await
        .contains("tick the box"));
    assert!(
        receipts(&hub, NEW_CONTACT).await.is_empty(),
        "nothing recorded"
    );

    // Properly (the number the person typed is kept in the field).
    click(&client, "#agree").await;
    click(&client, "#submit").await;
    wait_for(&client, "#click-to-chat").await;
    let link = client
        .find(Locator::Css("#click-to-chat"))
        .await
        .expect("link")
        .attr("href")
        .await
        .expect("href")
        .expect("an href");
    assert_eq!(link, campaign["wa_me_link"].as_str().expect("link"));
    std::fs::write(
        artifacts().join("consent-confirm.png"),
        client.screenshot().await.expect("screenshot"),
    )
    .expect("write");
    client.close().await.expect("close the browser");

    // The person sends the prefilled message: a signed inbound to the campaign's sender.
    let prefilled = campaign["prefilled_message"].as_str().expect("prefilled");
    meta_text(
        &hub,
        NEW_CONTACT.trim_start_matches('+'),
        "15555550100",
        "B1",
        prefilled,
    )
    .await;
    let receipts = receipts(&hub, NEW_CONTACT).await;
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0]["state"], "confirmed");
    assert_eq!(receipts[0]["wording_version"], version);
    assert!(!receipts[0]["confirmed_at"].is_null());
}
