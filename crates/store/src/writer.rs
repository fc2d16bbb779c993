//! The single writer: group commit in a two-stage pipeline.
//!
//! All writes go through one writer thread. It takes everything queued (up to
//! `max_batch_requests`), validates each request in order against the stream heads as they will
//! be after the earlier requests of the same batch (a failing request fails alone), and writes
//! the whole batch as one sled `apply_batch` on the one tree. It then hands the batch to a syncer
//! thread, which makes it durable (`flush` + `fdatasync`, see [`Durability`]) and only then
//! answers the callers and publishes the new durable head. While the syncer waits for the disk,
//! the writer validates and applies the next batch. One fsync thus covers every request that
//! queued while the previous one ran, which is the whole throughput story on a slow-sync disk.
//!
//! Ordering: batches reach the syncer in order and are synced in order, so a batch is never
//! acknowledged before an earlier one. If one sync fails, every later batch is refused too (the
//! failed state), even though sled's memory may already hold them: nothing unacknowledged is
//! promised, and readers never look past the durable head.
//!
//! Between batches the writer sweeps expired idempotency keys in bounded slices (see
//! [`Writer::sweep_slice`]) and packs old events and durable keys into blocks (`crate::packed`,
//! `crate::packed_keys`), one bounded step at a time.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use crate::envelope::{self, ByteBuf, EnvelopeFields};
use crate::error::{from_sled, Result, StoreError};
use crate::keys;
use crate::packed::{self, History, LOG_BLOCK_EVENTS};
use crate::packed_keys;
use crate::record::{
    AppendOutcome, AppendRequest, Committed, ExpectedVersion, IdempotencyKey, IdempotencyRecord,
};
use crate::store::{Clock, Options};
use crate::{
    MAX_CHECKPOINT_NAME_BYTES, MAX_EVENT_TYPE_BYTES, MAX_IDEMPOTENCY_KEY_BYTES,
    MAX_IDEMPOTENCY_RESULT_BYTES,
};

/// A request to the writer.
pub(crate) enum Command {
    Append {
        request: AppendRequest,
        reply: oneshot::Sender<Result<AppendOutcome>>,
    },
    Checkpoint {
        name: String,
        position: u64,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Finish what was queued before, answer `Closed` to anything after, then stop.
    Shutdown,
}

/// State the writer shares with readers.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Highest position that is durable; readers never look past it.
    pub durable_position: AtomicU64,
    /// Last position packed into blocks (`crate::packed`); only the writer advances it, after
    /// the step's batch is applied.
    pub packed_position: AtomicU64,
    /// Whether anything may be in blocks: set before the first step's batch is applied (and at
    /// open when something is packed), so a reader that finds it unset after a read of
    /// per-event keys knows no entry can have moved into a block before that read.
    pub packing_began: AtomicBool,
    /// Set once an I/O failure put the store in the failed state.
    pub failed: Mutex<Option<StoreError>>,
    /// Set by `close`, so new requests fail fast.
    pub closed: AtomicBool,
    /// Group commits made durable since open (for metrics and the benchmarks' batch sizes).
    pub commits: AtomicU64,
    /// Requests answered by those commits.
    pub committed_requests: AtomicU64,
    /// Time the writer spent validating requests and building batches, in µs.
    pub prepare_us: AtomicU64,
    /// Time spent in sled's `apply_batch`, in µs.
    pub apply_us: AtomicU64,
    /// Time spent in sled's `flush`, in µs.
    pub flush_us: AtomicU64,
    /// Time spent in our fdatasync/fsync calls, in µs.
    pub sync_us: AtomicU64,
    /// Idempotency keys written to sled by a batch that is not durable yet (key → the sequence
    /// number of the last batch that wrote it). Lookups from outside the writer ignore them, so
    /// a de-duplication answer never rests on a key that may still be lost; the entries of a
    /// batch that failed stay until the store is reopened.
    pub pending_keys: Mutex<HashMap<Vec<u8>, u64>>,
    /// Keys written (inserted or removed) by appends and checkpoints since open, by key prefix
    /// (keys.rs): what `Store::keys_written` reports, for measurements and the tests that pin
    /// the keys one append writes.
    pub key_writes: Mutex<BTreeMap<u8, u64>>,
    /// Idempotency keys moved into blocks since open (`crate::packed_keys`).
    pub keys_packed: AtomicU64,
    /// The failure once the store entered the failed state, announced to whoever watches
    /// (`wagate serve` exits on it).
    pub failure_watch: watch::Sender<Option<StoreError>>,
}

impl Shared {
    /// Puts the store in the failed state (the first cause wins) and announces it.
    pub(crate) fn record_failure(&self, error: &StoreError) {
        let first = match self.failed.lock() {
            Ok(mut failed) => {
                let first = failed.is_none();
                failed.get_or_insert_with(|| error.clone());
                first
            }
            Err(_) => true,
        };
        if first {
            self.failure_watch.send_replace(Some(error.clone()));
        }
    }

    /// Whether a batch that is not durable yet (or failed) wrote `key`.
    pub(crate) fn key_pending(&self, key: &[u8]) -> bool {
        match self.pending_keys.lock() {
            Ok(pending) => pending.contains_key(key),
            // A writer that panicked holding the lock: nothing it wrote can be trusted.
            Err(_) => true,
        }
    }
}

/// Test hook: makes the next group commits fail as if `fdatasync` had returned an I/O error,
/// after sled's `flush` (so sled's memory, and perhaps its file, holds the batch). Cloned into
/// [`Options::sync_fault`](crate::Options); arming one clone arms them all. Never armed in
/// production: nothing in `wagate` calls [`SyncFault::fail_next`].
#[derive(Debug, Clone, Default)]
pub struct SyncFault(Arc<AtomicBool>);

impl SyncFault {
    /// The next sync fails (once; the store is then in the failed state anyway).
    pub fn fail_next(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// How an idempotency key is stored under `k`+key.
#[derive(Serialize, Deserialize)]
struct KeyRecordV1 {
    format: u8,
    expires_at_ms: i64,
    first_position: Option<u64>,
    result: ByteBuf,
}

const KEY_RECORD_FORMAT: u8 = 1;

pub(crate) fn encode_key_record(record: &IdempotencyRecord) -> Vec<u8> {
    let stored = KeyRecordV1 {
        format: KEY_RECORD_FORMAT,
        expires_at_ms: record.expires_at_ms,
        first_position: record.first_position,
        result: ByteBuf(record.result.clone()),
    };
    // Invariant: plain struct into a Vec, cannot fail.
    postcard::to_stdvec(&stored).expect("key record encoding into a Vec is infallible")
}

pub(crate) fn decode_key_record(bytes: &[u8]) -> Option<IdempotencyRecord> {
    let (stored, rest) = postcard::take_from_bytes::<KeyRecordV1>(bytes).ok()?;
    if !rest.is_empty() || stored.format != KEY_RECORD_FORMAT {
        return None;
    }
    Some(IdempotencyRecord {
        first_position: stored.first_position,
        expires_at_ms: stored.expires_at_ms,
        result: stored.result.0,
    })
}

/// Makes sled's writes durable.
///
/// sled 0.34's `flush` writes its log with `pwrite` and then only `sync_file_range`, which flushes
/// neither the drive's cache nor the file size (sled issue 1452). After every `flush` we therefore
/// `fdatasync` the log file `<data>/db`. sled also writes large pages to `<data>/blobs/*` and
/// snapshots to `<data>/snap.*` without any fsync, so we fsync every such file the first time we
/// see it (or see it grown), and the directory that holds it.
#[derive(Debug)]
pub(crate) struct Durability {
    dir: PathBuf,
    db_file: File,
    /// File name → length at our last fsync of it.
    synced: HashMap<OsString, u64>,
}

impl Durability {
    pub(crate) fn new(dir: &Path) -> std::io::Result<Self> {
        let db_file = File::open(dir.join("db"))?;
        Ok(Durability {
            dir: dir.to_path_buf(),
            db_file,
            synced: HashMap::new(),
        })
    }

    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.db_file.sync_data()?;
        let dir = self.dir.clone();
        self.sync_new_files(&dir, |name| name != "db" && name != "blobs")?;
        let blobs = dir.join("blobs");
        if blobs.is_dir() {
            self.sync_new_files(&blobs, |_| true)?;
        }
        Ok(())
    }

    fn sync_new_files(&mut self, dir: &Path, wanted: impl Fn(&str) -> bool) -> std::io::Result<()> {
        let mut dir_changed = false;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(&wanted) {
                continue;
            }
            let Ok(metadata) = entry.metadata() else {
                // sled removed it (snapshot rotation, blob GC) between readdir and stat.
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            let mut key = OsString::from(dir.as_os_str());
            key.push("/");
            key.push(&name);
            if self.synced.get(&key) == Some(&metadata.len()) {
                continue;
            }
            match File::open(entry.path()) {
                Ok(file) => file.sync_all()?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            }
            self.synced.insert(key, metadata.len());
            dir_changed = true;
        }
        if dir_changed {
            File::open(dir)?.sync_all()?;
        }
        if self.synced.len() > 1024 {
            // Blob files come and go; forget the ones that are gone so the map stays small.
            self.synced.retain(|path, _| Path::new(path).exists());
        }
        Ok(())
    }
}

/// Pending changes of the batch being built, consulted before the database.
#[derive(Default)]
struct Overlay {
    heads: HashMap<String, (u64, u64)>,
    event_ids: HashMap<Uuid, (u64, u64)>,
    keys: HashMap<Vec<u8>, IdempotencyRecord>,
}

enum Answer {
    Append(oneshot::Sender<Result<AppendOutcome>>, AppendOutcome),
    Checkpoint(oneshot::Sender<Result<()>>),
}

/// A batch applied to sled's memory, on its way to disk.
struct Flight {
    answers: Vec<Answer>,
    /// This batch's number (see [`Shared::pending_keys`]).
    seq: u64,
    /// The idempotency keys it writes, hidden from lookups until it is durable.
    keys: Vec<Vec<u8>>,
    /// Highest position in the batch (or before it, if it holds no events).
    last_position: u64,
    span: tracing::Span,
}

pub(crate) struct Writer {
    db: sled::Db,
    path: PathBuf,
    shared: Arc<Shared>,
    /// Next position to assign. Everything below it is applied to sled; what is durable is
    /// `shared.durable_position`.
    next_position: u64,
    /// Stream id → version, for streams seen recently. Lazy: filled on first lookup from the
    /// database, cleared when it outgrows `head_cache_streams` (a rebuild is cheap point reads).
    heads: HashMap<String, u64>,
    clock: Clock,
    options: Options,
    last_sweep: Instant,
    /// Where the sweep's walk over the idempotency keys resumes; `None`: at the first key.
    sweep_cursor: Option<Vec<u8>>,
    /// The cause once a write failed; every later request is refused with it.
    failure: Option<StoreError>,
    /// Number of the last batch handed on (see [`Shared::pending_keys`]).
    flight_seq: u64,
    /// Pack steps applied since the last flush (an idle writer flushes them).
    packed_unflushed: u64,
    /// The walk that moves durable idempotency keys into blocks (`crate::packed_keys`).
    key_walk: KeyWalk,
    /// Where the sweep of the key blocks resumes; `None`: at the first block.
    block_sweep_cursor: Option<Vec<u8>>,
}

/// Most `k` keys one walk step examines: it bounds how long a step can delay an append.
const KEY_WALK_STEP_KEYS: usize = 1024;

/// Progress of the walk that moves idempotency keys into blocks.
struct KeyWalk {
    /// Where the walk in progress resumes; `None` with `walking`: at the first key.
    cursor: Option<Vec<u8>>,
    /// A walk is in progress. True at open: keys written before (by an older build, or left
    /// by a crash) are moved by a first walk whatever their number.
    walking: bool,
    /// Keys written since the walk in progress (or the last one) began.
    written: u64,
    /// [`Options::key_walk_after_keys`]: each walk reads every `k` key, so walks are spaced out
    /// by the keys they will find.
    after_keys: u64,
}

impl KeyWalk {
    fn due(&self) -> bool {
        self.after_keys != u64::MAX && (self.walking || self.written >= self.after_keys)
    }
}

impl Writer {
    pub(crate) fn new(
        db: sled::Db,
        path: PathBuf,
        shared: Arc<Shared>,
        next_position: u64,
        options: Options,
    ) -> Self {
        let after_keys = options.key_walk_after_keys;
        Writer {
            db,
            path,
            shared,
            next_position,
            heads: HashMap::new(),
            clock: options.clock.clone(),
            options,
            last_sweep: Instant::now(),
            sweep_cursor: None,
            failure: None,
            flight_seq: 0,
            packed_unflushed: 0,
            key_walk: KeyWalk {
                cursor: None,
                walking: true,
                written: 0,
                after_keys,
            },
            block_sweep_cursor: None,
        }
    }

    /// Runs the two-stage pipeline: this thread validates and applies batch N+1 to sled while a
    /// syncer thread makes batch N durable and answers it. The hand-over is a rendezvous, so at
    /// most one applied batch waits behind the one being synced; requests arriving meanwhile
    /// queue up and make the next batch larger.
    pub(crate) fn run(
        mut self,
        queue: Receiver<Command>,
        durability: Durability,
        watch: watch::Sender<u64>,
    ) {
        let (flights, landing) = mpsc::sync_channel::<Flight>(0);
        let syncer = Syncer {
            db: self.db.clone(),
            path: self.path.clone(),
            durability,
            shared: Arc::clone(&self.shared),
            watch,
            failure: None,
            fault: self.options.sync_fault.clone(),
        };
        let syncer = match std::thread::Builder::new()
            .name("wagate-store-sync".into())
            .spawn(move || syncer.run(landing))
        {
            Ok(handle) => handle,
            Err(error) => {
                let error = StoreError::from(error);
                self.fail(error.clone());
                while let Ok(command) = queue.recv() {
                    if matches!(command, Command::Shutdown) {
                        break;
                    }
                    refuse(command, error.clone());
                }
                return;
            }
        };
        self.serve(&queue, &flights);
        drop(flights);
        if syncer.join().is_err() {
            tracing::error!("store sync thread panicked");
        }
        if self.shared_failure().is_none() {
            // Nothing is pending (every batch was flushed); this makes sweeps durable too.
            if let Err(error) = self.db.flush() {
                tracing::warn!(error = %error, "final flush on close failed");
            }
        }
    }

    fn serve(&mut self, queue: &Receiver<Command>, flights: &SyncSender<Flight>) {
        let sweep_interval = Duration::from_millis(self.options.sweep_interval_ms.max(1));
        loop {
            // With packing to do, only look for requests before the next step.
            let wait = if self.pack_limit().is_some() || self.key_walk_due() {
                Duration::ZERO
            } else {
                sweep_interval
            };
            let first = match queue.recv_timeout(wait) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    self.maybe_sweep();
                    self.maybe_pack();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut commands = Vec::with_capacity(64);
            let mut shutdown = matches!(first, Command::Shutdown);
            if !shutdown {
                commands.push(first);
                while commands.len() < self.options.max_batch_requests {
                    match queue.try_recv() {
                        Ok(Command::Shutdown) => {
                            shutdown = true;
                            break;
                        }
                        Ok(command) => commands.push(command),
                        Err(_) => break,
                    }
                }
            }
            if !commands.is_empty() {
                self.process(commands, flights);
            }
            if shutdown {
                // Everything queued before the shutdown was processed; refuse what came after.
                while let Ok(command) = queue.try_recv() {
                    refuse(command, StoreError::Closed);
                }
                return;
            }
            self.maybe_sweep();
            self.maybe_pack();
        }
    }

    /// The position packing may reach now, if at least one block is due: everything durable
    /// except the newest `unpacked_tail_events`.
    fn pack_limit(&self) -> Option<u64> {
        if self.failure.is_some() {
            return None;
        }
        let durable = self.shared.durable_position.load(Ordering::Acquire);
        let limit = durable.saturating_sub(self.options.unpacked_tail_events);
        let packed = self.shared.packed_position.load(Ordering::Acquire);
        (limit >= packed + LOG_BLOCK_EVENTS).then_some(limit)
    }

    /// Whether the walk that packs idempotency keys has a step to take.
    fn key_walk_due(&self) -> bool {
        self.failure.is_none() && self.key_walk.due()
    }

    /// One pack step, if one is due: old events first (`crate::packed`), then durable keys
    /// (`crate::packed_keys`). Once none is due, flushes the steps applied so far (when busy,
    /// the next group commit's flush does). A failed step fails the store: it is the same sled
    /// that takes the appends.
    fn maybe_pack(&mut self) {
        if self.failure.is_none() {
            // The syncer may have failed a batch meanwhile; its keys then stay pending for good,
            // and a walk that keeps finding them must not keep the writer spinning.
            self.failure = self.shared_failure();
        }
        if self.failure.is_some() {
            return;
        }
        let step = if let Some(limit) = self.pack_limit() {
            self.pack_events(limit)
        } else if self.key_walk.due() {
            self.pack_keys()
        } else {
            if self.packed_unflushed > 0 {
                self.packed_unflushed = 0;
                if let Err(error) = self.db.flush() {
                    let error = from_sled(error, &self.path);
                    tracing::error!(error = %error, "flushing packed blocks failed; the store refuses further writes");
                    self.fail(error);
                }
            }
            return;
        };
        match step {
            Ok(applied) => self.packed_unflushed += u64::from(applied),
            Err(error) => {
                tracing::error!(error = %error, "packing into blocks failed; the store refuses further writes");
                self.fail(error);
            }
        }
    }

    /// One step of event packing; whether it applied a batch.
    fn pack_events(&mut self, limit: u64) -> Result<bool> {
        let packed = self.shared.packed_position.load(Ordering::Acquire);
        let history = History::new(&self.db, &self.path);
        let Some(step) = packed::plan_step(&history, packed, limit, self.options.pack_step_blocks)?
        else {
            return Ok(false);
        };
        let (upto, removed_keys) = (step.upto, step.removed_keys);
        self.shared.packing_began.store(true, Ordering::Release);
        self.db
            .apply_batch(step.batch)
            .map_err(|e| from_sled(e, &self.path))?;
        self.shared.packed_position.store(upto, Ordering::Release);
        tracing::debug!(upto, removed_keys, "packed old log entries into blocks");
        Ok(true)
    }

    /// One step of the walk over the `k` keys: moves the durable ones without an answer into
    /// their blocks and drops the expired ones; whether it applied a batch.
    fn pack_keys(&mut self) -> Result<bool> {
        if !self.key_walk.walking {
            self.key_walk.walking = true;
            self.key_walk.written = 0;
        }
        let history = History::new(&self.db, &self.path);
        let shared = &self.shared;
        let step = packed_keys::plan_key_step(
            &history,
            self.key_walk.cursor.as_deref(),
            self.clock.now_ms(),
            KEY_WALK_STEP_KEYS,
            |key| shared.key_pending(key),
        )?;
        let (moved, dropped) = (step.moved, step.dropped);
        let applied = moved + dropped > 0;
        if applied {
            self.db
                .apply_batch(step.batch)
                .map_err(|e| from_sled(e, &self.path))?;
        }
        self.shared
            .keys_packed
            .fetch_add(moved as u64, Ordering::Relaxed);
        // Keys left as pending were written before this walk began: count them again, so that
        // they bring the next walk closer.
        self.key_walk.written += step.pending as u64;
        self.key_walk.walking = step.resume_at.is_some();
        self.key_walk.cursor = step.resume_at;
        tracing::debug!(moved, dropped, "packed idempotency keys into blocks");
        Ok(applied)
    }

    fn shared_failure(&self) -> Option<StoreError> {
        match self.shared.failed.lock() {
            Ok(failed) => failed.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn process(&mut self, commands: Vec<Command>, flights: &SyncSender<Flight>) {
        if self.failure.is_none() {
            // The syncer may have failed a batch since the last one.
            self.failure = self.shared_failure();
        }
        if let Some(failure) = &self.failure {
            let error = StoreError::Failed {
                cause: failure.to_string(),
            };
            for command in commands {
                refuse(command, error.clone());
            }
            return;
        }
        let span = tracing::debug_span!(
            "store.batch",
            requests = commands.len(),
            events = tracing::field::Empty,
            bytes = tracing::field::Empty,
            sync_us = tracing::field::Empty,
        );
        let prepare_started = Instant::now();
        // Each request's writes are collected on their own (a refused request's are simply
        // dropped), then packed into sled batches of whole requests; see `pack`.
        let mut writes = Vec::with_capacity(commands.len());
        let mut overlay = Overlay::default();
        let mut next_position = self.next_position;
        let mut bytes = 0usize;
        let mut answers = Vec::with_capacity(commands.len());
        {
            let _entered = span.enter();
            for command in commands {
                match command {
                    Command::Append { request, reply } => {
                        let mut batch = Writes::default();
                        match self.prepare_append(
                            &request,
                            &mut overlay,
                            &mut batch,
                            &mut next_position,
                            &mut bytes,
                        ) {
                            Ok(outcome) => {
                                writes.push(batch);
                                answers.push(Answer::Append(reply, outcome));
                            }
                            Err(error) => {
                                // The caller may have gone away; nothing to do then.
                                let _ = reply.send(Err(error));
                            }
                        }
                    }
                    Command::Checkpoint {
                        name,
                        position,
                        reply,
                    } => match validate_checkpoint(&name, position, next_position) {
                        Ok(()) => {
                            let mut batch = Writes::default();
                            batch.insert(keys::checkpoint(&name), position.to_be_bytes());
                            writes.push(batch);
                            answers.push(Answer::Checkpoint(reply));
                        }
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                    },
                    Command::Shutdown => {
                        // Invariant: `serve` strips Shutdown before calling `process`.
                        debug_assert!(false, "shutdown reached process()");
                    }
                }
            }
        }
        add_elapsed(&self.shared.prepare_us, prepare_started);
        span.record("events", next_position - self.next_position);
        span.record("bytes", bytes);
        if answers.is_empty() {
            return;
        }

        // Registered before sled holds them, so a lookup that finds a key in sled and then does
        // not find it pending knows the batch that wrote it is durable.
        self.flight_seq += 1;
        let seq = self.flight_seq;
        let flight_keys: Vec<Vec<u8>> = overlay.keys.keys().cloned().collect();
        if !flight_keys.is_empty() {
            if let Ok(mut pending) = self.shared.pending_keys.lock() {
                for key in &flight_keys {
                    pending.insert(key.clone(), seq);
                }
            }
        }
        let mut written = BTreeMap::<u8, u64>::new();
        for (key, _) in writes.iter().flat_map(|request| &request.0) {
            *written
                .entry(key.first().copied().unwrap_or(0))
                .or_default() += 1;
        }
        let started = Instant::now();
        let applied = pack(writes)
            .into_iter()
            .try_for_each(|batch| self.db.apply_batch(batch));
        add_elapsed(&self.shared.apply_us, started);
        if let Err(error) = applied {
            let error = from_sled(error, &self.path);
            tracing::error!(error = %error, "applying a batch failed; the store refuses further writes");
            self.fail(error.clone());
            answer_all(answers, &error);
            return;
        }
        // sled's memory now holds the batch: later batches validate against it.
        self.next_position = next_position;
        self.key_walk.written += flight_keys.len() as u64;
        if let Ok(mut counts) = self.shared.key_writes.lock() {
            for (prefix, count) in written {
                *counts.entry(prefix).or_default() += count;
            }
        }
        if self.heads.len() + overlay.heads.len() > self.options.head_cache_streams {
            self.heads.clear();
        }
        for (stream, (version, _)) in overlay.heads {
            self.heads.insert(stream, version);
        }
        let flight = Flight {
            answers,
            seq,
            keys: flight_keys,
            last_position: next_position - 1,
            span,
        };
        if let Err(mpsc::SendError(flight)) = flights.send(flight) {
            // Invariant: the syncer only stops after this thread drops `flights`; if it died
            // anyway (a panic), the batch cannot be made durable.
            let error = StoreError::Failed {
                cause: "the sync thread is gone".into(),
            };
            self.fail(error.clone());
            answer_all(flight.answers, &error);
        }
    }

    fn fail(&mut self, error: StoreError) {
        self.shared.record_failure(&error);
        never_drop(&self.db);
        self.failure = Some(error);
    }

    /// Validates one request against the heads as of the earlier requests of this batch and, if it
    /// passes, adds its writes to `batch`. Nothing is added for a failing request.
    fn prepare_append(
        &mut self,
        request: &AppendRequest,
        overlay: &mut Overlay,
        batch: &mut Writes,
        next_position: &mut u64,
        bytes: &mut usize,
    ) -> Result<AppendOutcome> {
        self.validate_shape(request)?;

        // Looked up once: a stored but expired record is replaced below.
        let mut expired_key: Option<IdempotencyRecord> = None;
        if let Some(key) = &request.idempotency_key {
            if let Some(existing) = self.lookup_key(overlay, &key.key)? {
                if existing.expires_at_ms > self.clock.now_ms() {
                    return Ok(AppendOutcome::Duplicate {
                        first_position: existing.first_position,
                        result: existing.result,
                        expires_at_ms: existing.expires_at_ms,
                    });
                }
                expired_key = Some(existing);
            }
        }

        // Idempotent retry by event ids (EventStoreDB's rule): all present → the original
        // positions; some present → error; none → a normal append.
        let total = request.event_count();
        let mut found = Vec::new();
        for append in &request.streams {
            for event in &append.events {
                if let Some(at) = self.lookup_event(overlay, event.event_id)? {
                    found.push((event.event_id, at));
                }
            }
        }
        if !found.is_empty() {
            if found.len() < total {
                let new = total - found.len();
                return Err(StoreError::EventIdsMismatch {
                    already_written: found.into_iter().map(|(id, _)| id).collect(),
                    new,
                });
            }
            let positions = found.iter().map(|(_, (position, _))| *position).collect();
            let mut stream_versions = Vec::with_capacity(request.streams.len());
            let mut index = 0;
            for append in &request.streams {
                if append.events.is_empty() {
                    stream_versions.push(self.lookup_head(overlay, append.stream.as_str())?);
                } else {
                    index += append.events.len();
                    stream_versions.push(found[index - 1].1 .1);
                }
            }
            let committed = Committed {
                positions,
                stream_versions,
            };
            if let Some(key) = &request.idempotency_key {
                write_key(overlay, batch, key, expired_key, committed.first_position());
            }
            return Ok(AppendOutcome::AlreadyAppended(committed));
        }

        let mut currents = Vec::with_capacity(request.streams.len());
        for append in &request.streams {
            let actual = self.lookup_head(overlay, append.stream.as_str())?;
            if !append.expected.matches(actual) {
                return Err(StoreError::Conflict {
                    stream: append.stream.clone(),
                    expected: append.expected,
                    actual,
                });
            }
            currents.push(actual);
        }

        // Every check passed: from here on the request is written.
        let mut positions = Vec::with_capacity(total);
        let mut stream_versions = Vec::with_capacity(request.streams.len());
        for (append, current) in request.streams.iter().zip(currents) {
            let stream = append.stream.as_str();
            let mut version = current;
            for event in &append.events {
                version += 1;
                let position = *next_position;
                *next_position += 1;
                let encoded = envelope::encode(EnvelopeFields {
                    position,
                    stream,
                    version,
                    event_id: event.event_id,
                    event_type: &event.event_type,
                    schema_version: event.schema_version,
                    timestamp_ms: event.timestamp_ms,
                    payload: &event.payload,
                    origin: event.origin.as_ref(),
                });
                *bytes += encoded.len();
                batch.insert(keys::log(position), encoded);
                batch.insert(keys::stream(stream, version), position.to_be_bytes());
                batch.insert(keys::event_id(event.event_id), position.to_be_bytes());
                overlay
                    .event_ids
                    .insert(event.event_id, (position, version));
                positions.push(position);
            }
            if version != current {
                // No head key: the stream's last `s` key written above is its head (keys.rs).
                // Invariant: the events loop above ran, so `positions` is non-empty.
                let last = *positions.last().expect("events were appended");
                overlay.heads.insert(stream.to_owned(), (version, last));
            }
            stream_versions.push(version);
        }
        let committed = Committed {
            positions,
            stream_versions,
        };
        if let Some(key) = &request.idempotency_key {
            write_key(overlay, batch, key, expired_key, committed.first_position());
        }
        Ok(AppendOutcome::Appended(committed))
    }

    fn validate_shape(&self, request: &AppendRequest) -> Result<()> {
        if request.streams.is_empty() && request.idempotency_key.is_none() {
            return Err(StoreError::InvalidRequest(
                "an append needs streams or an idempotency key".into(),
            ));
        }
        let mut streams = HashSet::with_capacity(request.streams.len());
        let mut ids = HashSet::with_capacity(request.event_count());
        for append in &request.streams {
            if !streams.insert(append.stream.as_str()) {
                return Err(StoreError::InvalidRequest(format!(
                    "stream {} appears twice in one request",
                    append.stream
                )));
            }
            if let ExpectedVersion::Exact(v) = append.expected {
                if v == u64::MAX {
                    return Err(StoreError::InvalidRequest(
                        "expected version overflow".into(),
                    ));
                }
            }
            for event in &append.events {
                if !ids.insert(event.event_id) {
                    return Err(StoreError::InvalidRequest(format!(
                        "event id {} appears twice in one request",
                        event.event_id
                    )));
                }
                if event.event_type.is_empty() || event.event_type.len() > MAX_EVENT_TYPE_BYTES {
                    return Err(StoreError::InvalidRequest(format!(
                        "event type must be 1 to {MAX_EVENT_TYPE_BYTES} bytes"
                    )));
                }
                if event.payload.len() > self.options.max_payload_bytes {
                    return Err(StoreError::InvalidRequest(format!(
                        "payload of {} bytes exceeds the limit of {}",
                        event.payload.len(),
                        self.options.max_payload_bytes
                    )));
                }
            }
        }
        if let Some(key) = &request.idempotency_key {
            if key.key.is_empty() || key.key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
                return Err(StoreError::InvalidRequest(format!(
                    "idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes"
                )));
            }
            if key.result.len() > MAX_IDEMPOTENCY_RESULT_BYTES {
                return Err(StoreError::InvalidRequest(format!(
                    "idempotency result exceeds {MAX_IDEMPOTENCY_RESULT_BYTES} bytes"
                )));
            }
        }
        Ok(())
    }

    fn lookup_head(&mut self, overlay: &Overlay, stream: &str) -> Result<u64> {
        if let Some((version, _)) = overlay.heads.get(stream) {
            return Ok(*version);
        }
        if let Some(version) = self.heads.get(stream) {
            return Ok(*version);
        }
        // Every position the writer applied counts here (not only durable ones): the next
        // version follows the last one written.
        let version = History::new(&self.db, &self.path)
            .stream_head(stream, u64::MAX)?
            .map_or(0, |(version, _)| version);
        if self.heads.len() >= self.options.head_cache_streams {
            self.heads.clear();
        }
        if let Entry::Vacant(slot) = self.heads.entry(stream.to_owned()) {
            slot.insert(version);
        }
        Ok(version)
    }

    /// (position, version) of an event id already written or pending in this batch.
    fn lookup_event(&self, overlay: &Overlay, id: Uuid) -> Result<Option<(u64, u64)>> {
        if let Some(found) = overlay.event_ids.get(&id) {
            return Ok(Some(*found));
        }
        let history = History::new(&self.db, &self.path);
        let Some(position) = history.event_position(id)? else {
            return Ok(None);
        };
        let stored = history
            .entry(position)?
            .ok_or_else(|| self.corrupt(format!("event id {id} points at missing {position}")))?;
        let event = envelope::decode(&stored)
            .map_err(|e| self.corrupt(format!("position {position}: {e}")))?;
        Ok(Some((position, event.version)))
    }

    fn lookup_key(&self, overlay: &Overlay, key: &[u8]) -> Result<Option<IdempotencyRecord>> {
        if let Some(record) = overlay.keys.get(key) {
            return Ok(Some(record.clone()));
        }
        History::new(&self.db, &self.path).key_record(key)
    }

    fn corrupt(&self, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail,
        }
    }

    fn maybe_sweep(&mut self) {
        if self.failure.is_some()
            || self.last_sweep.elapsed() < Duration::from_millis(self.options.sweep_interval_ms)
        {
            return;
        }
        match self.sweep_slice() {
            // A full slice of format-1 sweep entries means more of them are due: leave the timer
            // expired so the next pause between batches sweeps again.
            Ok(swept) if swept.indexed >= self.options.sweep_slice_keys => {}
            Ok(_) => self.last_sweep = Instant::now(),
            Err(error) => {
                tracing::error!(error = %error, "sweeping idempotency keys failed; the store refuses further writes");
                self.fail(error);
            }
        }
    }

    /// One slice of the sweep of expired idempotency keys: up to `sweep_slice_keys` due entries
    /// of the format-1 sweep index (keys written before format 2), then the next
    /// `sweep_slice_keys` `k` keys of the walk, whose expired ones are removed. The removal is one
    /// atomic `apply_batch` without its own flush: the next group commit's flush makes it
    /// durable, and a sweep lost in a crash is simply done again.
    pub(crate) fn sweep_slice(&mut self) -> Result<Swept> {
        let now = self.clock.now_ms();
        let mut batch = sled::Batch::default();
        let indexed = self.sweep_indexed(now, &mut batch)?;
        let walked = self.sweep_walk(now, &mut batch)?;
        let blocks = packed_keys::sweep_key_blocks(
            &History::new(&self.db, &self.path),
            self.block_sweep_cursor.take().as_deref(),
            now,
            self.options.sweep_slice_keys,
            &mut batch,
        )?;
        self.block_sweep_cursor = blocks.resume_at;
        let packed = blocks.removed;
        if indexed + walked + packed > 0 {
            self.db
                .apply_batch(batch)
                .map_err(|e| from_sled(e, &self.path))?;
            tracing::debug!(indexed, walked, packed, "swept expired idempotency keys");
        }
        Ok(Swept {
            indexed,
            walked,
            packed,
        })
    }

    /// Removes up to `sweep_slice_keys` due entries of the format-1 sweep index, and each key
    /// they name unless it was re-recorded with another expiry.
    fn sweep_indexed(&mut self, now: i64, batch: &mut sled::Batch) -> Result<usize> {
        let mut removed = 0;
        for item in self.db.range(vec![keys::EXPIRY]..vec![keys::EXPIRY + 1]) {
            let (sweep_key, _) = item.map_err(|e| from_sled(e, &self.path))?;
            let Some((expires_at_ms, key)) = keys::parse_expiry(&sweep_key) else {
                return Err(self.corrupt("bad idempotency sweep key".into()));
            };
            if expires_at_ms > now || removed >= self.options.sweep_slice_keys {
                break;
            }
            batch.remove(sweep_key.to_vec());
            let record_key = keys::idempotency(key);
            if let Some(value) = self
                .db
                .get(&record_key)
                .map_err(|e| from_sled(e, &self.path))?
            {
                if decode_key_record(&value).is_some_and(|r| r.expires_at_ms == expires_at_ms) {
                    batch.remove(record_key);
                }
            }
            removed += 1;
        }
        Ok(removed)
    }

    /// Examines the next `sweep_slice_keys` idempotency keys after the walk's cursor and removes
    /// the expired ones; after the last key the walk starts again at the first. One pass thus
    /// takes (keys stored / `sweep_slice_keys`) sweep intervals: an expired key stays on disk up
    /// to one pass longer than its expiry (it counts as absent from its expiry on).
    fn sweep_walk(&mut self, now: i64, batch: &mut sled::Batch) -> Result<usize> {
        let start = self
            .sweep_cursor
            .take()
            .unwrap_or_else(|| vec![keys::IDEMPOTENCY]);
        let mut removed = 0;
        let walk = self.db.range(start..vec![keys::IDEMPOTENCY + 1]);
        for (examined, item) in walk.enumerate() {
            let (key, value) = item.map_err(|e| from_sled(e, &self.path))?;
            if examined >= self.options.sweep_slice_keys {
                self.sweep_cursor = Some(key.to_vec());
                break;
            }
            let record = decode_key_record(&value)
                .ok_or_else(|| self.corrupt("undecodable idempotency key record".into()))?;
            // The record as sled holds it now, including a batch still syncing: a key recorded
            // again with a later expiry is not expired and stays.
            if record.expires_at_ms <= now {
                batch.remove(key.to_vec());
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// What one sweep slice removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Keys (with their entries) found through the format-1 sweep index.
    pub indexed: usize,
    /// Expired keys found by the walk over the `k` keys.
    pub walked: usize,
    /// Expired entries removed from key blocks (`crate::packed_keys`).
    pub packed: usize,
}

/// The second pipeline stage: makes applied batches durable, in order, and answers them.
struct Syncer {
    db: sled::Db,
    path: PathBuf,
    durability: Durability,
    shared: Arc<Shared>,
    watch: watch::Sender<u64>,
    failure: Option<StoreError>,
    fault: SyncFault,
}

impl Syncer {
    fn run(mut self, landing: Receiver<Flight>) {
        while let Ok(flight) = landing.recv() {
            self.land(flight);
        }
    }

    fn land(&mut self, flight: Flight) {
        if let Some(failure) = &self.failure {
            // An earlier batch failed to reach the disk: later ones must not be acknowledged
            // either, even if their own sync would succeed, or the log could show a gap.
            let error = StoreError::Failed {
                cause: failure.to_string(),
            };
            answer_all(flight.answers, &error);
            return;
        }
        let started = Instant::now();
        let synced = self.sync();
        flight
            .span
            .record("sync_us", started.elapsed().as_micros() as u64);
        match synced {
            Ok(()) => {
                if !flight.keys.is_empty() {
                    if let Ok(mut pending) = self.shared.pending_keys.lock() {
                        for key in &flight.keys {
                            // A later batch may have written the key again; it stays hidden
                            // until that one is durable too.
                            if pending.get(key) == Some(&flight.seq) {
                                pending.remove(key);
                            }
                        }
                    }
                }
                let durable = flight.last_position;
                self.shared
                    .durable_position
                    .fetch_max(durable, Ordering::AcqRel);
                // Wake subscribers only when the head moved (a checkpoint-only batch does not
                // move it); send_if_modified never fails, with or without subscribers.
                self.watch.send_if_modified(|head| {
                    let advanced = durable > *head;
                    if advanced {
                        *head = durable;
                    }
                    advanced
                });
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .committed_requests
                    .fetch_add(flight.answers.len() as u64, Ordering::Relaxed);
                for answer in flight.answers {
                    match answer {
                        Answer::Append(reply, outcome) => {
                            let _ = reply.send(Ok(outcome));
                        }
                        Answer::Checkpoint(reply) => {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            }
            Err(error) => {
                tracing::error!(error = %error, "group commit failed; the store refuses further writes");
                self.shared.record_failure(&error);
                never_drop(&self.db);
                self.failure = Some(error.clone());
                answer_all(flight.answers, &error);
            }
        }
    }

    fn sync(&mut self) -> Result<()> {
        let started = Instant::now();
        self.db.flush().map_err(|e| from_sled(e, &self.path))?;
        add_elapsed(&self.shared.flush_us, started);
        let started = Instant::now();
        if self.fault.take() {
            return Err(std::io::Error::other("injected sync fault (test hook)").into());
        }
        self.durability.sync()?;
        add_elapsed(&self.shared.sync_us, started);
        Ok(())
    }
}

/// Most keys per sled batch when packing requests together. sled 0.34 seals every batch with an
/// extra log record, so one batch per 1-event request is slow (a single run at 256 writers came
/// out several times slower); at the other end one batch applies thousands of inserts under a
/// single epoch guard. 512 is a middle ground: between 64 keys and one batch per group the
/// benchmarks showed no difference beyond this shared machine's noise.
const KEYS_PER_SLED_BATCH: usize = 512;

/// The writes of one request, in order.
#[derive(Default)]
struct Writes(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Writes {
    fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0
            .push((key.as_ref().to_vec(), Some(value.as_ref().to_vec())));
    }

    fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.0.push((key.as_ref().to_vec(), None));
    }
}

/// Packs whole requests into sled batches of about `KEYS_PER_SLED_BATCH` keys. A request is never
/// split, so each request is atomic on its own (sled recovers a batch all or nothing); grouping
/// several requests in one batch only makes them atomic together, which is harmless.
fn pack(requests: Vec<Writes>) -> Vec<sled::Batch> {
    let mut batches = Vec::new();
    let mut current = sled::Batch::default();
    let mut keys_in_current = 0;
    for writes in requests {
        if writes.0.is_empty() {
            continue;
        }
        if keys_in_current > 0 && keys_in_current + writes.0.len() > KEYS_PER_SLED_BATCH {
            batches.push(std::mem::take(&mut current));
            keys_in_current = 0;
        }
        keys_in_current += writes.0.len();
        for (key, value) in writes.0 {
            match value {
                Some(value) => current.insert(key, value),
                None => current.remove(key),
            }
        }
    }
    if keys_in_current > 0 {
        batches.push(current);
    }
    batches
}

/// Adds an idempotency key record to `batch`. `replaced` is the expired record still stored
/// under the same key, if any, whose format-1 sweep entry (if it was written before format 2)
/// is dropped.
fn write_key(
    overlay: &mut Overlay,
    batch: &mut Writes,
    key: &IdempotencyKey,
    replaced: Option<IdempotencyRecord>,
    first_position: Option<u64>,
) {
    if let Some(old) = replaced {
        if old.expires_at_ms != key.expires_at_ms {
            batch.remove(keys::expiry(old.expires_at_ms, &key.key));
        }
    }
    let record = IdempotencyRecord {
        first_position,
        expires_at_ms: key.expires_at_ms,
        result: key.result.clone(),
    };
    // No sweep-index key (format 2): the sweep walks the `k` keys themselves.
    batch.insert(keys::idempotency(&key.key), encode_key_record(&record));
    overlay.keys.insert(key.key.clone(), record);
}

/// Keeps a failed sled database from ever being dropped. sled 0.34's `Drop` flushes, and after a
/// failed write (measured: ENOSPC on a full tmpfs) that flush waits forever for an I/O buffer
/// that never becomes stable, so the last `Store` handle's drop, and `wagate serve`'s exit with
/// it, would hang. Leaking one handle skips that flush; the process is about to exit (or reopen
/// in a fresh process), and the file lock goes with the process.
fn never_drop(db: &sled::Db) {
    std::mem::forget(db.clone());
}

fn answer_all(answers: Vec<Answer>, error: &StoreError) {
    for answer in answers {
        match answer {
            Answer::Append(reply, _) => {
                let _ = reply.send(Err(error.clone()));
            }
            Answer::Checkpoint(reply) => {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

fn add_elapsed(counter: &AtomicU64, since: Instant) {
    counter.fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
}

fn validate_checkpoint(name: &str, position: u64, next_position: u64) -> Result<()> {
    if name.is_empty() || name.len() > MAX_CHECKPOINT_NAME_BYTES {
        return Err(StoreError::InvalidRequest(format!(
            "checkpoint name must be 1 to {MAX_CHECKPOINT_NAME_BYTES} bytes"
        )));
    }
    if position >= next_position {
        return Err(StoreError::InvalidRequest(format!(
            "checkpoint position {position} is past the head {}",
            next_position - 1
        )));
    }
    Ok(())
}

pub(crate) fn refuse(command: Command, error: StoreError) {
    match command {
        Command::Append { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Checkpoint { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Shutdown => {}
    }
}
