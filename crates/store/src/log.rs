//! The event log as an interface: exactly what the command service (`wagate-app`) needs from a
//! log, so the service does not depend on sled and a second backend (PostgreSQL) can stand in.
//!
//! The contract every backend keeps (the suite in `tests/store.rs` checks it once for all):
//! - positions are global, gap-free and start at 1; stream versions start at 1;
//! - an append is atomic over all its streams; a stale [`ExpectedVersion`] is a
//!   [`StoreError::Conflict`] and writes nothing; a retry carrying the same event ids answers
//!   [`AppendOutcome::AlreadyAppended`] with the original positions;
//! - an unexpired idempotency key answers [`AppendOutcome::Duplicate`] and writes nothing;
//! - an answered append is durable, and readable at once: reads never go past the durable head,
//!   and [`EventLog::subscribe`] announces a head only once everything up to it is readable;
//! - an idempotency key is visible to [`EventLog::idempotency_key`] only once the append that
//!   wrote it is durable (never from a batch still syncing or one that failed);
//! - checkpoints are per consumer name and may not point past the head;
//! - a snapshot slot is per name; a save replaces the slot's state and writes its index
//!   entries atomically, and is durable once answered. Snapshots are derived data: readers
//!   check them and rebuild from the log when one is missing or unreadable.
//!
//! [`ExpectedVersion`]: crate::ExpectedVersion

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

use crate::error::{Result, StoreError};
use crate::record::{AppendOutcome, AppendRequest, IdempotencyRecord, RecordedEvent};
use crate::snapshot::{Snapshot, SnapshotSave};
use crate::store::{Store, StoreStats};
use crate::stream::StreamId;

/// A boxed, sendable future: what the log's asynchronous operations return, so the trait stays
/// object-safe (`Arc<dyn EventLog>`).
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Events a default [`EventLog::replay`] reads per call of [`EventLog::read_from`].
const REPLAY_CHUNK: usize = 4096;

/// The durable event log the command service writes and reads. Object-safe; held as
/// `Arc<dyn EventLog>`.
pub trait EventLog: Send + Sync + fmt::Debug + 'static {
    /// Appends atomically; resolves once the append is durable (or refused). See
    /// [`AppendOutcome`] for what a retry or an idempotency key can answer instead of `Appended`.
    fn append(&self, request: AppendRequest) -> LogFuture<'_, AppendOutcome>;

    /// Events of one stream with version ≥ `from_version`, at most `limit` of them, in version
    /// order, never past the durable head.
    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>>;

    /// Events from position `from_position` on (inclusive; 0 reads from 1), at most `limit` of
    /// them, in log order, never past the durable head.
    fn read_from(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// Hands every event from `from_position` up to the durable head at the start of the call to
    /// `on_event`, in log order. Backends with a faster full scan override the default, which
    /// reads in chunks through [`EventLog::read_from`].
    fn replay(&self, from_position: u64, on_event: &mut dyn FnMut(RecordedEvent)) -> Result<()> {
        let head = self.head_position();
        let mut next = from_position.max(1);
        while next <= head {
            let events = self.read_from(next, REPLAY_CHUNK)?;
            let Some(last) = events.last().map(|event| event.position) else {
                return Err(StoreError::Io {
                    kind: std::io::ErrorKind::UnexpectedEof,
                    detail: format!("the log ends at {} before its head {head}", next - 1),
                });
            };
            for event in events
                .into_iter()
                .take_while(|event| event.position <= head)
            {
                on_event(event);
            }
            next = last + 1;
        }
        Ok(())
    }

    /// The unexpired idempotency key `key`, if any.
    fn idempotency_key(&self, key: &[u8]) -> Result<Option<IdempotencyRecord>>;

    /// The last position consumer `name` saved, if any.
    fn checkpoint(&self, name: &str) -> Result<Option<u64>>;

    /// Durably records that consumer `name` has processed everything up to `position` (at most
    /// the head; a consumer may move back).
    fn save_checkpoint(&self, name: &str, position: u64) -> LogFuture<'_, ()>;

    /// The snapshot in slot `name`, if any (see [`Snapshot`]).
    fn snapshot(&self, name: &str) -> Result<Option<Snapshot>>;

    /// Entry `key` of slot `name`'s index, as the last save of the slot left it.
    fn snapshot_entry(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Durably replaces slot `name` with `save` (state, position and index entries at once).
    fn save_snapshot(&self, name: &str, save: SnapshotSave) -> LogFuture<'_, ()>;

    /// The highest durable position (0 for an empty log).
    fn head_position(&self) -> u64;

    /// A receiver of the durable head: it changes only once everything up to the new value is
    /// readable.
    fn subscribe(&self) -> watch::Receiver<u64>;

    /// Counters since open, for metrics.
    fn stats(&self) -> StoreStats;

    /// A receiver of the log's failure: `None` while it can make writes durable, the cause once
    /// it cannot (it then refuses every write until reopened). Readiness and `wagate serve`'s
    /// exit on a failed log watch it.
    fn failure(&self) -> watch::Receiver<Option<StoreError>>;
}

impl EventLog for Store {
    fn append(&self, request: AppendRequest) -> LogFuture<'_, AppendOutcome> {
        Box::pin(Store::append(self, request))
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        Store::read_stream(self, stream, from_version, limit)
    }

    fn read_from(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        Store::read_from(self, from_position, limit)
    }

    // sled's own replay scans ahead on `Options::replay_threads` threads.
    fn replay(&self, from_position: u64, on_event: &mut dyn FnMut(RecordedEvent)) -> Result<()> {
        Store::replay(self, from_position, on_event, |_| {}).map(|_| ())
    }

    fn idempotency_key(&self, key: &[u8]) -> Result<Option<IdempotencyRecord>> {
        Store::idempotency_key(self, key)
    }

    fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        Store::checkpoint(self, name)
    }

    fn save_checkpoint(&self, name: &str, position: u64) -> LogFuture<'_, ()> {
        Box::pin(Store::save_checkpoint(self, name, position))
    }

    fn snapshot(&self, name: &str) -> Result<Option<Snapshot>> {
        Store::snapshot(self, name)
    }

    fn snapshot_entry(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Store::snapshot_entry(self, name, key)
    }

    fn save_snapshot(&self, name: &str, save: SnapshotSave) -> LogFuture<'_, ()> {
        Box::pin(Store::save_snapshot(self, name, save))
    }

    fn head_position(&self) -> u64 {
        Store::head_position(self)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        Store::subscribe(self)
    }

    fn stats(&self) -> StoreStats {
        Store::stats(self)
    }

    fn failure(&self) -> watch::Receiver<Option<StoreError>> {
        Store::failure(self)
    }
}
