//! Loading aggregates from their streams, through a cache.
//!
//! The cache only saves work, it is never trusted for correctness: a load reads whatever the
//! stream gained since the cached version, and every decision is appended with the expected
//! versions of the streams it read, so a stale state can only cause a conflict and a retry.

use std::collections::HashMap;

use parking_lot::Mutex;
use wagate_domain::{
    Aggregate, ContactState, Event, MessageEvent, MessageState, PortfolioState, ReviewState,
    SenderState, StreamKey, TemplateState,
};
use wagate_store::EventLog;

use crate::codec;
use crate::error::{AppError, Result};

/// An aggregate type that lives in the log.
pub trait Stored: Aggregate + Send + 'static {
    fn pick(event: Event) -> Option<Self::Event>;
    fn into_cached(self) -> Cached;
    fn from_cached(cached: &Cached) -> Option<Self>;
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

stored!(ContactState, Contact, Event::Contact(inner) => inner);
stored!(SenderState, Sender, Event::Sender(inner) => inner);
stored!(TemplateState, Template, Event::Template(inner) => inner);
stored!(PortfolioState, Portfolio, Event::Portfolio(inner) => inner);
stored!(ReviewState, Review, Event::Review(inner) => inner);

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

#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<StreamKey, (u64, Cached)>>,
}

impl Cache {
    pub fn load<A: Stored>(&self, log: &dyn EventLog, key: &StreamKey) -> Result<Loaded<A>> {
        let cached =
            self.entries.lock().get(key).and_then(|(version, cached)| {
                A::from_cached(cached).map(|state| (*version, state))
            });
        let (mut version, mut state) = cached.unwrap_or_default();
        let stream = codec::stream_id(key)?;
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
            if count < READ_CHUNK {
                break;
            }
        }
        self.put(key.clone(), version, state.clone());
        Ok(Loaded { state, version })
    }

    /// Records a state the caller just appended (saves the next load a read).
    pub fn put<A: Stored>(&self, key: StreamKey, version: u64, state: A) {
        let mut entries = self.entries.lock();
        if entries.len() >= CACHE_ENTRIES_MAX {
            entries.clear();
        }
        match entries.get(&key) {
            // Never replace a newer state with an older one (concurrent loads).
            Some((cached_version, _)) if *cached_version > version => {}
            _ => {
                entries.insert(key, (version, state.into_cached()));
            }
        }
    }
}
