//! Packed idempotency keys (`crate::packed_keys`): keys moved from their own sled key into `K`
//! blocks must answer exactly as before — to lookups racing the moves, to retried appends, after
//! a reopen — and keys left by a build that did not pack are packed by the first walk.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
#[path = "common/raw_sled.rs"]
mod raw_sled;
use raw_sled::release;
use wagate_store::{AppendOutcome, AppendRequest, IdempotencyKey, Options, Store};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A webhook-like key: a provider's random message id.
fn name(n: u64) -> Vec<u8> {
    format!(
        "webhook:twilio:status:SM{:016x}:delivered",
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
    .into_bytes()
}

fn key_only(key: Vec<u8>) -> AppendRequest {
    AppendRequest::key_only(IdempotencyKey {
        key,
        expires_at_ms: i64::MAX,
        result: Vec::new(),
    })
}

fn options(key_walk_after_keys: u64) -> Options {
    Options {
        key_walk_after_keys,
        ..Options::default()
    }
}

fn raw_key_counts(path: &Path) -> BTreeMap<u8, u64> {
    let db = sled::open(path).expect("sled");
    let mut counts = BTreeMap::new();
    for key in db.iter().keys() {
        *counts.entry(key.expect("key")[0]).or_default() += 1;
    }
    // The test reopens the store right after.
    release(db, path);
    counts
}

fn is_duplicate(outcome: AppendOutcome) -> bool {
    matches!(outcome, AppendOutcome::Duplicate { .. })
}

/// Appends race walks that move keys into blocks; two readers keep looking up keys already
/// acknowledged, and every lookup must find its key (a read of the `k` key, then the block: a
/// key moved in between is in its block by then). Afterwards, and after a reopen, every key
/// answers and a retry of any of them is a duplicate.
#[test]
fn lookups_racing_key_walks_find_every_acknowledged_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let store = Store::open(&path, options(64)).expect("open");
    let acknowledged: Arc<Mutex<Vec<u64>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|seed| {
            let (store, acknowledged, done) =
                (store.clone(), Arc::clone(&acknowledged), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed);
                let mut lookups = 0u64;
                while !done.load(Ordering::Acquire) {
                    let picked = {
                        let keys = acknowledged.lock().expect("keys");
                        (!keys.is_empty()).then(|| keys[rng.gen_range(0..keys.len())])
                    };
                    if let Some(n) = picked {
                        let found = store.idempotency_key(&name(n)).expect("lookup");
                        assert!(found.is_some(), "acknowledged key {n} not found");
                        lookups += 1;
                    }
                }
                lookups
            })
        })
        .collect();
    const KEYS: u64 = 6_000;
    for wave in 0..KEYS / 200 {
        let pending: Vec<_> = (wave * 200..(wave + 1) * 200)
            .map(|n| (n, store.append(key_only(name(n)))))
            .collect();
        for (n, pending) in pending {
            assert!(matches!(
                pending.wait().expect("append"),
                AppendOutcome::Appended(_)
            ));
            acknowledged.lock().expect("keys").push(n);
        }
    }
    let deadline = Instant::now() + TIMEOUT;
    // All but what the last walks could not take yet: keys written after the last walk began
    // (fewer than 64) and keys of the last wave still syncing when a walk passed them.
    while store.keys_packed() < KEYS - 64 - 200 {
        assert!(
            Instant::now() < deadline,
            "{} keys packed",
            store.keys_packed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        assert!(
            reader.join().expect("reader") > 0,
            "a reader looked nothing up"
        );
    }
    for n in (0..KEYS).step_by(7) {
        assert!(is_duplicate(
            store.append_blocking(key_only(name(n))).expect("retry")
        ));
    }
    store.close().expect("close");

    let counts = raw_key_counts(&path);
    let unpacked = counts.get(&b'k').copied().unwrap_or(0);
    let blocks = counts.get(&b'K').copied().unwrap_or(0);
    assert!(unpacked < 264, "{unpacked} keys left unpacked");
    // Blocks of up to 16 keys, split evenly: between 8 and 16 keys each.
    assert!(
        (KEYS / 16..=KEYS / 8).contains(&blocks),
        "{blocks} blocks for {KEYS} keys"
    );

    let store = Store::open(&path, options(64)).expect("reopen");
    for n in 0..KEYS {
        assert!(
            store.idempotency_key(&name(n)).expect("lookup").is_some(),
            "{n}"
        );
    }
    assert!(is_duplicate(
        store.append_blocking(key_only(name(3))).expect("retry")
    ));
    assert!(!is_duplicate(
        store.append_blocking(key_only(name(KEYS))).expect("new")
    ));
    store.close().expect("close");
}

/// A database whose keys were written without packing (a build before it, or packing off) has
/// them all packed by the first walk after an open that packs, however few keys are written
/// after it.
#[test]
fn keys_written_without_packing_are_packed_by_the_first_walk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let store = Store::open(&path, options(u64::MAX)).expect("open");
    for wave in 0..25 {
        let pending: Vec<_> = (wave * 200..(wave + 1) * 200)
            .map(|n| store.append(key_only(name(n))))
            .collect();
        for pending in pending {
            pending.wait().expect("append");
        }
    }
    store.close().expect("close");
    assert_eq!(raw_key_counts(&path).get(&b'K'), None);

    let store = Store::open(&path, Options::default()).expect("reopen");
    let deadline = Instant::now() + TIMEOUT;
    while store.keys_packed() < 5_000 {
        assert!(
            Instant::now() < deadline,
            "{} keys packed",
            store.keys_packed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for n in 0..5_000 {
        assert!(
            store.idempotency_key(&name(n)).expect("lookup").is_some(),
            "{n}"
        );
    }
    store.close().expect("close");
    assert_eq!(raw_key_counts(&path).get(&b'k'), None);
}
