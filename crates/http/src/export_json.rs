//! The auditors' JSON form of an event in a message's history (`GET /v1/messages/{id}`); the
//! event feed writes `ExportedEvent`s directly. The format is defined once, in `wagate-export`,
//! and shared with `wagate export` and `wagate audit`; docs/events.md documents it.

use serde_json::Value;
use wagate_app::HistoryEntry;
use wagate_export::ExportedEvent;

/// The auditors' JSON object for an entry of a stream's history.
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
    serde_json::to_value(event)
        .expect("an ExportedEvent is strings, integers and a JSON map, which always convert")
}
