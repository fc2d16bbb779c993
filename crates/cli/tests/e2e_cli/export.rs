//! `wagate export --data`: the whole log or a range, one event per line in wagate-export's
//! format, identical to what the store holds.

use wagate_export::ExportedEvent;
use wagate_store::Store;

use crate::support::*;

fn lines(text: &str) -> Vec<ExportedEvent> {
    text.lines()
        .enumerate()
        .map(|(index, line)| ExportedEvent::parse_line(line, index as u64 + 1).expect("line"))
        .collect()
}

#[tokio::test]
async fn the_whole_log_and_a_range_match_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    clean_log(dir.path()).await;
    let data = dir.path().to_str().expect("utf-8 path");

    // What the store holds, in the auditors' format.
    let expected: Vec<String> = {
        let store = Store::open(dir.path(), wagate_store::Options::default()).expect("open");
        let records = store.read_from(1, usize::MAX).expect("read");
        store.close().expect("close");
        records
            .iter()
            .map(|record| {
                let event = wagate_store::persisted::decode(record).expect("decode");
                ExportedEvent::from_event(record, &event).to_line()
            })
            .collect()
    };
    assert!(expected.len() > 20, "a realistic log");

    let output = wagate(&["export", "--data", data]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.lines().collect::<Vec<_>>(), expected);
    let events = lines(&text);
    assert_eq!(events[0].event_type, "SenderRegistered");
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.position, index as u64 + 1);
    }

    let output = wagate(&["export", "--data", data, "--from", "3", "--to", "5"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let positions: Vec<u64> = lines(&stdout(&output)).iter().map(|e| e.position).collect();
    assert_eq!(positions, [3, 4, 5]);

    // Past the head: nothing, and no error.
    let output = wagate(&["export", "--data", data, "--from", "100000"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).is_empty());

    // To a file: complete, and no partial file left behind.
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("log.jsonl");
    let output = wagate(&[
        "export",
        "--data",
        data,
        "--output",
        file.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("exported {} events", expected.len())));
    let written = std::fs::read_to_string(&file).expect("read file");
    assert_eq!(written.lines().collect::<Vec<_>>(), expected);
    let names: Vec<_> = std::fs::read_dir(out.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["log.jsonl"]);
}

#[tokio::test]
async fn a_database_in_use_or_missing_is_named_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    clean_log(dir.path()).await;
    let data = dir.path().to_str().expect("utf-8 path");

    // This process holds sled's lock, as a running hub would.
    let store = Store::open(dir.path(), wagate_store::Options::default()).expect("open");
    for command in ["export", "audit"] {
        let output = wagate(&[command, "--data", data]);
        assert_eq!(output.status.code(), Some(1), "{command}");
        assert!(
            stderr(&output).contains("database is in use by a running hub; use --hub"),
            "{command}: {}",
            stderr(&output)
        );
    }
    store.close().expect("close");

    let missing = dir.path().join("nope");
    let output = wagate(&["export", "--data", missing.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no database at"),
        "{}",
        stderr(&output)
    );
    assert!(!missing.exists(), "export must not create a database");

    let output = wagate(&["export"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "usage error without a source"
    );
    let output = wagate(&["export", "--data", data, "--from", "5", "--to", "2"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--to 2 is before --from 5"));
}
