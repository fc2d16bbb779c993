//! The app's read side: everything a reader outside the app (the HTTP feed, health and metrics,
//! the dispatch routes, the in-process dispatcher) needs from the log, decoded. Nobody else holds
//! the log: the hub is its only door.

use std::collections::BTreeMap;
use tokio::sync::watch;
use wagate_domain::open_intent::{OpenIntent, INTENT_EVENT_TYPES};

use wagate_domain::{
    Actor, DispatchPhase, Event, MessageId, MessageState, StreamKey, WhatsAppAddress,
};
use wagate_store::RecordedEvent;

use crate::codec;
use crate::error::{AppError, Result};
use crate::hub::Hub;

/// The log's counters since open (commits, writer time by stage, the durable head), for metrics.
pub use wagate_store::StoreStats;

/// One decoded event with where it sits in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub event_id: uuid::Uuid,
    pub event: Event,
    /// Who asked for it (`None` for events recorded before actors were).
    pub actor: Option<Actor>,
}

impl LoggedEvent {
    pub(crate) fn decode(record: &RecordedEvent) -> Result<Self> {
        Ok(LoggedEvent {
            position: record.position,
            stream: record.stream.as_str().to_owned(),
            version: record.version,
            event_id: record.event_id,
            event: codec::decode(record)?,
            actor: codec::actor(record),
        })
    }
}

/// The dispatcher's work list as of a head position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIntents {
    /// The durable head read before the list: every intent at or below it is in the list.
    pub head: u64,
    /// By message id.
    pub intents: Vec<OpenIntent>,
}

/// What [`Hub::events_after_where`] read.
#[derive(Debug, Clone)]
pub struct FilteredEvents {
    /// The wanted events, decoded, in log order.
    pub events: Vec<LoggedEvent>,
    /// Position of the last event read, wanted or not, before anything undecodable; `None`
    /// when nothing was read.
    pub last_position: Option<u64>,
    /// Events read, wanted or not.
    pub records_read: usize,
    /// False when the read stopped before an event this version cannot decode.
    pub complete: bool,
}

/// The intents among a run of new events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIntents {
    /// Each as its intent event announced it (waiting for its first claim).
    pub intents: Vec<OpenIntent>,
    /// Position of the last event read, intent or not; `None` when there was nothing to read.
    pub last_position: Option<u64>,
    /// Events read; equal to the limit asked for when more may follow.
    pub events_read: usize,
}

impl Hub {
    /// Decoded events after position `after`, at most `limit` of them, in log order, up to the
    /// durable head. Stops before an event this version cannot read: the events before it are
    /// answered, and a call starting at it fails with [`AppError::Corrupt`].
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>> {
        let records = self.inner.log.read_from(after.saturating_add(1), limit)?;
        let mut events = Vec::with_capacity(records.len());
        for record in &records {
            match LoggedEvent::decode(record) {
                Ok(event) => events.push(event),
                Err(error) if events.is_empty() => return Err(error),
                Err(_) => break,
            }
        }
        Ok(events)
    }

    /// Like [`Hub::events_after`], but only the events whose type name `wanted` accepts are
    /// decoded and answered: a reader of a few types does not pay for decoding the rest.
    /// `last_position` still covers the skipped ones, so the reader can move past them.
    pub fn events_after_where(
        &self,
        after: u64,
        limit: usize,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<FilteredEvents> {
        let records = self.inner.log.read_from(after.saturating_add(1), limit)?;
        let mut read = FilteredEvents {
            events: Vec::new(),
            last_position: None,
            records_read: records.len(),
            complete: true,
        };
        for record in &records {
            if wanted(&record.event_type) {
                match LoggedEvent::decode(record) {
                    Ok(event) => read.events.push(event),
                    // The first event read cannot be decoded: say so, as `events_after` does.
                    Err(error) if read.last_position.is_none() => return Err(error),
                    Err(_) => {
                        read.complete = false;
                        break;
                    }
                }
            }
            read.last_position = Some(record.position);
        }
        Ok(read)
    }

    /// The messages the dispatcher still has work for (pending, waiting for a retry, or claimed
    /// with no outcome), with the durable head read first. Built from the projection's open
    /// messages and their intent positions and each message's cached state: no stream is read
    /// beyond what it gained since it was cached.
    pub fn open_intents(&self) -> Result<OpenIntents> {
        let head = self.inner.log.head_position();
        let mut intents = Vec::new();
        for (message_id, position) in self.inner.projection.open_messages() {
            let state = self
                .load::<MessageState>(&StreamKey::Message(message_id))?
                .state;
            // `None`: the message closed since the projection was read.
            intents.extend(OpenIntent::of(message_id, &state, position));
        }
        self.fill_sender_rates(&mut intents)?;
        Ok(OpenIntents { head, intents })
    }

    /// Each intent's sender rate from the sender's registration (one load per sender): the
    /// dispatcher holds every number to its own provider's and tier's rate.
    fn fill_sender_rates(&self, intents: &mut [OpenIntent]) -> Result<()> {
        let mut rates: BTreeMap<WhatsAppAddress, Option<u32>> = BTreeMap::new();
        for intent in intents.iter_mut() {
            let rate = match rates.get(&intent.sender) {
                Some(rate) => *rate,
                None => {
                    let state = self.sender(&intent.sender)?.state;
                    let rate = state
                        .registration
                        .as_ref()
                        .map(|registration| registration.rate_per_second());
                    rates.insert(intent.sender.clone(), rate);
                    rate
                }
            };
            intent.sender_rate_per_second = rate;
        }
        Ok(())
    }

    /// The intents among the events after position `after` (at most `limit` events read). Only
    /// the intent events are decoded; the others are skipped by their type name.
    pub fn intents_after(&self, after: u64, limit: usize) -> Result<NewIntents> {
        let records = self.inner.log.read_from(after.saturating_add(1), limit)?;
        let mut intents = Vec::new();
        for record in &records {
            if !INTENT_EVENT_TYPES.contains(&record.event_type.as_str()) {
                continue;
            }
            if let Event::Message(event) = codec::decode(record)? {
                intents.extend(OpenIntent::announced(&event, record.position));
            }
        }
        self.fill_sender_rates(&mut intents)?;
        Ok(NewIntents {
            intents,
            last_position: records.last().map(|record| record.position),
            events_read: records.len(),
        })
    }

    /// The intents the intent events among `events` announced (waiting for their first claim),
    /// with their senders' rates: what [`Hub::intents_after`] answers, for a reader that
    /// already holds the decoded events (the dispatcher's follower).
    pub fn announced_intents(&self, events: &[LoggedEvent]) -> Result<Vec<OpenIntent>> {
        let mut intents = Vec::new();
        for logged in events {
            if let Event::Message(event) = &logged.event {
                intents.extend(OpenIntent::announced(event, logged.position));
            }
        }
        self.fill_sender_rates(&mut intents)?;
        Ok(intents)
    }

    /// A message's dispatch phase now, from its cached state; [`AppError::NotFound`] when the
    /// log has no such message.
    pub fn dispatch_phase(&self, message_id: MessageId) -> Result<DispatchPhase> {
        let loaded = self.load::<MessageState>(&StreamKey::Message(message_id))?;
        if loaded.version == 0 {
            return Err(AppError::NotFound {
                what: format!("message {message_id}"),
            });
        }
        Ok(loaded.state.phase())
    }

    /// The last position consumer `name` saved, if any.
    pub fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.inner.log.checkpoint(name)?)
    }

    /// Durably records that consumer `name` has processed everything up to `position`.
    pub async fn save_checkpoint(&self, name: &str, position: u64) -> Result<()> {
        Ok(self.inner.log.save_checkpoint(name, position).await?)
    }

    /// The highest durable position (0 for an empty log).
    pub fn head_position(&self) -> u64 {
        self.inner.log.head_position()
    }

    /// A receiver of the durable head: it changes once everything up to the new value can be
    /// read (with [`Hub::events_after`], [`Hub::intents_after`]).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.log.subscribe()
    }

    /// The log's counters since open.
    pub fn log_stats(&self) -> StoreStats {
        self.inner.log.stats()
    }

    /// The log's failure, watched: `None` while it can make writes durable, the cause once it
    /// cannot (it then refuses every write until the process reopens it). Readiness answers from
    /// it and `wagate serve` exits on it.
    pub fn log_failure(&self) -> tokio::sync::watch::Receiver<Option<wagate_store::StoreError>> {
        self.inner.log.failure()
    }

    /// The ops counts (refusals by rule, the send funnel, dispatch outcomes, messaging-limit
    /// usage) as of now, from the counts projection, first caught up with the durable head
    /// (reading only the events since the last catch-up). When the log cannot be read, the
    /// counts as of their position (`OpsCounts::position`) are answered and the cause logged.
    pub fn ops_counts(&self) -> crate::OpsCounts {
        let mut follower = self.counts();
        if let Err(error) = self.catch_up_counts(&mut follower) {
            tracing::warn!(%error, position = follower.position(), "ops counts not caught up");
        }
        follower.counts(self.now(), self.policy().default_messaging_limit)
    }
}
