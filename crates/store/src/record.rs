//! The records a caller hands in and gets back. Payloads are opaque bytes to the store.

use std::fmt;

use uuid::Uuid;

use crate::stream::StreamId;

/// An event to append. The payload is opaque to the store (the `persisted` layer encodes it).
#[derive(Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique per event; a retried append with the same ids is recognised and not written twice.
    pub event_id: Uuid,
    /// The event's type name, e.g. `OptedIn`. Kept in the envelope so readers can dispatch on it
    /// without decoding the payload.
    pub event_type: String,
    /// Version of the payload's schema for this event type (see `persisted` and upcasting).
    pub schema_version: u16,
    /// When the event happened, milliseconds since the Unix epoch (the caller's clock).
    pub timestamp_ms: i64,
    /// The encoded event.
    pub payload: Vec<u8>,
    /// Who asked for the event (a token's role and name, a webhook's provider, the in-process
    /// dispatcher); `None`: not recorded (events written before origins existed, or appended by
    /// a caller that names none). Opaque to the store, like the payload.
    pub origin: Option<Origin>,
}

/// Who asked for an event, as the store keeps it: two strings the appender chooses (wagate-app
/// writes a role or `webhook` as `kind`, a token's name or a provider as `name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub kind: String,
    pub name: String,
}

/// An event as stored: the new event plus where it landed.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global, gap-free position in the log, starting at 1.
    pub position: u64,
    /// The stream the event belongs to.
    pub stream: StreamId,
    /// Version of the stream after this event, starting at 1.
    pub version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u16,
    pub timestamp_ms: i64,
    pub payload: Vec<u8>,
    /// Who asked for it (`None` for events written before origins existed).
    pub origin: Option<Origin>,
}

// Payloads may carry personal data (phone numbers, message bodies): Debug shows their size only.
impl fmt::Debug for NewEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEvent")
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("schema_version", &self.schema_version)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("payload_bytes", &self.payload.len())
            .field("origin", &self.origin)
            .finish()
    }
}

impl fmt::Debug for RecordedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedEvent")
            .field("position", &self.position)
            .field("stream", &self.stream)
            .field("version", &self.version)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("schema_version", &self.schema_version)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("payload_bytes", &self.payload.len())
            .field("origin", &self.origin)
            .finish()
    }
}

/// What the caller believes a stream's version to be. Version 0 means "the stream does not exist".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No check. Only for streams where concurrent writers cannot break an invariant; decision
    /// paths must use `NoStream` or `Exact`.
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream must be exactly at this version (`Exact(0)` is the same as `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// True when a stream at `actual` satisfies this expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(expected) => actual == expected,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// Events for one stream within an append request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// An idempotency key attached to an append (webhook dedup, the command API's Idempotency-Key).
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key, at most [`crate::MAX_IDEMPOTENCY_KEY_BYTES`] bytes; callers namespace it
    /// (`twilio:SM…:delivered`, `api:<token>:<key>`).
    pub key: Vec<u8>,
    /// The key stops counting as a duplicate at this time (ms since the epoch, store clock).
    pub expires_at_ms: i64,
    /// Opaque, small bytes returned with every later duplicate (e.g. the first HTTP response).
    pub result: Vec<u8>,
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyKey")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("expires_at_ms", &self.expires_at_ms)
            .field("result_bytes", &self.result.len())
            .finish()
    }
}

/// One atomic append: events to one or several streams, each with an expected version, and an
/// optional idempotency key. Either all of it is written or none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendRequest {
    pub streams: Vec<StreamAppend>,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl AppendRequest {
    /// A request for one stream.
    pub fn single(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        AppendRequest {
            streams: vec![StreamAppend {
                stream,
                expected,
                events,
            }],
            idempotency_key: None,
        }
    }

    /// Adds events for another stream (builder style).
    pub fn with_stream(
        mut self,
        stream: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        self.streams.push(StreamAppend {
            stream,
            expected,
            events,
        });
        self
    }

    /// Attaches an idempotency key (builder style).
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// A request that records only an idempotency key.
    pub fn key_only(key: IdempotencyKey) -> Self {
        AppendRequest {
            streams: Vec::new(),
            idempotency_key: Some(key),
        }
    }

    /// Number of events in the request.
    pub fn event_count(&self) -> usize {
        self.streams.iter().map(|s| s.events.len()).sum()
    }
}

/// Where an append's events landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Position of each event, in request order (streams in order, events in order).
    pub positions: Vec<u64>,
    /// For each stream of the request, in order, its version after the append.
    pub stream_versions: Vec<u64>,
}

impl Committed {
    /// Position of the first event, if the request had events.
    pub fn first_position(&self) -> Option<u64> {
        self.positions.first().copied()
    }

    /// Position of the last event, if the request had events.
    pub fn last_position(&self) -> Option<u64> {
        self.positions.last().copied()
    }
}

/// The successful outcomes of an append. Every outcome is durable when it is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The events were written now.
    Appended(Committed),
    /// Every event id of the request had already been written (a retry after a lost
    /// acknowledgement): nothing new was written; these are the original positions.
    AlreadyAppended(Committed),
    /// The idempotency key exists and has not expired: nothing was written.
    Duplicate {
        /// First position written with the key, `None` if the key was recorded without events.
        first_position: Option<u64>,
        /// The bytes attached at first write.
        result: Vec<u8>,
        /// When the key expires (ms since the epoch).
        expires_at_ms: i64,
    },
}

impl AppendOutcome {
    /// The committed positions for `Appended` and `AlreadyAppended`.
    pub fn committed(&self) -> Option<&Committed> {
        match self {
            AppendOutcome::Appended(committed) | AppendOutcome::AlreadyAppended(committed) => {
                Some(committed)
            }
            AppendOutcome::Duplicate { .. } => None,
        }
    }
}

/// A stored idempotency key, as returned by [`crate::Store::idempotency_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub first_position: Option<u64>,
    pub expires_at_ms: i64,
    pub result: Vec<u8>,
}
