//! Starting, configuring and stopping `wagate serve`.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn sandbox_mode_prints_generated_tokens_once_and_they_work() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start_sandbox(dir.path());
    assert!(hub.banner.iter().any(|l| l.starts_with("mode: sandbox")));
    assert!(hub.token.starts_with("wg_"));
    let health: Value = hub
        .http
        .get(hub.url("/healthz"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["mode"], "sandbox");
    let senders = hub.get("/v1/senders").await;
    assert_eq!(senders.status(), 200);
    // Nothing secret is written to the data directory.
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(&hub.token),
                "{} holds the token",
                path.display()
            );
        }
    }
}

#[tokio::test]
pub(crate) async fn sigterm_stops_gracefully_and_the_log_survives_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = start(dir.path());
    hub.ready().await;
    let events = hub.events().await;
    let status = hub.terminate();
    assert!(status.success(), "{status}");
    let again = start(dir.path());
    assert_eq!(again.events().await, events);
    let senders: Value = again.get("/v1/senders").await.json().await.expect("json");
    assert_eq!(senders[0]["may_send"], true);
}

#[test]
fn a_corrupt_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("wagate.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\napi_token = [unclosed\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["serve", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wagate.toml"), "{stderr}");
    assert!(stderr.contains("not valid"), "{stderr}");
}
