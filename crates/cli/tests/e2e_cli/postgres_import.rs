//! Moving a sled log into PostgreSQL (issue 17): `wagate import FILE --store postgres://…`, then
//! `wagate export --hub` of a hub serving that database gives the sled export's very lines; a
//! second import into the now non-empty log is refused. The database is a private server the
//! test starts; if it cannot start, the test fails saying why.

use std::io::BufRead as _;
use std::process::{Command, Stdio};

use crate::support::*;

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A sandbox `wagate serve` on the PostgreSQL log `url`; answers the child, its URL and token.
fn serve_on(url: &str, data: &std::path::Path) -> (std::process::Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-dispatch",
            "--store",
            url,
            "--data",
        ])
        .arg(data)
        .env_remove("WAGATE_API_TOKEN")
        .env_remove("WAGATE_TWILIO_AUTH_TOKEN")
        .env_remove("WAGATE_META_APP_SECRET")
        .env_remove("WAGATE_STORE_URL")
        .env("WAGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wagate serve");
    let stdout = child.stdout.take().expect("stdout");
    let (mut address, mut token) = (None, None);
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.expect("banner line");
        if let Some(rest) = line.strip_prefix("wagate listening on ") {
            address = Some(rest.trim().to_owned());
        }
        if let Some(rest) = line.strip_prefix("api token: ") {
            token = Some(rest.trim().to_owned());
        }
        if address.is_some() && token.is_some() {
            break;
        }
    }
    match (address, token) {
        (Some(address), Some(token)) => (child, address, token),
        _ => {
            let _ = child.kill();
            panic!("wagate serve --store printed no address and token");
        }
    }
}

#[tokio::test]
async fn a_sled_log_imported_into_postgres_exports_the_same_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = dir.path().join("original");
    clean_log(&original).await;
    let exported = dir.path().join("backup.jsonl");
    let output = wagate(&[
        "export",
        "--data",
        path(&original),
        "--output",
        path(&exported),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines = std::fs::read_to_string(&exported).expect("export");
    assert!(lines.lines().count() > 20, "a realistic log");

    let url = wagate_store_postgres::test_server::shared().fresh_database();
    let output = wagate(&["import", path(&exported), "--store", &url]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("imported {} events", lines.lines().count())),
        "{}",
        stderr(&output)
    );

    // Into a log that is no longer empty: refused, naming why.
    let output = wagate(&["import", path(&exported), "--store", &url]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is not empty"),
        "{}",
        stderr(&output)
    );

    let (mut hub, address, token) = serve_on(&url, &dir.path().join("hub"));
    let output = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["export", "--hub", &address])
        .env("WAGATE_API_TOKEN", &token)
        .env("WAGATE_LOG", "warn")
        .output()
        .expect("run wagate export");
    let _ = hub.kill();
    let _ = hub.wait();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        lines,
        "sled export → PostgreSQL → export differs"
    );
}
