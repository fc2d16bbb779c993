//! Disk per event and keys per webhook (a measurement, not a test; run it by hand or with
//! `just disk`).
//!
//! 1. **Bytes on disk per event.** Appends N Twilio-status-callback-shaped requests (each: one
//!    event of ~200 payload bytes on a new `provider-message:SM…` stream, with its webhook
//!    de-duplication key, as `Hub::record_status_callback` appends an unmatched callback) from C
//!    concurrent tasks, closes the store (which flushes), then reports the data folder's size as
//!    `du` counts it (allocated blocks) and sled's own `size_on_disk`, each divided by N, and the
//!    append rate.
//! 2. **Keys written per webhook.** On a fresh store, appends M requests of each shape the hub
//!    appends for a webhook or command (an unmatched and a matched status callback, an inbound
//!    message, a send with an `Idempotency-Key`) and reports, per prefix (`l` log, `s` stream
//!    index, `e` event id, `k` idempotency key; before on-disk format 2 also `h` stream head and
//!    `x` expiry index; see crates/store/src/keys.rs), the keys the writer wrote for them
//!    (`Store::keys_written`: inserts and overwrites) and the keys they added to the folder.
//!
//! Usage: `disk [--events N] [--concurrency C] [--dir DIR] [--unpacked-tail N|never]
//! [--stream-names random|ordered] [--key-walk-after N|never]`. Data goes to a temporary folder
//! under DIR (default: the system temp dir), removed at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use uuid::Uuid;
use wagate_store::{
    AppendRequest, ExpectedVersion, IdempotencyKey, NewEvent, Options, Origin, Store, StreamId,
};

const PAYLOAD_BYTES: usize = 200;
/// The webhook de-duplication horizon the hub uses (Meta retries for 7 days).
const DEDUP_MS: i64 = 7 * 24 * 3600 * 1000;
/// Requests of each shape in the keys-per-webhook part.
const SHAPE_REQUESTS: usize = 1000;

fn main() {
    let mut events = 100_000usize;
    let mut concurrency = 64usize;
    let mut dir = std::env::temp_dir();
    let mut unpacked_tail = Options::default().unpacked_tail_events;
    let mut key_walk_after = Options::default().key_walk_after_keys;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&arg));
        match arg.as_str() {
            "--events" => events = value().parse().unwrap_or_else(|_| usage("--events")),
            "--concurrency" => {
                concurrency = value().parse().unwrap_or_else(|_| usage("--concurrency"))
            }
            "--dir" => dir = PathBuf::from(value()),
            "--stream-names" => match value().as_str() {
                "random" => {}
                "ordered" => ORDERED_STREAMS.store(true, std::sync::atomic::Ordering::Relaxed),
                _ => usage("--stream-names"),
            },
            "--unpacked-tail" => {
                unpacked_tail = match value().as_str() {
                    "never" => u64::MAX,
                    n => n.parse().unwrap_or_else(|_| usage("--unpacked-tail")),
                }
            }
            "--key-walk-after" => {
                key_walk_after = match value().as_str() {
                    "never" => u64::MAX,
                    n => n.parse().unwrap_or_else(|_| usage("--key-walk-after")),
                }
            }
            other => usage(other),
        }
    }
    let concurrency = concurrency.max(1);

    let folder = tempfile::Builder::new()
        .prefix("wagate-disk-")
        .tempdir_in(&dir)
        .expect("a temporary folder");
    let ingest = folder.path().join("ingest");
    let options = Options {
        unpacked_tail_events: unpacked_tail,
        key_walk_after_keys: key_walk_after,
        ..Options::default()
    };
    let (seconds, after) = ingest_callbacks(&ingest, events, concurrency, options);
    let du = allocated_bytes(&ingest);
    let sled_size = size_on_disk(&ingest);
    println!("status callbacks appended: {events} from {concurrency} tasks");
    println!(
        "  rate: {:.0} appends/s ({seconds:.2} s)",
        events as f64 / seconds
    );
    println!(
        "  du of the folder after close: {du} bytes = {:.0} bytes/event",
        du as f64 / events as f64
    );
    println!(
        "  sled size_on_disk: {sled_size} bytes = {:.0} bytes/event",
        sled_size as f64 / events as f64
    );
    println!("  keys stored per event: {}", per(&after, events));

    println!("keys written per request ({SHAPE_REQUESTS} of each, fresh store each):");
    for shape in [
        Shape::UnmatchedStatus,
        Shape::MatchedStatus,
        Shape::Inbound,
        Shape::SendWithKey,
    ] {
        let path = folder.path().join(shape.name());
        let (written, added) = keys_per_shape(&path, shape);
        println!(
            "  {:<26} written {}",
            shape.name(),
            per(&written, SHAPE_REQUESTS)
        );
        println!("  {:<26} added   {}", "", per(&added, SHAPE_REQUESTS));
        let _ = std::fs::remove_dir_all(&path);
    }
}

fn usage(arg: &str) -> ! {
    eprintln!(
        "unexpected argument {arg}; usage: disk [--events N] [--concurrency C] [--dir DIR] \
         [--unpacked-tail N|never] [--stream-names random|ordered] [--key-walk-after N|never]"
    );
    std::process::exit(2)
}

#[derive(Clone, Copy)]
enum Shape {
    UnmatchedStatus,
    MatchedStatus,
    Inbound,
    SendWithKey,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::UnmatchedStatus => "status-callback-unmatched",
            Shape::MatchedStatus => "status-callback-matched",
            Shape::Inbound => "inbound",
            Shape::SendWithKey => "send-with-key",
        }
    }
}

fn event(event_type: &str) -> NewEvent {
    NewEvent {
        event_id: time_ordered_id(),
        event_type: event_type.into(),
        schema_version: 1,
        timestamp_ms: now_ms(),
        payload: (0..PAYLOAD_BYTES).map(|i| b'a' + (i % 26) as u8).collect(),
        origin: Some(Origin {
            kind: "webhook".into(),
            name: "twilio".into(),
        }),
    }
}

fn key(text: String) -> IdempotencyKey {
    IdempotencyKey {
        key: text.into_bytes(),
        expires_at_ms: now_ms() + DEDUP_MS,
        result: Vec::new(),
    }
}

/// A time-ordered id like the hub's UUIDv7 event and message ids (the store crate does not
/// enable uuid's `v7` feature): milliseconds since the epoch, then a process-wide counter.
fn time_ordered_id() -> Uuid {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let counter = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Uuid::from_u128(((now_ms() as u128) << 80) | u128::from(counter))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A Twilio message SID: `SM` and 32 random hex digits.
fn sid() -> String {
    format!("SM{}", Uuid::from_u128(rand::random::<u128>()).simple())
}

fn stream(id: String) -> StreamId {
    StreamId::new(id).expect("a valid stream id")
}

/// Whether the ingested callbacks' streams are named at random (an unmatched callback's
/// `provider-message:<sid>`, the worst case for the packed stream index) or in time order (a
/// matched callback's `message:<UUIDv7>`).
static ORDERED_STREAMS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn unmatched_status() -> AppendRequest {
    let sid = sid();
    let name = if ORDERED_STREAMS.load(std::sync::atomic::Ordering::Relaxed) {
        format!("message:{}", time_ordered_id())
    } else {
        format!("provider-message:{sid}")
    };
    AppendRequest::single(
        stream(name),
        ExpectedVersion::Any,
        vec![event("UnmatchedStatusReceived")],
    )
    .with_idempotency_key(key(format!("webhook:twilio:status:{sid}:delivered")))
}

/// Appends N unmatched status callbacks from `concurrency` tasks; returns the seconds it took
/// and the keys per prefix left in the folder after close.
fn ingest_callbacks(
    path: &Path,
    events: usize,
    concurrency: usize,
    options: Options,
) -> (f64, BTreeMap<char, usize>) {
    let unpacked_tail = options.unpacked_tail_events;
    let key_walk_after = options.key_walk_after_keys;
    let store = Store::open(path, options).expect("open the store");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for task in 0..concurrency {
            let store = store.clone();
            let count = events / concurrency + usize::from(task < events % concurrency);
            tasks.push(tokio::spawn(async move {
                for _ in 0..count {
                    store.append(unmatched_status()).await.expect("append");
                }
            }));
        }
        for task in tasks {
            task.await.expect("a writer task");
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    // What a hub that kept running would have packed by now (crates/store/src/packed.rs).
    let packed = store
        .wait_packed(std::time::Duration::from_secs(600))
        .expect("packing catches up");
    println!("  packed up to position {packed} (unpacked tail: {unpacked_tail})");
    // Likewise the keys: all but those written since the last walk began
    // (crates/store/src/packed_keys.rs).
    if key_walk_after != u64::MAX {
        let due = (events as u64).saturating_sub(key_walk_after);
        let deadline = Instant::now() + std::time::Duration::from_secs(600);
        while store.keys_packed() < due && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    println!(
        "  idempotency keys moved into blocks: {}",
        store.keys_packed()
    );
    store.close().expect("close");
    (seconds, count_keys(path))
}

/// Keys written per prefix (as the writer counts them) and keys added to the folder, for
/// `SHAPE_REQUESTS` requests of `shape`.
fn keys_per_shape(path: &Path, shape: Shape) -> (BTreeMap<char, usize>, BTreeMap<char, usize>) {
    let store = Store::open(path, Options::default()).expect("open the store");
    // Existing streams the shapes append to, as on a hub that has been running.
    let contact = stream("contact:+41790000001".into());
    let messages: Vec<StreamId> = (0..SHAPE_REQUESTS)
        .map(|_| stream(format!("message:{}", time_ordered_id())))
        .collect();
    let seed = messages.iter().fold(
        AppendRequest::single(
            contact.clone(),
            ExpectedVersion::Any,
            vec![event("OptedIn")],
        ),
        |request, message| {
            request.with_stream(
                message.clone(),
                ExpectedVersion::Any,
                vec![event("MessageQueued")],
            )
        },
    );
    store.append_blocking(seed).expect("seed");
    store.close().expect("close");
    let before = count_keys(path);

    let store = Store::open(path, Options::default()).expect("reopen the store");
    for message in &messages {
        let request = match shape {
            Shape::UnmatchedStatus => unmatched_status(),
            Shape::MatchedStatus => AppendRequest::single(
                message.clone(),
                ExpectedVersion::Exact(1),
                vec![event("MessageDelivered")],
            )
            .with_idempotency_key(key(format!("webhook:twilio:status:{}:delivered", sid()))),
            Shape::Inbound => AppendRequest::single(
                contact.clone(),
                ExpectedVersion::Any,
                vec![event("InboundReceived")],
            )
            .with_idempotency_key(key(format!("webhook:twilio:inbound:{}", sid()))),
            Shape::SendWithKey => AppendRequest::single(
                stream(format!("message:{}", time_ordered_id())),
                ExpectedVersion::NoStream,
                vec![event("MessageQueued")],
            )
            // The send also checks the sender's and the contact's versions (no events).
            .with_stream(contact.clone(), ExpectedVersion::Any, Vec::new())
            .with_idempotency_key(key(format!(
                "send:{}",
                Uuid::from_u128(rand::random::<u128>())
            ))),
        };
        store.append_blocking(request).expect("append");
    }
    // Counted by the writer since this open: inserts, overwrites and removals alike.
    let written = store
        .keys_written()
        .into_iter()
        .map(|(prefix, count)| (char::from(prefix), count as usize))
        .collect();
    store.close().expect("close");
    let after = count_keys(path);
    let added = after
        .into_iter()
        .map(|(prefix, count)| {
            let added = count.saturating_sub(before.get(&prefix).copied().unwrap_or(0));
            (prefix, added)
        })
        .filter(|(_, added)| *added > 0)
        .collect();
    (written, added)
}

/// Keys per one-byte prefix in the closed store's sled folder.
fn count_keys(path: &Path) -> BTreeMap<char, usize> {
    let db = open_raw(path);
    let mut counts = BTreeMap::new();
    for item in db.iter() {
        let (key, _) = item.expect("read a key");
        let prefix = key.first().map_or('?', |byte| char::from(*byte));
        *counts.entry(prefix).or_insert(0) += 1;
    }
    counts
}

fn size_on_disk(path: &Path) -> u64 {
    open_raw(path).size_on_disk().expect("size_on_disk")
}

/// The closed store's folder, opened with sled directly (it keeps its own settings in `conf`).
fn open_raw(path: &Path) -> sled::Db {
    let mut attempts = 0;
    loop {
        // sled's I/O threads let go of the lock a moment after the last handle is dropped.
        let config = sled::Config::new()
            .path(path)
            .flush_every_ms(None)
            .segment_size(stored_segment_size(path));
        match config.open() {
            Ok(db) => return db,
            Err(_) if attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(40));
            }
            Err(error) => panic!("opening {}: {error}", path.display()),
        }
    }
}

/// The segment size sled recorded in the folder's `conf` (a text file, `segment_size: N` on a
/// line; sled refuses to open a folder with another one).
fn stored_segment_size(path: &Path) -> usize {
    let conf = std::fs::read(path.join("conf")).expect("sled's conf file");
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|line| line.strip_prefix("segment_size: ")?.trim().parse().ok())
        .expect("a segment_size line in sled's conf")
}

/// What `du` counts: allocated 512-byte blocks of every file under `path`.
fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    for entry in std::fs::read_dir(path).expect("read the folder") {
        let entry = entry.expect("an entry");
        let metadata = entry.metadata().expect("metadata");
        total += if metadata.is_dir() {
            allocated_bytes(&entry.path())
        } else {
            metadata.blocks() * 512
        };
    }
    total
}

fn per(counts: &BTreeMap<char, usize>, requests: usize) -> String {
    let total: usize = counts.values().sum();
    let parts: Vec<String> = counts
        .iter()
        .map(|(prefix, count)| format!("{prefix}={:.2}", *count as f64 / requests as f64))
        .collect();
    format!(
        "{:.2} in all ({})",
        total as f64 / requests as f64,
        parts.join(" ")
    )
}
