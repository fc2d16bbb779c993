//! `wagate import`: a restore from an export file. export → import → export gives the same
//! lines, the import audits clean, and a hub on it still refuses a STOPped contact and still
//! answers a provider's retried webhook as a duplicate.

use chrono::TimeDelta;
use wagate_app::Ingested;
use wagate_domain::decide::ReceiveInbound;
use wagate_domain::{Actor, ProviderMessageRef, RuleId};

use crate::support::*;

const STOP_SID: &str = "SM00000000000000000000000000000099";

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn stop_from_lea() -> ReceiveInbound {
    ReceiveInbound {
        details: Vec::new(),
        contact: contact(LEA),
        sender: Some(sender()),
        provider_ref: Some(ProviderMessageRef::parse(STOP_SID).expect("sid")),
        kind: "text".into(),
        text: "STOP".into(),
        provider_at: None,
    }
}

/// The key `WebhookEvent::dedup_key` gives a sandbox inbound with this id.
fn stop_key() -> String {
    format!("sandbox/inbound/{STOP_SID}")
}

#[tokio::test]
async fn export_import_export_is_identical_and_the_restored_hub_behaves_as_the_original() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = dir.path().join("original");
    clean_log(&original).await;
    // Lea says STOP once more, through a (sandbox) webhook: an actor, and a dedup key.
    let log = LogBuilder::open(&original);
    log.advance(TimeDelta::days(2));
    let webhook = log.hub.acting(Actor::webhook("sandbox"));
    let first = webhook
        .receive_inbound(stop_from_lea(), &stop_key())
        .await
        .expect("STOP");
    assert!(matches!(first, Ingested::Appended { .. }), "{first:?}");
    drop(webhook);
    log.close();

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
    assert!(lines.contains(r#""actor":{"kind":"webhook","name":"sandbox"}"#));

    // The log's clock is fixed in November 2026: a horizon of a century keeps the key unexpired
    // whatever day the test runs.
    let restored = dir.path().join("restored");
    let output = wagate(&[
        "import",
        path(&exported),
        "--data",
        path(&restored),
        "--webhook-dedup-days",
        "36500",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("imported {} events", lines.lines().count())),
        "{}",
        stderr(&output)
    );

    let output = wagate(&["export", "--data", path(&restored)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), lines, "export → import → export differs");

    let output = wagate(&["audit", "--data", path(&restored)]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );

    // A hub on the restored database: Lea is still opted out, and the STOP webhook retried by
    // the provider is still a duplicate (the key was re-derived from the log).
    let log = LogBuilder::open(&restored);
    log.advance(TimeDelta::days(3));
    match log.send_template(LEA).await {
        Err(wagate_app::AppError::Refused(refusal)) => {
            assert_eq!(refusal.rule, RuleId::OptedOut, "{refusal:?}")
        }
        other => panic!("a template to a STOPped contact was not refused: {other:?}"),
    }
    let webhook = log.hub.acting(Actor::webhook("sandbox"));
    let again = webhook
        .receive_inbound(stop_from_lea(), &stop_key())
        .await
        .expect("retried STOP");
    assert!(matches!(again, Ingested::Duplicate), "{again:?}");
    drop(webhook);
    log.close();
}

#[tokio::test]
async fn an_import_refuses_a_non_empty_directory_and_an_incomplete_export() {
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

    // Into the original's own (non-empty) directory: refused, naming it, nothing touched.
    let output = wagate(&["import", path(&exported), "--data", path(&original)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("is not empty"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains(path(&original)),
        "{}",
        stderr(&output)
    );

    // An export with a gap (line 3 removed): refused, naming the line.
    let text = std::fs::read_to_string(&exported).expect("export");
    let gapped: String = text
        .lines()
        .enumerate()
        .filter(|(index, _)| *index != 2)
        .map(|(_, line)| format!("{line}\n"))
        .collect();
    let gapped_file = dir.path().join("gapped.jsonl");
    std::fs::write(&gapped_file, gapped).expect("write");
    let output = wagate(&[
        "import",
        path(&gapped_file),
        "--data",
        path(&dir.path().join("g")),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("line 3 (position 4): expected position 3"),
        "{}",
        stderr(&output)
    );
    // What it appended before the gap is not the export: the directory is named for removal.
    assert!(
        stderr(&output).contains("holds an incomplete database: remove it"),
        "{}",
        stderr(&output)
    );

    // An export that starts after position 1 (`--from 5`): refused at its first line.
    let tail = dir.path().join("tail.jsonl");
    let output = wagate(&[
        "export",
        "--data",
        path(&original),
        "--from",
        "5",
        "--output",
        path(&tail),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = wagate(&["import", path(&tail), "--data", path(&dir.path().join("t"))]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("line 1 (position 5): expected position 1"),
        "{}",
        stderr(&output)
    );
}

/// Salvage: `export --data` of a log with a damaged entry writes every event before it, names
/// the position and the reason, and exits 6; an import of that prefix is a working database.
#[tokio::test]
async fn an_export_of_a_damaged_log_writes_the_good_prefix_and_names_where_it_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let original = dir.path().join("original");
    clean_log(&original).await;
    let whole = wagate(&["export", "--data", path(&original)]);
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let whole = stdout(&whole);
    let last = whole.lines().count() as u64;
    assert!(last > 20, "a realistic log");

    // Garbage in the last envelope: the store's open refuses the database.
    wagate_store::overwrite_log_entry(&original, last, b"not an envelope").expect("tamper");
    assert!(wagate_store::Store::open(&original, wagate_store::Options::default()).is_err());

    let salvaged = dir.path().join("salvaged.jsonl");
    let output = wagate(&[
        "export",
        "--data",
        path(&original),
        "--output",
        path(&salvaged),
    ]);
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!(
            "export stopped at position {last}: undecodable envelope"
        )),
        "{}",
        stderr(&output)
    );
    let prefix: Vec<&str> = whole.lines().take(last as usize - 1).collect();
    let written = std::fs::read_to_string(&salvaged).expect("salvaged file");
    assert_eq!(written.lines().collect::<Vec<_>>(), prefix);

    // To standard output as well, and from a later position.
    let output = wagate(&["export", "--data", path(&original), "--from", "3"]);
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().collect::<Vec<_>>(), prefix[2..]);

    // A range that ends before the damage is a whole export.
    let to = (last - 1).to_string();
    let output = wagate(&["export", "--data", path(&original), "--to", &to]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().collect::<Vec<_>>(), prefix);

    // The good prefix restores into a database that audits clean.
    let restored = dir.path().join("restored");
    let output = wagate(&["import", path(&salvaged), "--data", path(&restored)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = wagate(&["audit", "--data", path(&restored)]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
}
