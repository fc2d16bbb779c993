//! The rejection log over HTTP: a genuine Twilio STOP refused because the public URL was wrong
//! is kept (once, 0600, outside the data directory, with its signature and URL), and once the
//! URL is fixed `wagate webhooks retry` verifies and ingests it exactly once.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::*;

const INBOUND: &str = "/webhooks/twilio/inbound";
const STOP: &str = "twilio_inbound_stop.form";

fn retry(hub: &Hub) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(["webhooks", "retry", "--json", "--hub", &hub.base])
        .env("WAGATE_API_TOKEN", API_TOKEN)
        .output()
        .expect("run wagate webhooks retry");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json summary")
}

fn opt_outs(events: &[Value]) -> usize {
    events.iter().filter(|e| e["type"] == "OptedOut").count()
}

fn stops(events: &[Value]) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == "InboundReceived")
        .count()
}

fn segment_modes(data: &Path) -> Vec<u32> {
    std::fs::read_dir(rejected_dir(data))
        .expect("rejection log directory")
        .map(|e| {
            e.expect("entry")
                .metadata()
                .expect("meta")
                .permissions()
                .mode()
                & 0o777
        })
        .collect()
}

#[tokio::test]
async fn a_stop_refused_for_a_wrong_public_url_is_ingested_once_by_retry() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let signature = twilio_signature(INBOUND, STOP);

    let wrong = start_with(
        &data,
        &[
            ("WAGATE_PUBLIC_URL", "https://wrong.example.com"),
            ("WAGATE_TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN),
        ],
        &[],
    );
    let refused = wrong.twilio(INBOUND, fixture(STOP), &signature).await;
    assert_eq!(refused.status(), 403);
    // Still refused under the wrong URL: nothing ingested, and not logged a second time.
    let summary = retry(&wrong);
    assert_eq!(summary["retried"], 1, "{summary}");
    assert_eq!(summary["still_rejected"], 1, "{summary}");
    drop(wrong);

    let lines = audit_lines(&data);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["verdict"], "forbidden");
    assert_eq!(line["status"], 403);
    assert_eq!(
        line["url"],
        "https://wrong.example.com/webhooks/twilio/inbound"
    );
    assert_eq!(line["signatures"]["x-twilio-signature"], signature.as_str());
    assert!(!std::fs::read_dir(&data).expect("data").any(|e| e
        .expect("entry")
        .file_name()
        .to_string_lossy()
        .contains("rejected")));
    assert!(segment_modes(&data).iter().all(|m| *m == 0o600));

    let hub = start(&data);
    let before = hub.events().await;
    assert_eq!(stops(&before), 0);
    let summary = retry(&hub);
    assert_eq!(summary["retried"], 1, "{summary}");
    assert_eq!(summary["ingested"], 1, "{summary}");
    assert_eq!(summary["still_rejected"], 0, "{summary}");
    let after = hub.events().await;
    assert_eq!(stops(&after), 1, "{after:?}");
    assert_eq!(opt_outs(&after), 1, "{after:?}");

    // A second retry finds nothing new; a redelivery by Twilio is a duplicate.
    let again = retry(&hub);
    assert_eq!(again["retried"], 0, "{again}");
    assert_eq!(again["ingested"], 0, "{again}");
    let redelivered = hub.twilio(INBOUND, fixture(STOP), &signature).await;
    assert_eq!(redelivered.status(), 200);
    let last = hub.events().await;
    assert_eq!(last.len(), after.len(), "{last:?}");
    assert_eq!(audit_lines(&data).len(), 1);
}
