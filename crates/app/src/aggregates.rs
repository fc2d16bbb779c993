//! Loading aggregates from their streams, through a cache.
//!
//! The cache only saves work, it is never trusted for correctness: a load reads whatever the
//! stream gained since the cached version, and every decision is appended with the expected
//! versions of the streams it read, so a stale state can only cause a conflict and a retry.
//!
//! Long-lived streams are snapshotted: when a load has applied more than
//! [`AGGREGATE_SNAPSHOT_EVERY`] events past the stream's last snapshot, the state is saved in
//! the log's snapshot slot `aggregate:<stream>` with the stream version it reflects (in the
//! background), and a load that finds nothing cached starts from that snapshot. The snapshot's
//! form is versioned (`wagate_store::snapshot_forms`); one of another version, or that does not
//! decode, is ignored and the stream is read from its start. Today: portfolios (one event per
//! recipient reached outside a window, forever), contacts (one event per inbound message) and
//! the review queue's `review:queue` (one event per resolution and per watcher item, forever:
//! every resolve loads it).
//! Senders' streams stay short (registrations and authorizations): no snapshot form.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::warn;
use wagate_domain::{
    Aggregate, ConsentState, ContactState, Event, MessageEvent, MessageState, PortfolioState,
    ReviewState, SenderState, StreamKey, TemplateState,
};
use wagate_store::{snapshot_forms, EventLog, SnapshotSave};

use crate::codec;
use crate::error::{AppError, Result};

/// An aggregate type that lives in the log.
pub trait Stored: Aggregate + Send + 'static {
    fn pick(event: Event) -> Option<Self::Event>;
    fn into_cached(self) -> Cached;
    fn from_cached(cached: &Cached) -> Option<Self>;

    /// The state's snapshot form, for streams that grow for ever (`None`: never snapshotted).
    fn encode_snapshot(&self) -> Option<Vec<u8>> {
        None
    }

    /// A state from its snapshot form; `None` when the type has none or the bytes are not of
    /// this build's form (the stream is then read from its start).
    fn decode_snapshot(_bytes: &[u8]) -> Option<Self> {
        None
    }
}

/// A cached aggregate of any type.
#[derive(Debug, Clone)]
pub enum Cached {
    Contact(ContactState),
    Message(MessageState),
    Sender(SenderState),
    Template(TemplateState),
    Portfolio(PortfolioState),
    Review(ReviewState),
    Consent(ConsentState),
    Campaign(wagate_domain::CampaignState),
}

macro_rules! stored {
    ($state:ty, $variant:ident, $pick:pat => $inner:ident) => {
        impl Stored for $state {
            fn pick(event: Event) -> Option<Self::Event> {
                match event {
                    $pick => Some($inner),
                    _ => None,
                }
            }

            fn into_cached(self) -> Cached {
                Cached::$variant(self)
            }

            fn from_cached(cached: &Cached) -> Option<Self> {
                match cached {
                    Cached::$variant(state) => Some(state.clone()),
                    _ => None,
                }
            }
        }
    };
}

impl Stored for ContactState {
    fn pick(event: Event) -> Option<Self::Event> {
        match event {
            Event::Contact(inner) => Some(inner),
            _ => None,
        }
    }

    fn into_cached(self) -> Cached {
        Cached::Contact(self)
    }

    fn from_cached(cached: &Cached) -> Option<Self> {
        match cached {
            Cached::Contact(state) => Some(state.clone()),
            _ => None,
        }
    }

    fn encode_snapshot(&self) -> Option<Vec<u8>> {
        Some(snapshot_forms::encode_contact(self))
    }

    fn decode_snapshot(bytes: &[u8]) -> Option<Self> {
        snapshot_forms::decode_contact(bytes)
            .map_err(|reason| warn!(%reason, "contact snapshot not used; reading its stream"))
            .ok()
    }
}
stored!(SenderState, Sender, Event::Sender(inner) => inner);
stored!(TemplateState, Template, Event::Template(inner) => inner);

impl Stored for PortfolioState {
    fn pick(event: Event) -> Option<Self::Event> {
        match event {
            Event::Portfolio(inner) => Some(inner),
            _ => None,
        }
    }

    fn into_cached(self) -> Cached {
        Cached::Portfolio(self)
    }

    fn from_cached(cached: &Cached) -> Option<Self> {
        match cached {
            Cached::Portfolio(state) => Some(state.clone()),
            _ => None,
        }
    }

    fn encode_snapshot(&self) -> Option<Vec<u8>> {
        Some(snapshot_forms::encode_portfolio(self))
    }

    fn decode_snapshot(bytes: &[u8]) -> Option<Self> {
        snapshot_forms::decode_portfolio(bytes)
            .map_err(|reason| warn!(%reason, "portfolio snapshot not used; reading its stream"))
            .ok()
    }
}
impl Stored for ReviewState {
    fn pick(event: Event) -> Option<Self::Event> {
        match event {
            Event::Review(inner) => Some(inner),
            _ => None,
        }
    }

    fn into_cached(self) -> Cached {
        Cached::Review(self)
    }

    fn from_cached(cached: &Cached) -> Option<Self> {
        match cached {
            Cached::Review(state) => Some(state.clone()),
            _ => None,
        }
    }

    fn encode_snapshot(&self) -> Option<Vec<u8>> {
        Some(snapshot_forms::encode_review(self))
    }

    fn decode_snapshot(bytes: &[u8]) -> Option<Self> {
        snapshot_forms::decode_review(bytes)
            .map_err(|reason| warn!(%reason, "review snapshot not used; reading its stream"))
            .ok()
    }
}
stored!(ConsentState, Consent, Event::Consent(inner) => inner);
stored!(wagate_domain::CampaignState, Campaign, Event::Campaign(inner) => inner);

impl Stored for MessageState {
    fn pick(event: Event) -> Option<MessageEvent> {
        match event {
            Event::Message(inner) => Some(inner),
            _ => None,
        }
    }

    fn into_cached(self) -> Cached {
        Cached::Message(self)
    }

    fn from_cached(cached: &Cached) -> Option<Self> {
        match cached {
            Cached::Message(state) => Some(state.clone()),
            _ => None,
        }
    }
}

/// An aggregate with the stream version it reflects.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    pub version: u64,
}

/// Bounded: when full it is emptied (crude, but it never serves anything wrong, and hot
/// aggregates refill at once).
const CACHE_ENTRIES_MAX: usize = 100_000;

/// How many events a load reads per store call.
const READ_CHUNK: usize = 4096;

/// Events applied past an aggregate's last snapshot before a load saves a new one.
pub const AGGREGATE_SNAPSHOT_EVERY: u64 = 1_000;

/// The snapshot slot of a stream's aggregate (`None` when the name would be too long).
fn slot(stream: &wagate_store::StreamId) -> Option<String> {
    let name = format!("aggregate:{}", stream.as_str());
    (name.len() <= wagate_store::MAX_CHECKPOINT_NAME_BYTES).then_some(name)
}

#[derive(Debug, Default)]
pub struct Cache {
    /// Per stream: the version cached, the state, and the version of its last snapshot.
    entries: Mutex<HashMap<StreamKey, (u64, Cached, u64)>>,
    /// Events applied by loads since open (a test hook: a load that starts from a snapshot
    /// applies only the events after it).
    applied: AtomicU64,
}

impl Cache {
    pub fn load<A: Stored>(&self, log: &Arc<dyn EventLog>, key: &StreamKey) -> Result<Loaded<A>> {
        let cached = self
            .entries
            .lock()
            .get(key)
            .and_then(|(version, cached, snapshot)| {
                A::from_cached(cached).map(|state| (*version, state, *snapshot))
            });
        let stream = codec::stream_id(key)?;
        let slot = slot(&stream);
        let (mut version, mut state, mut snapshot_version) = match cached {
            Some(cached) => cached,
            None => self.start_from_snapshot::<A>(log.as_ref(), slot.as_deref())?,
        };
        loop {
            let records = log.read_stream(&stream, version + 1, READ_CHUNK)?;
            let count = records.len();
            for record in records {
                let event = codec::decode(&record)?;
                let Some(event) = A::pick(event) else {
                    return Err(AppError::Corrupt {
                        position: record.position,
                        reason: format!("a {} event in stream {key}", record.event_type),
                    });
                };
                state = state.apply(&event);
                version = record.version;
            }
            self.applied.fetch_add(count as u64, Ordering::Relaxed);
            if count < READ_CHUNK {
                break;
            }
        }
        if version >= snapshot_version + AGGREGATE_SNAPSHOT_EVERY {
            if let Some(slot) = slot {
                if save_in_background(log, slot, version, &state) {
                    snapshot_version = version;
                }
            }
        }
        self.put_with_snapshot(key.clone(), version, state.clone(), snapshot_version);
        Ok(Loaded { state, version })
    }

    /// The state and version of `slot`'s snapshot, or an empty state at version 0.
    fn start_from_snapshot<A: Stored>(
        &self,
        log: &dyn EventLog,
        slot: Option<&str>,
    ) -> Result<(u64, A, u64)> {
        let Some(slot) = slot else {
            return Ok((0, A::default(), 0));
        };
        if A::default().encode_snapshot().is_none() {
            return Ok((0, A::default(), 0));
        }
        Ok(match log.snapshot(slot)? {
            Some(snapshot) => match A::decode_snapshot(&snapshot.bytes) {
                Some(state) => (snapshot.position, state, snapshot.position),
                None => (0, A::default(), 0),
            },
            None => (0, A::default(), 0),
        })
    }

    /// Events applied by loads since open.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    fn put_with_snapshot<A: Stored>(&self, key: StreamKey, version: u64, state: A, snapshot: u64) {
        let mut entries = self.entries.lock();
        if entries.len() >= CACHE_ENTRIES_MAX {
            entries.clear();
        }
        match entries.get(&key) {
            // Never replace a newer state with an older one (concurrent loads).
            Some((cached_version, _, _)) if *cached_version > version => {}
            Some((_, _, saved)) => {
                let snapshot = snapshot.max(*saved);
                entries.insert(key, (version, state.into_cached(), snapshot));
            }
            None => {
                entries.insert(key, (version, state.into_cached(), snapshot));
            }
        }
    }
}

/// Saves `state` (at stream `version`) in `slot` on the current runtime, if there is one;
/// answers whether a save was started. A failed save only costs the next start some reading.
fn save_in_background<A: Stored>(
    log: &Arc<dyn EventLog>,
    slot: String,
    version: u64,
    state: &A,
) -> bool {
    let Some(bytes) = state.encode_snapshot() else {
        return false;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    let log = Arc::clone(log);
    runtime.spawn(async move {
        let save = SnapshotSave {
            position: version,
            bytes,
            ..SnapshotSave::default()
        };
        if let Err(error) = log.save_snapshot(&slot, save).await {
            warn!(%error, %slot, "aggregate snapshot not saved");
        }
    });
    true
}
