//! The async driver against a real in-process hub (sled store in a temporary directory) and a
//! scripted provider. Time is the system clock with the policy's delays shrunk to milliseconds;
//! assertions are about what happened, never about how long it took (waits are bounded
//! generously only so a bug fails instead of hanging).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use wagate_app::{Hub, SendOptions, SendRequest, SystemClock};
use wagate_dispatch::driver::BoxFuture;
use wagate_dispatch::{
    run, ClaimAnswer, ClaimedIntent, Config, DriverOptions, HubAnswer, HubError, HubPort,
    Providers, RateLimit, RunReport, Snapshot,
};
use wagate_domain::decide::{
    RecordOptIn, RecordOptOut, RecordOutcome, RegisterSender, RegisterTemplate,
};
use wagate_domain::{
    ApprovalStatus, ContactId, DispatchPhase, Event, MessageEvent, MessageId, MessageStatus,
    OptInSource, OptOutSource, PhoneNumber, Policy, PortfolioId, ProviderKind, ProviderMessageRef,
    SendContent, TemplateCategory, TemplateId, TwilioSid, WhatsAppAddress,
};
use wagate_providers::{
    OutboundContent, OutboundRequest, Provider, SendAccepted, SendError, SendFuture, Sender,
};
use wagate_store::Store;

const SENDER: &str = "whatsapp:+15550001111";
const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";
const CONTACT: &str = "+41790000001";

/// What the scripted provider does with one call.
#[derive(Debug, Clone)]
enum Script {
    Accept,
    Reject(u32),
    /// Waits for `release` before accepting.
    Hold,
}

#[derive(Debug, Default)]
struct FakeProvider {
    script: Mutex<VecDeque<Script>>,
    calls: Mutex<Vec<OutboundRequest>>,
    release: Notify,
    sids: Mutex<u64>,
}

impl FakeProvider {
    fn new(script: impl IntoIterator<Item = Script>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into_iter().collect()),
            ..Self::default()
        })
    }

    fn call_count(&self) -> usize {
        self.calls.lock().expect("calls lock").len()
    }

    fn calls(&self) -> Vec<OutboundRequest> {
        self.calls.lock().expect("calls lock").clone()
    }

    fn accepted(&self) -> SendAccepted {
        let mut sids = self.sids.lock().expect("sids lock");
        *sids += 1;
        let sid = TwilioSid::parse(&format!("SM{:032x}", *sids)).expect("sid");
        SendAccepted {
            provider_message_id: ProviderMessageRef::Twilio(sid),
            status: Some(MessageStatus::Queued),
            http_status: 201,
            recipient: None,
        }
    }
}

impl Provider for FakeProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Sandbox
    }

    fn send<'a>(&'a self, request: &'a OutboundRequest) -> SendFuture<'a> {
        Box::pin(async move {
            self.calls.lock().expect("calls lock").push(request.clone());
            let step = self
                .script
                .lock()
                .expect("script lock")
                .pop_front()
                .unwrap_or(Script::Accept);
            match step {
                Script::Accept => Ok(self.accepted()),
                Script::Hold => {
                    self.release.notified().await;
                    Ok(self.accepted())
                }
                Script::Reject(code) => Err(SendError::Rejected {
                    provider: ProviderKind::Sandbox,
                    http_status: if code == 20429 { 429 } else { 400 },
                    code: Some(code),
                    message: format!("error {code}"),
                    details: None,
                    reference: None,
                }),
            }
        })
    }
}

fn sender() -> WhatsAppAddress {
    WhatsAppAddress::parse(SENDER).expect("sender")
}

fn contact() -> ContactId {
    ContactId::Phone(PhoneNumber::parse(CONTACT).expect("contact"))
}

fn template() -> TemplateId {
    TemplateId::parse(TEMPLATE).expect("template")
}

/// The retry backoff is 10 ms and the in-doubt timeout 200 ms.
fn policy() -> Policy {
    Policy {
        retry_backoff_base: TimeDelta::milliseconds(10),
        in_doubt_timeout: TimeDelta::milliseconds(200),
        ..Policy::default()
    }
}

/// A hub with an authorized sandbox sender, an approved template and an opted-in contact.
async fn hub() -> Hub {
    let store = Store::open_temporary().expect("temporary store");
    let hub = Hub::open(Arc::new(store), Arc::new(SystemClock), policy()).expect("hub");
    prepare(&hub).await;
    hub
}

async fn prepare(hub: &Hub) {
    hub.register_sender(RegisterSender {
        sender: sender(),
        provider: ProviderKind::Sandbox,
        portfolio: PortfolioId::parse("default").expect("portfolio"),
        rate: Default::default(),
        meta_phone_number_id: None,
    })
    .await
    .expect("register sender");
    hub.authorize_sender(&sender(), "ops@example.com")
        .await
        .expect("authorize");
    hub.register_template(RegisterTemplate {
        template: template(),
        name: "viewing_reminder".into(),
        language: "en".into(),
        category: TemplateCategory::Utility,
        placeholders: vec!["1".into()],
    })
    .await
    .expect("register template");
    hub.set_template_status(&template(), ApprovalStatus::Approved, "approved")
        .await
        .expect("approve");
    let wording_version = published_wording(hub).await;
    hub.opt_in(RecordOptIn {
        contact: contact(),
        source: OptInSource::WebForm,
        evidence: "https://example.com/forms/1".into(),
        recorded_by: "agent".into(),
        wording_version,
        evidence_at: None,
    })
    .await
    .expect("opt in");
}

/// Publishes the consent wording the opt-ins cite (they must cite a published one); the same
/// text again is the same version. Answers the version.
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

async fn send(hub: &Hub) -> MessageId {
    let variables: BTreeMap<String, String> = [("1".to_owned(), "Lea".to_owned())].into();
    let request = SendRequest {
        to: CONTACT.into(),
        sender: None,
        workflow: Some("appointment_scheduling".into()),
        content: SendContent::Template {
            media: Vec::new(),
            template: template(),
            variables,
        },
    };
    hub.send(request, SendOptions::default())
        .await
        .expect("send allowed")
        .message_id
}

/// The machine's configuration from the hub's own policy (as `wagate serve` does it).
fn config(hub: &Hub) -> Config {
    Config {
        hub_retry_delay: TimeDelta::milliseconds(10),
        jitter_max: TimeDelta::milliseconds(5),
        pair_limit: None,
        sender_limit_default: Some(RateLimit::per_second(1000)),
        ..Config::from_policy(hub.policy(), 7)
    }
}

/// The driver, running until the returned sender is used (or dropped).
fn start(
    hub: &Hub,
    provider: Arc<FakeProvider>,
    config: Config,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<RunReport>) {
    let options = DriverOptions {
        poll_interval: Duration::from_millis(50),
        poll_gap_min: Duration::from_millis(10),
    };
    start_with(hub, provider, config, options)
}

fn start_with(
    hub: &Hub,
    provider: Arc<FakeProvider>,
    config: Config,
    options: DriverOptions,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<RunReport>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let providers = Providers::new().with(ProviderKind::Sandbox, provider);
    let handle = tokio::spawn(run(
        Arc::new(hub.clone()),
        providers,
        config,
        options,
        Arc::new(SystemClock),
        async move {
            let _ = stopped.await;
        },
    ));
    let handle =
        tokio::spawn(async move { handle.await.expect("driver task").expect("driver ran") });
    (stop, handle)
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, done: impl FnMut() -> bool) {
    until_within(what, Duration::from_secs(20), done).await;
}

async fn until_within(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(within, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

fn phase(hub: &Hub, id: MessageId) -> DispatchPhase {
    hub.message(id).expect("message").state.phase()
}

fn history(hub: &Hub, id: MessageId) -> Vec<Event> {
    hub.message(id)
        .expect("message")
        .history
        .into_iter()
        .map(|entry| entry.event)
        .collect()
}

async fn stop(
    stop: oneshot::Sender<()>,
    handle: impl Future<Output = Result<RunReport, tokio::task::JoinError>>,
) -> RunReport {
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("the driver stops")
        .expect("driver task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_an_allowed_template_once_and_records_it() {
    let hub = hub().await;
    let provider = FakeProvider::new([]);
    let (stopper, handle) = start(&hub, Arc::clone(&provider), config(&hub));
    let id = send(&hub).await;
    until("the outcome", || phase(&hub, id) == DispatchPhase::Done).await;
    let report = stop(stopper, handle).await;

    let calls = provider.calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.message_id, id);
    assert_eq!(call.from, Sender::Number(sender().number().clone()));
    assert_eq!(call.to, PhoneNumber::parse(CONTACT).expect("contact"));
    let OutboundContent::Template(content) = &call.content else {
        panic!("a template send: {call:?}");
    };
    assert_eq!(content.template, template());
    assert_eq!(content.language.as_deref(), Some("en"));
    assert_eq!(content.variables, [("1".to_owned(), "Lea".to_owned())]);
    assert!(history(&hub, id).iter().any(|event| matches!(
        event,
        Event::Message(MessageEvent::DispatchSucceeded { attempt: 1, .. })
    )));
    assert_eq!(report.provider_calls, 1);
    // The store keeps the last processed position: one below where the dispatcher resumes.
    let saved = hub
        .checkpoint(wagate_dispatch::CHECKPOINT_NAME)
        .expect("checkpoint")
        .map(|processed| processed + 1);
    assert_eq!(saved, report.checkpoint);
    assert!(
        saved.is_some_and(|position| position > 0),
        "saved {saved:?}, report {report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_a_retryable_failure_and_never_a_permanent_one() {
    let hub = hub().await;
    let provider =
        FakeProvider::new([Script::Reject(20429), Script::Accept, Script::Reject(63003)]);
    let (stopper, handle) = start(&hub, Arc::clone(&provider), config(&hub));
    let retried = send(&hub).await;
    until("the retry", || phase(&hub, retried) == DispatchPhase::Done).await;
    let failed = send(&hub).await;
    until("the failure", || phase(&hub, failed) == DispatchPhase::Done).await;
    stop(stopper, handle).await;

    let calls: Vec<MessageId> = provider
        .calls()
        .iter()
        .map(|call| call.message_id)
        .collect();
    assert_eq!(calls, [retried, retried, failed]);
    let state = hub.message(failed).expect("message").state;
    assert_eq!(state.status, MessageStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_before_the_claim_cancels_the_send() {
    let hub = hub().await;
    let id = send(&hub).await;
    hub.opt_out(RecordOptOut {
        contact: contact(),
        source: OptOutSource::Keyword,
        detail: "STOP".into(),
    })
    .await
    .expect("opt out");
    let provider = FakeProvider::new([]);
    let (stopper, handle) = start(&hub, Arc::clone(&provider), config(&hub));
    until("the refusal", || phase(&hub, id) == DispatchPhase::Done).await;
    stop(stopper, handle).await;
    assert!(provider.calls().is_empty());
    let state = hub.message(id).expect("message").state;
    assert_eq!(state.status, MessageStatus::Canceled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_claim_from_before_a_restart_is_never_sent_and_expires() {
    let hub = hub().await;
    let id = send(&hub).await;
    // A dispatcher claimed it and died before calling or recording anything.
    hub.claim(id).await.expect("claimed");
    let provider = FakeProvider::new([]);
    let (stopper, handle) = start(&hub, Arc::clone(&provider), config(&hub));
    until("the expiry", || phase(&hub, id) == DispatchPhase::Done).await;
    let report = stop(stopper, handle).await;
    assert!(
        provider.calls().is_empty(),
        "an in-doubt claim is never sent"
    );
    assert_eq!(report.expiries, 1);
    assert!(history(&hub, id)
        .iter()
        .any(|event| matches!(event, Event::Message(MessageEvent::InDoubtExpired { .. }))));
    let state = hub.message(id).expect("message").state;
    assert_eq!(state.status, MessageStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_call_in_flight_and_records_it() {
    let hub = hub().await;
    let provider = FakeProvider::new([Script::Hold]);
    let (stopper, handle) = start(&hub, Arc::clone(&provider), config(&hub));
    let id = send(&hub).await;
    until("the call", || provider.call_count() == 1).await;
    let _ = stopper.send(());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!handle.is_finished(), "a call is still in flight");
    // A message sent during shutdown is not claimed.
    let later = send(&hub).await;
    provider.release.notify_one();
    let report = tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("the driver stops")
        .expect("driver task");
    assert_eq!(report.provider_calls, 1);
    assert_eq!(phase(&hub, id), DispatchPhase::Done);
    assert!(matches!(
        phase(&hub, later),
        DispatchPhase::Pending {
            next_attempt: 1,
            ..
        }
    ));
}

/// The in-process hub with its head signal and its incremental read taken away: only the
/// follower of new intents ([`HubPort::follow_intents`]) can tell the driver about a message
/// sent after its first full list.
struct FollowerOnly(Hub);

impl HubPort for FollowerOnly {
    fn pending(&self) -> BoxFuture<'_, Result<Snapshot, HubError>> {
        HubPort::pending(&self.0)
    }
    fn intents_since(&self, _from: u64) -> BoxFuture<'_, Result<Snapshot, HubError>> {
        Box::pin(async { Err(HubError::Unavailable("not offered in this test".into())) })
    }
    fn claim(&self, message_id: MessageId) -> BoxFuture<'_, ClaimAnswer<ClaimedIntent>> {
        HubPort::claim(&self.0, message_id)
    }
    fn record_outcome(&self, command: RecordOutcome) -> BoxFuture<'_, HubAnswer> {
        HubPort::record_outcome(&self.0, command)
    }
    fn expire_in_doubt(&self, message_id: MessageId) -> BoxFuture<'_, HubAnswer> {
        HubPort::expire_in_doubt(&self.0, message_id)
    }
    fn checkpoint(&self) -> BoxFuture<'_, Result<u64, HubError>> {
        HubPort::checkpoint(&self.0)
    }
    fn save_checkpoint(&self, position: u64) -> BoxFuture<'_, Result<(), HubError>> {
        HubPort::save_checkpoint(&self.0, position)
    }
    fn changes(&self) -> Option<watch::Receiver<u64>> {
        None
    }
    fn follow_intents(
        &self,
        after: u64,
        sink: mpsc::UnboundedSender<Snapshot>,
        stop: watch::Receiver<bool>,
    ) -> Option<BoxFuture<'static, ()>> {
        HubPort::follow_intents(&self.0, after, sink, stop)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_intents_reach_the_machine_through_the_hubs_follower() {
    let hub = hub().await;
    let before = send(&hub).await;
    let provider = FakeProvider::new([]);
    let (stop_driver, stopped) = oneshot::channel::<()>();
    // No second full list during the test: the first one finds `before`, the follower the rest.
    let options = DriverOptions {
        poll_interval: Duration::from_secs(3600),
        poll_gap_min: Duration::from_millis(10),
    };
    let handle = tokio::spawn(run(
        Arc::new(FollowerOnly(hub.clone())),
        Providers::new().with(
            ProviderKind::Sandbox,
            Arc::clone(&provider) as Arc<dyn Provider>,
        ),
        config(&hub),
        options,
        Arc::new(SystemClock),
        async move {
            let _ = stopped.await;
        },
    ));
    until("the first message", || {
        phase(&hub, before) == DispatchPhase::Done
    })
    .await;
    let after: Vec<MessageId> = [send(&hub).await, send(&hub).await].into();
    until("the later messages", || {
        after
            .iter()
            .all(|id| phase(&hub, *id) == DispatchPhase::Done)
    })
    .await;
    let _ = stop_driver.send(());
    let report = tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("the driver stops")
        .expect("driver task")
        .expect("driver ran");
    assert_eq!(provider.call_count(), 3, "each message sent once");
    assert_eq!(report.provider_calls, 3);
}

/// The measurement's hub: on sled, or on the PostgreSQL database `WAGATE_BENCH_STORE_URL` names
/// (an empty one; `just load-pg` starts a private server and sets it).
async fn measured_hub() -> Hub {
    let Ok(url) = std::env::var("WAGATE_BENCH_STORE_URL") else {
        return hub().await;
    };
    let log = wagate_store_postgres::PgLog::open(&url, wagate_store_postgres::PgOptions::default())
        .expect("the PostgreSQL log of WAGATE_BENCH_STORE_URL");
    println!("store: PostgreSQL at {}", log.target());
    let hub = Hub::open(Arc::new(log), Arc::new(SystemClock), policy()).expect("hub");
    prepare(&hub).await;
    hub
}

/// Not a test: a measurement (`cargo test --release -p wagate-dispatch --test driver --
/// --ignored --nocapture`). Unthrottled dispatch of queued messages through the in-process
/// hub (sled, durable appends, or PostgreSQL with `WAGATE_BENCH_STORE_URL`) and a zero-latency
/// provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn measure_unthrottled_dispatch_rate() {
    let hub = measured_hub().await;
    let count = 5_000;
    hub.set_messaging_limit(
        &PortfolioId::parse("default").expect("portfolio"),
        wagate_domain::MessagingLimit::Unlimited,
    )
    .await
    .expect("limit");
    // One sender's highest rate (1,000 msg/s, an operator's figure) would be the whole
    // measurement: the messages go out from `SENDERS` numbers, so the driver and the store
    // show their own limit.
    const SENDERS: usize = 8;
    let senders: Vec<WhatsAppAddress> = (0..SENDERS)
        .map(|n| WhatsAppAddress::parse(&format!("whatsapp:+1555000{n:04}")).expect("sender"))
        .collect();
    for address in &senders {
        hub.register_sender(RegisterSender {
            sender: address.clone(),
            provider: ProviderKind::Sandbox,
            portfolio: PortfolioId::parse("default").expect("portfolio"),
            rate: wagate_domain::SenderRate {
                upgraded: false,
                per_second: Some(1_000),
            },
            meta_phone_number_id: None,
        })
        .await
        .expect("register a sender");
        hub.authorize_sender(address, "ops@example.com")
            .await
            .expect("authorize");
    }
    // One message to each of `count` opted-in contacts (claims of one contact serialize on
    // its stream, as they must).
    let sends: Vec<_> = (0..count)
        .map(|n| {
            let hub = hub.clone();
            let from = senders[n % SENDERS].clone();
            tokio::spawn(async move {
                let to = format!("+4179{n:07}");
                let contact = ContactId::Phone(PhoneNumber::parse(&to).expect("number"));
                hub.opt_in(RecordOptIn {
                    contact,
                    source: OptInSource::WebForm,
                    evidence: "https://example.com/forms/1".into(),
                    recorded_by: "agent".into(),
                    wording_version: published_wording(&hub).await,
                    evidence_at: None,
                })
                .await
                .expect("opt in");
                let variables: BTreeMap<String, String> =
                    [("1".to_owned(), "Lea".to_owned())].into();
                let request = SendRequest {
                    to,
                    sender: Some(from),
                    workflow: Some("appointment_scheduling".into()),
                    content: SendContent::Template {
                        media: Vec::new(),
                        template: template(),
                        variables,
                    },
                };
                hub.send(request, SendOptions::default())
                    .await
                    .expect("send allowed")
                    .message_id
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(count);
    for send in sends {
        ids.push(send.await.expect("send task"));
    }
    let provider = FakeProvider::new([]);
    let unthrottled = Config {
        sender_limit_default: None,
        // The hub reports the registered sender's rate (80/s by default): override it.
        sender_limits: [(sender(), None)].into(),
        pair_limit: None,
        ..config(&hub)
    };
    let stats_before = hub.log_stats();
    let started = std::time::Instant::now();
    let (stopper, handle) = start_with(
        &hub,
        Arc::clone(&provider),
        unthrottled,
        DriverOptions::default(),
    );
    let mut last_print = std::time::Instant::now();
    // Minutes, not seconds: a slow store (PostgreSQL on a busy disk) is what is measured.
    until_within("every call", Duration::from_secs(600), || {
        let calls = provider.call_count();
        if last_print.elapsed() > Duration::from_secs(2) {
            println!("{:?}: {calls} calls", started.elapsed());
            last_print = std::time::Instant::now();
        }
        calls == count
    })
    .await;
    let called = started.elapsed();
    let report = stop(stopper, handle).await;
    let elapsed = started.elapsed();
    assert_eq!(report.outcomes_recorded, count as u64);
    assert!(ids.iter().all(|id| phase(&hub, *id) == DispatchPhase::Done));
    println!("all {count} provider calls after {called:?}");
    println!(
        "{count} messages dispatched in {elapsed:?}: {:.0} msg/s",
        count as f64 / elapsed.as_secs_f64()
    );
    let stats = hub.log_stats();
    let commits = stats.commits - stats_before.commits;
    let requests = stats.committed_requests - stats_before.committed_requests;
    println!(
        "store: {requests} requests in {commits} durable commits ({:.1} per commit); writer µs: \
         prepare {}, apply {}, flush {}, sync {}",
        requests as f64 / commits.max(1) as f64,
        stats.prepare_us - stats_before.prepare_us,
        stats.apply_us - stats_before.apply_us,
        stats.flush_us - stats_before.flush_us,
        stats.sync_us - stats_before.sync_us,
    );
}
