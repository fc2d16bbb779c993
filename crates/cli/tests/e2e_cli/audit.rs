//! `wagate audit`: a clean log passes, a forged dispatch after an opt-out is found with its
//! position (exit 3), and an export file is audited like the database.

use serde_json::Value;
use wagate_domain::{Event, MessageEvent};
use wagate_store::{AppendRequest, ExpectedVersion, Store, StreamId};

use crate::support::*;

fn json(output: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(output)).unwrap_or_else(|error| {
        panic!(
            "audit --json printed no JSON ({error}):\n{}\n{}",
            stdout(output),
            stderr(output)
        )
    })
}

/// A template allowed for Lea, then her STOP, then a dispatch claim forged straight into the
/// store (what a buggy or bypassed dispatcher would leave behind). Returns its position.
async fn forged_log(dir: &std::path::Path) -> u64 {
    let log = LogBuilder::open(dir);
    log.ready().await;
    log.opt_in(LEA).await;
    let message = log.send_template(LEA).await.expect("template to Lea");
    log.inbound(LEA, "STOP", "in-stop").await;
    let at = log.hub.now();
    log.close();

    let forged: Event = MessageEvent::DispatchClaimed {
        message_id: message,
        attempt: 1,
        at,
    }
    .into();
    forge(
        dir,
        format!("message:{message}"),
        ExpectedVersion::Any,
        forged,
    )
    .await
}

/// Appends `event` straight through the store, bypassing the hub; returns its position.
async fn forge(
    dir: &std::path::Path,
    stream: String,
    expected: ExpectedVersion,
    event: Event,
) -> u64 {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&dir, wagate_store::Options::default()).expect("reopen");
        let record = wagate_store::persisted::encode(&event, uuid::Uuid::now_v7());
        let stream = StreamId::new(stream).expect("stream");
        let outcome = store
            .append_blocking(AppendRequest::single(stream, expected, vec![record]))
            .expect("append the forged event");
        let position = outcome
            .committed()
            .and_then(|committed| committed.first_position())
            .expect("position of the forged event");
        store.close().expect("close");
        position
    })
    .await
    .expect("forge thread")
}

#[tokio::test]
async fn a_clean_log_from_the_app_passes() {
    let dir = tempfile::tempdir().expect("tempdir");
    clean_log(dir.path()).await;
    let data = dir.path().to_str().expect("utf-8 path");

    let output = wagate(&["audit", "--data", data]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let text = stdout(&output);
    assert!(text.contains("violations: none"), "{text}");
    assert!(
        text.contains("contacts            2 (1 opted in, 0 opted out)"),
        "{text}"
    );

    let output = wagate(&["audit", "--data", data, "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let summary = json(&output);
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["violations_total"], 0);
    assert_eq!(summary["messages_by_status"]["read"], 1);
    assert_eq!(summary["messages_by_status"]["delivered"], 2);
    assert_eq!(summary["messages_by_status"]["refused"], 3);
    assert_eq!(summary["refusals_by_rule"]["window_closed"], 2);
    assert_eq!(summary["refusals_by_rule"]["opted_out"], 1);
    assert_eq!(summary["dispatch_claims"], 3);
}

#[tokio::test]
async fn a_forged_dispatch_after_an_opt_out_is_found_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let position = forged_log(dir.path()).await;
    let data = dir.path().to_str().expect("utf-8 path");

    let output = wagate(&["audit", "--data", data]);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    let text = stdout(&output);
    assert!(text.contains("VIOLATIONS: 1"), "{text}");
    assert!(
        text.contains(&format!("position {position} [dispatch_after_opt_out]")),
        "{text}"
    );

    let output = wagate(&["audit", "--data", data, "--json"]);
    assert_eq!(output.status.code(), Some(3));
    let summary = json(&output);
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["violations_total"], 1);
    let violation = &summary["violations"][0];
    assert_eq!(violation["position"], position);
    assert_eq!(violation["check"], "dispatch_after_opt_out");
    assert!(violation["message"]
        .as_str()
        .is_some_and(|m| m.contains(LEA) && m.contains("opted out")));
}

#[tokio::test]
async fn an_export_file_is_audited_like_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let position = forged_log(dir.path()).await;
    let data = dir.path().to_str().expect("utf-8 path");
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("log.jsonl");
    let file = file.to_str().expect("utf-8 path");

    let output = wagate(&["export", "--data", data, "--output", file]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = wagate(&["audit", "--file", file, "--json"]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let summary = json(&output);
    assert_eq!(summary["violations"][0]["position"], position);
    assert_eq!(summary["violations"][0]["check"], "dispatch_after_opt_out");

    // The same file without the forged line (it is the last one) is clean...
    let text = std::fs::read_to_string(file).expect("read export");
    let lines: Vec<&str> = text.lines().collect();
    let clean = out.path().join("clean.jsonl");
    std::fs::write(&clean, lines[..lines.len() - 1].join("\n") + "\n").expect("write");
    let clean = clean.to_str().expect("utf-8 path");
    let output = wagate(&["audit", "--file", clean]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    // ...and a file with a line missing has a gap, reported where it is.
    let mut gapped: Vec<&str> = lines[..lines.len() - 1].to_vec();
    gapped.remove(3);
    let gap = out.path().join("gap.jsonl");
    std::fs::write(&gap, gapped.join("\n") + "\n").expect("write");
    let output = wagate(&["audit", "--file", gap.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stdout(&output).contains("position 5 [position_gap]"),
        "{}",
        stdout(&output)
    );
}

#[tokio::test]
async fn a_freeform_reply_outside_the_window_is_a_violation() {
    // Forged: a ReplySent to a contact who never wrote.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = LogBuilder::open(dir.path());
    log.ready().await;
    let at = log.hub.now();
    log.close();
    let message = wagate_domain::MessageId::from_uuid(uuid::Uuid::now_v7()).expect("id");
    let reply: Event = MessageEvent::ReplySent {
        message_id: message,
        contact: contact(MAX),
        sender: sender(),
        text: "Hi".into(),
        workflow: wagate_domain::Workflow::parse("lead_qualification").expect("workflow"),
        at,
    }
    .into();
    forge(
        dir.path(),
        format!("message:{message}"),
        ExpectedVersion::NoStream,
        reply,
    )
    .await;

    let output = wagate(&["audit", "--data", dir.path().to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(3));
    let text = stdout(&output);
    assert!(text.contains("[window_closed]"), "{text}");
    assert!(text.contains("never written"), "{text}");
}
