//! The auditors' JSON form of an event in a message's history (`GET /v1/messages/{id}`); the
//! event feed writes `ExportedEvent`s directly. The format is defined once, in `wagate-export`,
//! and shared with `wagate export` and `wagate audit`; docs/events.md documents it.

use serde_json::Value;
use wagate_app::HistoryEntry;
use wagate_export::ExportedEvent;

/// The auditors' JSON object for an entry of a stream's history.
pub fn history_entry_to_json(entry: &HistoryEntry) -> Value {
    to_value(logged_line(entry))
}

/// The export line of a decoded event, with who asked for it.
pub(crate) fn logged_line(logged: &HistoryEntry) -> ExportedEvent {
    let line = ExportedEvent::from_parts(
        logged.position,
        &logged.stream,
        logged.version,
        &logged.event_id.to_string(),
        &logged.event,
    );
    match &logged.actor {
        Some(actor) => line.with_actor(actor.kind(), actor.name()),
        None => line,
    }
}

fn to_value(event: ExportedEvent) -> Value {
    serde_json::to_value(event)
        .expect("an ExportedEvent is strings, integers and a JSON map, which always convert")
}
