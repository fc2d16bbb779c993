//! wagate-store: the durable event log on sled 0.34.
//!
//! - One global, gap-free position per event (our own counter, never sled's `generate_id`) and a
//!   version per stream; both start at 1.
//! - Atomic append to one or several streams, each with an [`ExpectedVersion`]; a mismatch is a
//!   [`StoreError::Conflict`] and writes nothing. A retry with the same event ids is recognised.
//! - Idempotency keys with expiry, recorded atomically with the events, swept in bounded slices.
//! - Group commit: a single writer thread writes everything queued as one sled batch, then
//!   `flush` + `fdatasync`, then answers. An answer means durable.
//! - Reads never go past the durable head; [`Store::subscribe`] wakes consumers when it advances.
//! - [`EventLog`] is the interface the command service uses; [`Store`] implements it, and so can a
//!   second backend, held by the service as `Arc<dyn EventLog>`.
//!
//! Payloads are opaque bytes here; the typed layer sits on top. See `docs/storage.md` for the
//! guarantees and the on-disk layout.

mod envelope;
mod error;
mod keys;
mod log;
mod packed;
mod packed_keys;
/// Persisted forms of domain events (written by the lead; extend with new schema versions and
/// upcasters, keep the v1 mirrors byte-stable).
pub mod persisted;
mod record;
mod salvage;
/// The persisted form of a send's answer, kept with its idempotency key.
pub mod send_result;
mod snapshot;
/// Versioned persisted forms of the app's snapshots.
pub mod snapshot_forms;
mod store;
mod stream;
mod writer;

pub use envelope::EnvelopeError;
pub use error::{Result, StoreError};
pub use log::{EventLog, LogFuture};
#[doc(hidden)]
pub use packed::LOG_BLOCK_EVENTS;
pub use record::{
    AppendOutcome, AppendRequest, Committed, ExpectedVersion, IdempotencyKey, IdempotencyRecord,
    NewEvent, Origin, RecordedEvent, StreamAppend,
};
pub use salvage::overwrite_log_entry;
pub use salvage::{salvage, SalvageEnd, SalvageFlow, SalvageStop};
pub use snapshot::{Snapshot, SnapshotSave};
pub use store::{
    Clock, Options, Pending, ReplayProgress, Store, StoreStats, SyncFault, VerifyReport,
    DEFAULT_MAX_QUEUED_REQUESTS,
};
pub use stream::{StreamId, MAX_STREAM_ID_BYTES};

/// Longest event type name.
pub const MAX_EVENT_TYPE_BYTES: usize = 128;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 512;
/// Largest result attached to an idempotency key.
pub const MAX_IDEMPOTENCY_RESULT_BYTES: usize = 16 * 1024;
/// Longest checkpoint name.
pub const MAX_CHECKPOINT_NAME_BYTES: usize = 128;

/// Decodes one stored envelope exactly as the store does. Exposed for the benchmarks' raw-sled
/// baseline (scan + decode of the same bytes) and for offline tools; not part of the stable API.
#[doc(hidden)]
pub fn decode_envelope(bytes: &[u8]) -> std::result::Result<RecordedEvent, EnvelopeError> {
    envelope::decode(bytes)
}

/// Encodes one envelope exactly as the store does (benchmark baseline; not stable API).
#[doc(hidden)]
pub fn encode_envelope(event: &RecordedEvent) -> Vec<u8> {
    envelope::encode(envelope::EnvelopeFields {
        position: event.position,
        stream: event.stream.as_str(),
        version: event.version,
        event_id: event.event_id,
        event_type: &event.event_type,
        schema_version: event.schema_version,
        timestamp_ms: event.timestamp_ms,
        payload: &event.payload,
        origin: event.origin.as_ref(),
    })
}
