//! The seam between domain events and stored records: the store's `persisted` layer does the
//! encoding (and upcasting); this module adds the stream names and event ids.

use uuid::Uuid;
use wagate_domain::{Actor, Event};
use wagate_store::{NewEvent, Origin, RecordedEvent, StreamId};

use crate::error::{AppError, Result};

pub fn stream_id(key: &wagate_domain::StreamKey) -> Result<StreamId> {
    StreamId::new(key.to_string()).map_err(AppError::from)
}

/// `event` as a new record, stamped with who asked for it (`None`: nobody named).
pub fn encode(event: &Event, actor: Option<&Actor>) -> Result<NewEvent> {
    let mut record = wagate_store::persisted::encode(event, Uuid::now_v7());
    record.origin = actor.map(origin);
    Ok(record)
}

/// The store's form of an actor: its kind and name.
pub fn origin(actor: &Actor) -> Origin {
    Origin {
        kind: actor.kind().to_owned(),
        name: actor.name().to_owned(),
    }
}

/// The actor a record names; `None` when it names none, or a kind this build does not know
/// (a newer writer's: the event itself is still valid, only its actor is not understood).
pub fn actor(recorded: &RecordedEvent) -> Option<Actor> {
    recorded
        .origin
        .as_ref()
        .and_then(|origin| Actor::from_parts(&origin.kind, &origin.name))
}

pub fn decode(recorded: &RecordedEvent) -> Result<Event> {
    wagate_store::persisted::decode(recorded).map_err(|error| AppError::Corrupt {
        position: recorded.position,
        reason: error.to_string(),
    })
}
