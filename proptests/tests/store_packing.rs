//! The sled store's packing (`wagate_store`'s `packed` module) against an in-memory log: random
//! appends (random streams, 1–5 events each) interleaved with waits for packing, on a store with
//! a small unpacked tail; after every step, stream reads from random versions with random limits,
//! log reads and stream versions equal the model's. Packing needs 64 durable events beyond the
//! tail to move anything, so cases are a few hundred events long, and the run asserts that it
//! packed.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;
use wagate_store::{
    AppendOutcome, AppendRequest, ExpectedVersion, NewEvent, Options, RecordedEvent, Store,
    StreamId, LOG_BLOCK_EVENTS,
};

const STREAMS: usize = 6;

#[derive(Debug, Clone)]
struct Read {
    stream: usize,
    from_version: u64,
    limit: usize,
    from_position: u64,
    log_limit: usize,
}

#[derive(Debug, Clone)]
enum Step {
    Append {
        stream: usize,
        events: usize,
        read: Read,
    },
    WaitPacked {
        read: Read,
    },
}

#[derive(Debug, Clone)]
struct Case {
    tail: u64,
    step_blocks: u64,
    steps: Vec<Step>,
}

fn read() -> impl Strategy<Value = Read> {
    let limit = prop_oneof![Just(usize::MAX), 0..70usize, 60..200usize];
    (0..STREAMS, 0..150u64, limit.clone(), 0..400u64, limit).prop_map(
        |(stream, from_version, limit, from_position, log_limit)| Read {
            stream,
            from_version,
            limit,
            from_position,
            log_limit,
        },
    )
}

fn step() -> impl Strategy<Value = Step> {
    // Stream 0 is the busy one (a portfolio: an event per message), the rest share the rest.
    let stream = prop_oneof![2 => Just(0usize), 3 => 1..STREAMS];
    prop_oneof![
        12 => (stream, 1..=5usize, read()).prop_map(|(stream, events, read)| Step::Append {
            stream,
            events,
            read
        }),
        1 => read().prop_map(|read| Step::WaitPacked { read }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(0u64), Just(64), Just(100)],
        prop_oneof![Just(1u64), Just(16)],
        prop::collection::vec(step(), 60..110),
    )
        .prop_map(|(tail, step_blocks, steps)| Case {
            tail,
            step_blocks,
            steps,
        })
}

/// Few cases by default (each one fsyncs a hundred appends); `PROPTEST_CASES` raises them.
fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 12;
    }
    config
}

fn stream_id(index: usize) -> StreamId {
    let name = if index == 0 {
        "portfolio:p".to_string()
    } else {
        format!("message:{index}")
    };
    StreamId::new(name).expect("stream id")
}

/// The model: every event in log order, and each stream's events.
#[derive(Default)]
struct Model {
    log: Vec<RecordedEvent>,
    streams: Vec<Vec<RecordedEvent>>,
}

fn slice(events: &[RecordedEvent], from: u64, limit: usize) -> Vec<RecordedEvent> {
    let skip = usize::try_from(from.max(1) - 1).unwrap_or(usize::MAX);
    events.iter().skip(skip).take(limit).cloned().collect()
}

fn check(store: &Store, model: &Model, read: &Read) -> Result<(), TestCaseError> {
    let context = format!("packed {}", store.packed_position());
    let id = stream_id(read.stream);
    let got = store
        .read_stream(&id, read.from_version, read.limit)
        .map_err(|e| TestCaseError::fail(format!("read_stream: {e} ({context})")))?;
    prop_assert_eq!(
        got,
        slice(&model.streams[read.stream], read.from_version, read.limit),
        "read_stream({}, {}, {}) {}",
        id,
        read.from_version,
        read.limit,
        context
    );
    let got = store
        .read_from(read.from_position, read.log_limit)
        .map_err(|e| TestCaseError::fail(format!("read_from: {e} ({context})")))?;
    prop_assert_eq!(
        got,
        slice(&model.log, read.from_position, read.log_limit),
        "read_from({}, {}) {}",
        read.from_position,
        read.log_limit,
        context
    );
    for (index, events) in model.streams.iter().enumerate() {
        let version = store
            .stream_version(&stream_id(index))
            .map_err(|e| TestCaseError::fail(format!("stream_version: {e}")))?;
        prop_assert_eq!(version, events.len() as u64, "version of stream {}", index);
    }
    Ok(())
}

/// Runs one case; returns the packed position it reached.
fn run(case: &Case) -> Result<u64, TestCaseError> {
    let store = Store::open_temporary_with(Options {
        unpacked_tail_events: case.tail,
        pack_step_blocks: case.step_blocks,
        ..Options::default()
    })
    .map_err(|e| TestCaseError::fail(format!("open: {e}")))?;
    let mut model = Model {
        streams: vec![Vec::new(); STREAMS],
        ..Model::default()
    };
    let mut counter = 0u8;
    for step in &case.steps {
        let read = match step {
            Step::Append {
                stream,
                events,
                read,
            } => {
                let id = stream_id(*stream);
                let version = model.streams[*stream].len() as u64;
                let new: Vec<NewEvent> = (0..*events)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        NewEvent {
                            event_id: Uuid::now_v7(),
                            event_type: "PackingProp".into(),
                            schema_version: 1,
                            timestamp_ms: i64::from(counter),
                            payload: vec![counter; usize::from(counter % 7)],
                            origin: None,
                        }
                    })
                    .collect();
                let outcome = store
                    .append_blocking(AppendRequest::single(
                        id.clone(),
                        ExpectedVersion::Exact(version),
                        new.clone(),
                    ))
                    .map_err(|e| TestCaseError::fail(format!("append: {e}")))?;
                let AppendOutcome::Appended(committed) = outcome else {
                    return Err(TestCaseError::fail(format!("append: {outcome:?}")));
                };
                for ((event, position), version) in
                    new.into_iter().zip(committed.positions).zip(version + 1..)
                {
                    prop_assert_eq!(position, model.log.len() as u64 + 1);
                    let recorded = RecordedEvent {
                        position,
                        stream: id.clone(),
                        version,
                        event_id: event.event_id,
                        event_type: event.event_type,
                        schema_version: event.schema_version,
                        timestamp_ms: event.timestamp_ms,
                        payload: event.payload,
                        origin: event.origin,
                    };
                    model.log.push(recorded.clone());
                    model.streams[*stream].push(recorded);
                }
                read
            }
            Step::WaitPacked { read } => {
                let packed = store
                    .wait_packed(Duration::from_secs(10))
                    .map_err(|e| TestCaseError::fail(format!("wait_packed: {e}")))?;
                let due = (model.log.len() as u64).saturating_sub(case.tail) / LOG_BLOCK_EVENTS
                    * LOG_BLOCK_EVENTS;
                prop_assert!(packed >= due, "packed {} of {}", packed, due);
                read
            }
        };
        check(&store, &model, read)?;
    }
    let packed = store
        .wait_packed(Duration::from_secs(10))
        .map_err(|e| TestCaseError::fail(format!("wait_packed: {e}")))?;
    // The whole log and every stream, once more, with everything due packed.
    for stream in 0..STREAMS {
        let read = Read {
            stream,
            from_version: 0,
            limit: usize::MAX,
            from_position: 0,
            log_limit: usize::MAX,
        };
        check(&store, &model, &read)?;
    }
    let report = store
        .verify()
        .map_err(|e| TestCaseError::fail(format!("verify: {e}")))?;
    prop_assert_eq!(report.events, model.log.len() as u64);
    Ok(packed)
}

#[test]
fn packed_store_reads_like_the_model() {
    let mut runner = TestRunner::new(config());
    let packed_total = std::cell::Cell::new(0u64);
    runner
        .run(&case(), |case| {
            let packed = run(&case)?;
            packed_total.set(packed_total.get() + packed);
            Ok(())
        })
        .expect("property");
    // Otherwise the property ran on unpacked stores only and proved nothing about packing.
    assert!(packed_total.get() > 0, "no case packed anything");
}
