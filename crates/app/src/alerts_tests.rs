use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use wagate_domain::decide::RequestReview;
use wagate_domain::{ContactId, Policy};

use super::*;
use crate::clock::FixedClock;
use crate::review::ReviewFilter;

/// Records what it was sent; answers from a script (then `Ok`).
#[derive(Clone, Default)]
struct FakeSink {
    sent: Arc<Mutex<Vec<Alert>>>,
    attempts: Arc<Mutex<u32>>,
    script: Arc<Mutex<VecDeque<SinkError>>>,
}

impl AlertSink for FakeSink {
    fn name(&self) -> &str {
        "fake"
    }

    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        *self.attempts.lock() += 1;
        if let Some(error) = self.script.lock().pop_front() {
            return Err(error);
        }
        self.sent.lock().push(alert.clone());
        Ok(())
    }
}

fn settings() -> OutboxSettings {
    OutboxSettings {
        group_above: 3,
        give_up_after: 3,
        follower: FollowerSettings {
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..FollowerSettings::default()
        },
    }
}

fn hub() -> Hub {
    let clock = Arc::new(FixedClock::new(
        chrono::DateTime::from_timestamp(1_764_000_000, 0).expect("time"),
    ));
    Hub::open_temporary(clock, Policy::default()).expect("hub")
}

async fn request_review(hub: &Hub, n: u32) {
    hub.request_review(
        RequestReview {
            contact: ContactId::parse(&format!("+4179{n:07}")).expect("contact"),
            text: "stop please".into(),
            reason: "free_text_opt_out".into(),
        },
        &format!("key-{n}"),
    )
    .await
    .expect("review requested");
}

/// Runs the outbox until `done` holds of the sink, then stops it.
async fn run_until(hub: &Hub, sink: &FakeSink, done: impl Fn(&FakeSink) -> bool) {
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_outbox(hub.clone(), sink.clone(), settings(), shutdown));
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done(sink) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the outbox got there");
    stop.send(true).expect("stop");
    task.await.expect("join").expect("outbox stopped cleanly");
}

/// Starts an outbox with no checkpoint (it starts at the head) and waits until it saved it.
async fn start(hub: &Hub) {
    run_until(hub, &FakeSink::default(), |_| {
        hub.checkpoint("alerts:fake").expect("checkpoint").is_some()
    })
    .await;
}

#[tokio::test]
async fn each_item_is_alerted_once_and_a_restart_sends_nothing_again() {
    let hub = hub();
    start(&hub).await;
    request_review(&hub, 1).await;
    request_review(&hub, 2).await;
    let sink = FakeSink::default();
    run_until(&hub, &sink, |sink| sink.sent.lock().len() == 2).await;
    let ids: Vec<u64> = sink
        .sent
        .lock()
        .iter()
        .map(|alert| match alert {
            Alert::Raised(item) => item.id,
            other => panic!("{other:?}"),
        })
        .collect();
    let items = hub
        .review_items(ReviewFilter::default())
        .await
        .expect("items");
    assert_eq!(ids, items.iter().map(|item| item.id).collect::<Vec<_>>());
    // A restart: the checkpoint is past both.
    let again = FakeSink::default();
    let head = hub.head_position();
    run_until(&hub, &again, |_| {
        hub.checkpoint("alerts:fake").expect("checkpoint") == Some(head)
    })
    .await;
    assert!(again.sent.lock().is_empty());
}

#[tokio::test]
async fn items_raised_before_the_first_start_are_not_alerted() {
    let hub = hub();
    request_review(&hub, 1).await;
    start(&hub).await;
    request_review(&hub, 2).await;
    let sink = FakeSink::default();
    run_until(&hub, &sink, |sink| !sink.sent.lock().is_empty()).await;
    assert_eq!(sink.sent.lock().len(), 1);
}

#[tokio::test]
async fn a_rate_limited_alert_is_sent_again_after_retry_after_and_earlier_ones_are_not() {
    let hub = hub();
    start(&hub).await;
    request_review(&hub, 1).await;
    request_review(&hub, 2).await;
    let started = std::time::Instant::now();
    let scripted = FakeSink::default();
    // The first alert goes through; the second attempt (the second alert) is a 429.
    struct SecondIsLimited(FakeSink);
    impl AlertSink for SecondIsLimited {
        fn name(&self) -> &str {
            "fake"
        }
        async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
            let attempt = {
                let mut attempts = self.0.attempts.lock();
                *attempts += 1;
                *attempts
            };
            if attempt == 2 {
                return Err(SinkError::RetryAfter(Duration::from_millis(60)));
            }
            self.0.sent.lock().push(alert.clone());
            Ok(())
        }
    }
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_outbox(
        hub.clone(),
        SecondIsLimited(scripted.clone()),
        settings(),
        shutdown,
    ));
    tokio::time::timeout(Duration::from_secs(10), async {
        while scripted.sent.lock().len() < 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("sent");
    stop.send(true).expect("stop");
    task.await.expect("join").expect("stopped");
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(*scripted.attempts.lock(), 3, "1 ok, 1 limited, 1 retried");
    assert_eq!(scripted.sent.lock().len(), 2, "no alert sent twice");
}

#[tokio::test]
async fn a_burst_is_sent_as_one_summary() {
    let hub = hub();
    start(&hub).await;
    for n in 0..10 {
        request_review(&hub, n).await;
    }
    let sink = FakeSink::default();
    let head = hub.head_position();
    run_until(&hub, &sink, |_| {
        hub.checkpoint("alerts:fake").expect("checkpoint") == Some(head)
    })
    .await;
    let sent = sink.sent.lock();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let Alert::Summary { raised, .. } = &sent[0] else {
        panic!("{:?}", sent[0]);
    };
    assert_eq!(raised.get(&ReviewReason::OptOutRequest), Some(&10));
}

#[tokio::test]
async fn a_sink_that_keeps_failing_raises_its_own_item_instead_of_retrying_forever() {
    let hub = hub();
    start(&hub).await;
    request_review(&hub, 1).await;
    let head = hub.head_position();
    let sink = FakeSink {
        script: Arc::new(Mutex::new(
            (0..100)
                .map(|_| SinkError::Transient("503 Service Unavailable".into()))
                .collect(),
        )),
        ..FakeSink::default()
    };
    // The checkpoint passes the alert only once the sink was given up on.
    run_until(&hub, &sink, |_| {
        hub.checkpoint("alerts:fake").expect("checkpoint") >= Some(head)
    })
    .await;
    assert_eq!(
        *sink.attempts.lock(),
        3,
        "given up after give_up_after attempts"
    );
    let items = hub
        .review_items(ReviewFilter::default())
        .await
        .expect("items");
    let item = items
        .iter()
        .find(|item| item.reason == ReviewReason::AlertDeliveryFailed)
        .expect("raised");
    assert!(
        item.detail.starts_with("fake: 3 failures"),
        "{}",
        item.detail
    );
    assert!(sink.sent.lock().is_empty());
}

#[test]
fn sent_and_failed_alerts_are_counted_through_the_metrics_facade() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // A local recorder is per thread: the outbox runs on this thread's runtime.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let hub = hub();
            start(&hub).await;
            request_review(&hub, 1).await;
            request_review(&hub, 2).await;
            let sink = FakeSink::default();
            sink.script.lock().extend([
                SinkError::Transient("503".into()),
                SinkError::RetryAfter(Duration::from_millis(1)),
            ]);
            run_until(&hub, &sink, |sink| sink.sent.lock().len() == 2).await;
        })
    });
    let text = handle.render();
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_owned()
    };
    assert_eq!(value("wagate_alerts_sent_total"), "2");
    assert_eq!(
        value("wagate_alerts_failed_total"),
        "1",
        "a 429 is not a failure"
    );
}
