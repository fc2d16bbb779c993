use std::collections::VecDeque;

use parking_lot::Mutex;
use wagate_domain::decide::{RecordOptIn, RecordOptOut};
use wagate_domain::{Actor, ContactId, OptInSource, OptOutSource, Policy, Role};

use super::*;
use crate::clock::FixedClock;
use crate::review::ReviewFilter;

/// Records (position, kind) of what it took; answers from a script first.
#[derive(Default)]
struct FakeTransport {
    taken: Mutex<Vec<(u64, OutgoingEventKind)>>,
    attempts: Mutex<u32>,
    script: Mutex<VecDeque<Reply>>,
    /// While set, every attempt is answered 503.
    failing: std::sync::atomic::AtomicBool,
}

impl EndpointTransport for FakeTransport {
    async fn deliver(&self, _endpoint: &Endpoint, secret: &str, delivery: &Delivery<'_>) -> Reply {
        assert!(secret.starts_with("whsec_"));
        *self.attempts.lock() += 1;
        if let Some(reply) = self.script.lock().pop_front() {
            return reply;
        }
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Answer::Status(503).into();
        }
        self.taken
            .lock()
            .push((delivery.event.position, delivery.kind));
        Answer::Status(204).into()
    }
}

fn settings() -> DeliverySettings {
    DeliverySettings {
        raise_after: 3,
        watch_every: Duration::from_millis(5),
        disable_after: chrono::TimeDelta::days(3),
        keep_attempts: DELIVERY_LOG_KEEP,
        follower: FollowerSettings {
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..DeliverySettings::default().follower
        },
    }
}

fn hub() -> Hub {
    hub_with_clock().0
}

fn hub_with_clock() -> (Hub, FixedClock) {
    let clock = FixedClock::new(chrono::DateTime::from_timestamp(1_764_000_000, 0).expect("time"));
    let hub = Hub::open_temporary(Arc::new(clock.clone()), Policy::default())
        .expect("hub")
        .acting(Actor::token(Role::Operator, "ops"));
    (hub, clock)
}

async fn wait(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn contact(n: u32) -> ContactId {
    ContactId::parse(&format!("+4179{n:07}")).expect("contact")
}

/// Publishes the consent wording test opt-ins cite (opt-ins must cite a published one); the
/// same text again is the same version, so calling it twice is harmless. Answers the version.
async fn published_wording(hub: &Hub) -> String {
    hub.publish_wording(wagate_domain::consent::PublishWording {
        business: "Acme Homes".into(),
        language: "en".into(),
        text: "I agree to receive WhatsApp messages from Acme Homes.".into(),
    })
    .await
    .expect("publish wording")
    .0
    .version
}

async fn opt_in(hub: &Hub, n: u32) -> u64 {
    let wording_version = published_wording(hub).await;
    hub.opt_in(RecordOptIn {
        contact: contact(n),
        source: OptInSource::WebForm,
        evidence: "form".into(),
        recorded_by: "test".into(),
        wording_version,
        evidence_at: None,
    })
    .await
    .expect("opt in")[0]
}

async fn opt_out(hub: &Hub, n: u32) -> u64 {
    hub.opt_out(RecordOptOut {
        contact: contact(n),
        source: OptOutSource::Api,
        detail: "stop".into(),
    })
    .await
    .expect("opt out")[0]
}

/// Runs the deliveries until `done` holds, then stops them.
async fn run_until(
    hub: &Hub,
    transport: &Arc<FakeTransport>,
    done: impl Fn(&FakeTransport) -> bool,
) {
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_deliveries(
        hub.clone(),
        Arc::clone(transport),
        settings(),
        shutdown,
    ));
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done(transport) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the deliveries got there");
    stop.send(true).expect("stop");
    task.await.expect("join");
}

#[tokio::test]
async fn only_the_kinds_asked_for_after_the_registration_are_delivered_in_order() {
    let hub = hub();
    opt_out(&hub, 0).await; // before the registration: not delivered
    let (endpoint, secret) = hub
        .register_endpoint("http://127.0.0.1:9/hook", &["opted_out".into()])
        .await
        .expect("registered");
    assert_eq!(endpoint.registered_by, hub.actor().cloned());
    assert_eq!(
        hub.endpoint_secret(&endpoint.id).await.expect("secret"),
        secret
    );
    let first = opt_out(&hub, 1).await;
    opt_in(&hub, 2).await; // not asked for
    let second = opt_out(&hub, 3).await;
    let transport = Arc::new(FakeTransport::default());
    run_until(&hub, &transport, |t| t.taken.lock().len() >= 2).await;
    assert_eq!(
        *transport.taken.lock(),
        vec![
            (first, OutgoingEventKind::OptedOut),
            (second, OutgoingEventKind::OptedOut)
        ]
    );
    // A restart delivers nothing again.
    let again = Arc::new(FakeTransport::default());
    let name = checkpoint_name(&endpoint);
    let head = hub.head_position();
    run_until(&hub, &again, |_| {
        hub.checkpoint(&name).expect("checkpoint") == Some(head)
    })
    .await;
    assert!(again.taken.lock().is_empty());
}

#[tokio::test]
async fn a_failing_receiver_raises_one_item_and_then_gets_everything_in_order() {
    let hub = hub();
    let (endpoint, _) = hub
        .register_endpoint(
            "https://agent.example.com/hook",
            &["opted_in".into(), "opted_out".into()],
        )
        .await
        .expect("registered");
    let positions = vec![
        opt_in(&hub, 1).await,
        opt_out(&hub, 1).await,
        opt_in(&hub, 2).await,
    ];
    let transport = Arc::new(FakeTransport::default());
    transport.script.lock().extend([
        Answer::Status(503).into(),
        Reply {
            answer: Answer::Status(429),
            retry_after: Some(Duration::from_millis(3)),
        },
        Answer::Status(500).into(),
        Answer::Transport("connection refused".into()).into(),
    ]);
    run_until(&hub, &transport, |t| t.taken.lock().len() >= 3).await;
    let taken: Vec<u64> = transport.taken.lock().iter().map(|(p, _)| *p).collect();
    assert_eq!(taken, positions);
    assert_eq!(*transport.attempts.lock(), 4 + 3);
    let items = hub
        .review_items(ReviewFilter::default())
        .await
        .expect("items");
    let failing: Vec<_> = items
        .iter()
        .filter(|item| item.detail.contains(endpoint.id.as_str()))
        .collect();
    assert_eq!(failing.len(), 1, "{items:?}");
    assert_eq!(failing[0].reason, ReviewReason::AlertDeliveryFailed);
}

#[tokio::test]
async fn a_deleted_endpoint_gets_nothing_more() {
    let hub = hub();
    let (endpoint, _) = hub
        .register_endpoint("https://agent.example.com/hook", &["opted_out".into()])
        .await
        .expect("registered");
    let deleted = hub.delete_endpoint(&endpoint.id).await.expect("deleted");
    assert!(deleted.deleted_at.is_some());
    opt_out(&hub, 1).await;
    let transport = Arc::new(FakeTransport::default());
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_deliveries(
        hub.clone(),
        Arc::clone(&transport),
        settings(),
        shutdown,
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.send(true).expect("stop");
    task.await.expect("join");
    assert!(transport.taken.lock().is_empty());
    assert!(matches!(
        hub.delete_endpoint(&wagate_domain::EndpointId::from_bytes([9; 16]))
            .await,
        Err(AppError::NotFound { .. })
    ));
}

#[tokio::test]
async fn review_items_are_delivered_with_the_item_only_to_endpoints_that_asked() {
    let hub = hub();
    hub.register_endpoint("https://a.example.com/hook", &["review_item_raised".into()])
        .await
        .expect("registered");
    let item = hub
        .raise_review(
            ReviewReason::WebhookSilence,
            ReviewSubject::default(),
            "quiet",
        )
        .await
        .expect("raised");
    let raised = hub.events_after(item - 1, 1).expect("read");
    let kinds = kind_of(&hub, &raised[0], true).expect("kinds");
    assert_eq!(kinds.len(), 1);
    assert_eq!(kinds[0].0, OutgoingEventKind::ReviewItemRaised);
    assert_eq!(kinds[0].1.as_ref().map(|item| item.id), Some(item));
    assert!(kind_of(&hub, &raised[0], false).expect("kinds").is_empty());
    opt_out(&hub, 1).await; // not asked for
    let transport = Arc::new(FakeTransport::default());
    run_until(&hub, &transport, |t| !t.taken.lock().is_empty()).await;
    assert_eq!(
        *transport.taken.lock(),
        vec![(item, OutgoingEventKind::ReviewItemRaised)]
    );
}

#[tokio::test]
async fn an_endpoint_failing_past_the_threshold_is_disabled_and_a_retry_resumes_in_order() {
    let (hub, clock) = hub_with_clock();
    let (endpoint, _) = hub
        .register_endpoint("https://agent.example.com/hook", &["opted_in".into()])
        .await
        .expect("registered");
    let mut expected = vec![opt_in(&hub, 1).await, opt_in(&hub, 2).await];
    let transport = Arc::new(FakeTransport::default());
    transport
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_deliveries(
        hub.clone(),
        Arc::clone(&transport),
        settings(),
        shutdown,
    ));
    wait("failed attempts", || *transport.attempts.lock() >= 4).await;
    // Failing, but not yet for 3 days: still active.
    let health = hub.delivery_health(&endpoint.id).expect("health");
    assert_eq!(health.failing_since, Some(hub.now()));
    assert!(hub.endpoint(&endpoint.id).expect("endpoint").is_live());
    clock.advance(chrono::TimeDelta::days(3));
    wait("the disable", || {
        hub.endpoint(&endpoint.id)
            .expect("endpoint")
            .disabled_at
            .is_some()
    })
    .await;
    let disabled = hub.endpoint(&endpoint.id).expect("endpoint");
    assert_eq!(disabled.state(), "disabled");
    assert!(disabled
        .disabled_reason
        .as_deref()
        .is_some_and(|reason| reason.contains("3 days") && reason.contains("answered 503")));
    // One webhook_endpoint_disabled item, naming the endpoint.
    let items = hub
        .review_items(ReviewFilter::default())
        .await
        .expect("items");
    let disabled_items: Vec<_> = items
        .iter()
        .filter(|item| item.reason == ReviewReason::WebhookEndpointDisabled)
        .collect();
    assert_eq!(disabled_items.len(), 1, "{items:?}");
    assert!(disabled_items[0].detail.contains(endpoint.id.as_str()));
    // The follower stopped: no more attempts.
    let attempts = *transport.attempts.lock();
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(*transport.attempts.lock(), attempts);
    // The log shows the failures, newest first, all of the first event, numbered.
    let log = hub.deliveries(&endpoint.id, 100).expect("deliveries");
    assert_eq!(log.len() as u32, attempts);
    assert!(log
        .iter()
        .all(|a| a.position == expected[0] && !a.acknowledged()));
    assert_eq!(log[0].attempt, attempts);
    assert_eq!(log[log.len() - 1].attempt, 1);
    assert_eq!(log[0].answer, Answer::Status(503));

    // Events while disabled are not lost.
    expected.push(opt_in(&hub, 3).await);
    transport
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let enabled = hub.retry_endpoint(&endpoint.id).await.expect("retry");
    assert!(enabled.is_live());
    assert_eq!(enabled.enabled_by, hub.actor().cloned());
    wait("every event", || {
        transport.taken.lock().len() >= expected.len()
    })
    .await;
    let taken: Vec<u64> = transport.taken.lock().iter().map(|(p, _)| *p).collect();
    assert_eq!(taken, expected);
    wait("the recorded success", || {
        hub.delivery_health(&endpoint.id)
            .expect("health")
            .failing_since
            .is_none()
    })
    .await;
    let health = hub.delivery_health(&endpoint.id).expect("health");
    assert_eq!(health.last_success, Some(hub.now()));
    stop.send(true).expect("stop");
    task.await.expect("join");
    // A deleted endpoint cannot be retried.
    hub.delete_endpoint(&endpoint.id).await.expect("deleted");
    assert!(matches!(
        hub.retry_endpoint(&endpoint.id).await,
        Err(AppError::Invalid { .. })
    ));
}

#[tokio::test]
async fn a_retry_cuts_the_backoff_of_a_live_endpoint() {
    let hub = hub();
    let (endpoint, _) = hub
        .register_endpoint("https://agent.example.com/hook", &["opted_in".into()])
        .await
        .expect("registered");
    let position = opt_in(&hub, 1).await;
    let transport = Arc::new(FakeTransport::default());
    transport
        .script
        .lock()
        .push_back(Answer::Status(500).into());
    let slow = DeliverySettings {
        follower: FollowerSettings {
            // Without the retry, the second attempt would come a minute later.
            min_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(60),
            ..settings().follower
        },
        ..settings()
    };
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(run_deliveries(
        hub.clone(),
        Arc::clone(&transport),
        slow,
        shutdown,
    ));
    wait("the first failure", || *transport.attempts.lock() >= 1).await;
    hub.retry_endpoint(&endpoint.id).await.expect("retry");
    wait("the delivery", || !transport.taken.lock().is_empty()).await;
    assert_eq!(transport.taken.lock()[0].0, position);
    // The success is recorded once its answer is back.
    wait("the recorded success", || {
        hub.deliveries(&endpoint.id, 10).expect("log").len() == 2
    })
    .await;
    let log = hub.deliveries(&endpoint.id, 10).expect("log");
    assert_eq!(log.iter().map(|a| a.attempt).collect::<Vec<_>>(), [2, 1]);
    stop.send(true).expect("stop");
    task.await.expect("join");
}
