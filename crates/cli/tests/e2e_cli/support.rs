//! Shared helpers: run the binary, build realistic logs with the app's `Hub` on a directory.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use wagate_app::{FixedClock, Hub, SendOptions, SendRequest};
use wagate_domain::decide::{
    DispatchOutcome, ReceiveInbound, RecordOptIn, RecordOutcome, RegisterSender, RegisterTemplate,
};
use wagate_domain::{
    ApprovalStatus, ContactId, MessageId, MessageStatus, OptInSource, PhoneNumber, Policy,
    PortfolioId, ProviderKind, ProviderMessageRef, SendContent, TemplateCategory, TemplateId,
    WhatsAppAddress,
};
use wagate_store::Store;

pub const SENDER: &str = "whatsapp:+15550001111";
pub const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";
pub const LEA: &str = "+41790000001";
pub const MAX: &str = "+41790000002";

/// Runs `wagate` with `args` and no hub-related environment.
pub fn wagate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wagate"))
        .args(args)
        .env_remove("WAGATE_HUB")
        .env_remove("WAGATE_API_TOKEN")
        .env("WAGATE_LOG", "warn")
        .output()
        .expect("run wagate")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A hub on the database at `dir` with a fixed clock.
pub struct LogBuilder {
    pub hub: Hub,
    pub clock: FixedClock,
    /// The sled store behind the hub (this helper is the composition root), to close it.
    store: Store,
}

impl LogBuilder {
    pub fn open(dir: &Path) -> Self {
        let clock = FixedClock::new(
            Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0)
                .single()
                .expect("valid time"),
        );
        let store = Store::open(dir, wagate_store::Options::default()).expect("store");
        let hub = Hub::open(
            Arc::new(store.clone()),
            Arc::new(clock.clone()),
            Policy::default(),
        )
        .expect("hub");
        Self { hub, clock, store }
    }

    /// Closes the database so the binary can open it.
    pub fn close(self) {
        drop(self.hub);
        self.store.close().expect("close store");
    }

    pub async fn ready(&self) {
        self.hub
            .register_sender(RegisterSender {
                sender: sender(),
                provider: ProviderKind::Sandbox,
                portfolio: PortfolioId::parse("default").expect("portfolio"),
                rate: Default::default(),
                meta_phone_number_id: None,
            })
            .await
            .expect("register sender");
        self.hub
            .authorize_sender(&sender(), "ops@example.com")
            .await
            .expect("authorize");
        self.hub
            .register_template(RegisterTemplate {
                template: template(),
                name: "viewing_reminder".into(),
                language: "en".into(),
                category: TemplateCategory::Utility,
                placeholders: vec!["1".into(), "2".into()],
            })
            .await
            .expect("register template");
        self.hub
            .set_template_status(&template(), ApprovalStatus::Approved, "approved by Meta")
            .await
            .expect("approve");
    }

    /// Publishes the consent wording test opt-ins cite (an opt-in must cite a published one);
    /// the same text again is the same version. Answers the version.
    pub async fn published_wording(&self) -> String {
        self.hub
            .publish_wording(wagate_domain::consent::PublishWording {
                business: "Acme Homes".into(),
                language: "en".into(),
                text: "I agree to receive WhatsApp messages from Acme Homes.".into(),
            })
            .await
            .expect("publish wording")
            .0
            .version
    }

    pub async fn opt_in(&self, number: &str) {
        let wording_version = self.published_wording().await;
        self.hub
            .opt_in(RecordOptIn {
                contact: contact(number),
                source: OptInSource::WebForm,
                evidence: "https://example.com/forms/123".into(),
                recorded_by: "agent".into(),
                wording_version,
                evidence_at: None,
            })
            .await
            .expect("opt in");
    }

    pub async fn inbound(&self, number: &str, text: &str, key: &str) {
        self.hub
            .receive_inbound(
                ReceiveInbound {
                    details: Vec::new(),
                    contact: contact(number),
                    sender: Some(sender()),
                    provider_ref: None,
                    kind: "text".into(),
                    text: text.into(),
                    provider_at: None,
                },
                key,
            )
            .await
            .expect("inbound");
    }

    pub async fn send_template(&self, number: &str) -> Result<MessageId, wagate_app::AppError> {
        let variables = [
            ("1".to_owned(), "Lea".to_owned()),
            ("2".to_owned(), "Thu 10:00".to_owned()),
        ]
        .into();
        self.send(
            number,
            SendContent::Template {
                media: Vec::new(),
                template: template(),
                variables,
            },
        )
        .await
    }

    pub async fn send_text(
        &self,
        number: &str,
        text: &str,
    ) -> Result<MessageId, wagate_app::AppError> {
        self.send(number, SendContent::Freeform { text: text.into() })
            .await
    }

    async fn send(
        &self,
        number: &str,
        content: SendContent,
    ) -> Result<MessageId, wagate_app::AppError> {
        self.hub
            .send(
                SendRequest {
                    to: number.into(),
                    sender: None,
                    workflow: Some("appointment_scheduling".into()),
                    content,
                },
                SendOptions::default(),
            )
            .await
            .map(|accepted| accepted.message_id)
    }

    /// Claims, records the provider's acceptance, then the given callbacks.
    pub async fn deliver(&self, message: MessageId, sid: &str, statuses: &[&str]) {
        let claimed = self.hub.claim(message).await.expect("claim");
        let reference = ProviderMessageRef::parse(sid).expect("sid");
        self.hub
            .record_outcome(RecordOutcome {
                message_id: message,
                attempt: claimed.attempt,
                outcome: DispatchOutcome::Accepted {
                    provider_ref: reference.clone(),
                    provider_status: MessageStatus::Queued,
                    recipient: None,
                },
                jitter: TimeDelta::zero(),
            })
            .await
            .expect("outcome");
        for status in statuses {
            self.hub
                .record_status_callback(
                    Some(message),
                    wagate_app::StatusCallback {
                        details: Vec::new(),
                        provider: ProviderKind::Twilio,
                        provider_ref: Some(reference.clone()),
                        status: MessageStatus::parse(status),
                        error_code: None,
                        pricing: None,
                    },
                    &format!("{sid}:{status}"),
                )
                .await
                .expect("status");
        }
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }
}

pub fn sender() -> WhatsAppAddress {
    WhatsAppAddress::parse(SENDER).expect("sender")
}

pub fn contact(number: &str) -> ContactId {
    ContactId::Phone(PhoneNumber::parse(number).expect("contact"))
}

pub fn template() -> TemplateId {
    TemplateId::parse(TEMPLATE).expect("template")
}

/// A realistic clean log: templates delivered and read, a freeform reply inside the window, a
/// STOP, refusals, a START. Returns the id of Lea's first (delivered) message.
pub async fn clean_log(dir: &Path) -> MessageId {
    let log = LogBuilder::open(dir);
    log.ready().await;
    log.opt_in(LEA).await;
    let first = log.send_template(LEA).await.expect("template to Lea");
    log.deliver(
        first,
        "SM00000000000000000000000000000001",
        &["sent", "delivered", "read", "sent"],
    )
    .await;
    // Freeform to Max: refused (never wrote), then allowed after an inbound.
    let first_reply = log.send_text(MAX, "Hi").await;
    assert!(first_reply.is_err(), "{first_reply:?}");
    log.inbound(MAX, "Hello, is the flat still available?", "in-1")
        .await;
    log.advance(TimeDelta::minutes(5));
    let reply = log.send_text(MAX, "Yes, it is.").await.expect("reply");
    log.deliver(reply, "SM00000000000000000000000000000002", &["delivered"])
        .await;
    // A day later the window is closed again.
    log.advance(TimeDelta::hours(25));
    assert!(log.send_text(MAX, "Still interested?").await.is_err());
    // Lea says STOP; the next template is refused; START re-opts her in.
    log.inbound(LEA, "STOP", "in-2").await;
    assert!(log.send_template(LEA).await.is_err());
    log.inbound(LEA, "START", "in-3").await;
    let again = log.send_template(LEA).await.expect("template after START");
    log.deliver(again, "SM00000000000000000000000000000003", &["delivered"])
        .await;
    log.close();
    first
}

/// A `wagate serve` child on 127.0.0.1 with a temporary database; killed on drop.
pub struct ServedHub {
    child: std::process::Child,
    pub url: String,
    pub token: String,
    pub data: tempfile::TempDir,
}

impl ServedHub {
    pub fn start() -> Self {
        use std::io::BufRead as _;
        let data = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wagate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path().join("data"))
            .env_remove("WAGATE_API_TOKEN")
            .env_remove("WAGATE_TWILIO_AUTH_TOKEN")
            .env_remove("WAGATE_META_APP_SECRET")
            .env("WAGATE_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start wagate serve");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut url = None;
        let mut token = None;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while url.is_none() || token.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match received.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!("wagate serve printed no address and token within 60 s");
                }
            };
            if let Some(rest) = line.strip_prefix("wagate listening on ") {
                url = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("api token: ") {
                token = Some(rest.trim().to_owned());
            }
        }
        Self {
            child,
            url: url.unwrap_or_default(),
            token: token.unwrap_or_default(),
            data,
        }
    }

    /// Runs `wagate` against this hub (WAGATE_HUB and WAGATE_API_TOKEN set).
    pub fn wagate(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_wagate"))
            .args(args)
            .env("WAGATE_HUB", &self.url)
            .env("WAGATE_API_TOKEN", &self.token)
            .env("WAGATE_LOG", "warn")
            .output()
            .expect("run wagate")
    }
}

impl ServedHub {
    /// Publishes the consent wording the tests' opt-ins cite, through `wagate consent
    /// wording` (an opt-in must cite a published one); answers its version.
    pub fn published_wording(&self) -> String {
        let output = self.wagate(&[
            "consent",
            "wording",
            "--business",
            "Acme Homes",
            "--language",
            "en",
            "--text",
            "I agree to receive WhatsApp messages from Acme Homes.",
            "--json",
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let answer: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("json");
        answer["version"].as_str().expect("version").to_owned()
    }

    /// Stops the hub (its database stays, for `--data` commands).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServedHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
