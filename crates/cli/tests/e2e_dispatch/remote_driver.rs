//! The async driver of wagate-dispatch with a [`RemoteHub`]: the same flow as the in-process
//! driver tests (crates/dispatch/tests/driver.rs), through a real hub server's HTTP API. It lives
//! here rather than in wagate-dispatch because it needs the server (wagate-http), which the
//! dispatcher must not depend on, not even for its tests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::oneshot;
use wagate_app::{Hub, SendOptions, SendRequest, SystemClock};
use wagate_dispatch::{run, Config, DriverOptions, Providers, RateLimit, RemoteHub};
use wagate_domain::decide::{RecordOptIn, RegisterSender, RegisterTemplate};
use wagate_domain::{
    ApprovalStatus, ContactId, DispatchPhase, MessageId, MessageStatus, OptInSource, PhoneNumber,
    Policy, PortfolioId, ProviderKind, ProviderMessageRef, SendContent, TemplateCategory,
    TemplateId, TwilioSid, WhatsAppAddress,
};
use wagate_http::{HttpSettings, Server};
use wagate_providers::{OutboundRequest, Provider, Secret, SendAccepted, SendError, SendFuture};

const SENDER: &str = "whatsapp:+15550001111";
const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";
const CONTACT: &str = "+41790000001";

/// What the scripted provider does with one call.
#[derive(Debug, Clone)]
enum Script {
    Accept,
    Reject(u32),
}

#[derive(Debug, Default)]
struct FakeProvider {
    script: Mutex<VecDeque<Script>>,
    calls: Mutex<Vec<OutboundRequest>>,
    sids: Mutex<u64>,
}

impl FakeProvider {
    fn new(script: impl IntoIterator<Item = Script>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into_iter().collect()),
            ..Self::default()
        })
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

/// An authorized sandbox sender, an approved template and an opted-in contact.
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
    let wording_version = crate::published_wording(hub).await;
    hub.opt_in(RecordOptIn {
        contact: ContactId::Phone(PhoneNumber::parse(CONTACT).expect("contact")),
        source: OptInSource::WebForm,
        evidence: "https://example.com/forms/1".into(),
        recorded_by: "agent".into(),
        wording_version,
        evidence_at: None,
    })
    .await
    .expect("opt in");
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

/// Waits (bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
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

/// `wagate dispatch --hub URL`: the same flow through the hub's HTTP API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_separate_dispatcher_sends_through_the_http_api() {
    let data = tempfile::tempdir().expect("temporary directory");
    let token = Secret::new("test-token");
    let mut settings = HttpSettings::new(
        "127.0.0.1:0".parse().expect("address"),
        data.path(),
        token.clone(),
    );
    // The remote dispatcher's token is a dispatcher's: an operator's is refused the claims.
    settings.tokens = vec![wagate_http::ApiToken::new(
        "remote",
        wagate_http::Role::Dispatcher,
        token.clone(),
    )];
    settings.webhooks.twilio_auth_token = Some(Secret::new("sandbox-auth-token"));
    settings.sandbox = true;
    let hub = Hub::open_temporary(Arc::new(SystemClock), policy()).expect("hub");
    let server = Server::bind(&settings, hub.clone())
        .await
        .expect("hub binds");
    let url = format!("http://{}", server.local_addr());
    let (stop_server, server_stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = server_stopped.await;
    }));
    prepare(&hub).await;
    let refused = send(&hub).await;
    hub.claim(refused)
        .await
        .expect("claimed by a dispatcher that died");
    let id = send(&hub).await;

    let remote = RemoteHub::new(&url, token, Duration::from_secs(5)).expect("client");
    let provider = FakeProvider::new([Script::Reject(20429)]);
    let (stop_driver, stopped) = oneshot::channel::<()>();
    let driver = tokio::spawn(run(
        Arc::new(remote),
        Providers::new().with(ProviderKind::Sandbox, provider.clone()),
        config(&hub),
        DriverOptions {
            poll_interval: Duration::from_millis(20),
            poll_gap_min: Duration::from_millis(10),
        },
        Arc::new(SystemClock),
        async move {
            let _ = stopped.await;
        },
    ));
    until("the retried send", || {
        phase(&hub, id) == DispatchPhase::Done
    })
    .await;
    until("the expiry", || phase(&hub, refused) == DispatchPhase::Done).await;
    let _ = stop_driver.send(());
    let report = tokio::time::timeout(Duration::from_secs(20), driver)
        .await
        .expect("the driver stops")
        .expect("driver task")
        .expect("driver ran");
    let _ = stop_server.send(());
    let _ = serving.await;

    let calls: Vec<MessageId> = provider
        .calls()
        .iter()
        .map(|call| call.message_id)
        .collect();
    assert_eq!(
        calls,
        [id, id],
        "retried once; the in-doubt claim never sent"
    );
    // The driver may ask again when an answer is lost or slow (a loaded machine): what counts
    // is that the log records the expiry exactly once.
    assert!(report.expiries >= 1);
    let expired_events = hub
        .message(refused)
        .expect("message")
        .history
        .iter()
        .filter(|entry| entry.event.type_name() == "InDoubtExpired")
        .count();
    assert_eq!(expired_events, 1, "expired once in the log");
    let state = hub.message(id).expect("message").state;
    assert_eq!(state.attempts, 2);
    assert!(state.provider_ref.is_some());
    let expired = hub.message(refused).expect("message").state;
    assert_eq!(expired.status, MessageStatus::Failed);
}
