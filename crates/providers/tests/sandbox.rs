//! The sandbox provider against a local hub stand-in (wiremock on 127.0.0.1) that does what the
//! hub does with a Twilio status callback: verify `X-Twilio-Signature` against the public URL
//! with `twilio::verify_signature`, then parse with `twilio::parse_status`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{fixture_str, refused_base_url};
use tokio::sync::mpsc;
use wagate_domain::classify::classify_code;
use wagate_domain::{
    FollowUp, MessageId, MessageStatus, PhoneNumber, ProviderKind, ProviderMessageRef, Retry,
    TemplateId, TwilioSid,
};
use wagate_providers::sandbox::{
    numbers, SandboxConfig, SandboxDelays, SandboxProvider, StatusCallback,
};
use wagate_providers::twilio::{
    parse_status, verify_signature, TwilioSigningKeys, TwilioWebhookRequest,
};
use wagate_providers::{
    ConfigError, OutboundContent, OutboundRequest, Provider, Secret, SendAccepted, SendError,
    Sender, StatusUpdate, TemplateContent,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "sandbox-test-token-7f3a";
/// What the hub has as WAGATE_PUBLIC_URL: differs from where the sandbox POSTs.
const PUBLIC_URL: &str = "https://hub.example.com";
const BUSINESS: &str = "+15555550100";
const CONTACT: &str = "+41790000001";
const TEMPLATE: &str = "HX6c1d84f2a9e07b35d4c8e1f0a2b6937d";
/// Generous: only reached when something is broken.
const WAIT: Duration = Duration::from_secs(10);

/// A callback the hub stand-in accepted.
#[derive(Debug)]
struct Received {
    update: StatusUpdate,
    body: String,
    idempotency_token: Option<String>,
}

/// Verifies and parses like the hub; `fail_first` requests are answered 503 first.
struct HubStandIn {
    keys: TwilioSigningKeys,
    tx: mpsc::UnboundedSender<Result<Received, String>>,
    fail_first: AtomicUsize,
    hits: Arc<AtomicUsize>,
}

impl Respond for HubStandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.hits.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return ResponseTemplate::new(503);
        }
        let query = request.url.query().unwrap_or_default();
        let url = format!("{PUBLIC_URL}{}?{query}", request.url.path());
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let signature = header("X-Twilio-Signature");
        let verdict = verify_signature(
            &self.keys,
            &TwilioWebhookRequest {
                url: &url,
                body: &request.body,
                signature: signature.as_deref(),
                signature_settings: None,
            },
        );
        if let Err(error) = verdict {
            let _ = self.tx.send(Err(format!("signature: {error}")));
            return ResponseTemplate::new(403);
        }
        if header("Content-Type").as_deref() != Some("application/x-www-form-urlencoded") {
            let _ = self.tx.send(Err("content type".into()));
            return ResponseTemplate::new(415);
        }
        match parse_status(&request.body, query) {
            Ok(update) => {
                let _ = self.tx.send(Ok(Received {
                    update,
                    body: String::from_utf8_lossy(&request.body).into_owned(),
                    idempotency_token: header("I-Twilio-Idempotency-Token"),
                }));
                ResponseTemplate::new(200)
            }
            Err(error) => {
                let _ = self.tx.send(Err(format!("parse: {error}")));
                ResponseTemplate::new(400)
            }
        }
    }
}

struct Hub {
    server: MockServer,
    rx: mpsc::UnboundedReceiver<Result<Received, String>>,
    hits: Arc<AtomicUsize>,
}

impl Hub {
    async fn start() -> Self {
        Self::start_with(TOKEN, 0).await
    }

    async fn start_with(token: &str, fail_first: usize) -> Self {
        let server = MockServer::start().await;
        let (tx, rx) = mpsc::unbounded_channel();
        let hits = Arc::new(AtomicUsize::new(0));
        Mock::given(method("POST"))
            .and(path("/webhooks/twilio/status"))
            .respond_with(HubStandIn {
                keys: TwilioSigningKeys::new(Secret::new(token)),
                tx,
                fail_first: AtomicUsize::new(fail_first),
                hits: Arc::clone(&hits),
            })
            .mount(&server)
            .await;
        Self { server, rx, hits }
    }

    fn config(&self) -> SandboxConfig {
        let mut config = SandboxConfig::new(self.server.uri(), PUBLIC_URL, Secret::new(TOKEN));
        config.delays = SandboxDelays::ZERO;
        config.retry_backoff = Duration::from_millis(10);
        config
    }

    fn sandbox(&self) -> SandboxProvider {
        SandboxProvider::new(self.config()).expect("valid config")
    }

    /// The next accepted callback; panics on a rejected one or after [`WAIT`].
    async fn next(&mut self) -> Received {
        match tokio::time::timeout(WAIT, self.rx.recv()).await {
            Ok(Some(Ok(received))) => received,
            Ok(Some(Err(error))) => panic!("the hub stand-in refused a callback: {error}"),
            Ok(None) => panic!("hub stand-in gone"),
            Err(_) => panic!("no callback within {WAIT:?}"),
        }
    }

    /// The statuses (and error codes) of the next `n` callbacks, all for `message_id`/`sid`.
    async fn statuses(
        &mut self,
        n: usize,
        message_id: MessageId,
        sid: &str,
    ) -> Vec<(MessageStatus, Option<u32>)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let received = self.next().await;
            let update = received.update;
            assert_eq!(update.message_id, Some(message_id));
            assert_eq!(update.id.as_str(), sid);
            out.push((update.status, update.errors.first().map(|e| e.code)));
        }
        out
    }

    /// Nothing more arrives within `window`.
    async fn assert_quiet(&mut self, window: Duration) {
        if let Ok(Some(item)) = tokio::time::timeout(window, self.rx.recv()).await {
            panic!("unexpected callback: {item:?}");
        }
    }
}

fn message_id(n: u64) -> MessageId {
    MessageId::parse(&format!("0192f0c1-7a3b-7c4d-8e5f-{n:012x}")).expect("uuid v7")
}

fn number(raw: &str) -> PhoneNumber {
    PhoneNumber::parse(raw).expect("number")
}

fn freeform(id: u64, to: &str) -> OutboundRequest {
    OutboundRequest {
        message_id: message_id(id),
        from: Sender::Number(number(BUSINESS)),
        to: number(to),
        content: OutboundContent::Text {
            body: "Thursday at 10:00 works. See you then!".into(),
        },
    }
}

fn template(id: u64, to: &str) -> OutboundRequest {
    OutboundRequest {
        content: OutboundContent::Template(TemplateContent {
            media: Vec::new(),
            template: TemplateId::parse(TEMPLATE).expect("template"),
            language: None,
            variables: vec![("1".into(), "Lea".into())],
            button_payloads: vec![],
        }),
        ..freeform(id, to)
    }
}

fn sid_of(accepted: &SendAccepted) -> String {
    accepted.provider_message_id.as_str().to_owned()
}

fn rejection(error: &SendError) -> (Option<u16>, Option<u32>) {
    assert!(
        matches!(
            error,
            SendError::Rejected {
                provider: ProviderKind::Sandbox,
                ..
            }
        ),
        "{error:?}"
    );
    (error.http_status(), error.code())
}

const SUCCESS: [(MessageStatus, Option<u32>); 4] = [
    (MessageStatus::Queued, None),
    (MessageStatus::Sent, None),
    (MessageStatus::Delivered, None),
    (MessageStatus::Read, None),
];

#[tokio::test]
async fn normal_number_goes_queued_sent_delivered_read() {
    let mut hub = Hub::start().await;
    let sandbox = hub.sandbox();
    assert_eq!(sandbox.kind(), ProviderKind::Sandbox);
    let request = template(1, CONTACT);
    let accepted = sandbox.send(&request).await.expect("accepted");
    assert_eq!(accepted.http_status, 201);
    assert_eq!(accepted.status, Some(MessageStatus::Queued));
    let sid = sid_of(&accepted);
    assert!(matches!(
        accepted.provider_message_id,
        ProviderMessageRef::Twilio(_)
    ));

    let mut tokens = Vec::new();
    for (status, event_type) in [
        (MessageStatus::Queued, None),
        (MessageStatus::Sent, None),
        (MessageStatus::Delivered, Some("DELIVERED")),
        (MessageStatus::Read, Some("READ")),
    ] {
        let received = hub.next().await;
        let update = &received.update;
        assert_eq!(update.status, status);
        assert_eq!(update.id.as_str(), sid);
        assert_eq!(update.message_id, Some(request.message_id));
        assert!(update.errors.is_empty());
        assert_eq!(update.event_type.as_deref(), event_type);
        assert_eq!(
            update.recipient.as_ref().map(|r| r.id.to_string()),
            Some(CONTACT.to_owned())
        );
        assert_eq!(update.business.number, Some(number(BUSINESS)));
        assert_eq!(
            update.business.account.as_deref(),
            Some(wagate_providers::sandbox::SANDBOX_ACCOUNT_SID)
        );
        assert!(!received.body.contains("MessagingServiceSid"));
        tokens.push(received.idempotency_token.expect("idempotency token"));
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 4, "one idempotency token per callback");
    assert!(sandbox.wait_idle(WAIT).await);
    hub.assert_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn messaging_service_sender_is_accepted_and_reported_with_its_sid() {
    let mut hub = Hub::start().await;
    let sandbox = hub.sandbox();
    let service = "MG8e27c0b4d91f3a5c6e0d2b7f41a9c853";
    let request = OutboundRequest {
        from: Sender::TwilioMessagingService(TwilioSid::parse(service).expect("sid")),
        ..template(2, CONTACT)
    };
    let accepted = sandbox.send(&request).await.expect("accepted");
    assert_eq!(accepted.status, Some(MessageStatus::Accepted));
    let received = hub.next().await;
    assert!(received
        .body
        .starts_with(&format!("MessagingServiceSid={service}&")));
    assert_eq!(
        received.update.business.number,
        Some(number(wagate_providers::sandbox::SANDBOX_POOL_NUMBER))
    );
}

#[tokio::test]
async fn callback_forms_match_twilios_byte_for_byte() {
    let sid = |raw: &str| TwilioSid::parse(raw).expect("sid");
    let base = StatusCallback {
        message_sid: sid("SM9a4e1c7d3b2f8065e1d4c9b7a3f20e61"),
        account_sid: sid("AC3f9d2c41b7e85a06d1c4f0e9a2b7d315"),
        messaging_service_sid: Some(sid("MG8e27c0b4d91f3a5c6e0d2b7f41a9c853")),
        channel_install_sid: "XE5b0e93d7a1c4f826e3d0b9a7c51f2e48".into(),
        from: number("+15555550100"),
        to: number("+41790000001"),
        status: MessageStatus::Queued,
        error_code: None,
        channel_status_message: None,
    };
    let cases = [
        (
            "twilio_status_queued.form",
            StatusCallback { ..base.clone() },
        ),
        (
            "twilio_status_sent.form",
            StatusCallback {
                status: MessageStatus::Sent,
                ..base.clone()
            },
        ),
        (
            "twilio_status_delivered.form",
            StatusCallback {
                status: MessageStatus::Delivered,
                ..base.clone()
            },
        ),
        (
            "twilio_status_read.form",
            StatusCallback {
                status: MessageStatus::Read,
                ..base.clone()
            },
        ),
        (
            "twilio_status_failed_63016.form",
            StatusCallback {
                message_sid: sid("SM2d7f0b9e4c1a8356f2e0d7c4b9a1e583"),
                status: MessageStatus::Failed,
                error_code: Some(63016),
                channel_status_message: Some("Re-engagement message".into()),
                ..base.clone()
            },
        ),
        (
            "twilio_status_undelivered_63024.form",
            StatusCallback {
                message_sid: sid("SM7c3e9a1f5d2b8406c9e1a7d3f5b20c94"),
                to: number("+41790000002"),
                status: MessageStatus::Undelivered,
                error_code: Some(63024),
                channel_status_message: Some("Invalid message recipient".into()),
                ..base.clone()
            },
        ),
    ];
    for (file, callback) in cases {
        assert_eq!(callback.form_body(), fixture_str(file), "{file}");
    }
    // And the signatures are the reference vectors' for those bodies and URLs.
    let mut checked = 0;
    for row in common::signature_rows() {
        if row.scheme == "twilio-hmac-sha1" && row.file.starts_with("twilio_status_") {
            let body = fixture_str(&row.file);
            let signature = StatusCallback::signature(&Secret::new(row.secret), &row.url, &body);
            assert_eq!(signature, row.signature, "{} {}", row.url, row.file);
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[tokio::test]
async fn not_on_whatsapp_is_accepted_then_undelivered_63024() {
    let mut hub = Hub::start().await;
    let sandbox = hub.sandbox();
    let request = template(3, numbers::NOT_ON_WHATSAPP);
    let sid = sid_of(&sandbox.send(&request).await.expect("accepted"));
    assert_eq!(
        hub.statuses(3, request.message_id, &sid).await,
        [
            (MessageStatus::Queued, None),
            (MessageStatus::Sent, None),
            (MessageStatus::Undelivered, Some(63024)),
        ]
    );
    assert_eq!(
        classify_code(ProviderKind::Sandbox, 63024).follow_up,
        Some(FollowUp::NotOnWhatsapp)
    );
    assert!(sandbox.wait_idle(WAIT).await);
    hub.assert_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn window_closed_fails_freeform_with_63016_but_delivers_templates() {
    let mut hub = Hub::start().await;
    let sandbox = hub.sandbox();
    let request = freeform(4, numbers::WINDOW_CLOSED);
    let sid = sid_of(&sandbox.send(&request).await.expect("accepted"));
    assert_eq!(
        hub.statuses(2, request.message_id, &sid).await,
        [
            (MessageStatus::Queued, None),
            (MessageStatus::Failed, Some(63016)),
        ]
    );
    assert!(sandbox.wait_idle(WAIT).await);
    hub.assert_quiet(Duration::from_millis(100)).await;

    let request = template(5, numbers::WINDOW_CLOSED);
    let sid = sid_of(&sandbox.send(&request).await.expect("accepted"));
    assert_eq!(hub.statuses(4, request.message_id, &sid).await, SUCCESS);
}

#[tokio::test]
async fn rate_limited_number_refuses_two_attempts_per_message_then_accepts() {
    let mut hub = Hub::start().await;
    let sandbox = hub.sandbox();
    let request = freeform(6, numbers::RATE_LIMITED);
    for _ in 0..2 {
        let error = sandbox.send(&request).await.expect_err("429");
        assert_eq!(rejection(&error), (Some(429), Some(20429)));
        assert_eq!(error.classify().retry, Retry::Retryable);
        assert!(!error.may_have_been_sent());
    }
    // Another message is counted on its own.
    let other = freeform(7, numbers::RATE_LIMITED);
    assert!(sandbox.send(&other).await.is_err());
    let sid = sid_of(
        &sandbox
            .send(&request)
            .await
            .expect("third attempt accepted"),
    );
    assert_eq!(hub.statuses(4, request.message_id, &sid).await, SUCCESS);
    assert!(
        sandbox.send(&other).await.is_err(),
        "second attempt of the other message"
    );
    assert!(
        sandbox.send(&other).await.is_ok(),
        "third attempt of the other message"
    );
}

#[tokio::test]
async fn internal_error_number_always_answers_500_20500() {
    let mut hub = Hub::start().await;
    let sandbox = hub.sandbox();
    let request = template(8, numbers::INTERNAL_ERROR);
    for _ in 0..5 {
        let error = sandbox.send(&request).await.expect_err("500");
        assert_eq!(rejection(&error), (Some(500), Some(20500)));
        assert_eq!(error.classify().retry, Retry::Retryable);
    }
    assert_eq!(sandbox.pending_messages(), 0);
    hub.assert_quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn blocked_business_is_accepted_then_failed_63014() {
    let mut hub = Hub::start().await;
    let sandbox = hub.sandbox();
    let request = template(9, numbers::BLOCKED_BUSINESS);
    let sid = sid_of(&sandbox.send(&request).await.expect("accepted"));
    assert_eq!(
        hub.statuses(2, request.message_id, &sid).await,
        [
            (MessageStatus::Queued, None),
            (MessageStatus::Failed, Some(63014)),
        ]
    );
    assert_eq!(
        classify_code(ProviderKind::Sandbox, 63014).follow_up,
        Some(FollowUp::OptOut)
    );
}

#[tokio::test]
async fn lost_response_times_out_but_callbacks_still_arrive() {
    let mut hub = Hub::start().await;
    let sandbox = hub.sandbox();
    let request = template(10, numbers::LOST_RESPONSE);
    let error = sandbox.send(&request).await.expect_err("lost");
    assert!(error.is_timeout(), "{error:?}");
    assert!(error.may_have_been_sent());
    assert_eq!(error.provider(), ProviderKind::Sandbox);
    // The callbacks name the message: that is how the hub resolves the in-doubt send.
    let first = hub.next().await.update;
    assert_eq!(first.message_id, Some(request.message_id));
    let sid = first.id.as_str().to_owned();
    let mut statuses = vec![(first.status, None)];
    statuses.extend(hub.statuses(3, request.message_id, &sid).await);
    assert_eq!(statuses, SUCCESS);
}

#[tokio::test]
async fn requests_twilio_would_refuse_are_refused_with_its_codes() {
    let hub = Hub::start().await;
    let sandbox = hub.sandbox();
    let invalid_to = template(11, numbers::INVALID_NUMBER);
    let error = sandbox.send(&invalid_to).await.expect_err("21211");
    assert_eq!(rejection(&error), (Some(400), Some(21211)));
    assert_eq!(error.classify().follow_up, Some(FollowUp::InvalidNumber));

    let bad_sender = OutboundRequest {
        from: Sender::Number(number(numbers::MISCONFIGURED_SENDER)),
        ..template(12, CONTACT)
    };
    let error = sandbox.send(&bad_sender).await.expect_err("63007");
    assert_eq!(rejection(&error), (Some(400), Some(63007)));
    assert_eq!(error.classify().follow_up, Some(FollowUp::SuspendSender));

    let body = |text: String| OutboundRequest {
        content: OutboundContent::Text { body: text },
        ..freeform(13, CONTACT)
    };
    let error = sandbox.send(&body(" ".into())).await.expect_err("empty");
    assert_eq!(rejection(&error), (Some(400), Some(21602)));
    let error = sandbox
        .send(&body("x".repeat(1_601)))
        .await
        .expect_err("long");
    assert_eq!(rejection(&error), (Some(400), Some(21617)));
    assert!(sandbox.send(&body("é".repeat(1_600))).await.is_ok());

    for variables in [
        vec![("1".to_owned(), String::new())],
        vec![(String::new(), "x".to_owned())],
        vec![
            ("1".to_owned(), "a".to_owned()),
            ("1".to_owned(), "b".to_owned()),
        ],
    ] {
        let request = OutboundRequest {
            content: OutboundContent::Template(TemplateContent {
                media: Vec::new(),
                template: TemplateId::parse(TEMPLATE).expect("template"),
                language: None,
                variables,
                button_payloads: vec![],
            }),
            ..freeform(14, CONTACT)
        };
        let error = sandbox.send(&request).await.expect_err("21656");
        assert_eq!(rejection(&error), (Some(400), Some(21656)));
        assert_eq!(
            error.classify().follow_up,
            Some(FollowUp::TemplateVariables)
        );
    }

    let to_self = freeform(15, BUSINESS);
    let error = sandbox.send(&to_self).await.expect_err("same");
    assert_eq!(rejection(&error), (Some(400), Some(21266)));

    let meta_sender = OutboundRequest {
        from: Sender::MetaPhoneNumberId("106540352242922".into()),
        ..freeform(16, CONTACT)
    };
    let error = sandbox.send(&meta_sender).await.expect_err("not Twilio");
    assert!(
        matches!(error, SendError::InvalidRequest { .. }),
        "{error:?}"
    );
    let meta_template = OutboundRequest {
        content: OutboundContent::Template(TemplateContent {
            media: Vec::new(),
            template: TemplateId::parse("appointment_reminder").expect("name"),
            language: Some("en_US".into()),
            variables: vec![],
            button_payloads: vec![],
        }),
        ..freeform(17, CONTACT)
    };
    let error = sandbox
        .send(&meta_template)
        .await
        .expect_err("not a Content SID");
    assert!(
        matches!(error, SendError::InvalidRequest { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn sids_are_deterministic_with_a_seed() {
    let hub = Hub::start().await;
    let sids = |seed: u64| {
        let mut config = hub.config();
        config.seed = Some(seed);
        // Callbacks are irrelevant here: keep them from firing during the test.
        config.delays.queued = Duration::from_secs(3_600);
        let sandbox = SandboxProvider::new(config).expect("config");
        async move {
            let mut out = Vec::new();
            for n in 0..3 {
                out.push(sid_of(
                    &sandbox.send(&template(20 + n, CONTACT)).await.expect("ok"),
                ));
            }
            out
        }
    };
    let first = sids(42).await;
    assert_eq!(first, sids(42).await);
    assert_ne!(first, sids(43).await);
    for sid in &first {
        assert_eq!(sid.len(), 34);
        assert!(sid.starts_with("SM"));
        assert!(sid[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
    let mut unique = first.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3);
}

#[tokio::test]
async fn dropping_the_sandbox_stops_pending_callbacks() {
    let mut hub = Hub::start().await;
    let mut config = hub.config();
    config.delays.sent = Duration::from_secs(1);
    let sandbox = SandboxProvider::new(config).expect("config");
    let request = template(30, CONTACT);
    sandbox.send(&request).await.expect("accepted");
    assert_eq!(hub.next().await.update.status, MessageStatus::Queued);
    drop(sandbox);
    // `sent` was due 1 s after `queued`; nothing may come even well after that.
    hub.assert_quiet(Duration::from_millis(2_500)).await;
}

#[tokio::test]
async fn shutdown_stops_callbacks_and_refuses_new_sends() {
    let mut hub = Hub::start().await;
    let mut config = hub.config();
    config.delays.sent = Duration::from_secs(3_600);
    let sandbox = SandboxProvider::new(config).expect("config");
    sandbox
        .send(&template(31, CONTACT))
        .await
        .expect("accepted");
    assert_eq!(hub.next().await.update.status, MessageStatus::Queued);
    assert_eq!(sandbox.pending_messages(), 1);
    sandbox.shutdown();
    assert!(sandbox.wait_idle(WAIT).await, "the task ended");
    let error = sandbox
        .send(&template(32, CONTACT))
        .await
        .expect_err("shut down");
    assert!(matches!(error, SendError::Connect { .. }), "{error:?}");
    assert!(!error.may_have_been_sent());
    hub.assert_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn outstanding_messages_are_bounded() {
    let hub = Hub::start().await;
    let mut config = hub.config();
    config.max_outstanding = 2;
    config.delays.queued = Duration::from_secs(3_600);
    let sandbox = SandboxProvider::new(config).expect("config");
    sandbox.send(&template(40, CONTACT)).await.expect("first");
    sandbox.send(&template(41, CONTACT)).await.expect("second");
    let error = sandbox
        .send(&template(42, CONTACT))
        .await
        .expect_err("full");
    assert_eq!(rejection(&error), (Some(429), Some(20429)));
    assert_eq!(sandbox.pending_messages(), 2);
}

#[tokio::test]
async fn callbacks_are_retried_after_server_errors() {
    let mut hub = Hub::start_with(TOKEN, 2).await;
    let sandbox = hub.sandbox();
    let request = template(50, CONTACT);
    let sid = sid_of(&sandbox.send(&request).await.expect("accepted"));
    assert_eq!(hub.statuses(4, request.message_id, &sid).await, SUCCESS);
    assert!(sandbox.wait_idle(WAIT).await);
    assert_eq!(hub.hits.load(Ordering::SeqCst), 2 + 4);
}

#[tokio::test]
async fn callbacks_refused_with_4xx_are_not_retried() {
    // The hub verifies with another token: every callback is refused with 403.
    let mut hub = Hub::start_with("another-token", 0).await;
    let sandbox = hub.sandbox();
    sandbox
        .send(&template(51, CONTACT))
        .await
        .expect("accepted");
    assert!(sandbox.wait_idle(WAIT).await);
    assert_eq!(hub.hits.load(Ordering::SeqCst), 4, "one attempt per status");
    for _ in 0..4 {
        let refused = hub.rx.recv().await.expect("recorded");
        assert!(refused.is_err(), "{refused:?}");
    }
}

#[tokio::test]
async fn unreachable_hub_never_blocks_send_and_is_given_up() {
    let mut config = SandboxConfig::new(refused_base_url(), PUBLIC_URL, Secret::new(TOKEN));
    config.delays = SandboxDelays::ZERO;
    config.callback_retries = 2;
    config.retry_backoff = Duration::from_millis(5);
    let sandbox = SandboxProvider::new(config).expect("config");
    let accepted = tokio::time::timeout(WAIT, sandbox.send(&template(52, CONTACT)))
        .await
        .expect("send does not wait for callbacks")
        .expect("accepted");
    assert_eq!(accepted.http_status, 201);
    assert!(sandbox.wait_idle(WAIT).await, "gave up within bounds");
}

#[test]
fn config_is_validated() {
    let ok = || SandboxConfig::new("http://127.0.0.1:8080", PUBLIC_URL, Secret::new(TOKEN));
    assert!(SandboxProvider::new(ok()).is_ok());
    let invalid = |config: SandboxConfig| SandboxProvider::new(config).expect_err("invalid");

    let mut config = ok();
    config.hub_base_url = "127.0.0.1:8080".into();
    assert!(matches!(
        invalid(config),
        ConfigError::InvalidUrl {
            name: "hub_base_url"
        }
    ));
    let mut config = ok();
    config.public_url = "ftp://hub.example.com".into();
    assert!(matches!(
        invalid(config),
        ConfigError::InvalidUrl { name: "public_url" }
    ));
    let mut config = ok();
    config.auth_token = Secret::new("");
    assert!(matches!(
        invalid(config),
        ConfigError::Invalid {
            name: "auth_token",
            ..
        }
    ));
    let mut config = ok();
    config.http_timeout = Duration::ZERO;
    assert!(matches!(
        invalid(config),
        ConfigError::Invalid {
            name: "timeout",
            ..
        }
    ));
    let mut config = ok();
    config.max_outstanding = 0;
    assert!(matches!(
        invalid(config),
        ConfigError::Invalid {
            name: "max_outstanding",
            ..
        }
    ));
    let mut config = ok();
    config.account_sid = TwilioSid::parse("MG8e27c0b4d91f3a5c6e0d2b7f41a9c853").expect("sid");
    assert!(matches!(
        invalid(config),
        ConfigError::Invalid {
            name: "account_sid",
            ..
        }
    ));
    // Trailing slashes are fine.
    let config = SandboxConfig::new(
        "http://127.0.0.1:8080/",
        "https://h.example/",
        Secret::new("t"),
    );
    assert!(SandboxProvider::new(config).is_ok());
}

#[test]
fn debug_never_shows_the_token() {
    let config = SandboxConfig::new("http://127.0.0.1:8080", PUBLIC_URL, Secret::new(TOKEN));
    assert!(!format!("{config:?}").contains(TOKEN));
    let sandbox = SandboxProvider::new(config).expect("config");
    assert!(!format!("{sandbox:?}").contains(TOKEN));
}

#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn traces_carry_ids_never_the_token_the_number_or_the_text() {
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime is single-threaded: the callback tasks log through this subscriber too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut hub = Hub::start().await;
    let sandbox = hub.sandbox();
    let request = freeform(60, CONTACT);
    let sid = sid_of(&sandbox.send(&request).await.expect("accepted"));
    assert_eq!(hub.statuses(4, request.message_id, &sid).await, SUCCESS);
    assert!(sandbox.wait_idle(WAIT).await);
    let lost = freeform(61, numbers::LOST_RESPONSE);
    sandbox.send(&lost).await.expect_err("lost");
    let refused = freeform(62, numbers::INTERNAL_ERROR);
    sandbox.send(&refused).await.expect_err("500");
    for _ in 0..4 {
        hub.next().await;
    }
    assert!(sandbox.wait_idle(WAIT).await);
    drop(sandbox);

    let logs = String::from_utf8(buffer.0.lock().expect("not poisoned").clone()).expect("utf-8");
    for expected in [
        request.message_id.to_string(),
        sid,
        "sandbox.callback".to_owned(),
        "lost_response".to_owned(),
        "20500".to_owned(),
    ] {
        assert!(logs.contains(&expected), "{expected:?} missing:\n{logs}");
    }
    let OutboundContent::Text { body } = &request.content else {
        panic!("freeform")
    };
    for secret in [TOKEN, body.as_str(), CONTACT, numbers::LOST_RESPONSE] {
        assert!(
            !logs.contains(secret),
            "{secret:?} leaked into logs:\n{logs}"
        );
    }
}
