//! Crash safety while packing: like `crash.rs`, a child process appends with concurrent writers
//! and prints every acknowledged event, and the parent SIGKILLs it at a random moment; here the
//! child packs as eagerly as it can (no unpacked tail, one block per step), so the kill lands
//! in or between pack steps as well as group commits. After each kill the parent checks the raw
//! database first (the packed position on disk is whole blocks, every one of them present, and
//! never past the log's end), then reopens it: it verifies, every acknowledged event is there at
//! its position, and the next round appends on top. Several rounds on the same database.

use std::path::{Path, PathBuf};

use rand::Rng;
use uuid::Uuid;
use wagate_store::{
    AppendOutcome, AppendRequest, ExpectedVersion, NewEvent, Options, Store, StreamId,
    LOG_BLOCK_EVENTS,
};

#[path = "common/kill.rs"]
mod kill;

const CHILD_ENV: &str = "WAGATE_CRASH_PACKING_CHILD";
const WRITERS: usize = 8;
const ROUNDS: usize = 6;

fn eager() -> Options {
    Options {
        unpacked_tail_events: 0,
        pack_step_blocks: 1,
        ..Options::default()
    }
}

/// Child side: only does something when re-executed by the parent.
#[test]
fn crash_packing_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&dir, eager()).expect("child open");
    // libtest prints "test crash_packing_child ... " without a newline first.
    println!("\nREADY");
    let threads: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            std::thread::spawn(move || child_writer(&store, writer))
        })
        .collect();
    for thread in threads {
        // The parent kills us while these run; they never end on their own.
        let _ = thread.join();
    }
}

fn child_writer(store: &Store, writer: usize) {
    let own = StreamId::new(format!("message:w{writer}")).expect("stream");
    let shared = StreamId::new("portfolio:crash").expect("stream");
    let mut own_version = store.stream_version(&own).expect("version");
    let mut rng = rand::thread_rng();
    loop {
        let events = rng.gen_range(1..=4usize);
        let make = || NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "CrashPacking".into(),
            schema_version: 1,
            timestamp_ms: 0,
            payload: vec![writer as u8; 8],
            origin: None,
        };
        let request = AppendRequest::single(
            own.clone(),
            ExpectedVersion::Exact(own_version),
            (0..events).map(|_| make()).collect(),
        )
        .with_stream(shared.clone(), ExpectedVersion::Any, vec![make()]);
        let ids: Vec<Uuid> = request
            .streams
            .iter()
            .flat_map(|s| s.events.iter().map(|e| e.event_id))
            .collect();
        match store.append_blocking(request) {
            Ok(AppendOutcome::Appended(committed)) => {
                own_version = committed.stream_versions[0];
                let mut lines = String::new();
                for (id, position) in ids.iter().zip(&committed.positions) {
                    lines.push_str(&format!("ACK {id} {position}\n"));
                }
                // One write per request keeps its lines together.
                print!("{lines}");
            }
            other => panic!("child append failed: {other:?}"),
        }
    }
}

fn parse_ack(line: &str) -> Option<(Uuid, u64)> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Runs one child until a random moment after it is ready, SIGKILLs it, returns its acks.
fn run_and_kill(dir: &Path, rng: &mut impl Rng) -> Vec<(Uuid, u64)> {
    kill::run_and_kill(
        "crash_packing_child",
        CHILD_ENV,
        dir,
        50..400,
        rng,
        parse_ack,
    )
}

/// The killed database as sled has it: the packed position (whole blocks, each present) and the
/// last position of the log.
fn raw_check(dir: &Path) -> (u64, u64) {
    let db = sled::open(dir).expect("open sled directly");
    let packed = db.get(b"mpacked").expect("get").map_or(0, |value| {
        u64::from_be_bytes(value[..].try_into().expect("u64"))
    });
    assert_eq!(
        packed % LOG_BLOCK_EVENTS,
        0,
        "packed {packed} is not whole blocks"
    );
    let blocks = db.scan_prefix([b'L']).count() as u64;
    assert_eq!(
        blocks,
        packed / LOG_BLOCK_EVENTS,
        "log blocks for packed {packed}"
    );
    let position = |key: &[u8]| u64::from_be_bytes(key[1..9].try_into().expect("u64"));
    let first_key = db
        .scan_prefix([b'l'])
        .next()
        .map(|item| position(&item.expect("key").0));
    let last_key = db
        .scan_prefix([b'l'])
        .next_back()
        .map(|item| position(&item.expect("key").0));
    if let Some(first) = first_key {
        assert_eq!(
            first,
            packed + 1,
            "per-event log keys start after the packed blocks"
        );
    }
    let end = last_key.unwrap_or(packed);
    assert!(packed <= end, "packed {packed} past the log's end {end}");
    db.flush().expect("flush");
    (packed, end)
}

fn check(dir: &Path, acks: &[(Uuid, u64)]) -> u64 {
    let (raw_packed, raw_end) = raw_check(dir);
    let store = Store::open(dir, eager()).expect("reopen after kill");
    assert_eq!(store.head_position(), raw_end);
    assert_eq!(store.packed_position(), raw_packed);
    assert!(store.packed_position() <= store.head_position());
    let report = store.verify().expect("consistent after kill");
    assert_eq!(report.events, store.head_position());
    for (event_id, position) in acks {
        assert_eq!(
            store.position_of(*event_id).expect("lookup"),
            Some(*position),
            "acknowledged event {event_id} lost"
        );
    }
    // Every writer's stream is gap-free and reads whole across blocks and keys.
    for writer in 0..WRITERS {
        let id = StreamId::new(format!("message:w{writer}")).expect("stream");
        let version = store.stream_version(&id).expect("version");
        let events = store.read_stream(&id, 1, usize::MAX).expect("read");
        assert_eq!(events.len() as u64, version);
        assert!(events.iter().zip(1..).all(|(e, v)| e.version == v));
    }
    let packed = store.packed_position();
    // Waits until sled let go of its file lock, so the next child can open the database.
    store.close().expect("close after the check");
    packed
}

#[test]
fn acknowledged_appends_survive_sigkill_while_packing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("data");
    let mut rng = rand::thread_rng();
    let mut all_acks = Vec::new();
    let mut packed = 0;
    for round in 0..ROUNDS {
        let acks = run_and_kill(&path, &mut rng);
        all_acks.extend(acks);
        packed = check(&path, &all_acks);
        eprintln!(
            "round {round}: {} acknowledged so far, packed {packed}",
            all_acks.len()
        );
    }
    assert!(packed > 0, "the children never packed anything");

    // Appending continues on the packed log, at the right versions.
    let store = Store::open(&path, eager()).expect("reopen");
    let id = StreamId::new("message:w0").expect("stream");
    let version = store.stream_version(&id).expect("version");
    let outcome = store
        .append_blocking(AppendRequest::single(
            id,
            ExpectedVersion::Exact(version),
            vec![NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "After".into(),
                schema_version: 1,
                timestamp_ms: 0,
                payload: Vec::new(),
                origin: None,
            }],
        ))
        .expect("append after the crashes");
    let committed = outcome.committed().expect("appended");
    assert_eq!(committed.stream_versions, vec![version + 1]);
    store.verify().expect("verify");
    store.close().expect("close");
}
