//! The ops page in a real headless browser: Debian's `chromium` driven through `chromedriver`
//! (WebDriver) with fantoccini, against the real `wagate serve`. Signs in with the operator's
//! token through the form, sees a refusal counted under its rule, resolves a review item (a
//! free-text opt-out request from a signed inbound) with the page's form, and keeps a screenshot
//! of the page at `target/artifacts/ops-page.png` (and a phone-width one beside it).
//!
//! Needs `chromium` and `chromium-driver` (`.ci/run` installs them): where they are missing the
//! test fails, naming what to install, rather than passing without having looked.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::support::*;

const INSTALL: &str = "the ops page's browser test needs Debian's chromium and chromedriver: \
                       apt-get install -y chromium chromium-driver (.ci/run installs them)";

/// The first of `names` found on PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// chromedriver on a free loopback port, in a process group of its own that chromium joins:
/// on drop the whole group is killed, so a failing test (which never closes its session) leaves
/// no browser behind.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is chromedriver's pid (`process_group(0)`); only this test's processes
        // are in it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    let driver = on_path(&["chromedriver"]).unwrap_or_else(|| panic!("{INSTALL}"));
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}): {INSTALL}"));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = http.get(format!("{}/status", driver.url)).send().await {
            if response.status().is_success() {
                return driver;
            }
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer on {} within 30 s",
            driver.url
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A headless chromium session with a fresh profile and nothing that calls out: this machine's
/// network is closed, and chromium waits on its background services otherwise.
async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let chromium =
        on_path(&["chromium", "chromium-browser"]).unwrap_or_else(|| panic!("{INSTALL}"));
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,1600",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object literal")
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("cannot start a chromium session: {e}"))
}

/// `target/artifacts`, beside the test binary's `target/<profile>/deps`.
fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<binary>")
        .to_path_buf();
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).expect("create target/artifacts");
    dir
}

async fn text_of(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.expect("text"),
        Err(error) => panic!(
            "{css}: {error}\n{}",
            client.source().await.unwrap_or_default()
        ),
    }
}

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
