//! The seam between domain events and stored records: the store's `persisted` layer does the
//! encoding (and upcasting); this module adds the stream names and event ids.

use uuid::Uuid;
use wagate_domain::Event;
use wagate_store::{NewEvent, RecordedEvent, StreamId};

use crate::error::{AppError, Result};

pub fn stream_id(key: &wagate_domain::StreamKey) -> Result<StreamId> {
    StreamId::new(key.to_string()).map_err(AppError::from)
}

pub fn encode(event: &Event) -> Result<NewEvent> {
    Ok(wagate_store::persisted::encode(event, Uuid::now_v7()))
}

pub fn decode(recorded: &RecordedEvent) -> Result<Event> {
    wagate_store::persisted::decode(recorded).map_err(|error| AppError::Corrupt {
        position: recorded.position,
        reason: error.to_string(),
    })
}
