//! The projection's snapshot: restored at open (then only the log's tail is replayed), and saved
//! by a checkpointed reader: every [`SNAPSHOT_EVERY_EVENTS`] events the hub appends, or on the
//! first append [`SNAPSHOT_EVERY`] after the last save, and at clean shutdown
//! ([`crate::Hub::save_snapshot`]).
//!
//! A save first catches up: it replays the log from the position the last save reflected to
//! the durable head into the projection (observations are idempotent, so events the hub's own
//! commits already indexed change nothing, and an event whose commit failed after its append
//! is indexed all the same). The snapshot then reflects at least that head, and is saved with
//! it. A snapshot that is missing, of another form version or unreadable is ignored: the
//! projection is rebuilt from position 1 and the next save replaces it whole.
//!
//! The ops counts are saved with it, in their own slot at their own position
//! (`counts_reader`), and restored on their first use, not at open (`projection_reader`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::{info, warn};
use wagate_domain::open_intent::is_open;
use wagate_domain::{Event, MessageId, MessageState};
use wagate_store::snapshot_forms;

use crate::codec;
use crate::error::Result;
use crate::hub::Hub;
use crate::projection::SNAPSHOT_SLOT;

/// Events appended between two saves of the projection's snapshot, at most (also the most a
/// start-up replays after a crash, plus what [`SNAPSHOT_EVERY`] lets through).
pub const SNAPSHOT_EVERY_EVENTS: u64 = 50_000;

/// Time between two saves while events are appended.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(60);

/// What the last open did: for tests and the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenStats {
    /// The position of the snapshot the projection started from (0: rebuilt from the log).
    pub snapshot_position: u64,
    /// Events replayed after it.
    pub replayed_events: u64,
    /// Why a snapshot found was not used, if one was found and refused.
    pub snapshot_refused: bool,
    /// The position of the ops counts' snapshot they started from (0: rebuilt from the log);
    /// they are restored on their first use, see [`crate::Hub::open_stats`].
    pub counts_snapshot_position: u64,
    /// A counts snapshot was found and not used (the counts were rebuilt from the log).
    pub counts_snapshot_refused: bool,
}

/// The saver's bookkeeping.
#[derive(Debug)]
pub(crate) struct Saver {
    /// The position everything up to which the last save (or the open) reflected.
    reflected: AtomicU64,
    appended_since_save: AtomicU64,
    last_save: Mutex<Instant>,
    running: AtomicBool,
    /// One save at a time.
    lock: tokio::sync::Mutex<()>,
    pub(crate) open_stats: Mutex<OpenStats>,
}

impl Default for Saver {
    fn default() -> Self {
        Saver {
            reflected: AtomicU64::new(0),
            appended_since_save: AtomicU64::new(0),
            last_save: Mutex::new(Instant::now()),
            running: AtomicBool::new(false),
            lock: tokio::sync::Mutex::new(()),
            open_stats: Mutex::new(OpenStats::default()),
        }
    }
}

impl Hub {
    /// Restores the projection from its snapshot and replays the log after it (or the whole
    /// log, when there is no usable snapshot). The ops counts and the cost ledger are restored
    /// on their first use (`projection_reader`), except by a replay of the whole log, which
    /// feeds the counts too.
    pub(crate) fn restore_projection(&self) -> Result<()> {
        let log = self.inner.log.as_ref();
        let projection = &self.inner.projection;
        let mut stats = OpenStats::default();
        let from = match log.snapshot(SNAPSHOT_SLOT)? {
            Some(snapshot) if snapshot.position <= log.head_position() => {
                match snapshot_forms::decode_projection(&snapshot.bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|form| projection.restore(form).map_err(|e| e.to_string()))
                {
                    Ok(()) => {
                        stats.snapshot_position = snapshot.position;
                        snapshot.position
                    }
                    Err(reason) => {
                        warn!(%reason, "projection snapshot not used; rebuilding from the log");
                        stats.snapshot_refused = true;
                        0
                    }
                }
            }
            Some(snapshot) => {
                warn!(
                    position = snapshot.position,
                    "projection snapshot is past the log's head; rebuilding from the log"
                );
                stats.snapshot_refused = true;
                0
            }
            None => 0,
        };
        stats.replayed_events = if from == 0 {
            self.replay_full()?
        } else {
            self.catch_up(from)?
        };
        self.inner
            .saver
            .reflected
            .store(log.head_position().max(from), Ordering::Release);
        // What was replayed counts as unsaved: after a long replay the first append saves.
        self.inner
            .saver
            .appended_since_save
            .store(stats.replayed_events, Ordering::Release);
        info!(
            snapshot_position = stats.snapshot_position,
            replayed = stats.replayed_events,
            "projection ready"
        );
        *self.inner.saver.open_stats.lock() = stats;
        Ok(())
    }

    /// Replays the whole log, following each message's state in a local map that drops a
    /// message once it is settled (the projection needs the state only to tell open from done).
    /// Feeds the counts too (restored first: they apply only the events after their position),
    /// so that a hub without snapshots reads its log once, not twice.
    fn replay_full(&self) -> Result<u64> {
        let mut messages: HashMap<MessageId, MessageState> = HashMap::new();
        let mut failure = None;
        let mut count = 0;
        let log = self.inner.log.as_ref();
        let projection = &self.inner.projection;
        let mut counts = self.counts();
        log.replay(1, &mut |record| {
            if failure.is_some() {
                return;
            }
            count += 1;
            let result = codec::decode(&record).and_then(|event| {
                let state = match &event {
                    Event::Message(message_event) => message_event.message_id().map(|id| {
                        let state = messages
                            .remove(&id)
                            .unwrap_or_default()
                            .apply(message_event);
                        if is_open(&state.phase()) {
                            messages.insert(id, state.clone());
                        }
                        state
                    }),
                    _ => None,
                };
                counts.observe(record.position, &event);
                projection.observe(log, &event, record.position, state.as_ref())
            });
            if let Err(error) = result {
                failure = Some(error);
            }
        })?;
        match failure {
            Some(error) => Err(error),
            None => Ok(count),
        }
    }

    /// Replays the log after `position` into the projection, with each message's newest state
    /// ([`Hub::projected_message_state`]): a tail is short, and whether a message is open is a
    /// question about now. Answers how many events it replayed. (The ops counts follow the log
    /// on their own, from their own position.)
    fn catch_up(&self, position: u64) -> Result<u64> {
        let log = self.inner.log.as_ref();
        let mut failure = None;
        let mut count = 0;
        log.replay(position + 1, &mut |record| {
            if failure.is_some() {
                return;
            }
            count += 1;
            let result = codec::decode(&record).and_then(|event| {
                let state = self.projected_message_state(&event)?;
                self.inner
                    .projection
                    .observe(log, &event, record.position, state.as_ref())
            });
            if let Err(error) = result {
                failure = Some(error);
            }
        })?;
        match failure {
            Some(error) => Err(error),
            None => Ok(count),
        }
    }

    /// Keeps the projection (senders, templates, open messages, provider ids) following a log
    /// that other hubs append to as well (several hubs on one PostgreSQL database): whenever the
    /// durable head moves past what the projection reflects, the events in between are indexed.
    /// Indexing is idempotent, so the hub's own appends, already indexed, cost only a re-read.
    /// Unneeded (and not run) when the hub is its log's only writer. Runs until `stop` is true.
    pub async fn follow_shared_log(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut head = self.inner.log.subscribe();
        loop {
            tokio::select! {
                changed = head.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
            if let Err(error) = self.catch_up_shared().await {
                warn!(%error, "the projection could not follow the shared log; tried again on the next append");
            }
        }
    }

    /// Indexes what the log holds past the projection's position, one catch-up at a time (a
    /// snapshot save takes the same lock).
    pub async fn catch_up_shared(&self) -> Result<()> {
        let saver = &self.inner.saver;
        let _one_at_a_time = saver.lock.lock().await;
        let head = self.inner.log.head_position();
        let reflected = saver.reflected.load(Ordering::Acquire);
        if reflected < head {
            self.catch_up(reflected)?;
            saver.reflected.store(head, Ordering::Release);
        }
        Ok(())
    }

    /// What the last open did (snapshot position, events replayed). The counts' fields say
    /// what their restore found, which happens on their first use: this restores them if
    /// nothing used them yet.
    pub fn open_stats(&self) -> OpenStats {
        let counts = self.counts_restored();
        OpenStats {
            counts_snapshot_position: counts.snapshot_position,
            counts_snapshot_refused: counts.snapshot_refused,
            ..*self.inner.saver.open_stats.lock()
        }
    }

    /// Events the aggregate loads applied since open (a test hook: a load that starts from a
    /// snapshot applies only the events after it).
    pub fn aggregate_events_applied(&self) -> u64 {
        self.inner.cache.applied()
    }

    /// Aggregates in the load cache now (a test hook, also on `/metrics` as
    /// `wagate_aggregate_cache_entries`).
    pub fn aggregates_cached(&self) -> usize {
        self.inner.cache.len()
    }

    /// Sizes of the projection's in-memory structures.
    pub fn projection_sizes(&self) -> crate::projection::ProjectionSizes {
        self.inner.projection.sizes()
    }

    /// Saves the projection's snapshot now: catches up with the durable head, then saves with
    /// that position; then the ops counts' snapshot the same way, in their own slot. Called at
    /// clean shutdown, and by the hub itself every so often.
    pub async fn save_snapshot(&self) -> Result<()> {
        let saver = &self.inner.saver;
        let _one_at_a_time = saver.lock.lock().await;
        let head = self.inner.log.head_position();
        let reflected = saver.reflected.load(Ordering::Acquire);
        let appended = saver.appended_since_save.swap(0, Ordering::AcqRel);
        if reflected < head {
            self.catch_up(reflected)?;
        }
        let (save, pending) = self.inner.projection.to_save(head);
        let result = self.inner.log.save_snapshot(SNAPSHOT_SLOT, save).await;
        match result {
            Ok(()) => {
                self.inner.projection.saved(pending);
                saver.reflected.store(head, Ordering::Release);
                *saver.last_save.lock() = Instant::now();
                self.save_counts().await?;
                self.save_costs().await
            }
            Err(error) => {
                // Counted again, and tried again after the interval (not on every append).
                *saver.last_save.lock() = Instant::now();
                saver
                    .appended_since_save
                    .fetch_add(appended, Ordering::AcqRel);
                Err(error.into())
            }
        }
    }

    /// Called after each append of `events` events: starts a save in the background when one
    /// is due (and none is running, and there is a runtime to run it on).
    pub(crate) fn after_append(&self, events: u64) {
        let saver = &self.inner.saver;
        let appended = saver
            .appended_since_save
            .fetch_add(events, Ordering::AcqRel)
            + events;
        let due =
            appended >= SNAPSHOT_EVERY_EVENTS || saver.last_save.lock().elapsed() >= SNAPSHOT_EVERY;
        if !due {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if saver.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let hub = self.clone();
        runtime.spawn(async move {
            if let Err(error) = hub.save_snapshot().await {
                warn!(%error, "projection snapshot not saved; retried later");
            }
            hub.inner.saver.running.store(false, Ordering::Release);
        });
    }
}
