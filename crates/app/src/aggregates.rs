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

/// Most aggregates the cache holds. Which ones stay is quick_cache's S3-FIFO policy: a stream
/// loaded once and never again (the message of a refused send, a callback for an unknown
/// message) passes through a small probationary queue and leaves without pushing out the
/// aggregates read again and again (contacts, senders, portfolios, open messages). Emptying the
/// cache when full (what it did before) let such one-off streams grow it for as long as it took
/// them to reach this bound: about an hour at the soak's rate.
pub const CACHE_ENTRIES_MAX: usize = 100_000;

/// The gauge of cached aggregates on `/metrics`.
pub const CACHE_ENTRIES_GAUGE: &str = "wagate_aggregate_cache_entries";

/// Share of [`CACHE_ENTRIES_MAX`] kept as "ghosts" (keys of entries evicted from the
/// probationary queue, so a stream read again soon after goes straight to the main queue).
/// quick_cache's default is 0.5; a ghost is a whole slot (its key and links), and one-off
/// streams arrive steadily, so fewer keep the cache's size settled sooner.
const CACHE_GHOST_ALLOCATION: f64 = 0.1;

/// How many events a load reads per store call.
const READ_CHUNK: usize = 4096;

/// Events applied past an aggregate's last snapshot before a load saves a new one.
pub const AGGREGATE_SNAPSHOT_EVERY: u64 = 1_000;

/// The snapshot slot of a stream's aggregate (`None` when the name would be too long).
fn slot(stream: &wagate_store::StreamId) -> Option<String> {
    let name = format!("aggregate:{}", stream.as_str());
    (name.len() <= wagate_store::MAX_CHECKPOINT_NAME_BYTES).then_some(name)
}

/// Whether a load puts a stream that was not cached into the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Always,
    IfCached,
}

/// A cached aggregate: the stream version it reflects, the state (boxed, so a slot of the
/// cache's table costs a pointer, not the largest state), and the version of its last snapshot.
#[derive(Debug, Clone)]
struct CacheEntry {
    version: u64,
    state: Box<Cached>,
    snapshot_version: u64,
}

#[derive(Debug)]
pub struct Cache {
    entries: Mutex<quick_cache::unsync::Cache<StreamKey, CacheEntry>>,
    /// Events applied by loads since open (a test hook: a load that starts from a snapshot
    /// applies only the events after it).
    applied: AtomicU64,
}

impl Default for Cache {
    fn default() -> Self {
        Self::with_capacity(CACHE_ENTRIES_MAX)
    }
}

impl Cache {
    /// A cache of at most `entries` aggregates.
    pub fn with_capacity(entries: usize) -> Self {
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(entries)
            .weight_capacity(entries as u64)
            .ghost_allocation(CACHE_GHOST_ALLOCATION)
            .build();
        // The options are constants but for the capacity, and the builder refuses only a
        // missing capacity or an allocation outside 0..=1.
        let options = match options {
            Ok(options) => options,
            Err(refused) => unreachable!("quick_cache refused the cache's options: {refused}"),
        };
        Self {
            entries: Mutex::new(quick_cache::unsync::Cache::with_options(
                options,
                quick_cache::UnitWeighter,
                quick_cache::DefaultHashBuilder::default(),
                quick_cache::unsync::DefaultLifecycle::default(),
            )),
            applied: AtomicU64::new(0),
        }
    }

    /// How many aggregates are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// `key`'s aggregate, from the cache and what the stream gained since, then cached.
    pub fn load<A: Stored>(&self, log: &Arc<dyn EventLog>, key: &StreamKey) -> Result<Loaded<A>> {
        self.load_filling(log, key, Fill::Always)
    }

    /// Like [`Cache::load`], but a stream that is not cached stays uncached: for reads that
    /// follow a write (the projection's view of a message just appended), which say nothing
    /// about whether the aggregate will be decided on again. A refused send's message is never
    /// read again; one admitted is loaded by the dispatcher, whose load caches it.
    pub fn load_without_caching<A: Stored>(
        &self,
        log: &Arc<dyn EventLog>,
        key: &StreamKey,
    ) -> Result<Loaded<A>> {
        self.load_filling(log, key, Fill::IfCached)
    }

    fn load_filling<A: Stored>(
        &self,
        log: &Arc<dyn EventLog>,
        key: &StreamKey,
        fill: Fill,
    ) -> Result<Loaded<A>> {
        let cached = self.entries.lock().get(key).and_then(|entry| {
            A::from_cached(&entry.state).map(|state| (entry.version, state, entry.snapshot_version))
        });
        let stream = codec::stream_id(key)?;
        let slot = slot(&stream);
        let was_cached = cached.is_some();
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
        if fill == Fill::Always || was_cached {
            self.put_with_snapshot(key.clone(), version, state.clone(), snapshot_version);
        }
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
        let snapshot_version = match entries.peek(&key) {
            // Never replace a newer state with an older one (concurrent loads).
            Some(cached) if cached.version > version => return,
            Some(cached) => snapshot.max(cached.snapshot_version),
            None => snapshot,
        };
        entries.insert(
            key,
            CacheEntry {
                version,
                state: Box::new(state.into_cached()),
                snapshot_version,
            },
        );
        metrics::gauge!(CACHE_ENTRIES_GAUGE).set(entries.len() as f64);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cached_version(cache: &Cache, key: &StreamKey) -> Option<u64> {
        cache.entries.lock().peek(key).map(|entry| entry.version)
    }

    fn put(cache: &Cache, key: &StreamKey, version: u64) {
        cache.put_with_snapshot(key.clone(), version, SenderState::default(), 0);
    }

    fn hot(n: usize) -> StreamKey {
        StreamKey::Consent(format!("consent-wording:{n}"))
    }

    fn one_off(n: usize) -> StreamKey {
        StreamKey::Provider(format!("provider:meta:{n}"))
    }

    #[test]
    fn streams_loaded_once_leave_without_pushing_out_those_loaded_again() {
        let cache = Cache::with_capacity(1_000);
        for n in 0..100 {
            put(&cache, &hot(n), 1);
        }
        for _ in 0..2 {
            for n in 0..100 {
                assert!(cache.entries.lock().get(&hot(n)).is_some());
            }
        }
        for n in 0..20_000 {
            put(&cache, &one_off(n), 1);
            if n % 1_000 == 0 {
                // Hot aggregates keep being read while the one-off streams pass.
                for n in 0..100 {
                    cache.entries.lock().get(&hot(n));
                }
            }
        }
        let kept = (0..100)
            .filter(|&n| cached_version(&cache, &hot(n)).is_some())
            .count();
        assert_eq!(
            kept, 100,
            "every hot aggregate survives 20 times its capacity in one-offs"
        );
        assert!(
            cache.entries.lock().len() <= 1_000,
            "{} entries, bound 1,000",
            cache.entries.lock().len()
        );
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = Cache::with_capacity(500);
        for n in 0..10_000 {
            put(&cache, &one_off(n), 1);
            assert!(
                cache.entries.lock().len() <= 500,
                "{} entries after {n} puts",
                cache.entries.lock().len()
            );
        }
        assert!(!cache.entries.lock().is_empty());
    }

    #[test]
    fn an_older_state_never_replaces_a_newer_one() {
        let cache = Cache::with_capacity(10);
        put(&cache, &hot(1), 7);
        put(&cache, &hot(1), 5);
        assert_eq!(cached_version(&cache, &hot(1)), Some(7));
        put(&cache, &hot(1), 9);
        assert_eq!(cached_version(&cache, &hot(1)), Some(9));
    }

    #[test]
    fn a_snapshot_version_is_kept_across_replacements() {
        let cache = Cache::with_capacity(10);
        cache.put_with_snapshot(hot(1), 1_500, SenderState::default(), 1_200);
        cache.put_with_snapshot(hot(1), 1_600, SenderState::default(), 0);
        let snapshot = cache
            .entries
            .lock()
            .peek(&hot(1))
            .map(|entry| entry.snapshot_version);
        assert_eq!(snapshot, Some(1_200));
    }
}
