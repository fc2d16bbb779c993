//! Packing (`crate::packed`): the log's older events moved into `L`/`S`/`E` blocks must read
//! exactly as before. Each test fills a store with packing off (the reference reads), then
//! reopens it with a small unpacked tail so the writer packs, and checks every read against the
//! events read before packing: stream reads from many versions with limits cutting across the
//! packed/unpacked boundary, log reads, replay, versions, event-id lookups, verify, the raw sled
//! keys, appends and retries after packing, readers racing pack steps, reopen, and salvage of an
//! intact and of a damaged packed log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;
#[path = "common/raw_sled.rs"]
mod raw_sled;
use raw_sled::release;
use wagate_store::{
    salvage, AppendOutcome, AppendRequest, ExpectedVersion, NewEvent, Options, RecordedEvent,
    SalvageEnd, SalvageFlow, Store, StoreError, StreamId, LOG_BLOCK_EVENTS,
};

const PACK_TIMEOUT: Duration = Duration::from_secs(20);
const PORTFOLIO: &str = "portfolio:acme";

fn unpacked() -> Options {
    Options {
        unpacked_tail_events: u64::MAX,
        ..Options::default()
    }
}

fn packing(tail: u64, step: u64) -> Options {
    Options {
        unpacked_tail_events: tail,
        pack_step_blocks: step,
        ..Options::default()
    }
}

fn stream(id: &str) -> StreamId {
    StreamId::new(id).expect("stream id")
}

/// Mostly time-ordered v7 ids, and some random (v4-like) ones, which land all over the `E`
/// blocks' key space instead of at its end.
fn event_id(rng: &mut StdRng) -> Uuid {
    if rng.gen_bool(0.2) {
        uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
    } else {
        Uuid::now_v7()
    }
}

fn new_event(rng: &mut StdRng, kind: &str) -> NewEvent {
    let size = rng.gen_range(0..120);
    NewEvent {
        event_id: event_id(rng),
        event_type: kind.into(),
        schema_version: 1,
        timestamp_ms: rng.gen_range(0..1_000_000),
        payload: (0..size).map(|_| rng.gen()).collect(),
        origin: None,
    }
}

/// What was written: the requests with their outcomes, for retries after packing.
struct Filled {
    requests: Vec<(AppendRequest, AppendOutcome)>,
}

/// Appends `messages` messages: each a new `message:N` stream of 1–3 events plus one event on
/// the long portfolio stream, and now and then an event on one of a few `contact:` streams.
/// Requests go to the writer many at a time (group commits), with `Any` on the shared streams.
fn fill(store: &Store, rng: &mut StdRng, first_message: usize, messages: usize) -> Filled {
    let mut requests = Vec::new();
    let mut message = first_message;
    while message < first_message + messages {
        let wave = (first_message + messages - message).min(200);
        let mut pending = Vec::new();
        for _ in 0..wave {
            let own = (0..rng.gen_range(1..=3))
                .map(|_| new_event(rng, "MessageEvent"))
                .collect();
            let mut request = AppendRequest::single(
                stream(&format!("message:{message}")),
                ExpectedVersion::NoStream,
                own,
            )
            .with_stream(
                stream(PORTFOLIO),
                ExpectedVersion::Any,
                vec![new_event(rng, "PortfolioEvent")],
            );
            if rng.gen_bool(0.3) {
                request = request.with_stream(
                    stream(&format!("contact:+{}", rng.gen_range(0..5))),
                    ExpectedVersion::Any,
                    vec![new_event(rng, "ContactEvent")],
                );
            }
            message += 1;
            pending.push((request.clone(), store.append(request)));
        }
        for (request, answer) in pending {
            let outcome = answer.wait().expect("append");
            assert!(matches!(outcome, AppendOutcome::Appended(_)), "{outcome:?}");
            requests.push((request, outcome));
        }
    }
    Filled { requests }
}

/// The reference: every event, as the unpacked store reads it.
struct Model {
    events: Vec<RecordedEvent>,
    streams: BTreeMap<StreamId, Vec<RecordedEvent>>,
}

impl Model {
    fn read(store: &Store) -> Model {
        let events = store.read_from(1, usize::MAX).expect("read the whole log");
        assert_eq!(events.len() as u64, store.head_position());
        let mut streams: BTreeMap<StreamId, Vec<RecordedEvent>> = BTreeMap::new();
        for event in &events {
            streams
                .entry(event.stream.clone())
                .or_default()
                .push(event.clone());
        }
        Model { events, streams }
    }

    fn stream_slice(&self, id: &StreamId, from: u64, limit: usize) -> Vec<RecordedEvent> {
        let all = self.streams.get(id).map(Vec::as_slice).unwrap_or_default();
        let skip = (from.max(1) - 1) as usize;
        all.iter().skip(skip).take(limit).cloned().collect()
    }

    fn log_slice(&self, from: u64, limit: usize) -> Vec<RecordedEvent> {
        let skip = (from.max(1) - 1) as usize;
        self.events.iter().skip(skip).take(limit).cloned().collect()
    }

    fn version(&self, id: &StreamId) -> u64 {
        self.streams.get(id).map_or(0, |events| events.len() as u64)
    }
}

/// Versions worth reading from in a stream of `len` events: block edges, the packed boundary
/// (`packed_versions`: how many of its versions are packed) and the ends.
fn interesting_versions(len: u64, packed_versions: u64) -> Vec<u64> {
    let mut versions = vec![0, 1, 2, 63, 64, 65, 128, 129, len, len + 1, len + 5];
    for around in [packed_versions, len / 2] {
        versions.extend([around.saturating_sub(1), around, around + 1, around + 2]);
    }
    versions.sort_unstable();
    versions.dedup();
    versions
}

const LIMITS: [usize; 7] = [0, 1, 2, 7, 64, 300, usize::MAX];

/// Every read of `store` answers what `model` says (a sample of them unless `thorough`).
fn check_reads(store: &Store, model: &Model, rng: &mut StdRng, thorough: bool) {
    let packed = store.packed_position();
    let head = store.head_position();
    assert_eq!(head, model.events.len() as u64);
    if !thorough {
        for (id, events) in &model.streams {
            assert_eq!(
                store.stream_version(id).expect("version"),
                model.version(id)
            );
            if events.len() > 10 || rng.gen_bool(0.05) {
                assert_eq!(
                    store.read_stream(id, 1, usize::MAX).expect("read_stream"),
                    *events
                );
            }
        }
        assert_eq!(
            store.read_from(0, usize::MAX).expect("read_from"),
            model.events
        );
        assert_eq!(store.verify().expect("verify").events, head);
        return;
    }
    for (id, events) in &model.streams {
        assert_eq!(
            store.stream_version(id).expect("version"),
            model.version(id)
        );
        let packed_versions = events.iter().filter(|e| e.position <= packed).count() as u64;
        let long = events.len() > 10;
        // The short streams are many, and alike: a sample of them is enough.
        if !long && rng.gen_bool(0.95) {
            continue;
        }
        let versions = if long {
            interesting_versions(events.len() as u64, packed_versions)
        } else {
            (0..=events.len() as u64 + 1).collect()
        };
        for from in versions {
            for limit in LIMITS {
                // Reading a long stream to its end from every version adds little.
                if long && limit > 64 && rng.gen_bool(0.6) {
                    continue;
                }
                assert_eq!(
                    store.read_stream(id, from, limit).expect("read_stream"),
                    model.stream_slice(id, from, limit),
                    "read_stream({id}, {from}, {limit}) with packed {packed}"
                );
            }
        }
    }
    assert_eq!(store.stream_version(&stream("message:none")).expect("v"), 0);
    assert!(store
        .read_stream(&stream("message:none"), 1, 10)
        .expect("read")
        .is_empty());
    let mut froms = vec![0, 1, 2, 63, 64, 65, 66, head, head + 1];
    froms.extend([packed.saturating_sub(1), packed, packed + 1]);
    froms.extend((0..20).map(|_| rng.gen_range(1..=head)));
    for from in froms {
        for limit in LIMITS {
            assert_eq!(
                store.read_from(from, limit).expect("read_from"),
                model.log_slice(from, limit),
                "read_from({from}, {limit}) with packed {packed}"
            );
        }
    }
    let mut replayed = Vec::new();
    store
        .replay(1, |event| replayed.push(event), |_| {})
        .expect("replay");
    assert_eq!(replayed, model.events);
    let mut replayed = Vec::new();
    let from = packed.saturating_sub(3).max(1);
    store
        .replay(from, |event| replayed.push(event), |_| {})
        .expect("replay from");
    assert_eq!(replayed, model.log_slice(from, usize::MAX));
    for event in &model.events {
        assert_eq!(
            store.position_of(event.event_id).expect("position_of"),
            Some(event.position),
            "position_of the event at {}",
            event.position
        );
    }
    assert_eq!(store.position_of(Uuid::nil()).expect("position_of"), None);
    assert_eq!(store.position_of(Uuid::max()).expect("position_of"), None);
    let report = store.verify().expect("verify");
    assert_eq!(report.events, head);
    assert_eq!(report.streams, model.streams.len() as u64);
}

/// Keys of the closed database at `path` by their first byte.
fn raw_key_counts(path: &Path) -> BTreeMap<u8, u64> {
    let db = sled::open(path).expect("open sled directly");
    let mut counts = BTreeMap::new();
    for item in db.iter() {
        let (key, _) = item.expect("key");
        *counts.entry(key[0]).or_insert(0) += 1;
    }
    counts
}

/// The smallest per-event log position left in the closed database at `path`.
fn first_log_key(path: &Path) -> Option<u64> {
    let db = sled::open(path).expect("open sled directly");
    let first = db.scan_prefix([b'l']).next();
    first.map(|item| {
        let (key, _) = item.expect("key");
        u64::from_be_bytes(key[1..9].try_into().expect("8 bytes"))
    })
}

/// A filled, closed, never packed database: its directory, what was written and the reference.
fn unpacked_database(seed: u64, messages: usize) -> (tempfile::TempDir, PathBuf, Filled, Model) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let store = Store::open(&path, unpacked()).expect("open");
    let mut rng = StdRng::seed_from_u64(seed);
    let filled = fill(&store, &mut rng, 0, messages);
    let model = Model::read(&store);
    assert_eq!(store.packed_position(), 0);
    store.close().expect("close");
    (dir, path, filled, model)
}

fn expected_packed(head: u64, tail: u64) -> u64 {
    head.saturating_sub(tail) / LOG_BLOCK_EVENTS * LOG_BLOCK_EVENTS
}

/// Reads, raw keys, appends and retries, reopen: one database, one (tail, step) setting.
fn packed_store_reads_and_writes_as_before(seed: u64, tail: u64, step: u64) {
    let (_dir, path, filled, model) = unpacked_database(seed, 700);
    let head = model.events.len() as u64;
    assert!(head > 1_500, "the fill wrote {head} events");
    let mut rng = StdRng::seed_from_u64(seed ^ 0xfeed);

    let store = Store::open(&path, packing(tail, step)).expect("open packing");
    let packed = store.wait_packed(PACK_TIMEOUT).expect("packs");
    assert_eq!(packed, expected_packed(head, tail));
    assert_eq!(store.packed_position(), packed);
    check_reads(&store, &model, &mut rng, true);
    store.close().expect("close");

    // Per-event keys below the packed position are gone; blocks hold them.
    let counts = raw_key_counts(&path);
    let count = |prefix: u8| counts.get(&prefix).copied().unwrap_or(0);
    for prefix in [b'l', b's', b'e'] {
        assert_eq!(
            count(prefix),
            head - packed,
            "per-event {} keys",
            prefix as char
        );
    }
    assert_eq!(count(b'L'), packed / LOG_BLOCK_EVENTS);
    assert!(count(b'S') >= packed / 256, "{counts:?}");
    assert!(count(b'E') >= packed / 256, "{counts:?}");
    assert!(count(b'S') > 0 && count(b'E') > 0, "{counts:?}");
    assert_eq!(
        first_log_key(&path),
        (packed < head).then_some(packed + 1),
        "the first per-event log key follows the packed position"
    );

    // Appends after packing: every stream continues from its packed or unpacked head.
    let store = Store::open(&path, packing(tail, step)).expect("reopen");
    assert_eq!(store.packed_position(), packed);
    let mut model = model;
    let mut next = head;
    for id in model.streams.keys().cloned().collect::<Vec<_>>() {
        // All long streams, and a sample of the message streams (the oldest are fully packed).
        if id.as_str().starts_with("message:") && rng.gen_bool(0.9) {
            continue;
        }
        let version = model.version(&id);
        let outcome = store
            .append_blocking(AppendRequest::single(
                id.clone(),
                ExpectedVersion::Exact(version),
                vec![new_event(&mut rng, "After")],
            ))
            .expect("append after packing");
        next += 1;
        match outcome {
            AppendOutcome::Appended(committed) => {
                assert_eq!(committed.positions, vec![next]);
                assert_eq!(committed.stream_versions, vec![version + 1], "{id}");
            }
            other => panic!("expected Appended, got {other:?}"),
        }
        // A stale version is a conflict, as before packing.
        match store.append_blocking(AppendRequest::single(
            id.clone(),
            ExpectedVersion::Exact(version),
            vec![new_event(&mut rng, "Stale")],
        )) {
            Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, version + 1),
            other => panic!("expected a conflict on {id}, got {other:?}"),
        }
    }

    // Retries of early requests, whose event ids are packed: the original answer, nothing new.
    let head_now = store.head_position();
    for (request, outcome) in filled.requests.iter().take(40) {
        let committed = outcome.committed().expect("committed").clone();
        assert!(committed.last_position().expect("events") <= packed);
        match store.append_blocking(request.clone()).expect("retry") {
            AppendOutcome::AlreadyAppended(again) => assert_eq!(again, committed),
            other => panic!("a retry of packed events answered {other:?}"),
        }
    }
    assert_eq!(store.head_position(), head_now, "a retry wrote something");

    // A request mixing a packed id with a new one is refused, and writes nothing.
    let (old_request, _) = &filled.requests[3];
    let packed_event = old_request.streams[0].events[0].clone();
    let mixed = AppendRequest::single(
        stream("message:mixed"),
        ExpectedVersion::Any,
        vec![packed_event.clone(), new_event(&mut rng, "New")],
    );
    match store.append_blocking(mixed) {
        Err(StoreError::EventIdsMismatch {
            already_written,
            new,
        }) => {
            assert_eq!(already_written, vec![packed_event.event_id]);
            assert_eq!(new, 1);
        }
        other => panic!("expected EventIdsMismatch, got {other:?}"),
    }
    assert_eq!(store.head_position(), head_now);
    let after = store.read_from(head + 1, usize::MAX).expect("read new");
    for event in after {
        model
            .streams
            .entry(event.stream.clone())
            .or_default()
            .push(event.clone());
        model.events.push(event);
    }
    check_reads(&store, &model, &mut rng, false);
    let packed_after = store.wait_packed(PACK_TIMEOUT).expect("packs");
    store.close().expect("close");

    // Reopened with a far larger tail: nothing unpacks, everything reads and appends.
    let store = Store::open(&path, packing(1_000_000, step)).expect("reopen, larger tail");
    assert_eq!(store.packed_position(), packed_after);
    check_reads(&store, &model, &mut rng, false);
    let portfolio = stream(PORTFOLIO);
    let version = model.version(&portfolio);
    let outcome = store
        .append_blocking(AppendRequest::single(
            portfolio,
            ExpectedVersion::Exact(version),
            vec![new_event(&mut rng, "Later")],
        ))
        .expect("append");
    assert_eq!(
        outcome.committed().expect("appended").stream_versions,
        vec![version + 1]
    );
    assert_eq!(store.packed_position(), packed_after);
    store.verify().expect("verify");
    store.close().expect("close");
}

#[test]
fn fully_packed_one_block_per_step() {
    packed_store_reads_and_writes_as_before(1, 0, 1);
}

#[test]
fn packed_behind_a_tail_sixteen_blocks_per_step() {
    packed_store_reads_and_writes_as_before(2, 100, 16);
}

/// A log of exactly whole blocks packs completely: no per-event log key is left, and the store
/// still opens (its tail check reads blocks only), knows its head and appends after it.
#[test]
fn a_log_of_whole_blocks_packs_completely_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let store = Store::open(&path, packing(0, 1)).expect("open");
    let mut rng = StdRng::seed_from_u64(3);
    let id = stream(PORTFOLIO);
    let whole = 2 * LOG_BLOCK_EVENTS;
    for version in 0..whole / 4 {
        store
            .append_blocking(AppendRequest::single(
                id.clone(),
                ExpectedVersion::Exact(version * 4),
                (0..4).map(|_| new_event(&mut rng, "E")).collect(),
            ))
            .expect("append");
    }
    assert_eq!(store.wait_packed(PACK_TIMEOUT).expect("packs"), whole);
    let model = Model::read(&store);
    store.close().expect("close");
    let counts = raw_key_counts(&path);
    assert_eq!(counts.get(&b'l'), None, "{counts:?}");
    assert_eq!(counts.get(&b's'), None, "{counts:?}");
    assert_eq!(counts.get(&b'e'), None, "{counts:?}");
    assert_eq!(counts.get(&b'L'), Some(&2), "{counts:?}");

    let store = Store::open(&path, packing(0, 1)).expect("reopen fully packed");
    assert_eq!(store.head_position(), whole);
    assert_eq!(store.packed_position(), whole);
    assert_eq!(store.stream_version(&id).expect("version"), whole);
    check_reads(&store, &model, &mut rng, true);
    let outcome = store
        .append_blocking(AppendRequest::single(
            id.clone(),
            ExpectedVersion::Exact(whole),
            vec![new_event(&mut rng, "E")],
        ))
        .expect("append");
    let committed = outcome.committed().expect("appended");
    assert_eq!(committed.positions, vec![whole + 1]);
    assert_eq!(committed.stream_versions, vec![whole + 1]);
    store.verify().expect("verify");
    store.close().expect("close");
}

/// A read racing pack steps answered exactly `expected` (said briefly: the events are many).
fn same(read: Result<Vec<RecordedEvent>, StoreError>, expected: &[RecordedEvent], what: &str) {
    match read {
        Err(error) => panic!("{what} while packing failed: {error}"),
        Ok(events) => {
            let wrong = events.iter().zip(expected).position(|(a, b)| a != b);
            assert!(
                events.len() == expected.len() && wrong.is_none(),
                "{what} while packing: {} events instead of {}, first difference at {wrong:?}",
                events.len(),
                expected.len()
            );
        }
    }
}

/// Copies a closed database directory (sled keeps a few files in it).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Readers on other threads while the writer packs a large backlog (tail 0, one block per step,
/// so packing runs through the reads): no gap, no short stream, no wrong version or position,
/// no error.
/// Several rounds on copies of the unpacked database, so the first pack steps (from nothing
/// packed) race the readers more than once.
#[test]
fn readers_racing_pack_steps_see_every_event() {
    let (_dir, path, _filled, model) = unpacked_database(4, 1_200);
    let model = Arc::new(model);
    let head = model.events.len() as u64;
    let target = expected_packed(head, 0);
    let streams: Arc<Vec<StreamId>> = Arc::new(model.streams.keys().cloned().collect());
    let mut reads_while_packing = 0;
    for round in 0..4u64 {
        let copy = tempfile::tempdir().expect("tempdir");
        copy_dir(&path, copy.path());
        let store = Store::open(copy.path(), packing(0, 1)).expect("open packing");
        let done = Arc::new(AtomicBool::new(false));
        let during = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..2u64)
            .map(|reader| {
                let (store, model, streams, done, during) = (
                    store.clone(),
                    Arc::clone(&model),
                    Arc::clone(&streams),
                    Arc::clone(&done),
                    Arc::clone(&during),
                );
                std::thread::spawn(move || {
                    let mut rng = StdRng::seed_from_u64(round * 10 + reader);
                    let portfolio = stream(PORTFOLIO);
                    let portfolio_len = model.version(&portfolio);
                    loop {
                        let finished = done.load(Ordering::Acquire);
                        let packing_now = store.packed_position() < target;
                        match rng.gen_range(0..5) {
                            0 => {
                                let from = rng.gen_range(0..=portfolio_len + 1);
                                let limit = rng.gen_range(1..400);
                                same(
                                    store.read_stream(&portfolio, from, limit),
                                    &model.stream_slice(&portfolio, from, limit),
                                    &format!("read_stream(portfolio, {from}, {limit})"),
                                );
                            }
                            1 => {
                                let id = &streams[rng.gen_range(0..streams.len())];
                                same(
                                    store.read_stream(id, 1, usize::MAX),
                                    &model.stream_slice(id, 1, usize::MAX),
                                    &format!("read_stream({id})"),
                                );
                            }
                            2 => {
                                let from = rng.gen_range(1..=head);
                                let limit = rng.gen_range(1..500);
                                same(
                                    store.read_from(from, limit),
                                    &model.log_slice(from, limit),
                                    &format!("read_from({from}, {limit})"),
                                );
                            }
                            3 => {
                                // An event-id lookup: its key, else its `E` block.
                                for _ in 0..20 {
                                    let event = &model.events[rng.gen_range(0..model.events.len())];
                                    assert_eq!(
                                        store.position_of(event.event_id),
                                        Ok(Some(event.position)),
                                        "position_of while packing"
                                    );
                                }
                            }
                            _ => {
                                let id = &streams[rng.gen_range(0..streams.len())];
                                assert_eq!(
                                    store.stream_version(id),
                                    Ok(model.version(id)),
                                    "stream_version({id}) while packing"
                                );
                            }
                        }
                        if packing_now {
                            during.fetch_add(1, Ordering::Relaxed);
                        }
                        if finished {
                            return;
                        }
                    }
                })
            })
            .collect();
        let packed = store.wait_packed(PACK_TIMEOUT);
        done.store(true, Ordering::Release);
        for reader in readers {
            reader.join().expect("a reader saw a wrong answer");
        }
        assert_eq!(packed.expect("packs"), target);
        reads_while_packing += during.load(Ordering::Relaxed);
        store.verify().expect("verify");
        store.close().expect("close");
    }
    // Otherwise the test proved nothing about racing.
    assert!(
        reads_while_packing > 20,
        "only {reads_while_packing} reads ran while packing"
    );
}

/// Salvage reads a packed log whole; a damaged log block stops it at the block's first position,
/// and the store names the block: at open when the block is the first one (the tail check reads
/// it), else on the read that reaches it.
#[test]
fn salvage_of_packed_and_damaged_blocks() {
    let (_dir, path, _filled, model) = unpacked_database(5, 500);
    let head = model.events.len() as u64;
    let store = Store::open(&path, packing(0, 16)).expect("open packing");
    let packed = store.wait_packed(PACK_TIMEOUT).expect("packs");
    assert!(packed >= 6 * LOG_BLOCK_EVENTS);
    store.close().expect("close");

    let mut salvaged = Vec::new();
    let end = salvage(&path, 1, None, |event| {
        salvaged.push(event);
        SalvageFlow::Continue
    })
    .expect("salvage");
    assert_eq!(end, SalvageEnd::Complete);
    assert_eq!(salvaged, model.events);
    // From inside a block, and up to inside another.
    let mut salvaged = Vec::new();
    let end = salvage(&path, 70, Some(packed + 3), |event| {
        salvaged.push(event);
        SalvageFlow::Continue
    })
    .expect("salvage a range");
    assert_eq!(end, SalvageEnd::Complete);
    assert_eq!(salvaged, model.events[69..(packed + 3) as usize].to_vec());

    // Garbage in the third block, far from the tail the open checks.
    let third = 2 * LOG_BLOCK_EVENTS + 1;
    let garbage = |path: &Path, first: u64| {
        let db = sled::open(path).expect("sled");
        let mut key = vec![b'L'];
        key.extend_from_slice(&first.to_be_bytes());
        assert!(db.get(&key).expect("get").is_some(), "block {first} exists");
        db.insert(key, &b"\x01garbage"[..]).expect("insert");
        db.flush().expect("flush");
        release(db, path);
    };
    garbage(&path, third);
    let mut salvaged = Vec::new();
    let end = salvage(&path, 1, None, |event| {
        salvaged.push(event);
        SalvageFlow::Continue
    })
    .expect("salvage a damaged log");
    match end {
        SalvageEnd::Damaged(stop) => {
            assert_eq!(stop.position, third);
            assert!(stop.reason.contains("block"), "{}", stop.reason);
        }
        other => panic!("expected Damaged, got {other:?}"),
    }
    assert_eq!(salvaged, model.events[..(third - 1) as usize].to_vec());

    assert!(head - third > 1024, "the damage is outside the tail check");
    let store = Store::open(&path, packing(0, 16)).expect("opens: the tail is intact");
    match store.read_from(third + 5, 3) {
        Err(StoreError::Corrupt { detail, .. }) => {
            assert!(
                detail.contains(&format!("log block at {third}")),
                "{detail}"
            )
        }
        other => panic!("expected Corrupt naming the block, got {other:?}"),
    }
    match store.read_from(1, usize::MAX) {
        Err(StoreError::Corrupt { detail, .. }) => {
            assert!(
                detail.contains(&format!("log block at {third}")),
                "{detail}"
            )
        }
        other => panic!("expected Corrupt naming the block, got {other:?}"),
    }
    assert!(matches!(store.verify(), Err(StoreError::Corrupt { .. })));
    // Reads that do not touch the block still answer.
    assert_eq!(
        store.read_from(1, 10).expect("read before the damage"),
        model.log_slice(1, 10)
    );
    store.close().expect("close");

    // Garbage in the first block: the open's check of the log's start refuses the database.
    garbage(&path, 1);
    match Store::open(&path, packing(0, 16)) {
        Err(StoreError::Corrupt { detail, .. }) => {
            assert!(detail.contains("log block at 1"), "{detail}")
        }
        other => panic!("expected Corrupt at open, got {other:?}"),
    }
    let end = salvage(&path, 1, None, |_| SalvageFlow::Continue).expect("salvage");
    assert!(
        matches!(&end, SalvageEnd::Damaged(stop) if stop.position == 1),
        "{end:?}"
    );
}

/// The very first pack step (nothing packed yet) racing stream reads of the events it moves:
/// a read that started before the step must still find every version (in the blocks, if the
/// step moved them from under its scan of the per-event keys). Many short rounds on copies of
/// one small unpacked database, readers spinning on the stream from the moment the store opens.
#[test]
fn the_first_pack_step_racing_stream_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let store = Store::open(&path, unpacked()).expect("open");
    let mut rng = StdRng::seed_from_u64(6);
    let id = stream(PORTFOLIO);
    for version in 0..40 {
        store
            .append_blocking(AppendRequest::single(
                id.clone(),
                ExpectedVersion::Exact(version * 5),
                (0..5).map(|_| new_event(&mut rng, "E")).collect(),
            ))
            .expect("append");
    }
    let model = Arc::new(Model::read(&store));
    store.close().expect("close");
    for _round in 0..25 {
        let copy = tempfile::tempdir().expect("tempdir");
        copy_dir(&path, copy.path());
        let store = Store::open(copy.path(), packing(0, 1)).expect("open packing");
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, model, done, id) = (
                    store.clone(),
                    Arc::clone(&model),
                    Arc::clone(&done),
                    id.clone(),
                );
                std::thread::spawn(move || {
                    while !done.load(Ordering::Acquire) {
                        same(
                            store.read_stream(&id, 1, usize::MAX),
                            &model.stream_slice(&id, 1, usize::MAX),
                            "read_stream of the first blocks",
                        );
                        assert_eq!(store.stream_version(&id), Ok(200));
                    }
                })
            })
            .collect();
        let packed = store.wait_packed(PACK_TIMEOUT);
        done.store(true, Ordering::Release);
        for reader in readers {
            reader.join().expect("a reader saw a wrong answer");
        }
        assert_eq!(packed.expect("packs"), 192);
        store.close().expect("close");
    }
}

/// A damaged index block (`S` or `E`) loses no event: salvage reads the log blocks only and
/// hands over everything; the store refuses to answer from the damaged block (at open, when its
/// tail check needs the block, else on the read or the verify that does) instead of answering
/// wrong.
#[test]
fn a_damaged_index_block_is_corruption_and_salvage_still_reads_the_log() {
    let (_dir, path, _filled, model) = unpacked_database(7, 300);
    let store = Store::open(&path, packing(0, 16)).expect("open packing");
    store.wait_packed(PACK_TIMEOUT).expect("packs");
    store.close().expect("close");
    for prefix in [b'S', b'E'] {
        let db = sled::open(&path).expect("sled");
        let (key, _) = db
            .scan_prefix([prefix])
            .next()
            .expect("an index block")
            .expect("read");
        db.insert(key, &b"\x01garbage"[..]).expect("insert");
        db.flush().expect("flush");
        release(db, &path);

        let mut salvaged = Vec::new();
        let end = salvage(&path, 1, None, |event| {
            salvaged.push(event);
            SalvageFlow::Continue
        })
        .expect("salvage");
        assert_eq!(end, SalvageEnd::Complete);
        assert_eq!(salvaged, model.events);

        let detail = match Store::open(&path, packing(0, 16)) {
            Err(StoreError::Corrupt { detail, .. }) => detail,
            Err(other) => panic!("expected Corrupt, got {other}"),
            Ok(store) => {
                let detail = match store.verify() {
                    Err(StoreError::Corrupt { detail, .. }) => detail,
                    other => panic!("verify of a damaged {} block: {other:?}", prefix as char),
                };
                // The stream that sorts first has its first entries in the first `S` block.
                let first = model.streams.keys().next().expect("a stream");
                if prefix == b'S' {
                    match store.read_stream(first, 1, 10) {
                        Err(StoreError::Corrupt { detail, .. }) => {
                            assert!(detail.contains("index block"), "{detail}")
                        }
                        other => panic!("read_stream of a damaged block: {other:?}"),
                    }
                }
                store.close().expect("close");
                detail
            }
        };
        assert!(
            detail.contains("index block") || detail.contains("disagrees"),
            "{detail}"
        );
    }
}
