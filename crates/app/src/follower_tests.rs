use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use wagate_domain::decide::RecordOptOut;
use wagate_domain::{ContactId, OptOutSource, Policy};

use super::*;
use crate::clock::FixedClock;

fn settings(batch: usize) -> FollowerSettings {
    FollowerSettings {
        batch,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        max_retry_after: Duration::from_millis(50),
        max_attempts: 5,
    }
}

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(
        chrono::DateTime::from_timestamp(1_764_000_000, 0).expect("time"),
    ))
}

/// Appends one event per contact (an opt-out), returning their positions.
async fn append(hub: &Hub, from: u32, count: u32) -> Vec<u64> {
    let mut positions = Vec::new();
    for n in from..from + count {
        positions.extend(
            hub.opt_out(RecordOptOut {
                contact: ContactId::parse(&format!("+4179{n:07}")).expect("contact"),
                source: OptOutSource::Api,
                detail: String::new(),
            })
            .await
            .expect("opt out"),
        );
    }
    positions
}

/// Records the positions it was handed; fails the first `fail` calls.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<u64>>>,
    fail: Arc<Mutex<u32>>,
    retry_after: Option<Duration>,
    /// On failure, claim the first event of the batch was done.
    partial: bool,
}

impl Handler for Recorder {
    async fn handle(&mut self, _hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        let mut fail = self.fail.lock();
        if *fail > 0 {
            *fail -= 1;
            let mut failure = HandlerFailure::new("endpoint down");
            failure.retry_after = self.retry_after;
            if self.partial {
                self.seen.lock().push(events[0].position);
                failure.handled_through = Some(events[0].position);
            }
            return Err(failure);
        }
        self.seen
            .lock()
            .extend(events.iter().map(|event| event.position));
        Ok(())
    }
}

#[tokio::test]
async fn reads_in_bounded_batches_in_log_order() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    let positions = append(&hub, 0, 5).await;
    let mut follower = Follower::in_memory("test", settings(2));
    let mut recorder = Recorder::default();
    assert_eq!(
        follower.step(&hub, &mut recorder).await.expect("step"),
        Step::Advanced {
            to: positions[1],
            more: true
        }
    );
    follower.step(&hub, &mut recorder).await.expect("step");
    assert_eq!(
        follower.step(&hub, &mut recorder).await.expect("step"),
        Step::Advanced {
            to: positions[4],
            more: false
        }
    );
    assert_eq!(
        follower.step(&hub, &mut recorder).await.expect("step"),
        Step::Idle
    );
    assert_eq!(*recorder.seen.lock(), positions);
}

#[tokio::test]
async fn a_failed_batch_is_handed_again_and_nothing_is_skipped() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    let positions = append(&hub, 0, 3).await;
    let mut follower = Follower::durable(&hub, "alerts", settings(10)).expect("follower");
    let mut recorder = Recorder::default();
    *recorder.fail.lock() = 1;
    assert!(matches!(
        follower.step(&hub, &mut recorder).await,
        Err(StepError::Handler(_))
    ));
    assert_eq!(follower.position(), 0);
    assert_eq!(hub.checkpoint("alerts").expect("checkpoint"), None);
    follower.step(&hub, &mut recorder).await.expect("step");
    assert_eq!(*recorder.seen.lock(), positions);
    assert_eq!(
        hub.checkpoint("alerts").expect("checkpoint"),
        Some(positions[2])
    );
}

#[tokio::test]
async fn a_partly_handled_batch_resumes_after_what_was_done() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    let positions = append(&hub, 0, 3).await;
    let mut follower = Follower::durable(&hub, "alerts", settings(10)).expect("follower");
    let mut recorder = Recorder {
        partial: true,
        ..Recorder::default()
    };
    *recorder.fail.lock() = 1;
    assert!(follower.step(&hub, &mut recorder).await.is_err());
    assert_eq!(
        hub.checkpoint("alerts").expect("checkpoint"),
        Some(positions[0])
    );
    follower.step(&hub, &mut recorder).await.expect("step");
    // Each event handed exactly once.
    assert_eq!(*recorder.seen.lock(), positions);
}

#[tokio::test]
async fn a_restart_resumes_after_the_durable_checkpoint_without_repeats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = || {
        let store =
            wagate_store::Store::open(dir.path(), wagate_store::Options::default()).expect("open");
        let hub = Hub::open(Arc::new(store.clone()), clock(), Policy::default()).expect("hub");
        (hub, store)
    };
    let recorder = Recorder::default();
    let first = {
        let (hub, store) = open();
        let first = append(&hub, 0, 3).await;
        let mut follower = Follower::durable(&hub, "alerts", settings(10)).expect("follower");
        follower
            .step(&hub, &mut recorder.clone())
            .await
            .expect("step");
        drop(hub);
        store.close().expect("close");
        first
    };
    let (hub, _store) = open();
    let later = append(&hub, 10, 2).await;
    let mut follower = Follower::durable(&hub, "alerts", settings(10)).expect("follower");
    assert_eq!(follower.position(), first[2]);
    follower
        .step(&hub, &mut recorder.clone())
        .await
        .expect("step");
    let expected: Vec<u64> = first.into_iter().chain(later).collect();
    assert_eq!(*recorder.seen.lock(), expected);
}

#[tokio::test]
async fn run_wakes_on_new_heads_and_stops_on_shutdown() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    let (stop, shutdown) = watch::channel(false);
    let recorder = Recorder::default();
    let follower = Follower::durable(&hub, "live", settings(10)).expect("follower");
    let task = tokio::spawn(follower.run(hub.clone(), recorder.clone(), shutdown));
    let positions = append(&hub, 0, 2).await;
    let mut heads = hub.subscribe();
    // Wait (bounded by the test's own timeout) until the follower saved its checkpoint.
    tokio::time::timeout(Duration::from_secs(10), async {
        while hub.checkpoint("live").expect("checkpoint") != Some(positions[1]) {
            let _ = tokio::time::timeout(Duration::from_millis(20), heads.changed()).await;
        }
    })
    .await
    .expect("the follower caught up");
    stop.send(true).expect("stop");
    task.await.expect("join").expect("stopped cleanly");
    assert_eq!(*recorder.seen.lock(), positions);
}

#[tokio::test]
async fn run_gives_up_after_the_bounded_number_of_failures_without_advancing() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    append(&hub, 0, 1).await;
    let (_stop, shutdown) = watch::channel(false);
    let recorder = Recorder::default();
    *recorder.fail.lock() = u32::MAX;
    let follower = Follower::durable(&hub, "doomed", settings(10)).expect("follower");
    let error = follower
        .run(hub.clone(), recorder.clone(), shutdown)
        .await
        .expect_err("gives up");
    let FollowerError::GaveUp {
        attempts, position, ..
    } = error;
    assert_eq!((attempts, position), (5, 0));
    assert_eq!(hub.checkpoint("doomed").expect("checkpoint"), None);
    assert!(recorder.seen.lock().is_empty());
}

#[test]
fn backoff_doubles_up_to_its_bound() {
    let settings = FollowerSettings {
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        ..FollowerSettings::default()
    };
    let delays: Vec<u128> = (1..=6)
        .map(|failures| settings.backoff(failures).as_millis())
        .collect();
    assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(settings.backoff(u32::MAX), Duration::from_secs(1));
}

#[tokio::test]
async fn a_handlers_retry_after_is_waited_for_even_beyond_the_backoff() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    let positions = append(&hub, 0, 1).await;
    let (stop, shutdown) = watch::channel(false);
    let recorder = Recorder {
        retry_after: Some(Duration::from_millis(40)),
        ..Recorder::default()
    };
    *recorder.fail.lock() = 1;
    let follower = Follower::durable(&hub, "polite", settings(10)).expect("follower");
    let started = tokio::time::Instant::now();
    let task = tokio::spawn(follower.run(hub.clone(), recorder.clone(), shutdown));
    while recorder.seen.lock().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The backoff alone would have been 1 ms; the handler asked for 40.
    assert!(started.elapsed() >= Duration::from_millis(40));
    stop.send(true).expect("stop");
    task.await.expect("join").expect("stopped");
    assert_eq!(*recorder.seen.lock(), positions);
}

/// Takes only the events of one type; records the positions it was handed.
struct Selective {
    wanted: &'static str,
    seen: Vec<u64>,
}

impl Handler for Selective {
    fn accepts(&self, event_type: &str) -> bool {
        event_type == self.wanted
    }

    async fn handle(&mut self, _hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        assert!(
            events
                .iter()
                .all(|event| event.event.type_name() == self.wanted),
            "only the wanted type is handed over"
        );
        self.seen.extend(events.iter().map(|event| event.position));
        Ok(())
    }
}

#[tokio::test]
async fn a_selective_handler_sees_only_its_types_and_the_checkpoint_moves_past_the_rest() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    let positions = append(&hub, 0, 3).await;
    let opted_out = hub.events_after(0, 1).expect("read")[0].event.type_name();
    let mut follower = Follower::in_memory("test", settings(10));
    let mut none = Selective {
        wanted: "NoSuchEvent",
        seen: Vec::new(),
    };
    assert_eq!(
        follower.step(&hub, &mut none).await.expect("step"),
        Step::Advanced {
            to: positions[2],
            more: false
        }
    );
    assert!(none.seen.is_empty());
    assert_eq!(follower.position(), positions[2]);
    let later = append(&hub, 3, 2).await;
    let mut some = Selective {
        wanted: opted_out,
        seen: Vec::new(),
    };
    follower.step(&hub, &mut some).await.expect("step");
    assert_eq!(some.seen, later);
}

#[tokio::test]
async fn a_follower_started_after_a_position_reads_only_what_follows_it() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    let positions = append(&hub, 0, 4).await;
    let mut follower = Follower::in_memory_after("test", positions[1], settings(10));
    let mut recorder = Recorder::default();
    follower.step(&hub, &mut recorder).await.expect("step");
    assert_eq!(*recorder.seen.lock(), positions[2..].to_vec());
}

#[tokio::test]
async fn a_read_gap_holds_the_next_read_and_shutdown_cuts_it_short() {
    let hub = Hub::open_temporary(clock(), Policy::default()).expect("hub");
    let (stop, shutdown) = watch::channel(false);
    let recorder = Recorder::default();
    let follower =
        Follower::in_memory("gapped", settings(10)).with_read_gap(Duration::from_secs(3600));
    let first = append(&hub, 0, 1).await;
    let task = tokio::spawn(follower.run(hub.clone(), recorder.clone(), shutdown));
    tokio::time::timeout(Duration::from_secs(10), async {
        while *recorder.seen.lock() != first {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first read");
    // Landed inside the gap: not read before it ends (an hour), nor after the shutdown.
    append(&hub, 1, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the shutdown ends the gap")
        .expect("join")
        .expect("stopped cleanly");
    assert_eq!(*recorder.seen.lock(), first);
}
