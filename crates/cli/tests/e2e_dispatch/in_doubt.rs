//! Never send twice (issue 12, point 5): a provider that answers 2xx with a body wagate cannot
//! read may have the message, so the attempt is in doubt: exactly one provider call, then the
//! message is settled by its status callback (through `wagate serve`) or, with none, expires into
//! `failed` (`InDoubtExpired`, through the dispatcher's driver on an in-process hub with a short
//! in-doubt timeout, which `serve` does not expose).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use wagate_app::{Hub as AppHub, SendOptions, SendRequest, SystemClock};
use wagate_dispatch::{run, Config, DriverOptions, Providers, RateLimit};
use wagate_domain::decide::{RecordOptIn, RegisterSender, RegisterTemplate};
use wagate_domain::{
    ApprovalStatus, ContactId, DispatchPhase, MessageStatus, OptInSource, PhoneNumber, Policy,
    PortfolioId, ProviderKind, SendContent, TemplateCategory, TemplateId, TwilioSid,
    WhatsAppAddress,
};
use wagate_providers::twilio::{
    compute_signature, SigningAlgorithm, SortedParams, TwilioClient, TwilioConfig,
};
use wagate_providers::Secret;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{self, Hub};

const ACCOUNT_SID: &str = "AC3f9d2c41b7e85a06d1c4f0e9a2b7d315";
const TWILIO_SENDER: &str = "whatsapp:+15555550100";

/// A Twilio fake that accepts every request with `201` and a body that is no Message resource.
async fn unreadable_twilio() -> MockServer {
    let twilio = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201).set_body_raw("<html>upstream says ok</html>", "text/html"),
        )
        .mount(&twilio)
        .await;
    twilio
}

/// Sends, that is POSTs to the Messages API (the hub's Twilio price follower also GETs a final
/// message's resource from the same fake; a read is not a send).
async fn provider_calls(twilio: &MockServer) -> usize {
    twilio.received_requests().await.map_or(0, |requests| {
        requests
            .iter()
            .filter(|request| request.method == wiremock::http::Method::POST)
            .count()
    })
}

async fn post_ok(hub: &Hub, path: &str, body: Value) {
    let response = hub.post(path, body).await;
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
}

async fn view(hub: &Hub, id: &str) -> Value {
    hub.get(&format!("/v1/messages/{id}"))
        .await
        .json()
        .await
        .expect("json")
}

fn types(view: &Value) -> Vec<String> {
    view["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|event| event["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
pub(crate) async fn serve_sends_once_on_an_unreadable_2xx_and_the_callback_settles_it() {
    let twilio = unreadable_twilio().await;
    let data = tempfile::tempdir().expect("tempdir");
    let hub = support::start_with(
        data.path(),
        &[
            ("WAGATE_TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("WAGATE_TWILIO_AUTH_TOKEN", support::TWILIO_AUTH_TOKEN),
            ("WAGATE_TWILIO_API_BASE", &twilio.uri()),
        ],
        &[],
    );
    let wording = hub.published_wording().await;
    let setup = [
        (
            "/v1/senders".to_owned(),
            json!({"address": TWILIO_SENDER, "provider": "twilio"}),
        ),
        (
            format!("/v1/senders/{TWILIO_SENDER}/authorize"),
            json!({"by": "e2e"}),
        ),
        (
            "/v1/templates".to_owned(),
            json!({"content_sid": support::TEMPLATE, "name": "viewing_reminder", "language": "en",
                   "category": "utility", "placeholders": ["1", "2"]}),
        ),
        (
            format!("/v1/templates/{}/status", support::TEMPLATE),
            json!({"status": "approved"}),
        ),
        (
            format!("/v1/contacts/{}/opt-in", support::CONTACT),
            json!({"source": "web_form", "evidence": "https://example.com/f/1", "recorded_by": "e2e", "wording_version": wording}),
        ),
    ];
    for (path, body) in setup {
        post_ok(&hub, &path, body).await;
    }
    let response = hub
        .post("/v1/messages", support::template_send(support::CONTACT))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let id = response.json::<Value>().await.expect("json")["message_id"]
        .as_str()
        .expect("id")
        .to_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    while provider_calls(&twilio).await == 0 {
        assert!(Instant::now() < deadline, "the provider was never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Before the fix the unreadable answer was recorded as a retryable transport failure and
    // retried after 1 s, 2 s and 4 s (plus jitter): waiting past the first two retries shows none.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(provider_calls(&twilio).await, 1, "sent once, never retried");
    let in_doubt = view(&hub, &id).await;
    assert_eq!(
        types(&in_doubt),
        ["TemplateSent", "DispatchClaimed"],
        "nothing recorded: the claim stays open, in doubt"
    );
    assert_eq!(in_doubt["status"], "sending", "{in_doubt}");

    // Twilio's status callback carries wagate's message id in its URL: it settles the claim.
    let callback_path = format!("/webhooks/twilio/status?message_id={id}");
    let body = support::fixture("twilio_status_read.form");
    let signature = compute_signature(
        &Secret::new(support::TWILIO_AUTH_TOKEN),
        SigningAlgorithm::HmacSha1,
        &format!("{}{callback_path}", support::PUBLIC_URL),
        &SortedParams::from_form(&body),
    );
    let response = hub.twilio(&callback_path, body, &signature).await;
    assert!(response.status().is_success(), "{}", response.status());
    let settled = view(&hub, &id).await;
    assert_eq!(settled["status"], "read", "{settled}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(provider_calls(&twilio).await, 1, "still sent once");
    assert!(
        !types(&view(&hub, &id).await)
            .iter()
            .any(|t| t == "DispatchFailed" || t == "InDoubtExpired"),
        "settled by the callback"
    );
}

fn sender() -> WhatsAppAddress {
    WhatsAppAddress::parse(TWILIO_SENDER).expect("sender")
}

fn template() -> TemplateId {
    TemplateId::parse(support::TEMPLATE).expect("template")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_2xx_with_no_callback_expires_into_failed_after_one_call() {
    let twilio = unreadable_twilio().await;
    let policy = Policy {
        retry_backoff_base: TimeDelta::milliseconds(10),
        in_doubt_timeout: TimeDelta::milliseconds(300),
        ..Policy::default()
    };
    let hub = AppHub::open_temporary(Arc::new(SystemClock), policy).expect("hub");
    hub.register_sender(RegisterSender {
        sender: sender(),
        provider: ProviderKind::Twilio,
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
    let wording_version = crate::published_wording(&hub).await;
    hub.opt_in(RecordOptIn {
        contact: ContactId::Phone(PhoneNumber::parse(support::CONTACT).expect("contact")),
        source: OptInSource::WebForm,
        evidence: "https://example.com/forms/1".into(),
        recorded_by: "agent".into(),
        wording_version,
        evidence_at: None,
    })
    .await
    .expect("opt in");
    let variables: BTreeMap<String, String> = [("1".to_owned(), "Lea".to_owned())].into();
    let id = hub
        .send(
            SendRequest {
                to: support::CONTACT.into(),
                sender: None,
                workflow: Some("appointment_scheduling".into()),
                content: SendContent::Template {
                    media: Vec::new(),
                    template: template(),
                    variables,
                },
            },
            SendOptions::default(),
        )
        .await
        .expect("send allowed")
        .message_id;

    let mut config = TwilioConfig::new(
        TwilioSid::parse(ACCOUNT_SID).expect("sid"),
        Secret::new(support::TWILIO_AUTH_TOKEN),
        support::PUBLIC_URL,
    );
    config.api_base = twilio.uri();
    config.timeout = Duration::from_secs(5);
    let client = TwilioClient::new(config).expect("client");
    let (stop, stopped) = oneshot::channel::<()>();
    let driver = tokio::spawn(run(
        Arc::new(hub.clone()),
        Providers::new().with(ProviderKind::Twilio, Arc::new(client)),
        Config {
            hub_retry_delay: TimeDelta::milliseconds(10),
            jitter_max: TimeDelta::milliseconds(5),
            pair_limit: None,
            sender_limit_default: Some(RateLimit::per_second(1000)),
            ..Config::from_policy(hub.policy(), 7)
        },
        DriverOptions {
            poll_interval: Duration::from_millis(20),
            poll_gap_min: Duration::from_millis(10),
        },
        Arc::new(SystemClock),
        async move {
            let _ = stopped.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while hub.message(id).expect("message").state.phase() != DispatchPhase::Done {
        assert!(
            Instant::now() < deadline,
            "the in-doubt claim never expired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Polls after the expiry claim nothing more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), driver)
        .await
        .expect("the driver stops")
        .expect("driver task")
        .expect("driver ran");

    assert_eq!(
        provider_calls(&twilio).await,
        1,
        "exactly one provider call"
    );
    let message = hub.message(id).expect("message");
    let types: Vec<&str> = message
        .history
        .iter()
        .map(|entry| entry.event.type_name())
        .collect();
    assert_eq!(
        types,
        ["TemplateSent", "DispatchClaimed", "InDoubtExpired"],
        "no DispatchFailed, no second claim"
    );
    assert_eq!(message.state.status, MessageStatus::Failed);
    assert_eq!(message.state.attempts, 1);
}
