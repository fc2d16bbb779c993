//! The async driver: a thin tokio loop that performs the step machine's effects against a hub
//! ([`HubPort`]: in-process `wagate_app::Hub`, or the hub's HTTP API) and the providers, and
//! feeds the answers back. Everything it decides, the machine decided; the loop only waits.
//!
//! One task per effect (claims, provider calls, records, expiries run concurrently, bounded
//! by the machine's in-flight limit); answers come back through one channel. Every effect that
//! expects an answer gets exactly one: a hub that fails answers `Unavailable`, a provider that
//! fails answers with its error.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument};
use wagate_app::Clock;
use wagate_domain::decide::{DispatchOutcome, RecordOutcome};
use wagate_domain::{
    ContactId, MessageContent, MessageId, MessageStatus, ProviderError, ProviderKind, Timestamp,
    WhatsAppAddress,
};
use wagate_providers::{
    OutboundContent, OutboundRequest, Provider, SendAccepted, SendError, Sender,
};

use crate::machine::{ClaimAnswer, Config, Dispatcher, Effect, HubAnswer, Input, PendingIntent};

/// A boxed, sendable future: what [`HubPort`] methods return (keeps the trait object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the hub could not answer a read.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("the hub is unavailable: {0}")]
    Unavailable(String),
    #[error("the hub answered something unexpected: {0}")]
    Protocol(String),
}

/// Why the driver stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot read the dispatcher's checkpoint: {0}")]
    Checkpoint(#[source] HubError),
}

/// The open messages as the hub sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub intents: Vec<PendingIntent>,
    /// Every intent below this position is in `intents` (unless done).
    pub read_up_to: u64,
    /// More may follow at once (a bounded read stopped short of the head): ask again.
    pub more: bool,
}

/// A granted claim: what the provider call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedIntent {
    pub attempt: u32,
    pub sender: WhatsAppAddress,
    pub recipient: ContactId,
    pub content: MessageContent,
    /// The sender's provider (from its registration).
    pub provider: Option<ProviderKind>,
    /// Cloud API senders are addressed by phone-number id.
    pub meta_phone_number_id: Option<String>,
    /// For templates: the registered language (the Cloud API needs it).
    pub template_language: Option<String>,
}

/// The hub as the dispatcher uses it. Claims, outcomes and expiries are decided by the hub
/// (`decide::claim`, `record_outcome`, `expire_in_doubt`); an implementation only carries them
/// and reports the message's phase afterwards.
pub trait HubPort: Send + Sync + 'static {
    /// Every message with dispatch work.
    fn pending(&self) -> BoxFuture<'_, Result<Snapshot, HubError>>;
    /// Messages whose intents landed at `from` or later (phase `Pending` for the first
    /// attempt: the claim tells the truth). An implementation without a cheaper way may
    /// answer with [`HubPort::pending`].
    fn intents_since(&self, from: u64) -> BoxFuture<'_, Result<Snapshot, HubError>>;
    fn claim(&self, message_id: MessageId) -> BoxFuture<'_, ClaimAnswer<ClaimedIntent>>;
    fn record_outcome(&self, command: RecordOutcome) -> BoxFuture<'_, HubAnswer>;
    fn expire_in_doubt(&self, message_id: MessageId) -> BoxFuture<'_, HubAnswer>;
    /// The position the dispatcher resumes from (0 when none was saved).
    fn checkpoint(&self) -> BoxFuture<'_, Result<u64, HubError>>;
    fn save_checkpoint(&self, position: u64) -> BoxFuture<'_, Result<(), HubError>>;
    /// A signal that new events may have landed (the durable head), if the hub offers one;
    /// without it the driver polls on its interval only.
    fn changes(&self) -> Option<watch::Receiver<u64>>;
    /// A reader of the log that sends the intents appended after position `after` to `sink`
    /// (in log order; each snapshot's `read_up_to` one past its last intent) until `stop`
    /// turns true, if the hub has one: the in-process hub follows its log with a
    /// `wagate_app::Follower`, the mechanism every other reader of the log is built on. `None`
    /// (the default): the driver reads [`HubPort::intents_since`] whenever
    /// [`HubPort::changes`] fires, as it must over HTTP.
    fn follow_intents(
        &self,
        _after: u64,
        _sink: mpsc::UnboundedSender<Snapshot>,
        _stop: watch::Receiver<bool>,
    ) -> Option<BoxFuture<'static, ()>> {
        None
    }
}

/// The providers messages can go out through, by kind.
#[derive(Clone, Default)]
pub struct Providers {
    by_kind: Vec<(ProviderKind, Arc<dyn Provider>)>,
}

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self.by_kind.iter().map(|(kind, _)| kind.as_str()).collect();
        f.debug_struct("Providers").field("kinds", &kinds).finish()
    }
}

impl Providers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends messages of senders registered with `kind` through `provider` (replacing any
    /// earlier one for that kind).
    pub fn with(mut self, kind: ProviderKind, provider: Arc<dyn Provider>) -> Self {
        self.by_kind.retain(|(existing, _)| *existing != kind);
        self.by_kind.push((kind, provider));
        self
    }

    fn get(&self, kind: ProviderKind) -> Option<Arc<dyn Provider>> {
        self.by_kind
            .iter()
            .find(|(existing, _)| *existing == kind)
            .map(|(_, provider)| Arc::clone(provider))
    }
}

/// A claimed message ready for its provider call, or the reason it cannot be made (recorded
/// as a permanent failure: the claim must get an outcome).
#[derive(Clone)]
pub struct Prepared {
    kind: ProviderKind,
    call: Result<(Arc<dyn Provider>, OutboundRequest), String>,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("kind", &self.kind)
            .field("request", &self.call.as_ref().map(|(_, request)| request))
            .finish()
    }
}

/// The provider request for a claim (pure; `Err` names what is missing).
pub fn outbound_request(
    message_id: MessageId,
    claimed: &ClaimedIntent,
) -> Result<OutboundRequest, String> {
    let Some(to) = claimed.recipient.phone() else {
        return Err(format!(
            "{} has no phone number: WhatsApp providers cannot address it",
            claimed.recipient
        ));
    };
    let from = match claimed.provider {
        Some(ProviderKind::Meta) => match &claimed.meta_phone_number_id {
            Some(id) => Sender::MetaPhoneNumberId(id.clone()),
            None => {
                return Err(format!(
                    "Cloud API sender {} has no phone-number id",
                    claimed.sender
                ))
            }
        },
        _ => Sender::Number(claimed.sender.number().clone()),
    };
    let mut content = OutboundContent::from_domain(&claimed.content);
    if let OutboundContent::Template(template) = &mut content {
        template.language.clone_from(&claimed.template_language);
    }
    Ok(OutboundRequest {
        message_id,
        from,
        to: to.clone(),
        content,
    })
}

fn prepare(providers: &Providers, message_id: MessageId, claimed: &ClaimedIntent) -> Prepared {
    let kind = claimed.provider.unwrap_or(ProviderKind::Twilio);
    let call = match (providers.get(kind), claimed.provider) {
        (_, None) => Err(format!("sender {} is not registered", claimed.sender)),
        (None, Some(_)) => Err(format!(
            "no {} provider is configured in this dispatcher",
            kind.as_str()
        )),
        (Some(provider), Some(_)) => {
            outbound_request(message_id, claimed).map(|request| (provider, request))
        }
    };
    Prepared { kind, call }
}

/// What a provider's answer means for the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderAnswer {
    /// A verdict the hub records (`decide::record_outcome`): accepted, rejected, or a transport
    /// failure that proves nothing reached the provider (a retry cannot duplicate it).
    Outcome(DispatchOutcome),
    /// The provider may have the message (timeout, connection lost after the request left, a
    /// 2xx answer that cannot be read): nothing is recorded and nothing is retried; the claim
    /// waits for a status callback or its expiry.
    InDoubt {
        /// Why, for the log.
        reason: String,
    },
}

/// Classifies a provider's answer. Only failures that prove the request never reached the
/// provider ([`SendError::may_have_been_sent`] false) become outcomes that may be retried.
pub fn provider_answer(
    kind: ProviderKind,
    answer: Result<SendAccepted, SendError>,
) -> ProviderAnswer {
    match answer {
        Ok(accepted) => ProviderAnswer::Outcome(DispatchOutcome::Accepted {
            provider_ref: accepted.provider_message_id,
            provider_status: accepted.status.unwrap_or(MessageStatus::Queued),
            recipient: accepted.recipient,
        }),
        Err(error) if error.may_have_been_sent() => ProviderAnswer::InDoubt {
            reason: error.to_string(),
        },
        // No connection was made: nothing was sent, a retry cannot duplicate it.
        Err(error) if error.is_transport() => ProviderAnswer::Outcome(DispatchOutcome::Transport {
            provider: kind,
            message: error.to_string(),
        }),
        Err(error) => ProviderAnswer::Outcome(DispatchOutcome::Rejected {
            error: error.to_provider_error(),
        }),
    }
}

fn not_callable(kind: ProviderKind, reason: String) -> DispatchOutcome {
    DispatchOutcome::Rejected {
        error: ProviderError {
            provider: kind,
            code: None,
            http_status: None,
            message: reason,
        },
    }
}

/// How the loop runs, beyond what the machine is configured with.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// Ask the hub for open messages at least this often (and whenever its head moves).
    pub poll_interval: Duration,
    /// But not more often than this: a busy hub's head moves with every append (most of them
    /// the dispatcher's own claims and outcomes), and each poll lists every open message.
    pub poll_gap_min: Duration,
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            poll_gap_min: Duration::from_millis(200),
        }
    }
}

/// What a run did, for the log line at exit and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub claims: u64,
    pub provider_calls: u64,
    pub outcomes_recorded: u64,
    pub expiries: u64,
    pub checkpoint: Option<u64>,
}

enum Message {
    Input(Input<Prepared>),
    Polled {
        full: bool,
        result: Result<Snapshot, HubError>,
    },
}

/// Runs the dispatcher until `shutdown` completes and the machine has finished what was in
/// flight. The checkpoint is saved on the way out.
pub async fn run<H: HubPort>(
    hub: Arc<H>,
    providers: Providers,
    config: Config,
    options: DriverOptions,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunReport, DriverError> {
    let checkpoint = hub.checkpoint().await.map_err(DriverError::Checkpoint)?;
    let mut loop_state = Loop {
        machine: Dispatcher::new(config, checkpoint),
        hub,
        providers,
        clock,
        report: RunReport::default(),
        wake: None,
        polling: false,
        poll_again: false,
        poll_started: None,
        poll_gap_min: options.poll_gap_min,
        read_from: None,
        full_again: false,
        stopped: false,
        checkpoints: None,
        following: None,
    };
    let (sender, mut receiver) = mpsc::unbounded_channel();
    // One saver, always writing the newest position, so saves never land out of order.
    let (checkpoint_sender, mut checkpoint_receiver) = watch::channel(None::<u64>);
    let saver_hub = Arc::clone(&loop_state.hub);
    let saver = tokio::spawn(async move {
        while checkpoint_receiver.changed().await.is_ok() {
            let position = *checkpoint_receiver.borrow_and_update();
            if let Some(position) = position {
                if let Err(error) = saver_hub.save_checkpoint(position).await {
                    warn!(%error, position, "cannot save the checkpoint");
                }
            }
        }
    });
    loop_state.checkpoints = Some(checkpoint_sender);
    let mut changes = loop_state.hub.changes();
    let mut interval = tokio::time::interval(options.poll_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut shutdown_done = false;
    let mut change_poll_at: Option<Instant> = None;
    let (followed_sender, mut followed) = mpsc::unbounded_channel::<Snapshot>();
    let (stop_follower, follower_stopped) = watch::channel(false);
    info!(checkpoint, "dispatcher started");
    loop {
        let wake = loop_state.wake;
        tokio::select! {
            () = &mut shutdown, if !shutdown_done => {
                shutdown_done = true;
                info!("dispatcher shutting down: finishing in-flight sends");
                loop_state.feed(Input::ShutdownRequested, &sender);
            }
            Some(message) = receiver.recv() => match message {
                Message::Input(input) => loop_state.feed(input, &sender),
                Message::Polled { full, result } => {
                    loop_state.polling = false;
                    match result {
                        Ok(snapshot) => {
                            // New intents after the first full list: from the hub's follower
                            // when it has one (the head signal and the incremental reads are
                            // then its business), else read here on each change.
                            if full && loop_state.following.is_none() {
                                let after = snapshot.read_up_to.saturating_sub(1);
                                let follower = loop_state.hub.follow_intents(
                                    after,
                                    followed_sender.clone(),
                                    follower_stopped.clone(),
                                );
                                if let Some(follower) = follower {
                                    debug!(after, "following new intents");
                                    loop_state.following = Some(tokio::spawn(follower));
                                    changes = None;
                                    change_poll_at = None;
                                }
                            }
                            let next = loop_state.read_from.unwrap_or(0).max(snapshot.read_up_to);
                            // A full snapshot lists everything below its head: read on from there.
                            loop_state.read_from = Some(if full { snapshot.read_up_to } else { next });
                            loop_state.poll_again |= snapshot.more;
                            loop_state.feed(
                                Input::IntentsAvailable {
                                    intents: snapshot.intents,
                                    read_up_to: snapshot.read_up_to,
                                },
                                &sender,
                            );
                        }
                        Err(error) => warn!(%error, "cannot list open messages"),
                    }
                    if std::mem::take(&mut loop_state.poll_again) {
                        let full = std::mem::take(&mut loop_state.full_again);
                        loop_state.poll(full, &sender);
                    }
                }
            },
            Some(snapshot) = followed.recv() => loop_state.feed(
                Input::IntentsAvailable {
                    intents: snapshot.intents,
                    read_up_to: snapshot.read_up_to,
                },
                &sender,
            ),
            () = sleep_until(wake, loop_state.clock.now()), if wake.is_some() => {
                loop_state.wake = None;
                loop_state.feed(Input::Tick, &sender);
            }
            Some(()) = changed(&mut changes) => {
                // At most one poll per gap: a change inside the gap polls when it ends.
                let due = loop_state.poll_started.map(|at| at + loop_state.poll_gap_min);
                match due {
                    Some(due) if due > Instant::now() => {
                        change_poll_at.get_or_insert(due);
                    }
                    _ => loop_state.poll(false, &sender),
                }
            }
            () = sleep_until_instant(change_poll_at), if change_poll_at.is_some() => {
                change_poll_at = None;
                loop_state.poll(false, &sender);
            }
            // The full list now and then: callbacks, expiries and other dispatchers change
            // messages without new intents.
            _ = interval.tick() => loop_state.poll(true, &sender),
        }
        if loop_state.stopped {
            break;
        }
    }
    stop_follower.send_replace(true);
    if let Some(follower) = loop_state.following.take() {
        if let Err(error) = follower.await {
            warn!(%error, "the intent follower ended abnormally");
        }
    }
    // The saver ends once its sender is gone; the last position is then saved here, awaited.
    loop_state.checkpoints = None;
    let _ = saver.await;
    if let Some(position) = loop_state.report.checkpoint {
        if let Err(error) = loop_state.hub.save_checkpoint(position).await {
            warn!(%error, position, "cannot save the checkpoint on the way out");
        }
    }
    info!(report = ?loop_state.report, "dispatcher stopped");
    Ok(loop_state.report)
}

async fn sleep_until(wake: Option<Timestamp>, now: Timestamp) {
    let Some(wake) = wake else {
        return std::future::pending().await;
    };
    let delay = (wake - now).to_std().unwrap_or(Duration::ZERO);
    tokio::time::sleep_until(Instant::now() + delay).await;
}

async fn sleep_until_instant(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next change of the hub's head; `None` (never ready) when there is no signal or it is
/// gone.
async fn changed(changes: &mut Option<watch::Receiver<u64>>) -> Option<()> {
    match changes {
        Some(receiver) => match receiver.changed().await {
            Ok(()) => Some(()),
            Err(_) => {
                *changes = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

struct Loop<H> {
    machine: Dispatcher,
    hub: Arc<H>,
    providers: Providers,
    clock: Arc<dyn Clock>,
    report: RunReport,
    wake: Option<Timestamp>,
    polling: bool,
    poll_again: bool,
    poll_started: Option<Instant>,
    poll_gap_min: Duration,
    /// Where the next incremental read starts; `None` until the first full snapshot.
    read_from: Option<u64>,
    full_again: bool,
    stopped: bool,
    checkpoints: Option<watch::Sender<Option<u64>>>,
    /// The hub's follower of new intents, once started ([`HubPort::follow_intents`]).
    following: Option<tokio::task::JoinHandle<()>>,
}

impl<H: HubPort> Loop<H> {
    /// One poll at a time; a request during a poll runs one more after it. A full poll lists
    /// every open message; otherwise only intents since the last read are fetched.
    fn poll(&mut self, full: bool, sender: &mpsc::UnboundedSender<Message>) {
        if self.stopped || self.machine.is_stopped() {
            return;
        }
        if self.polling {
            self.poll_again = true;
            self.full_again |= full;
            return;
        }
        self.polling = true;
        self.poll_started = Some(Instant::now());
        let from = if full { None } else { self.read_from };
        let hub = Arc::clone(&self.hub);
        let sender = sender.clone();
        tokio::spawn(async move {
            let (full, result) = match from {
                Some(from) => (false, hub.intents_since(from).await),
                None => (true, hub.pending().await),
            };
            // The loop may be gone (stopped): nothing to tell then.
            let _ = sender.send(Message::Polled { full, result });
        });
    }

    fn feed(&mut self, input: Input<Prepared>, sender: &mpsc::UnboundedSender<Message>) {
        let now = self.clock.now();
        for effect in self.machine.step(input, now) {
            self.perform(effect, sender);
        }
    }

    fn perform(&mut self, effect: Effect<Prepared>, sender: &mpsc::UnboundedSender<Message>) {
        let answer = sender.clone();
        let hub = Arc::clone(&self.hub);
        match effect {
            Effect::Claim { message_id } => {
                self.report.claims += 1;
                let providers = self.providers.clone();
                let span = info_span!("claim", %message_id);
                tokio::spawn(
                    async move {
                        let answer_to_machine = match hub.claim(message_id).await {
                            ClaimAnswer::Claimed { attempt, request } => ClaimAnswer::Claimed {
                                attempt,
                                request: prepare(&providers, message_id, &request),
                            },
                            ClaimAnswer::Refused { rule } => {
                                info!(%rule, "claim refused: message canceled");
                                ClaimAnswer::Refused { rule }
                            }
                            ClaimAnswer::NotClaimable { phase } => {
                                debug!(?phase, "not claimable");
                                ClaimAnswer::NotClaimable { phase }
                            }
                            ClaimAnswer::Unavailable => ClaimAnswer::Unavailable,
                        };
                        let _ = answer.send(Message::Input(Input::ClaimAnswered {
                            message_id,
                            answer: answer_to_machine,
                        }));
                    }
                    .instrument(span),
                );
            }
            Effect::CallProvider {
                message_id,
                attempt,
                request,
            } => {
                self.report.provider_calls += 1;
                let span = info_span!(
                    "dispatch",
                    %message_id,
                    attempt,
                    provider = request.kind.as_str()
                );
                tokio::spawn(
                    async move {
                        let answer_to_machine = match request.call {
                            Ok((provider, outbound)) => {
                                let answer = provider.send(&outbound).await;
                                provider_answer(request.kind, answer)
                            }
                            Err(reason) => {
                                warn!(%reason, "cannot call the provider");
                                ProviderAnswer::Outcome(not_callable(request.kind, reason))
                            }
                        };
                        let input = match answer_to_machine {
                            ProviderAnswer::Outcome(outcome) => {
                                match &outcome {
                                    DispatchOutcome::Accepted { provider_ref, .. } => {
                                        info!(%provider_ref, "accepted")
                                    }
                                    DispatchOutcome::Rejected { error } => {
                                        warn!(code = ?error.code, http_status = ?error.http_status, "rejected")
                                    }
                                    DispatchOutcome::Transport { message, .. } => {
                                        warn!(%message, "not sent: no connection")
                                    }
                                }
                                Input::ProviderAnswered {
                                    message_id,
                                    attempt,
                                    outcome,
                                }
                            }
                            ProviderAnswer::InDoubt { reason } => {
                                warn!(
                                    %reason,
                                    "in doubt: the provider may have the message; not retried, \
                                     left to its status callback or the in-doubt expiry"
                                );
                                Input::ProviderInDoubt {
                                    message_id,
                                    attempt,
                                }
                            }
                        };
                        let _ = answer.send(Message::Input(input));
                    }
                    .instrument(span),
                );
            }
            Effect::RecordOutcome(command) => {
                self.report.outcomes_recorded += 1;
                let message_id = command.message_id;
                let span = info_span!("record_outcome", %message_id, attempt = command.attempt);
                tokio::spawn(
                    async move {
                        let result = hub.record_outcome(command).await;
                        let _ = answer.send(Message::Input(Input::OutcomeRecorded {
                            message_id,
                            answer: result,
                        }));
                    }
                    .instrument(span),
                );
            }
            Effect::ExpireInDoubt {
                message_id,
                attempt,
            } => {
                self.report.expiries += 1;
                let span = info_span!("expire_in_doubt", %message_id, attempt);
                tokio::spawn(
                    async move {
                        let result = hub.expire_in_doubt(message_id).await;
                        let _ = answer.send(Message::Input(Input::ExpiryAnswered {
                            message_id,
                            answer: result,
                        }));
                    }
                    .instrument(span),
                );
            }
            Effect::SleepUntil(at) => self.wake = Some(at),
            Effect::SaveCheckpoint(position) => {
                self.report.checkpoint = Some(position);
                if let Some(checkpoints) = &self.checkpoints {
                    checkpoints.send_replace(Some(position));
                }
            }
            Effect::Stopped => self.stopped = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagate_domain::{BusinessScopedUserId, PhoneNumber, TemplateCategory, TemplateId};

    fn message_id() -> MessageId {
        MessageId::parse("019b76da-a800-7000-8000-000000000001").expect("a v7 id")
    }

    fn claimed(provider: ProviderKind) -> ClaimedIntent {
        ClaimedIntent {
            attempt: 1,
            sender: WhatsAppAddress::parse("whatsapp:+15550001111").expect("sender"),
            recipient: ContactId::Phone(PhoneNumber::parse("+41790000001").expect("number")),
            content: MessageContent::Template {
                media: Vec::new(),
                template: TemplateId::parse("viewing_reminder").expect("template"),
                category: TemplateCategory::Utility,
                variables: vec![("1".into(), "Lea".into())],
            },
            provider: Some(provider),
            meta_phone_number_id: Some("106540352242922".into()),
            template_language: Some("en_US".into()),
        }
    }

    #[test]
    fn requests_address_each_provider_its_way() {
        let twilio = outbound_request(message_id(), &claimed(ProviderKind::Twilio))
            .expect("a Twilio request");
        assert_eq!(
            twilio.from,
            Sender::Number(PhoneNumber::parse("+15550001111").expect("number"))
        );
        let meta =
            outbound_request(message_id(), &claimed(ProviderKind::Meta)).expect("a Meta request");
        assert_eq!(
            meta.from,
            Sender::MetaPhoneNumberId("106540352242922".into())
        );
        let OutboundContent::Template(template) = &meta.content else {
            panic!("a template: {meta:?}");
        };
        assert_eq!(template.language.as_deref(), Some("en_US"));
    }

    #[test]
    fn a_request_that_cannot_be_made_says_why() {
        let mut no_id = claimed(ProviderKind::Meta);
        no_id.meta_phone_number_id = None;
        assert!(outbound_request(message_id(), &no_id).is_err());
        let mut username = claimed(ProviderKind::Twilio);
        username.recipient = ContactId::BusinessScoped(
            BusinessScopedUserId::parse("US.13491208655302741918").expect("bsuid"),
        );
        assert!(outbound_request(message_id(), &username).is_err());
        let prepared = prepare(
            &Providers::new(),
            message_id(),
            &claimed(ProviderKind::Twilio),
        );
        assert!(prepared.call.is_err(), "no Twilio provider configured");
    }

    #[test]
    fn provider_answers_map_to_outcomes() {
        let timeout = SendError::Timeout {
            provider: ProviderKind::Twilio,
            timeout: Duration::from_secs(10),
        };
        assert!(matches!(
            provider_answer(ProviderKind::Twilio, Err(timeout)),
            ProviderAnswer::InDoubt { .. }
        ));
        let unreadable = SendError::UnexpectedResponse {
            provider: ProviderKind::Twilio,
            http_status: 201,
            reason: "not a Message resource".into(),
        };
        assert!(matches!(
            provider_answer(ProviderKind::Twilio, Err(unreadable)),
            ProviderAnswer::InDoubt { .. }
        ));
        let lost = SendError::Transport {
            provider: ProviderKind::Meta,
            reason: "connection reset".into(),
        };
        assert!(matches!(
            provider_answer(ProviderKind::Meta, Err(lost)),
            ProviderAnswer::InDoubt { .. }
        ));
        let rejected = SendError::Rejected {
            provider: ProviderKind::Twilio,
            http_status: 400,
            code: Some(63016),
            message: "outside the window".into(),
            details: None,
            reference: None,
        };
        let ProviderAnswer::Outcome(DispatchOutcome::Rejected { error }) =
            provider_answer(ProviderKind::Twilio, Err(rejected))
        else {
            panic!("a rejection");
        };
        assert_eq!((error.code, error.http_status), (Some(63016), Some(400)));
        let refused = SendError::Connect {
            provider: ProviderKind::Meta,
            reason: "connection refused".into(),
        };
        assert!(matches!(
            provider_answer(ProviderKind::Meta, Err(refused)),
            ProviderAnswer::Outcome(DispatchOutcome::Transport { .. })
        ));
        // A 5xx error answer is a verdict: nothing was accepted, the hub schedules a retry.
        let unavailable = SendError::Rejected {
            provider: ProviderKind::Twilio,
            http_status: 503,
            code: None,
            message: "Service Unavailable".into(),
            details: None,
            reference: None,
        };
        assert!(matches!(
            provider_answer(ProviderKind::Twilio, Err(unavailable)),
            ProviderAnswer::Outcome(DispatchOutcome::Rejected { .. })
        ));
    }
}
