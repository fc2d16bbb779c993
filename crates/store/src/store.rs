//! The store handle: open, append (through the writer), read, subscribe, close.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::envelope;
use crate::error::{from_sled, Result, StoreError};
use crate::keys;
use crate::packed::{History, LOG_BLOCK_EVENTS};
use crate::record::{AppendOutcome, AppendRequest, IdempotencyRecord, RecordedEvent};
use crate::stream::StreamId;
pub use crate::writer::SyncFault;
use crate::writer::{Command, Durability, Shared, Writer};
use std::collections::HashMap;

/// The store's source of "now" for idempotency-key expiry, in ms since the Unix epoch.
/// Tests inject a fixed or manual clock; production uses [`Clock::system`].
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// Wall-clock time.
    pub fn system() -> Self {
        Clock(Arc::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        }))
    }

    /// A clock backed by any function (e.g. reading an `AtomicI64` a test advances).
    pub fn from_fn(now_ms: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(now_ms))
    }

    /// The current time in ms since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Tuning knobs. Every sled setting that matters is set explicitly (sled's defaults are a 1 GiB
/// cache and a background flush every 500 ms; we flush ourselves on every group commit).
#[derive(Debug, Clone)]
pub struct Options {
    /// sled's page cache budget. Real RSS runs above it (sled counts on-disk page sizes).
    pub cache_capacity_bytes: u64,
    /// Most requests taken into one group commit.
    pub max_batch_requests: usize,
    /// Stream heads kept in the writer's in-memory cache before it is cleared and refilled lazily.
    pub head_cache_streams: usize,
    /// How often the writer sweeps expired idempotency keys when it has time.
    pub sweep_interval_ms: u64,
    /// Most expired keys removed in one sweep slice, which bounds how long a sweep delays appends.
    pub sweep_slice_keys: usize,
    /// Largest accepted event payload.
    pub max_payload_bytes: usize,
    /// How many events at the end of the log the open-time integrity check inspects.
    pub tail_check_events: u64,
    /// Scanner threads a replay uses to read and decode ahead of the caller (1 = scan on the
    /// calling thread only).
    pub replay_threads: usize,
    /// Most requests (appends and checkpoints) waiting for the writer; past it, a request is
    /// refused at once with [`StoreError::Busy`] instead of queueing without bound. At least 1.
    pub max_queued_requests: usize,
    /// Source of "now" for idempotency-key expiry.
    pub clock: Clock,
    /// Test hook: arm it to make the next group commit fail (see [`SyncFault`]).
    pub sync_fault: SyncFault,
    /// Events at the end of the log kept as one sled key each; older ones are packed into
    /// blocks when the writer has time (`crate::packed`), so sled's open time and memory grow
    /// with this tail, not with history. `u64::MAX`: never pack.
    pub unpacked_tail_events: u64,
    /// Most log blocks (of [`LOG_BLOCK_EVENTS`] events) one pack step moves: it bounds how long
    /// a step can delay an append that arrives meanwhile.
    pub pack_step_blocks: u64,
    /// Idempotency keys written before the writer walks the `k` keys again to move the durable
    /// ones without an answer into blocks (`crate::packed_keys`), so that sled's memory does not
    /// grow with every webhook of the de-duplication horizon. `u64::MAX`: never pack keys.
    pub key_walk_after_keys: u64,
    /// On a clean close, open sled once more and let it go: sled 0.34 writes its page-table
    /// snapshot only when it opens, so without this the next start scans everything written
    /// since this one started (seconds after a long run); with it, the close pays that scan and
    /// the next start does not. Off by default (tests open and close stores by the thousand);
    /// `wagate serve` turns it on.
    pub refresh_sled_snapshot_on_close: bool,
}

/// Default [`Options::max_queued_requests`]: two full group commits (`max_batch_requests` is
/// 1,000), so one batch can wait while another is being written and bursts are absorbed; a queue
/// longer than that means the disk is behind by more than two fsyncs, and callers are better told
/// to retry than left holding memory. At the 64 KiB payload limit it bounds the queue to about
/// 128 MiB; typical events (well under 1 KiB) keep it in single megabytes.
pub const DEFAULT_MAX_QUEUED_REQUESTS: usize = 2048;

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_capacity_bytes: 64 * 1024 * 1024,
            max_batch_requests: 1000,
            head_cache_streams: 100_000,
            sweep_interval_ms: 1000,
            sweep_slice_keys: 1000,
            max_payload_bytes: 64 * 1024,
            tail_check_events: 1024,
            // Scanning ahead on more threads was slower on the 2-core machines we measure on
            // (sled's page cache and LRU are shared); see docs/performance.md.
            replay_threads: 1,
            max_queued_requests: DEFAULT_MAX_QUEUED_REQUESTS,
            clock: Clock::system(),
            sync_fault: SyncFault::default(),
            // Recent events are the ones read and deduplicated most; 100,000 keeps sled's open
            // well under a second while a pack step happens every 1,024 events.
            unpacked_tail_events: 100_000,
            pack_step_blocks: 64,
            // A walk reads every `k` key; 4,096 keeps the unpacked keys to a few hundred sled
            // pages while a walk moves enough keys at once to share some block rewrites.
            key_walk_after_keys: 4096,
            refresh_sled_snapshot_on_close: false,
        }
    }
}

/// A request's answer, to `.await` (async callers) or to [`Pending::wait`] for (threads).
pub struct Pending<T> {
    receiver: oneshot::Receiver<Result<T>>,
}

impl<T> Pending<T> {
    fn ready(result: Result<T>) -> Self {
        let (sender, receiver) = oneshot::channel();
        // The receiver is alive right here, so the send cannot fail.
        let _ = sender.send(result);
        Pending { receiver }
    }

    /// An answer another thread sends on `receiver` (the snapshot saver's).
    pub(crate) fn from_receiver(receiver: oneshot::Receiver<Result<T>>) -> Self {
        Pending { receiver }
    }

    /// Blocks the current thread until the answer arrives. Must not be called from inside an
    /// async runtime (use `.await` there).
    pub fn wait(self) -> Result<T> {
        self.receiver
            .blocking_recv()
            .unwrap_or(Err(StoreError::Closed))
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(StoreError::Closed)))
    }
}

impl<T> fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pending")
    }
}

/// Progress of a replay, handed to the progress callback and returned at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Events delivered so far.
    pub events: u64,
    /// Position of the last event delivered (0 before the first).
    pub position: u64,
    /// The durable head when the replay started; the replay stops there.
    pub head: u64,
    pub elapsed: Duration,
}

/// Result of a full consistency check ([`Store::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    pub streams: u64,
}

/// Counters since open, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Durable group commits (each one `flush` + `fdatasync`).
    pub commits: u64,
    /// Requests (appends and checkpoints) answered by those commits.
    pub committed_requests: u64,
    /// The durable head position.
    pub head_position: u64,
    /// The last position packed into blocks (sled; 0 where nothing packs, e.g. PostgreSQL).
    pub packed_position: u64,
    /// Idempotency keys moved into blocks since open (sled; 0 where nothing packs).
    pub keys_packed: u64,
    /// Writer time spent validating requests and building batches, in µs.
    pub prepare_us: u64,
    /// Writer time spent in sled's `apply_batch`, in µs.
    pub apply_us: u64,
    /// Writer time spent in sled's `flush`, in µs.
    pub flush_us: u64,
    /// Writer time spent in fdatasync/fsync, in µs.
    pub sync_us: u64,
    /// Whether the store is in the failed state (it refuses every write until reopened).
    pub failed: bool,
}

/// How often the replay calls its progress callback.
const REPLAY_PROGRESS_EVERY: u64 = 65_536;

/// Positions per chunk of a parallel replay: large enough to amortize the hand-over, small
/// enough that the chunks in flight (two per scanner thread) stay a few MiB.
const REPLAY_CHUNK_EVENTS: u64 = 8_192;

/// The durable event log. Cheap to clone; all clones share one writer thread.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    queue: SyncSender<Command>,
    /// The queue's bound (for [`StoreError::Busy`]).
    queue_capacity: usize,
    shared: Arc<Shared>,
    watch: watch::Receiver<u64>,
    writer: Mutex<Option<JoinHandle<()>>>,
    clock: Clock,
    replay_threads: usize,
    /// [`Options::unpacked_tail_events`], for [`Store::wait_packed`].
    unpacked_tail_events: u64,
    /// [`Options::refresh_sled_snapshot_on_close`], and the cache size to reopen with.
    refresh_on_close: Option<u64>,
    /// Keeps a temporary directory alive; dropped last (field order), after sled let go of it.
    _temporary: Option<tempfile::TempDir>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field(
                "durable_position",
                &self.shared.durable_position.load(Ordering::Acquire),
            )
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        stop_writer(&self.queue, &self.shared, &self.writer);
    }
}

/// How long `close` waits for sled to let go of its file lock.
const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Waits until nothing in this process holds sled's lock on `db_file` any more. sled's I/O
/// threads drop their last references to the file a moment after the last `Db` handle goes, so
/// without this a close followed at once by an open (an audit after a run, a test) could be
/// refused as `AlreadyOpen`. Probes with the same kind of lock sled takes (`flock`), bounded.
fn wait_until_unlocked(db_file: &Path) {
    use fs2::FileExt as _;
    let Ok(file) = std::fs::File::open(db_file) else {
        return;
    };
    let deadline = Instant::now() + LOCK_RELEASE_WAIT;
    loop {
        if file.try_lock_exclusive().is_ok() {
            let _ = fs2::FileExt::unlock(&file);
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(path = %db_file.display(), "sled still holds the database lock after close");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stop_writer(
    queue: &SyncSender<Command>,
    shared: &Shared,
    writer: &Mutex<Option<JoinHandle<()>>>,
) {
    shared.closed.store(true, Ordering::Release);
    let handle = match writer.lock() {
        Ok(mut guard) => guard.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    };
    if let Some(handle) = handle {
        // The writer may already be gone (it exits when the queue disconnects). A full queue
        // blocks this send until the writer has taken requests off it: shutdown is never
        // refused as busy.
        let _ = queue.send(Command::Shutdown);
        if handle.join().is_err() {
            tracing::error!("store writer thread panicked");
        }
    }
}

impl Store {
    /// Opens (or creates) the database in directory `path`.
    ///
    /// On open the store checks that the directory holds a wagate database of a supported format,
    /// and checks the tail of the log: the last `tail_check_events` positions are contiguous, decode,
    /// and agree with the stream index, the event-id index and the stream heads. Stream heads are
    /// not loaded: the writer looks them up lazily and caches them.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Store> {
        Self::open_inner(path.as_ref().to_path_buf(), options, None)
    }

    /// Opens a fresh store in a temporary directory removed when the last clone is dropped.
    pub fn open_temporary() -> Result<Store> {
        Self::open_temporary_with(Options::default())
    }

    /// [`Store::open_temporary`] with options (e.g. a test clock).
    pub fn open_temporary_with(options: Options) -> Result<Store> {
        let dir = tempfile::Builder::new().prefix("wagate-store-").tempdir()?;
        Self::open_inner(dir.path().to_path_buf(), options, Some(dir))
    }

    fn open_inner(
        path: PathBuf,
        options: Options,
        temporary: Option<tempfile::TempDir>,
    ) -> Result<Store> {
        std::fs::create_dir_all(&path)?;
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(options.cache_capacity_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(|e| from_sled(e, &path))?;
        check_magic(&db, &path)?;
        let packed_position = History::new(&db, &path).packed_position()?;
        let last_position = check_tail(&db, &path, packed_position, options.tail_check_events)?;
        let mut durability = Durability::new(&path)?;
        db.flush().map_err(|e| from_sled(e, &path))?;
        durability.sync()?;

        let shared = Arc::new(Shared {
            durable_position: AtomicU64::new(last_position),
            packed_position: AtomicU64::new(packed_position),
            packing_began: AtomicBool::new(packed_position > 0),
            failed: Mutex::new(None),
            closed: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            committed_requests: AtomicU64::new(0),
            prepare_us: AtomicU64::new(0),
            apply_us: AtomicU64::new(0),
            flush_us: AtomicU64::new(0),
            sync_us: AtomicU64::new(0),
            pending_keys: Mutex::new(HashMap::new()),
            key_writes: Mutex::new(std::collections::BTreeMap::new()),
            keys_packed: AtomicU64::new(0),
            failure_watch: watch::channel(None).0,
        });
        let (watch_sender, watch_receiver) = watch::channel(last_position);
        // A zero bound would be a rendezvous channel: every request busy unless the writer
        // happens to be waiting.
        let queue_capacity = options.max_queued_requests.max(1);
        let (queue, commands) = mpsc::sync_channel(queue_capacity);
        let clock = options.clock.clone();
        let replay_threads = options.replay_threads;
        let unpacked_tail_events = options.unpacked_tail_events;
        let refresh_on_close = options
            .refresh_sled_snapshot_on_close
            .then_some(options.cache_capacity_bytes);
        let writer = Writer::new(
            db.clone(),
            path.clone(),
            Arc::clone(&shared),
            last_position + 1,
            options,
        );
        let handle = std::thread::Builder::new()
            .name("wagate-store-writer".into())
            .spawn(move || writer.run(commands, durability, watch_sender))?;
        tracing::info!(path = %path.display(), last_position, "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                db,
                queue,
                queue_capacity,
                shared,
                watch: watch_receiver,
                writer: Mutex::new(Some(handle)),
                clock,
                replay_threads,
                unpacked_tail_events,
                refresh_on_close,
                _temporary: temporary,
            }),
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues an append; the answer arrives once the batch holding it is durable (or refused).
    pub fn append(&self, request: AppendRequest) -> Pending<AppendOutcome> {
        if let Some(error) = self.refusal() {
            return Pending::ready(Err(error));
        }
        let (reply, receiver) = oneshot::channel();
        self.enqueue(Command::Append { request, reply }, receiver)
    }

    /// [`Store::append`] for threads: blocks until the append is durable or refused.
    pub fn append_blocking(&self, request: AppendRequest) -> Result<AppendOutcome> {
        self.append(request).wait()
    }

    /// Durably records that consumer `name` has processed everything up to `position`.
    pub fn save_checkpoint(&self, name: &str, position: u64) -> Pending<()> {
        if let Some(error) = self.refusal() {
            return Pending::ready(Err(error));
        }
        let (reply, receiver) = oneshot::channel();
        let command = Command::Checkpoint {
            name: name.to_owned(),
            position,
            reply,
        };
        self.enqueue(command, receiver)
    }

    /// Hands `command` to the writer without waiting for room: a full queue answers
    /// [`StoreError::Busy`] at once.
    fn enqueue<T>(&self, command: Command, receiver: oneshot::Receiver<Result<T>>) -> Pending<T> {
        match self.inner.queue.try_send(command) {
            Ok(()) => Pending { receiver },
            Err(TrySendError::Full(_)) => Pending::ready(Err(StoreError::Busy {
                capacity: self.inner.queue_capacity,
            })),
            Err(TrySendError::Disconnected(_)) => Pending::ready(Err(StoreError::Closed)),
        }
    }

    /// The last saved checkpoint of consumer `name`.
    pub fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        let value = self.get(&keys::checkpoint(name))?;
        value
            .map(|v| keys::be_u64(&v).ok_or_else(|| self.corrupt("bad checkpoint value".into())))
            .transpose()
    }

    /// The highest durable position (0 for an empty log). Reads never return anything past it.
    pub fn head_position(&self) -> u64 {
        self.inner.shared.durable_position.load(Ordering::Acquire)
    }

    /// Counters since open.
    pub fn stats(&self) -> StoreStats {
        let shared = &self.inner.shared;
        StoreStats {
            commits: shared.commits.load(Ordering::Relaxed),
            committed_requests: shared.committed_requests.load(Ordering::Relaxed),
            head_position: self.head_position(),
            packed_position: self.packed_position(),
            keys_packed: self.keys_packed(),
            prepare_us: shared.prepare_us.load(Ordering::Relaxed),
            apply_us: shared.apply_us.load(Ordering::Relaxed),
            flush_us: shared.flush_us.load(Ordering::Relaxed),
            sync_us: shared.sync_us.load(Ordering::Relaxed),
            failed: shared.failure_watch.borrow().is_some(),
        }
    }

    /// Idempotency keys moved into blocks since open (`Options::key_walk_after_keys`). For
    /// measurements (examples/disk.rs) and tests.
    pub fn keys_packed(&self) -> u64 {
        self.inner.shared.keys_packed.load(Ordering::Relaxed)
    }

    /// Keys written to sled by appends and checkpoints since open, by key prefix (the one-byte
    /// kinds of crates/store/src/keys.rs: `l` log, `s` stream index, `e` event id, `k`
    /// idempotency key, `c` checkpoint, …). For measurements (examples/disk.rs) and tests.
    pub fn keys_written(&self) -> std::collections::BTreeMap<u8, u64> {
        match self.inner.shared.key_writes.lock() {
            Ok(counts) => counts.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A receiver of the durable head position. The writer updates it only after the batch is
    /// flushed and fsynced, so a consumer woken by it can read everything up to the new value.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.watch.clone()
    }

    /// A receiver of the store's failure: `None` while it can make writes durable, the cause
    /// once a write failed (it then refuses every write until reopened).
    pub fn failure(&self) -> watch::Receiver<Option<StoreError>> {
        self.inner.shared.failure_watch.subscribe()
    }

    /// Current version of a stream (0 if it does not exist), as of the durable head.
    pub fn stream_version(&self, stream: &StreamId) -> Result<u64> {
        // The stream's last index entry is its head; a newer one may belong to a batch still
        // being made durable, so take the newest durable one.
        Ok(self
            .history()
            .stream_head(stream.as_str(), self.head_position())?
            .map_or(0, |(version, _)| version))
    }

    /// Position of an event by its id, if it is durable.
    pub fn position_of(&self, event_id: Uuid) -> Result<Option<u64>> {
        let head = self.head_position();
        Ok(self
            .history()
            .event_position(event_id)?
            .filter(|position| *position <= head))
    }

    /// The last position packed into blocks (0: none); see [`Options::unpacked_tail_events`].
    pub fn packed_position(&self) -> u64 {
        self.inner.shared.packed_position.load(Ordering::Acquire)
    }

    /// Waits (up to `timeout`) until the writer has packed everything older than the unpacked
    /// tail, as of the durable head now; returns the packed position then. For benchmarks and
    /// tests: packing otherwise happens whenever the writer has time.
    pub fn wait_packed(&self, timeout: Duration) -> Result<u64> {
        let target = self
            .head_position()
            .saturating_sub(self.inner.unpacked_tail_events)
            / LOG_BLOCK_EVENTS
            * LOG_BLOCK_EVENTS;
        let deadline = Instant::now() + timeout;
        loop {
            let packed = self.packed_position();
            if packed >= target {
                return Ok(packed);
            }
            if let Some(error) = self.refusal() {
                return Err(error);
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Io {
                    kind: std::io::ErrorKind::TimedOut,
                    detail: format!("packing reached {packed} of {target} in {timeout:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The unexpired idempotency key `key`, if any, only once the batch that wrote it is durable:
    /// a key of a batch still syncing, or of a batch that failed, answers `None` (the append that
    /// carries the key then decides, after that batch, in the writer).
    pub fn idempotency_key(&self, key: &[u8]) -> Result<Option<IdempotencyRecord>> {
        // sled first (its `k` key, else its block), then the pending set: the writer registers
        // a key as pending before sled holds it, so a key found here and not pending afterwards
        // is durable.
        let Some(record) = self.history().key_record(key)? else {
            return Ok(None);
        };
        if self.inner.shared.key_pending(key) {
            return Ok(None);
        }
        Ok((record.expires_at_ms > self.inner.clock.now_ms()).then_some(record))
    }

    /// Events of one stream with version ≥ `from_version`, at most `limit` of them.
    pub fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let head = self.head_position();
        let from = from_version.max(1);
        let began = || self.inner.shared.packing_began.load(Ordering::Acquire);
        let positions = self
            .history()
            .stream_positions(stream.as_str(), from, limit, began)?;
        let mut events = Vec::new();
        let mut block = None;
        for (expected_version, (version, position)) in (from..).zip(positions) {
            if position > head {
                break;
            }
            if version != expected_version {
                return Err(self.corrupt(format!(
                    "stream {stream} jumps from version {} to {version}",
                    expected_version - 1
                )));
            }
            let event = self.event_at_cached(position, &mut block)?;
            if event.stream != *stream || event.version != version {
                return Err(self.corrupt(format!(
                    "stream index {stream}@{version} points at position {position} holding {}@{}",
                    event.stream, event.version
                )));
            }
            events.push(event);
        }
        Ok(events)
    }

    /// Events from position `from_position` on (inclusive), at most `limit` of them.
    pub fn read_from(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let mut events = Vec::new();
        self.scan(from_position, limit as u64, |event| events.push(event))?;
        Ok(events)
    }

    /// Replays the log from `from_position` up to the durable head at the start of the call,
    /// handing each event to `on_event` in log order, and calling `on_progress` every 65,536
    /// events and once at the end.
    ///
    /// With `Options::replay_threads` > 1, scanner threads read and decode chunks of
    /// `REPLAY_CHUNK_EVENTS` positions ahead of the caller (a bounded number of chunks in flight,
    /// so memory stays flat); `on_event` still runs on the calling thread, in order.
    pub fn replay(
        &self,
        from_position: u64,
        mut on_event: impl FnMut(RecordedEvent),
        mut on_progress: impl FnMut(ReplayProgress),
    ) -> Result<ReplayProgress> {
        let started = Instant::now();
        let head = self.head_position();
        let mut progress = ReplayProgress {
            events: 0,
            position: 0,
            head,
            elapsed: Duration::ZERO,
        };
        let mut deliver = |event: RecordedEvent| {
            progress.events += 1;
            progress.position = event.position;
            on_event(event);
            if progress.events % REPLAY_PROGRESS_EVERY == 0 {
                progress.elapsed = started.elapsed();
                on_progress(progress);
            }
        };
        let start = from_position.max(1);
        let threads = self.inner.replay_threads;
        if threads <= 1 || head < start || head - start < 2 * REPLAY_CHUNK_EVENTS {
            self.scan_range(start, head, u64::MAX, &mut deliver)?;
        } else {
            self.replay_parallel(start, head, threads, &mut deliver)?;
        }
        progress.elapsed = started.elapsed();
        on_progress(progress);
        Ok(progress)
    }

    fn replay_parallel(
        &self,
        start: u64,
        head: u64,
        threads: usize,
        deliver: &mut impl FnMut(RecordedEvent),
    ) -> Result<()> {
        let chunks = (head - start) / REPLAY_CHUNK_EVENTS + 1;
        let chunk_bounds = |chunk: u64| {
            let first = start + chunk * REPLAY_CHUNK_EVENTS;
            (first, (first + REPLAY_CHUNK_EVENTS - 1).min(head))
        };
        std::thread::scope(|scope| {
            // Worker w scans chunks w, w + threads, …; one channel per worker, read round-robin,
            // gives back the chunks in log order. A capacity of 1 bounds the read-ahead.
            let receivers: Vec<_> = (0..threads as u64)
                .map(|worker| {
                    let (sender, receiver) = mpsc::sync_channel::<Result<Vec<RecordedEvent>>>(1);
                    scope.spawn(move || {
                        let mut chunk = worker;
                        while chunk < chunks {
                            let (first, last) = chunk_bounds(chunk);
                            let mut events = Vec::with_capacity(REPLAY_CHUNK_EVENTS as usize);
                            let scanned =
                                self.scan_range(first, last, u64::MAX, &mut |e| events.push(e));
                            let failed = scanned.is_err();
                            // The consumer stops reading after an error; stop with it.
                            if sender.send(scanned.map(|()| events)).is_err() || failed {
                                return;
                            }
                            chunk += threads as u64;
                        }
                    });
                    receiver
                })
                .collect();
            for chunk in 0..chunks {
                let receiver = &receivers[(chunk % threads as u64) as usize];
                let events = receiver.recv().map_err(|_| StoreError::Io {
                    kind: std::io::ErrorKind::Other,
                    detail: "a replay scanner thread stopped early".into(),
                })??;
                for event in events {
                    deliver(event);
                }
            }
            Ok(())
        })
    }

    /// Scans the log in order, checking that positions are gap-free.
    fn scan(
        &self,
        from_position: u64,
        limit: u64,
        mut each: impl FnMut(RecordedEvent),
    ) -> Result<()> {
        let head = self.head_position();
        self.scan_range(from_position.max(1), head, limit, &mut each)
    }

    /// Scans positions `start..=end` in order (stopping after `limit` events), checking that
    /// every position in the range is present and holds its own envelope. Packed positions are
    /// read from their blocks, the rest from their keys; a position missing from the keys is
    /// looked for in its block before it counts as a gap (a pack step may have moved it while
    /// the scan ran).
    fn scan_range(
        &self,
        start: u64,
        end: u64,
        limit: u64,
        each: &mut impl FnMut(RecordedEvent),
    ) -> Result<()> {
        let history = self.history();
        let mut expected = start;
        let mut delivered = 0;
        let mut deliver = |position: u64, bytes: &[u8], delivered: &mut u64| -> Result<()> {
            let event = envelope::decode(bytes)
                .map_err(|e| self.corrupt(format!("position {position}: {e}")))?;
            if event.position != position {
                return Err(self.corrupt(format!(
                    "log key {position} holds an envelope for position {}",
                    event.position
                )));
            }
            each(event);
            *delivered += 1;
            Ok(())
        };
        while expected <= end && delivered < limit {
            let mut found_instead = None;
            if expected > self.packed_position() {
                for item in self.inner.db.range(keys::log(expected)..=keys::log(end)) {
                    let (key, value) = item.map_err(|e| self.sled(e))?;
                    let position = keys::log_position(&key)
                        .ok_or_else(|| self.corrupt("bad log key".into()))?;
                    if position != expected {
                        found_instead = Some(position);
                        break;
                    }
                    deliver(position, &value, &mut delivered)?;
                    expected += 1;
                    if delivered >= limit {
                        return Ok(());
                    }
                }
                if expected > end {
                    return Ok(());
                }
            }
            let Some((first, envelopes)) = history.log_block(expected)? else {
                return Err(self.corrupt(match found_instead {
                    Some(position) => {
                        format!("gap in the log: expected {expected}, found {position}")
                    }
                    None => format!("log ends at {} before the head {end}", expected - 1),
                }));
            };
            for (position, bytes) in (first..).zip(&envelopes) {
                if position < expected {
                    continue;
                }
                if position > end || delivered >= limit {
                    return Ok(());
                }
                deliver(position, bytes, &mut delivered)?;
                expected += 1;
            }
        }
        Ok(())
    }

    /// Checks the whole database: positions 1..=head contiguous, every stream's versions
    /// contiguous from 1, the stream index, event-id index and heads agreeing with the log, and
    /// the idempotency keys' blocks readable and in order.
    /// Reads everything; meant for tests, audits and after-crash checks, not for the hot path.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut versions: std::collections::HashMap<StreamId, u64> = Default::default();
        let mut problem: Option<String> = None;
        let mut events = 0;
        self.scan(1, u64::MAX, |event| {
            events += 1;
            if problem.is_some() {
                return;
            }
            let last = versions.entry(event.stream.clone()).or_insert(0);
            if event.version != *last + 1 {
                problem = Some(format!(
                    "stream {} jumps from {} to {} at position {}",
                    event.stream, last, event.version, event.position
                ));
            }
            *last = event.version;
            let history = self.history();
            match history.stream_position(event.stream.as_str(), event.version) {
                Ok(Some(position)) if position == event.position => {}
                _ => problem = Some(format!("stream index disagrees at {}", event.position)),
            }
            match history.event_position(event.event_id) {
                Ok(Some(position)) if position == event.position => {}
                _ => problem = Some(format!("event id index disagrees at {}", event.position)),
            }
        })?;
        if let Some(problem) = problem {
            return Err(self.corrupt(problem));
        }
        let history = self.history();
        for (stream, version) in &versions {
            let head = history
                .stream_head(stream.as_str(), u64::MAX)?
                .map(|(version, _)| version);
            if head != Some(*version) {
                return Err(
                    self.corrupt(format!("head of {stream} is {head:?}, log says {version}"))
                );
            }
        }
        crate::packed_keys::check_key_blocks(&history)?;
        Ok(VerifyReport {
            events,
            streams: versions.len() as u64,
        })
    }

    /// Stops the writer after it has answered everything queued before this call, and flushes.
    /// Later appends on any clone fail with `Closed`. sled's file lock is released when the last
    /// clone of the store is dropped. Returns the failure if the store was in the failed state.
    pub fn close(self) -> Result<()> {
        stop_writer(&self.inner.queue, &self.inner.shared, &self.inner.writer);
        let outcome = match self.inner.shared.failed.lock() {
            Ok(failed) => failed.clone().map_or(Ok(()), Err),
            Err(_) => Ok(()),
        };
        let db_file = self.inner.path.join("db");
        let path = self.inner.path.clone();
        let refresh = self.inner.refresh_on_close;
        let last_handle = Arc::strong_count(&self.inner) == 1;
        drop(self);
        // A failed store's sled handle is never dropped (see `writer::never_drop`), so its lock
        // stays until the process exits: nothing to wait for.
        if last_handle && outcome.is_ok() {
            wait_until_unlocked(&db_file);
            if let Some(cache_capacity) = refresh {
                refresh_sled_snapshot(&path, cache_capacity);
                wait_until_unlocked(&db_file);
            }
        }
        outcome
    }

    /// The sled database and its directory, for the snapshot slots (`crate::snapshot`), which
    /// live in their own tree and do not go through the writer.
    pub(crate) fn sled_db(&self) -> (&sled::Db, &Path) {
        (&self.inner.db, &self.inner.path)
    }

    pub(crate) fn refusal(&self) -> Option<StoreError> {
        if self.inner.shared.closed.load(Ordering::Acquire) {
            return Some(StoreError::Closed);
        }
        match self.inner.shared.failed.lock() {
            Ok(failed) => failed.as_ref().map(|cause| StoreError::Failed {
                cause: cause.to_string(),
            }),
            Err(_) => None,
        }
    }

    fn event_at_cached(
        &self,
        position: u64,
        block: &mut Option<(u64, Vec<Vec<u8>>)>,
    ) -> Result<RecordedEvent> {
        let value = self
            .history()
            .entry_cached(position, block)?
            .ok_or_else(|| self.corrupt(format!("missing log entry {position}")))?;
        let event = envelope::decode(&value)
            .map_err(|e| self.corrupt(format!("position {position}: {e}")))?;
        if event.position != position {
            return Err(self.corrupt(format!(
                "log key {position} holds an envelope for position {}",
                event.position
            )));
        }
        Ok(event)
    }

    fn history(&self) -> History<'_> {
        History::new(&self.inner.db, &self.inner.path)
    }

    fn get(&self, key: &[u8]) -> Result<Option<sled::IVec>> {
        self.inner.db.get(key).map_err(|e| self.sled(e))
    }

    fn sled(&self, error: sled::Error) -> StoreError {
        from_sled(error, &self.inner.path)
    }

    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.inner.path.clone(),
            detail,
        }
    }
}

/// Opens the closed database at `path` with sled alone and lets it go, so sled writes its
/// page-table snapshot (see [`Options::refresh_sled_snapshot_on_close`]). Everything is durable
/// already: a failure here only costs the next start its scan, so it is logged, not returned.
fn refresh_sled_snapshot(path: &Path, cache_capacity: u64) {
    let started = Instant::now();
    match sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity)
        .flush_every_ms(None)
        .open()
    {
        Ok(db) => {
            drop(db);
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "sled's page-table snapshot refreshed on close"
            );
        }
        Err(error) => {
            tracing::warn!(error = %error, "could not refresh sled's page-table snapshot on close; the next start scans sled's log");
        }
    }
}

/// Checks (or, for a brand-new database, writes) the magic key and format version.
fn check_magic(db: &sled::Db, path: &Path) -> Result<()> {
    let sled_error = |e| from_sled(e, path);
    let foreign = |detail: String| StoreError::Foreign {
        path: path.to_path_buf(),
        detail,
    };
    match db.get(keys::META_MAGIC).map_err(sled_error)? {
        Some(value) => {
            if !value.starts_with(keys::MAGIC) || value.len() != keys::MAGIC.len() + 4 {
                return Err(foreign("the magic key does not hold wagate's magic".into()));
            }
            let format = u32::from_be_bytes(
                value[keys::MAGIC.len()..]
                    .try_into()
                    .map_err(|_| foreign("bad format version".into()))?,
            );
            if format == keys::DISK_FORMAT_WITH_HEADS {
                return migrate_from_heads(db, path);
            }
            if format == keys::DISK_FORMAT_UNPACKED || format == keys::DISK_FORMAT_PACKED_EVENTS {
                // Formats 3 and 4 only add kinds of blocks which the older format never wrote:
                // relabelling is the whole migration (and keeps an older build from misreading
                // the blocks); the writer packs what is due in the background.
                db.insert(keys::META_MAGIC, keys::magic_value())
                    .map_err(sled_error)?;
                return Ok(());
            }
            if format != keys::DISK_FORMAT {
                return Err(foreign(format!(
                    "on-disk format {format}, this build reads formats {} to {}",
                    keys::DISK_FORMAT_WITH_HEADS,
                    keys::DISK_FORMAT
                )));
            }
            Ok(())
        }
        None => {
            let other_trees = db
                .tree_names()
                .into_iter()
                .filter(|name| name.as_ref() != b"__sled__default")
                .count();
            if db.first().map_err(sled_error)?.is_some() || other_trees > 0 {
                return Err(foreign("sled database without wagate's magic key".into()));
            }
            db.insert(keys::META_MAGIC, keys::magic_value())
                .map_err(sled_error)?;
            Ok(())
        }
    }
}

/// Most keys deleted per sled batch by the format-1 migration.
const MIGRATION_BATCH_KEYS: usize = 4096;

/// Brings a format-1 database to format 2: deletes its stream-head keys (format 2 reads a
/// stream's head from its last stream-index key and no longer writes `h` keys, so they would go
/// stale) and then records format 2. Each step is durable before the next: a crash in between
/// leaves a format-1 database with fewer head keys, which format 2 does not read, and the
/// migration simply runs again. Its format-1 sweep-index keys stay; the writer sweeps them.
fn migrate_from_heads(db: &sled::Db, path: &Path) -> Result<()> {
    let sled_error = |e| from_sled(e, path);
    let mut removed = 0u64;
    loop {
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for item in db.scan_prefix([keys::HEAD]).take(MIGRATION_BATCH_KEYS) {
            let (key, _) = item.map_err(sled_error)?;
            batch.remove(key);
            in_batch += 1;
        }
        if in_batch == 0 {
            break;
        }
        db.apply_batch(batch).map_err(sled_error)?;
        removed += in_batch as u64;
    }
    db.flush().map_err(sled_error)?;
    db.insert(keys::META_MAGIC, keys::magic_value())
        .map_err(sled_error)?;
    db.flush().map_err(sled_error)?;
    tracing::info!(path = %path.display(), removed_head_keys = removed, "store migrated from on-disk format 1 to 2");
    Ok(())
}

/// Checks the last `count` log entries and returns the last position (0 for an empty log):
/// contiguous, decodable, each agreeing with the stream index, the event-id index and its
/// stream's head. `packed` is the last packed position recorded on disk.
fn check_tail(db: &sled::Db, path: &Path, packed: u64, count: u64) -> Result<u64> {
    let history = History::new(db, path);
    let sled_error = |e| from_sled(e, path);
    let log_range = keys::log(0)..=keys::log(u64::MAX);
    // Seek past the packed positions: their removed keys can leave sled with empty leaves that a
    // scan from position 0 would walk one by one (measured: seconds at 1M packed events).
    let first_key = match db.range(keys::log(packed + 1)..=keys::log(u64::MAX)).next() {
        None => None,
        Some(item) => Some(keys::log_position(&item.map_err(sled_error)?.0)),
    };
    let last_position = match db.range(log_range).next_back() {
        None => packed,
        Some(item) => keys::log_position(&item.map_err(sled_error)?.0)
            .ok_or_else(|| history.corrupt("bad log key".into()))?,
    };
    // The log starts at 1: in a block when packed, else at the first key.
    match first_key {
        _ if packed > 0 => {
            if history.log_block(1)?.is_none() {
                return Err(history.corrupt(format!(
                    "packed up to {packed} but the first log block is missing"
                )));
            }
            if let Some(first) = first_key {
                if first != Some(packed + 1) {
                    return Err(history.corrupt(format!(
                        "packed up to {packed} but the first log key is {first:?}"
                    )));
                }
            }
        }
        None => return Ok(0),
        Some(first) if first != Some(1) => {
            return Err(history.corrupt("the log does not start at position 1".into()));
        }
        Some(_) => {}
    }
    let mut seen_streams = std::collections::HashSet::new();
    let oldest = last_position
        .saturating_sub(count.max(2).saturating_sub(1))
        .max(1);
    for position in (oldest..=last_position).rev() {
        let Some(value) = history.entry(position)? else {
            return Err(history.corrupt(format!(
                "gap in the log tail: position {position} is missing before {last_position}"
            )));
        };
        let event = envelope::decode(&value)
            .map_err(|e| history.corrupt(format!("position {position}: {e}")))?;
        if event.position != position {
            return Err(history.corrupt(format!(
                "log key {position} holds an envelope for position {}",
                event.position
            )));
        }
        if history.stream_position(event.stream.as_str(), event.version)? != Some(position) {
            return Err(history.corrupt(format!("stream index disagrees with position {position}")));
        }
        if history.event_position(event.event_id)? != Some(position) {
            return Err(
                history.corrupt(format!("event id index disagrees with position {position}"))
            );
        }
        // Scanning backwards, the first time a stream shows up is its newest event: the stream's
        // last index entry (its head) must be exactly that one.
        if seen_streams.insert(event.stream.clone())
            && history
                .stream_head(event.stream.as_str(), u64::MAX)?
                .map(|(version, _)| version)
                != Some(event.version)
        {
            return Err(history.corrupt(format!(
                "head of {} disagrees with its newest event at {position}",
                event.stream
            )));
        }
    }
    Ok(last_position)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicI64;

    use super::*;
    use crate::record::{AppendRequest, IdempotencyKey};
    use crate::stream::StreamId;

    fn key(name: &str, expires_at_ms: i64) -> AppendRequest {
        AppendRequest::key_only(IdempotencyKey {
            key: name.as_bytes().to_vec(),
            expires_at_ms,
            result: Vec::new(),
        })
    }

    fn stored_keys(store: &Store, prefix: u8) -> Vec<Vec<u8>> {
        store
            .inner
            .db
            .scan_prefix([prefix])
            .map(|item| item.expect("scan").0.to_vec())
            .collect()
    }

    #[test]
    fn the_writer_sweeps_expired_keys_in_slices() {
        let now = Arc::new(AtomicI64::new(0));
        let reader = Arc::clone(&now);
        let store = Store::open_temporary_with(Options {
            clock: Clock::from_fn(move || reader.load(Ordering::SeqCst)),
            sweep_interval_ms: 1,
            sweep_slice_keys: 2,
            // This test is about the sweep of `k` keys: none moves into a block.
            key_walk_after_keys: u64::MAX,
            ..Options::default()
        })
        .expect("open");
        for (name, expiry) in [
            ("a", 100),
            ("b", 200),
            ("c", 210),
            ("d", 220),
            ("z", i64::MAX),
        ] {
            store.append_blocking(key(name, expiry)).expect("record");
        }
        // "a" expires and is recorded again with a later expiry before any sweep ran.
        now.store(120, Ordering::SeqCst);
        store.append_blocking(key("a", 300)).expect("re-record");
        // Format 2 writes no sweep index: the sweep walks the keys themselves.
        assert_eq!(stored_keys(&store, keys::EXPIRY).len(), 0);

        now.store(250, Ordering::SeqCst);
        // Slices of 2 keys: the walk examines a, b, then c, d, then z and wraps around.
        let deadline = Instant::now() + Duration::from_secs(20);
        while stored_keys(&store, keys::IDEMPOTENCY).len() > 2 {
            assert!(Instant::now() < deadline, "sweep did not run");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            stored_keys(&store, keys::IDEMPOTENCY),
            vec![b"ka".to_vec(), b"kz".to_vec()]
        );
        assert!(store.idempotency_key(b"a").expect("lookup").is_some());
    }

    /// Keys written before format 2 have a sweep-index entry (`x`); the sweep still finds them
    /// through it, and removes the entry with the key.
    #[test]
    fn format_1_sweep_entries_are_swept() {
        let now = Arc::new(AtomicI64::new(0));
        let reader = Arc::clone(&now);
        let store = Store::open_temporary_with(Options {
            clock: Clock::from_fn(move || reader.load(Ordering::SeqCst)),
            sweep_interval_ms: 1,
            // Larger than the keys stored: the walk alone would remove them at once, so this
            // slice is about the index: "old" and its entry must both go.
            sweep_slice_keys: 1000,
            key_walk_after_keys: u64::MAX,
            ..Options::default()
        })
        .expect("open");
        let record = crate::writer::encode_key_record(&IdempotencyRecord {
            first_position: None,
            expires_at_ms: 100,
            result: Vec::new(),
        });
        store
            .inner
            .db
            .insert(keys::idempotency(b"old"), record)
            .expect("insert a format-1 key");
        store
            .inner
            .db
            .insert(keys::expiry(100, b"old"), &[])
            .expect("insert its sweep entry");
        // An entry whose key was re-recorded later (or is gone) is dropped alone.
        store
            .inner
            .db
            .insert(keys::expiry(50, b"gone"), &[])
            .expect("insert a dangling sweep entry");
        now.store(150, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stored_keys(&store, keys::EXPIRY).is_empty()
            || !stored_keys(&store, keys::IDEMPOTENCY).is_empty()
        {
            assert!(Instant::now() < deadline, "sweep did not run");
            // Wakes the writer (its idle timer sweeps too).
            store
                .append_blocking(key("later", i64::MAX))
                .expect("append");
            store
                .inner
                .db
                .remove(keys::idempotency(b"later"))
                .expect("remove");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Keys move into blocks once durable, with a small answer (`crate::packed_keys`); lookups,
    /// the writer's duplicate check and the sweep find them there, and a key with a larger
    /// answer stays a key of its own.
    #[test]
    fn durable_keys_move_into_blocks_and_still_deduplicate_and_expire() {
        let now = Arc::new(AtomicI64::new(0));
        let reader = Arc::clone(&now);
        let store = Store::open_temporary_with(Options {
            clock: Clock::from_fn(move || reader.load(Ordering::SeqCst)),
            sweep_interval_ms: 1,
            sweep_slice_keys: 7,
            key_walk_after_keys: 1,
            ..Options::default()
        })
        .expect("open");
        let names: Vec<String> = (0..60)
            .map(|n| format!("webhook:SM{:03}", (n * 37) % 60))
            .collect();
        for name in &names {
            store.append_blocking(key(name, 1_000)).expect("record");
        }
        let with_answer = |key: &str, result: Vec<u8>| {
            AppendRequest::key_only(IdempotencyKey {
                key: key.as_bytes().to_vec(),
                expires_at_ms: 1_000,
                result,
            })
        };
        store
            .append_blocking(with_answer("send", b"the first answer".to_vec()))
            .expect("record with a small answer");
        store
            .append_blocking(with_answer("command", vec![b'a'; 600]))
            .expect("record with a large answer");
        let deadline = Instant::now() + Duration::from_secs(20);
        while stored_keys(&store, keys::IDEMPOTENCY) != [b"kcommand".to_vec()] {
            assert!(Instant::now() < deadline, "keys were not packed");
            // Wakes the writer, whose walk runs between batches.
            store
                .append_blocking(key("command", 1_000))
                .expect("append");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(stored_keys(&store, crate::packed_keys::KEY_BLOCK).len() >= 4);
        for name in &names {
            let record = store.idempotency_key(name.as_bytes()).expect("lookup");
            assert_eq!(record.map(|r| r.expires_at_ms), Some(1_000), "{name}");
        }
        // A retry is a duplicate, decided by the writer from the block, with the first answer.
        assert!(matches!(
            store.append_blocking(key(&names[7], 5_000)).expect("retry"),
            AppendOutcome::Duplicate {
                expires_at_ms: 1_000,
                ..
            }
        ));
        match store
            .append_blocking(with_answer("send", b"a second answer".to_vec()))
            .expect("retry")
        {
            AppendOutcome::Duplicate { result, .. } => assert_eq!(result, b"the first answer"),
            other => panic!("expected a duplicate, got {other:?}"),
        }
        // Once expired, the sweep empties the blocks, and the key can be recorded again.
        now.store(2_000, Ordering::SeqCst);
        while !stored_keys(&store, crate::packed_keys::KEY_BLOCK).is_empty()
            || !stored_keys(&store, keys::IDEMPOTENCY).is_empty()
        {
            assert!(Instant::now() < deadline, "blocks were not swept");
            store
                .append_blocking(AppendRequest::key_only(IdempotencyKey {
                    key: b"tick".to_vec(),
                    expires_at_ms: 0,
                    result: Vec::new(),
                }))
                .expect("wake the writer");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            store.idempotency_key(names[7].as_bytes()).expect("lookup"),
            None
        );
        assert!(matches!(
            store.append_blocking(key(&names[7], 5_000)).expect("again"),
            AppendOutcome::Appended(_)
        ));
    }

    /// The keys one append writes, by prefix: each is ~500 bytes on disk in sled
    /// (docs/performance.md), so a key added here must be a deliberate choice. A Twilio status
    /// callback that matches no message: one event on a new `provider-message:` stream with its
    /// de-duplication key.
    #[test]
    fn a_status_callback_append_writes_four_keys() {
        let store = Store::open_temporary().expect("open");
        let callback = |sid: &str| {
            AppendRequest::single(
                StreamId::new(format!("provider-message:{sid}")).expect("stream"),
                crate::record::ExpectedVersion::Any,
                vec![crate::record::NewEvent {
                    event_id: Uuid::from_u128(u128::from_be_bytes(
                        *format!("{sid:0>16}")
                            .as_bytes()
                            .first_chunk()
                            .expect("16 bytes"),
                    )),
                    event_type: "UnmatchedStatusReceived".into(),
                    schema_version: 1,
                    timestamp_ms: 0,
                    payload: vec![0; 200],
                    origin: None,
                }],
            )
            .with_idempotency_key(IdempotencyKey {
                key: format!("webhook:twilio:status:{sid}:delivered").into_bytes(),
                expires_at_ms: i64::MAX,
                result: Vec::new(),
            })
        };
        store.append_blocking(callback("SM1")).expect("first");
        let before = store.keys_written();
        // A second callback on an existing stream (a matched one) writes the same kinds.
        for sid in ["SM2", "SM3"] {
            store.append_blocking(callback(sid)).expect("append");
        }
        let after = store.keys_written();
        let per_append: Vec<(char, u64)> = after
            .iter()
            .map(|(prefix, count)| {
                let earlier = before.get(prefix).copied().unwrap_or(0);
                (char::from(*prefix), (count - earlier) / 2)
            })
            .filter(|(_, count)| *count > 0)
            .collect();
        assert_eq!(per_append, [('e', 1), ('k', 1), ('l', 1), ('s', 1)]);
        assert_eq!(
            before.values().sum::<u64>(),
            4,
            "the first append writes the same four keys: {before:?}"
        );
    }

    /// A clock the writer can be stopped in: while the gate is shut, a call blocks (and says it
    /// is waiting), so the writer stays busy on one request and the queue behind it fills up.
    struct Gate {
        shut: std::sync::Mutex<bool>,
        opened: std::sync::Condvar,
        waiting: AtomicBool,
    }

    impl Gate {
        fn pass(&self) {
            let mut shut = self.shut.lock().expect("gate");
            while *shut {
                self.waiting.store(true, Ordering::SeqCst);
                shut = self.opened.wait(shut).expect("gate");
            }
        }

        fn set(&self, shut: bool) {
            *self.shut.lock().expect("gate") = shut;
            self.opened.notify_all();
        }
    }

    #[test]
    fn a_full_write_queue_refuses_at_once_as_busy_and_drains() {
        let gate = Arc::new(Gate {
            shut: std::sync::Mutex::new(false),
            opened: std::sync::Condvar::new(),
            waiting: AtomicBool::new(false),
        });
        let clock_gate = Arc::clone(&gate);
        let store = Store::open_temporary_with(Options {
            clock: Clock::from_fn(move || {
                clock_gate.pass();
                0
            }),
            // No sweep: the clock is read only when a request repeats a stored key.
            sweep_interval_ms: 3_600_000,
            max_queued_requests: 2,
            ..Options::default()
        })
        .expect("open");
        store.append_blocking(key("k", 100)).expect("first");

        // The writer reads the clock for the repeated key and stops at the gate.
        gate.set(true);
        let stuck = store.append(key("k", 100));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !gate.waiting.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the writer never reached the gate"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let queued = (store.append(key("a", 100)), store.save_checkpoint("c", 0));
        let busy = store.append(key("b", 100)).wait();
        assert_eq!(busy, Err(StoreError::Busy { capacity: 2 }));
        assert_eq!(
            busy.expect_err("busy").to_string(),
            "the log's write queue is full (2 requests); retry"
        );
        assert_eq!(
            store.save_checkpoint("c", 0).wait(),
            Err(StoreError::Busy { capacity: 2 })
        );

        gate.set(false);
        assert!(matches!(stuck.wait(), Ok(AppendOutcome::Duplicate { .. })));
        let (append, checkpoint) = queued;
        append.wait().expect("queued append");
        checkpoint.wait().expect("queued checkpoint");
        // Room again: the refused request succeeds when retried.
        store.append_blocking(key("b", 100)).expect("retried");
        assert!(store.idempotency_key(b"b").expect("lookup").is_some());
    }

    #[test]
    fn enospc_maps_to_disk_full() {
        let error = StoreError::from(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(error, StoreError::DiskFull { .. }));
        assert!(error.is_io());
    }
}
