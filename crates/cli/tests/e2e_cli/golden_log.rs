//! The golden log: a data folder written by a wave-1 binary (before the log moved behind
//! `EventLog`, see fixtures/golden-log/generate.sh) still opens with today's binary, exports every
//! line and field it exported then, and audits clean. Export fields are only ever added: a
//! top-level field that today's export adds must be listed in `ADDED_FIELDS` (and documented in
//! docs/events.md); a payload may gain fields with a new schema version of its event type.

use std::path::Path;

use serde_json::{Map, Value};

use crate::support::*;

/// Fields of an export line added since the golden log was written.
const ADDED_FIELDS: &[&str] = &["actor"];

pub(crate) fn golden() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/golden-log"
    ))
}

/// A private copy: opening a sled folder writes to it.
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn objects(text: &str) -> Vec<Map<String, Value>> {
    text.lines()
        .map(
            |line| match serde_json::from_str(line).expect("a JSON line") {
                Value::Object(object) => object,
                other => panic!("not an object: {other}"),
            },
        )
        .collect()
}

/// `now` says everything `then` said: equal values, and objects keep every field of `then` with
/// its value (a payload may gain fields: docs/events.md lists each schema version's additions).
fn assert_kept(then: &Value, now: &Value, what: &str) {
    match (then, now) {
        (Value::Object(then), Value::Object(now)) => {
            for (field, value) in then {
                let kept = now
                    .get(field)
                    .unwrap_or_else(|| panic!("{what}: field {field} is gone"));
                assert_kept(value, kept, &format!("{what}.{field}"));
            }
        }
        _ => assert_eq!(then, now, "{what} changed"),
    }
}

#[test]
fn a_wave_1_log_opens_and_exports_what_it_exported_then() {
    let expected =
        objects(&std::fs::read_to_string(golden().join("export.jsonl")).expect("golden export"));
    assert!(expected.len() >= 20, "a realistic golden log");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    copy_dir(&golden().join("data"), &data);
    let data = data.to_str().expect("utf-8 path");

    let output = wagate(&["export", "--data", data]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let exported = objects(&stdout(&output));
    assert_eq!(exported.len(), expected.len(), "every event, no more");
    for (then, now) in expected.iter().zip(&exported) {
        for (field, value) in then {
            let position = &then["position"];
            let now = now.get(field).unwrap_or_else(|| {
                panic!("field {field} of the event at position {position} is gone")
            });
            assert_kept(
                value,
                now,
                &format!("{field} of the event at position {position}"),
            );
        }
        for field in now.keys() {
            assert!(
                then.contains_key(field) || ADDED_FIELDS.contains(&field.as_str()),
                "export field {field} is new: add it to ADDED_FIELDS and docs/events.md"
            );
        }
    }

    let output = wagate(&["audit", "--data", data]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}
