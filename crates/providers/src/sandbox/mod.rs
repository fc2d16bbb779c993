//! The sandbox provider: Twilio on loopback, with no credentials.
//!
//! [`SandboxProvider`] implements [`Provider`] ([`ProviderKind::Sandbox`], which the domain
//! classifies with Twilio's codes). `send` validates the request as Twilio's Messages API
//! would, assigns a fresh `SM` + 32 hex SID (from a seeded RNG when [`SandboxConfig::seed`] is
//! set) and answers like Twilio's HTTP 201: status `queued`, or `accepted` for a Messaging
//! Service sender. Then, in a background task per message, it POSTs **signed** status callbacks
//! to the hub, exactly as Twilio does (same form fields, order and encoding as
//! `fixtures/providers/twilio_status_*.form`):
//!
//! ```text
//! POST {hub_base_url}/webhooks/twilio/status?message_id=<wagate message id>
//! X-Twilio-Signature: base64(HMAC-SHA1(auth_token, {public_url}/webhooks/twilio/status?message_id=<id> + sorted fields))
//! ```
//!
//! so the hub verifies them with [`crate::twilio::verify_signature`] and parses them with
//! [`crate::twilio::parse_status`], like real ones. Statuses follow `queued → sent → delivered →
//! read` after [`SandboxConfig::delays`]. A callback is retried
//! [`SandboxConfig::callback_retries`] times (doubling backoff) on connection errors, timeouts
//! and 5xx answers, not on 4xx, then dropped with a warning; `send` never waits for callbacks.
//! At most [`SandboxConfig::max_outstanding`] messages have callbacks pending; beyond that
//! `send` answers HTTP 429 / 20429. Dropping the provider (or calling
//! [`SandboxProvider::shutdown`]) stops every pending callback at its next await point.
//!
//! # Test numbers
//!
//! Recipients in `+1 555 0100 xx` (fictional by NANP rules) fail with Twilio's real codes, so
//! every path of the dispatcher and the hub can be exercised. Any other number behaves normally.
//!
//! | number | what happens | code | class |
//! |---|---|---|---|
//! | `+15550100001` | 201, then callbacks `queued`, `sent`, `undelivered` | 63024 | permanent, not_on_whatsapp |
//! | `+15550100002` | freeform: 201, then `queued`, `failed`; templates deliver normally | 63016 | permanent, window_closed |
//! | `+15550100003` | first 2 send attempts *per message id*: HTTP 429; the 3rd: 201 and normal callbacks | 20429 | retryable |
//! | `+15550100004` | every send: HTTP 500 | 20500 | retryable (retries exhaust) |
//! | `+15550100005` | 201, then `queued`, `failed` | 63014 | permanent, opt-out |
//! | `+15550100006` | accepted and normal callbacks, but `send` returns [`SendError::Timeout`] (`may_have_been_sent()`) | — | in doubt |
//! | `+15550100007` | every send: HTTP 400 | 21211 | permanent, invalid_number |
//! | sender `+15550100090` | every send from it: HTTP 400 | 63007 | permanent, suspend sender |
//!
//! Requests Twilio itself would refuse are refused the same way: an empty `Body` (400 / 21602),
//! a `Body` over 1,600 characters (400 / 21617), an empty or duplicate `ContentVariables` key or
//! an empty value (400 / 21656), `To` equal to `From` (400 / 21266). Requests that cannot be
//! expressed for Twilio at all (a Meta sender, a template that is not a Content SID) are
//! [`SendError::InvalidRequest`], as with [`crate::twilio::TwilioClient`].
//!
//! See also `docs/sandbox.md`.

mod callback;
mod config;
pub mod numbers;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore as _, SeedableRng as _};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tracing::Instrument as _;
use wagate_domain::{
    MessageId, MessageStatus, PhoneNumber, ProviderKind, ProviderMessageRef, TwilioSid,
    TwilioSidKind,
};

pub use callback::StatusCallback;
pub use config::{
    SandboxConfig, SandboxDelays, SANDBOX_ACCOUNT_SID, SANDBOX_CHANNEL_INSTALL_SID,
    SANDBOX_POOL_NUMBER,
};
pub use numbers::Scenario;

use crate::http::{base_url, build_client, record_outcome};
use crate::send::{
    ConfigError, OutboundContent, OutboundRequest, Provider, SendAccepted, SendError, SendFuture,
    Sender,
};
use callback::Delivery;
use numbers::{MISCONFIGURED_SENDER, RATE_LIMITED_ATTEMPTS};

const PROVIDER: ProviderKind = ProviderKind::Sandbox;

/// Twilio's limit on `Body`.
const MAX_BODY_CHARS: usize = 1_600;

/// Rate-limited messages remembered at most (oldest forgotten first: message ids are UUID v7).
const MAX_RATE_LIMITED_REMEMBERED: usize = 10_000;

/// The webhook path status callbacks go to (the hub's `POST /webhooks/twilio/status`).
pub const STATUS_WEBHOOK_PATH: &str = "/webhooks/twilio/status";

/// Twilio on loopback. See the [module documentation](self).
pub struct SandboxProvider {
    inner: Arc<Inner>,
    rng: Mutex<StdRng>,
    /// Send attempts refused so far per rate-limited message.
    rate_limited: Mutex<BTreeMap<MessageId, u32>>,
    /// One permit per message with callbacks pending.
    permits: Arc<Semaphore>,
    max_outstanding: usize,
    /// `true` once shut down; dropping it (with the provider) stops the tasks too.
    stop: watch::Sender<bool>,
    http_timeout: Duration,
}

/// What the callback tasks share.
#[derive(Debug)]
struct Inner {
    delivery: Delivery,
    delays: SandboxDelays,
    account_sid: TwilioSid,
    pool_number: PhoneNumber,
}

impl fmt::Debug for SandboxProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The auth token inside `Delivery` is a `Secret`: it prints as `***`.
        f.debug_struct("SandboxProvider")
            .field("post_url", &self.inner.delivery.post_url)
            .field("signing_url", &self.inner.delivery.signing_url)
            .field("delays", &self.inner.delays)
            .field("max_outstanding", &self.max_outstanding)
            .field("pending_messages", &self.pending_messages())
            .field("shut_down", &*self.stop.borrow())
            .finish_non_exhaustive()
    }
}

impl SandboxProvider {
    /// Validates the configuration and builds the HTTP client. Needs no runtime; `send`
    /// must be polled inside a Tokio runtime (it spawns the callback tasks).
    pub fn new(config: SandboxConfig) -> Result<Self, ConfigError> {
        let hub_base_url = base_url(&config.hub_base_url, "hub_base_url")?;
        let public_url = base_url(&config.public_url, "public_url")?;
        if config.auth_token.expose().is_empty() {
            return Err(ConfigError::Invalid {
                name: "auth_token",
                reason: "must not be empty (the hub verifies callbacks with it)",
            });
        }
        if config.max_outstanding == 0 {
            return Err(ConfigError::Invalid {
                name: "max_outstanding",
                reason: "must be at least 1",
            });
        }
        if config.max_outstanding > Semaphore::MAX_PERMITS {
            return Err(ConfigError::Invalid {
                name: "max_outstanding",
                reason: "too large",
            });
        }
        if config.account_sid.kind() != TwilioSidKind::Account {
            return Err(ConfigError::Invalid {
                name: "account_sid",
                reason: "must be an account SID (AC…)",
            });
        }
        let http = build_client(config.http_timeout)?;
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let (stop, _) = watch::channel(false);
        Ok(Self {
            inner: Arc::new(Inner {
                delivery: Delivery {
                    http,
                    post_url: format!("{hub_base_url}{STATUS_WEBHOOK_PATH}"),
                    signing_url: format!("{public_url}{STATUS_WEBHOOK_PATH}"),
                    auth_token: config.auth_token,
                    timeout: config.http_timeout,
                    retries: config.callback_retries,
                    retry_backoff: config.retry_backoff,
                },
                delays: config.delays,
                account_sid: config.account_sid,
                pool_number: config.pool_number,
            }),
            rng: Mutex::new(rng),
            rate_limited: Mutex::new(BTreeMap::new()),
            permits: Arc::new(Semaphore::new(config.max_outstanding)),
            max_outstanding: config.max_outstanding,
            stop,
            http_timeout: config.http_timeout,
        })
    }

    /// Messages whose status callbacks are still pending (scheduled or being delivered).
    pub fn pending_messages(&self) -> usize {
        self.max_outstanding
            .saturating_sub(self.permits.available_permits())
    }

    /// Stops every pending callback and refuses further sends ([`SendError::Connect`]).
    /// Dropping the provider does the same.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
        self.permits.close();
    }

    /// Waits until no callbacks are pending (all delivered, given up or stopped), at most
    /// `timeout`; `true` if none are. For tests and graceful shutdown.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.pending_messages() == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn next_sid(&self) -> TwilioSid {
        let mut bytes = [0_u8; 16];
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fill_bytes(&mut bytes);
        let sid = format!("SM{}", hex::encode(bytes));
        // Invariant: "SM" and 32 hex digits is a message SID.
        #[allow(clippy::unwrap_used)]
        TwilioSid::parse(&sid).unwrap()
    }

    /// Whether this attempt for a rate-limited message is refused (and counts it).
    fn rate_limit_refuses(&self, message_id: MessageId) -> bool {
        let mut attempts = self
            .rate_limited
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let seen = attempts.entry(message_id).or_insert(0);
        if *seen >= RATE_LIMITED_ATTEMPTS {
            attempts.remove(&message_id);
            return false;
        }
        *seen += 1;
        while attempts.len() > MAX_RATE_LIMITED_REMEMBERED {
            attempts.pop_first();
        }
        true
    }

    async fn send_inner(&self, request: &OutboundRequest) -> Result<SendAccepted, SendError> {
        if *self.stop.borrow() {
            return Err(shut_down());
        }
        let (from, messaging_service) = sender(&request.from, &self.inner.pool_number)?;
        validate_content(&request.content)?;
        if from == request.to {
            return Err(rejected(
                400,
                21266,
                "'To' and 'From' number cannot be the same",
            ));
        }
        let scenario = Scenario::for_recipient(&request.to);
        tracing::Span::current().record("scenario", scenario.as_str());
        match scenario {
            Scenario::InvalidNumber => {
                return Err(rejected(
                    400,
                    21211,
                    &format!("Invalid 'To' Phone Number: whatsapp:{}", request.to),
                ))
            }
            Scenario::InternalError => return Err(rejected(500, 20500, "Internal Server Error")),
            Scenario::RateLimited if self.rate_limit_refuses(request.message_id) => {
                return Err(rejected(429, 20429, "Too Many Requests"))
            }
            _ => {}
        }
        let permit = self.permit()?;
        let sid = self.next_sid();
        let callbacks = self.plan(scenario, request, &sid, &from, messaging_service.clone());
        self.spawn_callbacks(request.message_id, permit, callbacks);

        if scenario == Scenario::LostResponse {
            tracing::Span::current().record("provider_message_id", sid.as_str());
            return Err(SendError::Timeout {
                provider: PROVIDER,
                timeout: self.http_timeout,
            });
        }
        Ok(SendAccepted {
            provider_message_id: ProviderMessageRef::Twilio(sid),
            status: Some(if messaging_service.is_some() {
                MessageStatus::Accepted
            } else {
                MessageStatus::Queued
            }),
            http_status: 201,
            recipient: None,
        })
    }

    fn permit(&self) -> Result<OwnedSemaphorePermit, SendError> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::NoPermits) => Err(rejected(
                429,
                20429,
                "Too Many Requests: the sandbox has too many messages awaiting status callbacks",
            )),
            Err(TryAcquireError::Closed) => Err(shut_down()),
        }
    }

    /// The callbacks of an accepted message, each with the delay before it.
    fn plan(
        &self,
        scenario: Scenario,
        request: &OutboundRequest,
        sid: &TwilioSid,
        from: &PhoneNumber,
        messaging_service: Option<TwilioSid>,
    ) -> Vec<(Duration, StatusCallback)> {
        let delays = self.inner.delays;
        let callback = |status: MessageStatus, error: Option<(u32, &str)>| StatusCallback {
            message_sid: sid.clone(),
            account_sid: self.inner.account_sid.clone(),
            messaging_service_sid: messaging_service.clone(),
            channel_install_sid: SANDBOX_CHANNEL_INSTALL_SID.to_owned(),
            from: from.clone(),
            to: request.to.clone(),
            status,
            error_code: error.map(|(code, _)| code),
            channel_status_message: error.map(|(_, message)| message.to_owned()),
        };
        let queued = (delays.queued, callback(MessageStatus::Queued, None));
        let is_text = matches!(request.content, OutboundContent::Text { .. });
        match scenario {
            Scenario::NotOnWhatsapp => vec![
                queued,
                (delays.sent, callback(MessageStatus::Sent, None)),
                (
                    delays.delivered,
                    callback(
                        MessageStatus::Undelivered,
                        Some((63024, "Invalid message recipient")),
                    ),
                ),
            ],
            Scenario::WindowClosed if is_text => vec![
                queued,
                (
                    delays.sent,
                    callback(
                        MessageStatus::Failed,
                        Some((63016, "Re-engagement message")),
                    ),
                ),
            ],
            Scenario::BlockedBusiness => vec![
                queued,
                (
                    delays.sent,
                    callback(
                        MessageStatus::Failed,
                        Some((63014, "Message blocked by user action")),
                    ),
                ),
            ],
            _ => vec![
                queued,
                (delays.sent, callback(MessageStatus::Sent, None)),
                (delays.delivered, callback(MessageStatus::Delivered, None)),
                (delays.read, callback(MessageStatus::Read, None)),
            ],
        }
    }

    fn spawn_callbacks(
        &self,
        message_id: MessageId,
        permit: OwnedSemaphorePermit,
        callbacks: Vec<(Duration, StatusCallback)>,
    ) {
        let inner = Arc::clone(&self.inner);
        let mut stop = self.stop.subscribe();
        let span = tracing::info_span!("sandbox.callbacks", message_id = %message_id);
        tokio::spawn(
            async move {
                // Held until the last callback is done: counts towards `max_outstanding`.
                let _permit = permit;
                tokio::select! {
                    // `true` was sent (shutdown) or the sender is gone (provider dropped).
                    _ = stop.wait_for(|stopped| *stopped) => {
                        tracing::debug!("sandbox stopped; pending status callbacks dropped");
                    }
                    () = inner.run(message_id, callbacks) => {}
                }
            }
            .instrument(span),
        );
    }
}

impl Inner {
    async fn run(&self, message_id: MessageId, callbacks: Vec<(Duration, StatusCallback)>) {
        for (delay, callback) in callbacks {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.delivery.post(message_id, &callback).await;
        }
    }
}

impl Provider for SandboxProvider {
    fn kind(&self) -> ProviderKind {
        PROVIDER
    }

    fn send<'a>(&'a self, request: &'a OutboundRequest) -> SendFuture<'a> {
        // Ids and outcome only: never the recipient's number or text, never the token.
        let span = tracing::info_span!(
            "provider.send",
            provider = "sandbox",
            message_id = %request.message_id,
            scenario = tracing::field::Empty,
            http_status = tracing::field::Empty,
            provider_message_id = tracing::field::Empty,
            error_code = tracing::field::Empty,
        );
        Box::pin(
            async move {
                let result = self.send_inner(request).await;
                if let Some(status) = result
                    .as_ref()
                    .map_or_else(SendError::http_status, |a| Some(a.http_status))
                {
                    tracing::Span::current().record("http_status", status);
                }
                record_outcome(&result);
                result
            }
            .instrument(span),
        )
    }
}

/// The `From` number the callbacks carry, and the Messaging Service, if one was used.
fn sender(
    from: &Sender,
    pool_number: &PhoneNumber,
) -> Result<(PhoneNumber, Option<TwilioSid>), SendError> {
    match from {
        Sender::Number(number) if number.as_str() == MISCONFIGURED_SENDER => Err(rejected(
            400,
            63007,
            "Twilio could not find a Channel with the specified From address",
        )),
        Sender::Number(number) => Ok((number.clone(), None)),
        Sender::TwilioMessagingService(sid) if sid.kind() == TwilioSidKind::MessagingService => {
            Ok((pool_number.clone(), Some(sid.clone())))
        }
        Sender::TwilioMessagingService(_) | Sender::MetaPhoneNumberId(_) => Err(invalid(
            "the sender must be a number or a Messaging Service SID (MG…)",
        )),
    }
}

fn validate_content(content: &OutboundContent) -> Result<(), SendError> {
    match content {
        // Like Twilio: media by link with the caption as body; buttons need a Content resource.
        OutboundContent::Rich(wagate_domain::RichReply::Media(media)) => {
            if media.caption.chars().count() > MAX_BODY_CHARS {
                return Err(rejected(
                    400,
                    21617,
                    "The concatenated message body exceeds the 1600 character limit.",
                ));
            }
        }
        OutboundContent::Rich(wagate_domain::RichReply::Buttons { .. }) => {
            return Err(invalid(
                "Twilio sends quick-reply buttons only from a Content resource (twilio/quick-reply)",
            ));
        }
        OutboundContent::Text { body } => {
            if body.trim().is_empty() {
                return Err(rejected(400, 21602, "Message body is required."));
            }
            if body.chars().count() > MAX_BODY_CHARS {
                return Err(rejected(
                    400,
                    21617,
                    "The concatenated message body exceeds the 1600 character limit.",
                ));
            }
        }
        OutboundContent::Template(template) => {
            if !template.template.as_str().starts_with("HX") {
                return Err(invalid(
                    "Twilio templates are named by their Content SID (HX…)",
                ));
            }
            let mut keys = std::collections::BTreeSet::new();
            let valid = template
                .variables
                .iter()
                .all(|(key, value)| !key.is_empty() && !value.is_empty() && keys.insert(key));
            if !valid {
                return Err(rejected(
                    400,
                    21656,
                    "The ContentVariables Parameter is invalid",
                ));
            }
        }
    }
    Ok(())
}

fn rejected(http_status: u16, code: u32, message: &str) -> SendError {
    SendError::Rejected {
        provider: PROVIDER,
        http_status,
        code: Some(code),
        message: message.to_owned(),
        details: None,
        reference: Some(format!("https://www.twilio.com/docs/errors/{code}")),
    }
}

fn invalid(reason: &str) -> SendError {
    SendError::InvalidRequest {
        provider: PROVIDER,
        reason: reason.to_owned(),
    }
}

fn shut_down() -> SendError {
    SendError::Connect {
        provider: PROVIDER,
        reason: "the sandbox is shut down".to_owned(),
    }
}
