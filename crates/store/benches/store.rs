//! Throughput and memory benchmarks of the store, each against raw sled in the same run.
//!
//! A small custom harness (criterion's per-iteration model does not fit "N concurrent writers for
//! a few seconds" or "peak RSS of a process that replays 1M events"). Run with
//! `cargo bench -p wagate-store`; `WAGATE_BENCH_SECONDS` (default 3) sets each throughput run's
//! length and `WAGATE_BENCH_EVENTS` (default 1,000,000) the replay size. Data goes under cargo's
//! target tmp dir (a real disk, not tmpfs, so fsync costs what it costs).
//!
//! Measured:
//! 1. durable appends/s with 1, 16 and 256 concurrent writers (tokio tasks, one event per append,
//!    each writer on its own stream with an exact expected version, ~200-byte payloads);
//! 2. raw sled with the same durability policy: `apply_batch` of the same number of events per
//!    commit as the store achieved, then `flush` + `fdatasync`; and the naive policy without group
//!    commit (each writer thread: insert, flush, fdatasync);
//! 3. full replay of 1M events (events/s and VmHWM, each in its own child process), on one thread
//!    and with 2 scanner threads, against a raw sled scan + postcard decode of the same
//!    database on one thread.

use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;
use wagate_store::{AppendRequest, ExpectedVersion, NewEvent, Options, Store, StreamId};

const PAYLOAD_BYTES: usize = 200;
const CHILD_ENV: &str = "WAGATE_BENCH_CHILD";

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        let path = PathBuf::from(std::env::var("WAGATE_BENCH_PATH").expect("path"));
        child(&mode, &path);
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument other than that is not supported.
    let seconds: u64 = env_or("WAGATE_BENCH_SECONDS", 3);
    let replay_events: u64 = env_or("WAGATE_BENCH_EVENTS", 1_000_000);
    let run = Duration::from_secs(seconds);
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wagate-store-bench");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("bench dir");

    println!(
        "wagate-store benchmarks ({seconds} s per throughput run, {replay_events} events replayed)"
    );
    println!();
    println!("durable appends (one event per append, flush + fdatasync before the answer)");
    println!(
        "{:>8} {:>14} {:>10} {:>22} {:>8} {:>22}",
        "writers", "wagate ev/s", "ev/commit", "raw sled same batch/s", "ratio", "raw naive ev/s"
    );
    let writer_counts: Vec<usize> = std::env::var("WAGATE_BENCH_WRITERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 16, 256]);
    for writers in writer_counts {
        let dir = root.join(format!("append-{writers}"));
        let (events_per_s, per_commit) = wagate_appends(&dir, writers, run);
        let batch = per_commit.round().max(1.0) as usize;
        // WAGATE_BENCH_RAW=0 skips the baselines (for profiling the store alone).
        let (raw, naive) = if env_or("WAGATE_BENCH_RAW", 1) == 0 {
            (f64::NAN, f64::NAN)
        } else {
            (
                raw_group_commit(&root.join(format!("raw-group-{writers}")), batch, run),
                raw_naive(&root.join(format!("raw-naive-{writers}")), writers, run),
            )
        };
        println!(
            "{writers:>8} {events_per_s:>14.0} {per_commit:>10.1} {raw:>22.0} {:>8.2} {naive:>22.0}",
            events_per_s / raw
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    if replay_events == 0 {
        return;
    }
    println!();
    let replay_dir = root.join("replay");
    let started = Instant::now();
    populate(&replay_dir, replay_events);
    let populate_secs = started.elapsed().as_secs_f64();
    println!(
        "populated {replay_events} events in {populate_secs:.1} s ({:.0} ev/s, 100-event appends from 8 tasks)",
        replay_events as f64 / populate_secs
    );
    println!("full replay (each run in a fresh child process; page cache warm after the first)");
    println!(
        "{:>28} {:>12} {:>14} {:>12}",
        "mode", "events", "events/s", "VmHWM MiB"
    );
    let modes = ["raw-scan", "replay-1-thread", "replay-2-threads"];
    let mut best = [0f64; 3];
    for round in 0..2 {
        for (index, mode) in modes.into_iter().enumerate() {
            let (events, per_s, hwm_kib) = run_child(mode, &replay_dir);
            best[index] = best[index].max(per_s);
            let label = format!("{mode} (run {})", round + 1);
            println!(
                "{label:>28} {events:>12} {per_s:>14.0} {:>12.1}",
                hwm_kib as f64 / 1024.0
            );
        }
    }
    println!(
        "replay / raw scan+decode, best runs: 1 thread {:.2}, 2 scanner threads {:.2}",
        best[1] / best[0],
        best[2] / best[0],
    );
    let _ = std::fs::remove_dir_all(&root);
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn new_event(payload: &[u8]) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "MessageStatusReported".into(),
        schema_version: 1,
        timestamp_ms: 1_700_000_000_000,
        payload: payload.to_vec(),
        origin: None,
    }
}

/// Durable events/s and average requests per group commit.
fn wagate_appends(dir: &Path, writers: usize, run: Duration) -> (f64, f64) {
    let store = Store::open(dir, Options::default()).expect("open");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let before = store.stats();
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|writer| {
                let store = store.clone();
                let stop = Arc::clone(&stop);
                let done = Arc::clone(&done);
                tokio::spawn(async move {
                    let stream = StreamId::new(format!("contact:+{writer}")).expect("stream");
                    let payload = vec![7u8; PAYLOAD_BYTES];
                    let mut version = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let request = AppendRequest::single(
                            stream.clone(),
                            ExpectedVersion::Exact(version),
                            vec![new_event(&payload)],
                        );
                        store.append(request).await.expect("append");
                        version += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        tokio::time::sleep(run).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.expect("writer task");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let after = store.stats();
    store.close().expect("close");
    if std::env::var("WAGATE_BENCH_VERBOSE").is_ok() {
        eprintln!(
            "  writer time: prepare {} ms, apply_batch {} ms, flush {} ms, fdatasync {} ms",
            (after.prepare_us - before.prepare_us) / 1000,
            (after.apply_us - before.apply_us) / 1000,
            (after.flush_us - before.flush_us) / 1000,
            (after.sync_us - before.sync_us) / 1000,
        );
    }
    let commits = (after.commits - before.commits).max(1) as f64;
    let requests = (after.committed_requests - before.committed_requests) as f64;
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        requests / commits,
    )
}

fn raw_db(dir: &Path) -> (sled::Db, File) {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(64 * 1024 * 1024)
        .flush_every_ms(None)
        .open()
        .expect("sled");
    let file = File::open(dir.join("db")).expect("sled log file");
    (db, file)
}

fn raw_value() -> Vec<u8> {
    // About the size of the store's envelope around a 200-byte payload.
    vec![3u8; PAYLOAD_BYTES + 70]
}

/// Raw sled, one writer, `batch` events per commit (the store's achieved batch size):
/// apply_batch of log-only inserts, flush, fdatasync.
fn raw_group_commit(dir: &Path, batch: usize, run: Duration) -> f64 {
    let (db, file) = raw_db(dir);
    let value = raw_value();
    let mut position = 0u64;
    let started = Instant::now();
    while started.elapsed() < run {
        let mut writes = sled::Batch::default();
        for _ in 0..batch {
            position += 1;
            writes.insert(&position.to_be_bytes(), value.clone());
        }
        db.apply_batch(writes).expect("apply");
        db.flush().expect("flush");
        file.sync_data().expect("fdatasync");
    }
    let per_s = position as f64 / started.elapsed().as_secs_f64();
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
    per_s
}

/// Raw sled without group commit: each writer thread inserts, flushes and fdatasyncs.
fn raw_naive(dir: &Path, writers: usize, run: Duration) -> f64 {
    let (db, _) = raw_db(dir);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let db = db.clone();
            let counter = Arc::clone(&counter);
            let file = File::open(dir.join("db")).expect("sled log file");
            std::thread::spawn(move || {
                let value = raw_value();
                while started.elapsed() < run {
                    let key = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    db.insert(key.to_be_bytes(), value.clone()).expect("insert");
                    db.flush().expect("flush");
                    file.sync_data().expect("fdatasync");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer");
    }
    let per_s = counter.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    drop(db);
    let _ = std::fs::remove_dir_all(dir);
    per_s
}

fn populate(dir: &Path, events: u64) {
    let mut options = Options::default();
    if let Some(mib) = std::env::var("WAGATE_BENCH_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        options.cache_capacity_bytes = mib * 1024 * 1024;
    }
    let store = Store::open(dir, options).expect("open");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let tasks = 8u64;
    let per_request = 100u64;
    let requests = events / per_request;
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    let payload = vec![5u8; PAYLOAD_BYTES];
                    let mut request_index = task;
                    while request_index < requests {
                        // 10 streams x 10 events per request, 1,000 streams overall.
                        let mut request = AppendRequest::default();
                        for s in 0..10 {
                            let stream = (request_index * 10 + s) % 1_000;
                            let stream = StreamId::new(format!("contact:+{stream}")).expect("id");
                            let events = (0..10).map(|_| new_event(&payload)).collect();
                            request = request.with_stream(stream, ExpectedVersion::Any, events);
                        }
                        store.append(request).await.expect("append");
                        request_index += tasks;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("populate task");
        }
    });
    if std::env::var("WAGATE_BENCH_VERBOSE").is_ok() {
        let stats = store.stats();
        eprintln!(
            "  populate: {} commits; writer time: prepare {} ms, apply_batch {} ms, flush {} ms, fdatasync {} ms",
            stats.commits,
            stats.prepare_us / 1000,
            stats.apply_us / 1000,
            stats.flush_us / 1000,
            stats.sync_us / 1000,
        );
    }
    store.close().expect("close");
}

/// Runs a replay mode in a fresh process; returns (events, events/s, VmHWM KiB).
fn run_child(mode: &str, path: &Path) -> (u64, f64, u64) {
    let output = Command::new(std::env::current_exe().expect("bench binary"))
        .env(CHILD_ENV, mode)
        .env("WAGATE_BENCH_PATH", path)
        .output()
        .expect("child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "child {mode} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let mut fields = line.split(' ');
    let mut next = || fields.next().expect("field").to_owned();
    (
        next().parse().expect("events"),
        next().parse().expect("rate"),
        next().parse().expect("hwm"),
    )
}

fn child(mode: &str, path: &Path) {
    let (events, elapsed) = match mode {
        "replay-1-thread" | "replay-2-threads" => {
            let options = Options {
                replay_threads: if mode == "replay-1-thread" { 1 } else { 2 },
                ..Options::default()
            };
            let store = Store::open(path, options).expect("open");
            let started = Instant::now();
            let progress = store
                .replay(
                    1,
                    |event| {
                        black_box(&event);
                    },
                    |_| {},
                )
                .expect("replay");
            let elapsed = started.elapsed();
            (progress.events, elapsed)
        }
        "raw-scan" => {
            let (db, _) = raw_db(path);
            let started = Instant::now();
            let mut events = 0u64;
            for item in db.scan_prefix(b"l") {
                let (_, value) = item.expect("scan");
                let event = wagate_store::decode_envelope(&value).expect("decode");
                black_box(&event);
                events += 1;
            }
            (events, started.elapsed())
        }
        other => panic!("unknown child mode {other}"),
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    println!(
        "RESULT {events} {:.0} {hwm_kib}",
        events as f64 / elapsed.as_secs_f64()
    );
}
