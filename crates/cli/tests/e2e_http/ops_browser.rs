//! The ops page in a real headless browser: Debian's `chromium` driven through `chromedriver`
//! (WebDriver) with fantoccini, against the real `wagate serve`. Signs in with the operator's
//! token through the form, sees a refusal counted under its rule, and keeps a screenshot of the
//! page at `target/artifacts/ops-page.png` (and a phone-width one beside it).
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them): where they are missing the
//! test fails, naming what to install, rather than passing without having looked.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;

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
    // The review queue is not wired in this build: the section says it is empty.
    assert!(text_of(&client, "#review")
        .await
        .contains("no review items"));
    assert!(text_of(&client, "#store").await.contains("healthy"));

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

    client.close().await.expect("close the browser");
}
