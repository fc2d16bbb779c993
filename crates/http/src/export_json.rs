//! The auditors' JSON form of one logged event, as served by `GET /v1/events` (NDJSON) and the
//! message history. The format itself is defined once, in `wagate-export` (`ExportedEvent`), and
//! shared with `wagate export` and `wagate audit`; docs/events.md documents it.

use serde_json::Value;
use wagate_app::HistoryEntry;
use wagate_domain::Event;
use wagate_export::ExportedEvent;
use wagate_store::RecordedEvent;

/// One logged event as the auditors' JSON object. `event` is `record` decoded.
pub fn event_to_json(record: &RecordedEvent, event: &Event) -> Value {
    to_value(ExportedEvent::from_event(record, event))
}

/// The same object for an entry of a stream's history.
pub fn history_entry_to_json(entry: &HistoryEntry) -> Value {
    to_value(ExportedEvent::from_parts(
        entry.position,
        &entry.stream,
        entry.version,
        &entry.event_id.to_string(),
        &entry.event,
    ))
}

fn to_value(event: ExportedEvent) -> Value {
    // Invariant: an ExportedEvent is strings, integers and a JSON map, which always convert.
    serde_json::to_value(event).unwrap_or(Value::Null)
}
