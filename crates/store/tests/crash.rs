//! Crash safety: a child process appends with many concurrent writers and prints every
//! acknowledged event; the parent SIGKILLs it at a random moment, reopens the database and checks
//! that every acknowledged event is there, positions and stream versions have no gap, and every
//! visible request is complete. Several rounds on the same database.
//!
//! The child is this same test binary, re-executed with `WAGATE_CRASH_CHILD` set and filtered to
//! the `crash_child` test. What this does not test: power loss or a kernel crash (the page cache
//! survives a SIGKILL); see docs/storage.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::Rng;
use uuid::Uuid;
use wagate_store::{
    AppendOutcome, AppendRequest, ExpectedVersion, IdempotencyKey, NewEvent, Options, Store,
    StreamId,
};

#[path = "common/kill.rs"]
mod kill;

const CHILD_ENV: &str = "WAGATE_CRASH_CHILD";
const WRITERS: usize = 32;
const ROUNDS: usize = 10;

/// Child side: only does something when re-executed by the parent.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&dir, Options::default()).expect("child open");
    // libtest prints "test crash_child ... " without a newline first: start a fresh line.
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
    let shared = StreamId::new(format!("contact:+{}", writer % 4)).expect("stream");
    let mut own_version = store.stream_version(&own).expect("version");
    let mut rng = rand::thread_rng();
    loop {
        let request_id = Uuid::now_v7();
        let shared_events = rng.gen_range(1..=3usize);
        let total = shared_events + 1;
        let make = |index: usize| NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "CrashTest".into(),
            schema_version: 1,
            timestamp_ms: 0,
            payload: [
                request_id.as_bytes().as_slice(),
                &[total as u8, index as u8],
            ]
            .concat(),
            origin: None,
        };
        let request = AppendRequest::single(
            own.clone(),
            ExpectedVersion::Exact(own_version),
            vec![make(0)],
        )
        .with_stream(
            shared.clone(),
            ExpectedVersion::Any,
            (1..total).map(make).collect(),
        )
        .with_idempotency_key(IdempotencyKey {
            key: format!("req:{request_id}").into_bytes(),
            expires_at_ms: i64::MAX,
            result: Vec::new(),
        });
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
                    lines.push_str(&format!("ACK {id} {position} {request_id}\n"));
                }
                // One write per request keeps its lines together.
                print!("{lines}");
            }
            other => panic!("child append failed: {other:?}"),
        }
    }
}

struct Ack {
    event_id: Uuid,
    position: u64,
    request_id: Uuid,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    Some(Ack {
        event_id: parts.next()?.parse().ok()?,
        position: parts.next()?.parse().ok()?,
        request_id: parts.next()?.parse().ok()?,
    })
}

/// Runs one child until a random moment after it is ready, SIGKILLs it, returns its acks.
fn run_and_kill(dir: &Path, rng: &mut impl Rng) -> Vec<Ack> {
    kill::run_and_kill("crash_child", CHILD_ENV, dir, 5..250, rng, parse_ack)
}

fn check(dir: &Path, acks: &[Ack]) {
    let store = Store::open(dir, Options::default()).expect("reopen after kill");
    // Positions 1..=head gap-free, stream versions gap-free, indexes agree with the log.
    let report = store.verify().expect("consistent after kill");
    assert_eq!(report.events, store.head_position());

    for ack in acks {
        assert_eq!(
            store.position_of(ack.event_id).expect("lookup"),
            Some(ack.position),
            "acknowledged event {} lost",
            ack.event_id
        );
        let key = format!("req:{}", ack.request_id);
        assert!(
            store
                .idempotency_key(key.as_bytes())
                .expect("lookup")
                .is_some(),
            "idempotency key of an acknowledged request lost"
        );
    }

    // Every request visible in the log is complete, and its events are contiguous.
    let mut requests: HashMap<Vec<u8>, (u8, Vec<u64>)> = HashMap::new();
    store
        .replay(
            1,
            |event| {
                assert_eq!(event.payload.len(), 18);
                let entry = requests
                    .entry(event.payload[..16].to_vec())
                    .or_insert((event.payload[16], Vec::new()));
                entry.1.push(event.position);
            },
            |_| {},
        )
        .expect("replay");
    for (total, positions) in requests.values() {
        assert_eq!(
            positions.len(),
            usize::from(*total),
            "partial request visible"
        );
        assert!(positions.windows(2).all(|w| w[1] == w[0] + 1));
    }
    // Waits until sled let go of its file lock, so the next child can open the database.
    store.close().expect("close after the check");
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("data");
    let mut rng = rand::thread_rng();
    let started = Instant::now();
    let mut all_acks = Vec::new();
    for round in 0..ROUNDS {
        let acks = run_and_kill(&path, &mut rng);
        all_acks.extend(acks);
        check(&path, &all_acks);
        eprintln!(
            "round {round}: {} acknowledged so far, {:?} elapsed",
            all_acks.len(),
            started.elapsed()
        );
    }
    assert!(
        !all_acks.is_empty(),
        "the children never acknowledged anything"
    );
}
