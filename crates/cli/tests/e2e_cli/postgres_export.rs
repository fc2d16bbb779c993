//! `wagate export --store` and `wagate audit --store` read a PostgreSQL log directly (issue 17,
//! "move an existing log"): the golden sled log, exported with `--data`, imported into
//! PostgreSQL and exported again with `--store`, gives the very same bytes, and audits clean
//! there. The database is a private server the test starts; if it cannot start, the test fails
//! saying why.

use crate::golden_log::{copy_dir, golden};
use crate::support::*;

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn the_golden_log_exports_byte_for_byte_the_same_from_sled_and_from_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    copy_dir(&golden().join("data"), &data);
    let output = wagate(&["export", "--data", path(&data)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let from_sled = output.stdout;
    let lines = from_sled.iter().filter(|byte| **byte == b'\n').count();
    assert!(lines > 20, "the golden log has {lines} lines");

    let exported = dir.path().join("golden.jsonl");
    std::fs::write(&exported, &from_sled).expect("write the export");
    let url = wagate_store_postgres::test_server::shared().fresh_database();
    let output = wagate(&["import", path(&exported), "--store", &url]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let output = wagate(&["export", "--store", &url]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        output.stdout == from_sled,
        "export --store differs from export --data:\n--- sled\n{}\n--- postgres\n{}",
        String::from_utf8_lossy(&from_sled),
        stdout(&output)
    );

    // A range, written to a file, as with --data.
    let tail = dir.path().join("tail.jsonl");
    let output = wagate(&[
        "export",
        "--store",
        &url,
        "--from",
        "3",
        "--to",
        "5",
        "--output",
        path(&tail),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected: Vec<&str> = std::str::from_utf8(&from_sled)
        .expect("utf-8")
        .lines()
        .skip(2)
        .take(3)
        .collect();
    let written = std::fs::read_to_string(&tail).expect("tail");
    assert_eq!(written.lines().collect::<Vec<_>>(), expected);

    let output = wagate(&["audit", "--store", &url]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let report = stdout(&output);
    assert!(
        report.contains("wagate audit of PostgreSQL log "),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "events              {lines} (positions 1..={lines})"
        )),
        "{report}"
    );
    assert!(report.contains("violations: none"), "{report}");
    assert!(
        !report.contains("postgres://"),
        "no URL, no password: {report}"
    );
}

#[test]
fn export_and_audit_store_name_a_bad_url_and_an_unreachable_server() {
    let output = wagate(&["export", "--store", "/var/lib/wagate"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--store takes a postgres://"),
        "{}",
        stderr(&output)
    );

    let unreachable = "postgres://wagate@%2Fnonexistent-wagate-socket:5432/wagate";
    let output = wagate(&["audit", "--store", unreachable]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot open the PostgreSQL log"),
        "{}",
        stderr(&output)
    );
}
