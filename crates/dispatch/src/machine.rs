//! The dispatcher as a pure step machine: `step(input, now) -> effects`. No clock, no I/O, no
//! async: the driver performs the effects and feeds their answers back as inputs.
//!
//! Driver contract:
//! - every `Claim`, `CallProvider`, `RecordOutcome` and `ExpireInDoubt` gets exactly one
//!   answer (`ClaimAnswered`, `ProviderAnswered`, `OutcomeRecorded`, `ExpiryAnswered`); a driver
//!   that cannot tell what happened answers `Unavailable` (hub) or `ProviderInDoubt`
//!   (provider), never nothing; `ProviderAnswered` carries a `Transport` outcome only for a
//!   failure that proves nothing reached the provider (no connection could be made). A crash loses the machine and its answers together: the new
//!   machine starts from the hub's state;
//! - `SleepUntil(t)` replaces the previous wake-up; when `t` passes, feed `Tick`;
//! - `IntentsAvailable` may be a full snapshot of the hub's open messages or just new ones, and
//!   may be stale: the machine trusts its own outstanding requests over any snapshot, and the
//!   hub re-checks everything at claim time anyway.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use wagate_domain::decide::{DispatchOutcome, RecordOutcome};
use wagate_domain::{
    ContactId, DispatchPhase, MessageId, Policy, RuleId, Timestamp, WhatsAppAddress,
};

use crate::rate::{Bucket, RateLimit};
use crate::rng::SplitMix64;

/// A message with dispatch work, as the hub reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIntent {
    pub message_id: MessageId,
    /// The business number it goes out from: the per-sender rate limit's key.
    pub sender: WhatsAppAddress,
    /// The contact: with `sender`, the pair rate limit's key.
    pub recipient: ContactId,
    /// `Pending` (first claim, or a retry due at `not_before`) or `Claimed` (no outcome yet:
    /// in doubt unless this machine holds the claim). Other phases mean "nothing to do".
    pub phase: DispatchPhase,
    /// The log position of the message's intent event (`TemplateSent`/`ReplySent`): the
    /// checkpoint never passes a message the machine still tracks.
    pub position: u64,
    /// The sender's rate as the hub knows it from its registration (provider and tier, or an
    /// operator's figure); `None` from a hub that does not say: `Config::sender_limit_default`.
    pub sender_rate_per_second: Option<u32>,
}

/// The hub's work-list entry (`wagate_domain::OpenIntent`) is exactly what the machine tracks.
impl From<wagate_domain::OpenIntent> for PendingIntent {
    fn from(open: wagate_domain::OpenIntent) -> Self {
        PendingIntent {
            message_id: open.message_id,
            sender: open.sender,
            recipient: open.recipient,
            phase: open.phase,
            position: open.position,
            sender_rate_per_second: open.sender_rate_per_second,
        }
    }
}

/// The hub's answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimAnswer<R> {
    /// The claim is appended: call the provider once for this attempt with `request`.
    Claimed { attempt: u32, request: R },
    /// A gate is broken now (a STOP landed first, the window closed, …): the hub canceled the
    /// message.
    Refused { rule: RuleId },
    /// Nothing was claimed; the message is in `phase` (a retry not due yet, already done, or
    /// claimed by someone else).
    NotClaimable { phase: DispatchPhase },
    /// The hub could not be asked or did not answer: the claim may or may not have been
    /// appended. The machine asks again later; the hub then tells.
    Unavailable,
}

/// The hub's answer to a write that is not a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubAnswer {
    /// Done (or refused as no longer applicable): the message's phase now.
    Phase(DispatchPhase),
    /// Not known to be done: the machine tries again later.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<R> {
    IntentsAvailable {
        intents: Vec<PendingIntent>,
        /// Every intent at a position below this is included in this input or an earlier one.
        read_up_to: u64,
    },
    ClaimAnswered {
        message_id: MessageId,
        answer: ClaimAnswer<R>,
    },
    ProviderAnswered {
        message_id: MessageId,
        attempt: u32,
        outcome: DispatchOutcome,
    },
    /// The call ended without a verdict the machine may act on, and the provider may have the
    /// message (a timeout, a connection lost after the request left, a 2xx answer that cannot be
    /// read): the attempt is in doubt. Nothing is recorded, so the claim stays open and is never
    /// sent again from here; a status callback settles it, or the expiry fails it.
    ProviderInDoubt { message_id: MessageId, attempt: u32 },
    OutcomeRecorded {
        message_id: MessageId,
        answer: HubAnswer,
    },
    ExpiryAnswered {
        message_id: MessageId,
        answer: HubAnswer,
    },
    /// A `SleepUntil` passed (or the driver just wants the machine to look at the time).
    Tick,
    /// Stop claiming, finish what is in flight, then `Stopped`.
    ShutdownRequested,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect<R> {
    /// Ask the hub to claim the message (it re-checks every gate and appends the claim).
    Claim { message_id: MessageId },
    /// Call the provider, once, for a claim the hub granted.
    CallProvider {
        message_id: MessageId,
        attempt: u32,
        request: R,
    },
    /// Ask the hub to record the call's outcome (`decide::record_outcome`).
    RecordOutcome(RecordOutcome),
    /// Ask the hub to fail a claim that stayed in doubt past the timeout
    /// (`decide::expire_in_doubt`).
    ExpireInDoubt { message_id: MessageId, attempt: u32 },
    /// Feed `Tick` at this time.
    SleepUntil(Timestamp),
    /// A restarted dispatcher that reads intents from this log position misses nothing it
    /// still had to do.
    SaveCheckpoint(u64),
    /// Shutdown finished: nothing is in flight. The machine ignores all further input.
    Stopped,
}

/// The machine's configuration. Everything has a default; nothing is read from anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Per-sender limit for senders neither listed in `sender_limits` nor given a rate by the
    /// hub (`PendingIntent::sender_rate_per_second`) (`None`: unthrottled).
    pub sender_limit_default: Option<RateLimit>,
    /// Per-sender overrides over what the hub reports (`None`: unthrottled), e.g.
    /// `RateLimit::for_provider` of each.
    pub sender_limits: BTreeMap<WhatsAppAddress, Option<RateLimit>>,
    /// Per (sender, recipient) limit (`None`: unthrottled).
    pub pair_limit: Option<RateLimit>,
    /// Claims and provider calls outstanding at once.
    pub claims_in_flight_max: usize,
    /// A claim with no outcome for this long is expired (the hub's policy decides for real).
    pub in_doubt_timeout: TimeDelta,
    /// Retry backoff jitter is drawn uniformly from `0..=jitter_max` (millisecond steps).
    pub jitter_max: TimeDelta,
    /// The first wait before asking an unavailable (or disagreeing) hub again; doubles up to
    /// 256×.
    pub hub_retry_delay: TimeDelta,
    /// Seeds the jitter.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_policy(&Policy::default(), 0)
    }
}

impl Config {
    /// Twilio's defaults (80 msg/s per sender, one message per 6 s per pair) and the policy's
    /// in-doubt timeout.
    pub fn from_policy(policy: &Policy, seed: u64) -> Self {
        Self {
            sender_limit_default: Some(RateLimit::TWILIO_SENDER),
            sender_limits: BTreeMap::new(),
            pair_limit: Some(RateLimit::PAIR),
            claims_in_flight_max: 256,
            in_doubt_timeout: policy.in_doubt_timeout,
            jitter_max: TimeDelta::milliseconds(250),
            hub_retry_delay: TimeDelta::seconds(1),
            seed,
        }
    }

    fn sender_limit(
        &self,
        sender: &WhatsAppAddress,
        reported: Option<&RateLimit>,
    ) -> Option<RateLimit> {
        match (self.sender_limits.get(sender), reported) {
            (Some(limit), _) => *limit,
            (None, Some(reported)) => Some(*reported),
            (None, None) => self.sender_limit_default,
        }
    }
}

/// Where one message stands in this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    /// Claimable from `ready_at` (queued in its sender's queue under that key).
    Waiting {
        next_attempt: u32,
        ready_at: Timestamp,
    },
    /// `Claim` emitted, no answer yet.
    Claiming { next_attempt: u32 },
    /// `CallProvider` emitted, no answer yet.
    Calling { attempt: u32 },
    /// `RecordOutcome` emitted (`resend_at: None`) or to be emitted again at `resend_at`.
    Recording {
        command: RecordOutcome,
        resend_at: Option<Timestamp>,
    },
    /// Claimed with no outcome: by an earlier incarnation (or another dispatcher), or by this
    /// one when the provider's answer left the attempt in doubt. Never called from here; expired
    /// at `expires_at` unless a callback or an outcome settles it first.
    InDoubt { attempt: u32, expires_at: Timestamp },
    /// `ExpireInDoubt` emitted, no answer yet.
    Expiring { attempt: u32 },
}

impl Stage {
    /// A claim or provider call is outstanding.
    fn holds_claim(&self) -> bool {
        matches!(self, Self::Claiming { .. } | Self::Calling { .. })
    }

    /// Work that shutdown waits for.
    fn is_busy(&self) -> bool {
        matches!(
            self,
            Self::Claiming { .. }
                | Self::Calling { .. }
                | Self::Recording { .. }
                | Self::Expiring { .. }
        )
    }

    fn timer(&self) -> Option<Timestamp> {
        match self {
            Self::InDoubt { expires_at, .. } => Some(*expires_at),
            Self::Recording { resend_at, .. } => *resend_at,
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    sender: WhatsAppAddress,
    recipient: ContactId,
    position: u64,
    /// Consecutive answers that did not let the message move (hub unavailable, not claimable,
    /// not recorded): the wait before asking again doubles with each.
    stale_answers: u32,
    stage: Stage,
}

#[derive(Debug, Clone)]
struct SenderQueue {
    limit: Option<RateLimit>,
    bucket: Bucket,
    /// Waiting messages by the earliest time they may be claimed (a lower bound: the pair
    /// limit may push one further back when it reaches the front).
    waiting: BTreeSet<(Timestamp, MessageId)>,
}

/// How often idle pair buckets are forgotten.
const PAIR_PRUNE_INTERVAL: TimeDelta = TimeDelta::seconds(60);

/// The wait before asking the hub again grows to at most `hub_retry_delay × 2^8`.
const STALE_BACKOFF_DOUBLINGS_MAX: u32 = 8;

/// The pure dispatcher. See the crate docs for what it guarantees.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    config: Config,
    rng: SplitMix64,
    messages: BTreeMap<MessageId, Tracked>,
    queues: BTreeMap<WhatsAppAddress, SenderQueue>,
    /// Each sender's limit as the hub last reported it (from its registration).
    reported_limits: BTreeMap<WhatsAppAddress, RateLimit>,
    pairs: BTreeMap<(WhatsAppAddress, ContactId), Bucket>,
    /// In-doubt expiries and record re-sends, by due time.
    timers: BTreeSet<(Timestamp, MessageId)>,
    /// Every tracked message by intent position: the checkpoint's low watermark.
    positions: BTreeSet<(u64, MessageId)>,
    read_up_to: u64,
    checkpoint_saved: u64,
    claims_in_flight: usize,
    busy: usize,
    sender_cursor: usize,
    pairs_pruned_at: Option<Timestamp>,
    sleeping_until: Option<Timestamp>,
    shutting_down: bool,
    stopped: bool,
}

impl Dispatcher {
    /// A machine that knows nothing yet; `checkpoint` is the position it resumes from.
    pub fn new(config: Config, checkpoint: u64) -> Self {
        Self {
            rng: SplitMix64::new(config.seed),
            config,
            messages: BTreeMap::new(),
            queues: BTreeMap::new(),
            reported_limits: BTreeMap::new(),
            pairs: BTreeMap::new(),
            timers: BTreeSet::new(),
            positions: BTreeSet::new(),
            read_up_to: checkpoint,
            checkpoint_saved: checkpoint,
            claims_in_flight: 0,
            busy: 0,
            sender_cursor: 0,
            pairs_pruned_at: None,
            sleeping_until: None,
            shutting_down: false,
            stopped: false,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Messages this machine tracks (waiting, in flight or in doubt).
    pub fn tracked(&self) -> usize {
        self.messages.len()
    }

    pub fn is_tracking(&self, message_id: MessageId) -> bool {
        self.messages.contains_key(&message_id)
    }

    /// Claims asked for plus provider calls not yet answered.
    pub fn claims_in_flight(&self) -> usize {
        self.claims_in_flight
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Feeds one input at time `now`; returns the effects to perform, in order.
    pub fn step<R>(&mut self, input: Input<R>, now: Timestamp) -> Vec<Effect<R>> {
        let mut effects = Vec::new();
        if self.stopped {
            return effects;
        }
        match input {
            Input::IntentsAvailable {
                intents,
                read_up_to,
            } => {
                self.read_up_to = self.read_up_to.max(read_up_to);
                for intent in intents {
                    self.learn(intent, now);
                }
            }
            Input::ClaimAnswered { message_id, answer } => {
                self.on_claim_answer(message_id, answer, now, &mut effects);
            }
            Input::ProviderAnswered {
                message_id,
                attempt,
                outcome,
            } => self.on_provider_answer(message_id, attempt, outcome, &mut effects),
            Input::ProviderInDoubt {
                message_id,
                attempt,
            } => self.on_provider_in_doubt(message_id, attempt, now),
            Input::OutcomeRecorded { message_id, answer } => {
                self.on_outcome_recorded(message_id, answer, now);
            }
            Input::ExpiryAnswered { message_id, answer } => {
                self.on_expiry_answer(message_id, answer, now);
            }
            Input::Tick => {}
            Input::ShutdownRequested => self.shutting_down = true,
        }
        self.pump(now, &mut effects);
        effects
    }

    // -----------------------------------------------------------------------------------------
    // Inputs

    fn learn(&mut self, intent: PendingIntent, now: Timestamp) {
        if let Some(rate) = intent.sender_rate_per_second {
            self.learn_rate(&intent.sender, RateLimit::per_second(rate));
        }
        let id = intent.message_id;
        let Some(tracked) = self.messages.get(&id) else {
            if let Some(stage) = self.stage_for(intent.phase, now) {
                self.positions.insert((intent.position, id));
                self.index(id, &intent.sender, &stage);
                self.messages.insert(
                    id,
                    Tracked {
                        sender: intent.sender,
                        recipient: intent.recipient,
                        position: intent.position,
                        stale_answers: 0,
                        stage,
                    },
                );
            }
            return;
        };
        // A snapshot may be older than what this machine knows: only newer attempts count,
        // and the machine's own outstanding requests win over any snapshot.
        let newer = match (&tracked.stage, &intent.phase) {
            (_, DispatchPhase::Done | DispatchPhase::NotAllowed) => true,
            (stage, _) if stage.is_busy() => false,
            (
                Stage::Waiting { next_attempt, .. },
                DispatchPhase::Pending {
                    next_attempt: hub, ..
                },
            ) => hub > next_attempt,
            (Stage::Waiting { next_attempt, .. }, DispatchPhase::Claimed { attempt, .. }) => {
                attempt >= next_attempt
            }
            (Stage::InDoubt { attempt, .. }, DispatchPhase::Pending { next_attempt, .. }) => {
                next_attempt > attempt
            }
            (
                Stage::InDoubt { attempt, .. },
                DispatchPhase::Claimed {
                    attempt: hub_attempt,
                    ..
                },
            ) => hub_attempt > attempt,
            _ => false,
        };
        if newer {
            self.adopt(id, intent.phase, now);
        }
    }

    fn on_claim_answer<R>(
        &mut self,
        id: MessageId,
        answer: ClaimAnswer<R>,
        now: Timestamp,
        effects: &mut Vec<Effect<R>>,
    ) {
        let Some(&Stage::Claiming { next_attempt }) = self.stage(id) else {
            return;
        };
        match answer {
            ClaimAnswer::Claimed { attempt, request } => {
                self.set_stale(id, 0);
                self.set_stage(id, Stage::Calling { attempt });
                effects.push(Effect::CallProvider {
                    message_id: id,
                    attempt,
                    request,
                });
            }
            ClaimAnswer::Refused { .. } => self.forget(id),
            ClaimAnswer::NotClaimable { phase } => {
                let wait = self.stale_wait(id, now);
                match phase {
                    DispatchPhase::Pending {
                        next_attempt,
                        not_before,
                    } => {
                        let ready_at = not_before.map_or(wait, |due| due.max(wait));
                        self.set_stage(
                            id,
                            Stage::Waiting {
                                next_attempt,
                                ready_at,
                            },
                        );
                    }
                    other => self.adopt(id, other, now),
                }
            }
            ClaimAnswer::Unavailable => {
                let ready_at = self.stale_wait(id, now);
                self.set_stage(
                    id,
                    Stage::Waiting {
                        next_attempt,
                        ready_at,
                    },
                );
            }
        }
    }

    fn on_provider_answer<R>(
        &mut self,
        id: MessageId,
        attempt: u32,
        outcome: DispatchOutcome,
        effects: &mut Vec<Effect<R>>,
    ) {
        if self.stage(id) != Some(&Stage::Calling { attempt }) {
            return;
        }
        let jitter_ms = self
            .rng
            .up_to(self.config.jitter_max.num_milliseconds().max(0) as u64);
        let command = RecordOutcome {
            message_id: id,
            attempt,
            outcome,
            jitter: TimeDelta::milliseconds(jitter_ms as i64),
        };
        effects.push(Effect::RecordOutcome(command.clone()));
        self.set_stage(
            id,
            Stage::Recording {
                command,
                resend_at: None,
            },
        );
    }

    /// The call's claim stays open in the log: the message waits, not in flight (it holds no
    /// claim slot and shutdown does not wait for it), for a callback or its expiry. The claim is
    /// older than `now`, so the hub may expire it a little earlier than this timer says; the
    /// hub's own check decides (`decide::expire_in_doubt`).
    fn on_provider_in_doubt(&mut self, id: MessageId, attempt: u32, now: Timestamp) {
        if self.stage(id) != Some(&Stage::Calling { attempt }) {
            return;
        }
        self.set_stage(
            id,
            Stage::InDoubt {
                attempt,
                expires_at: now + self.config.in_doubt_timeout,
            },
        );
    }

    fn on_outcome_recorded(&mut self, id: MessageId, answer: HubAnswer, now: Timestamp) {
        let Some(Stage::Recording {
            command,
            resend_at: None,
        }) = self.stage(id).cloned()
        else {
            return;
        };
        match answer {
            // The hub still shows this very claim open: the outcome did not land.
            HubAnswer::Phase(DispatchPhase::Claimed { attempt, .. })
                if attempt == command.attempt =>
            {
                self.resend_later(id, command, now)
            }
            HubAnswer::Unavailable => self.resend_later(id, command, now),
            HubAnswer::Phase(phase) => {
                self.set_stale(id, 0);
                self.adopt(id, phase, now);
            }
        }
    }

    fn resend_later(&mut self, id: MessageId, command: RecordOutcome, now: Timestamp) {
        let resend_at = self.stale_wait(id, now);
        self.set_stage(
            id,
            Stage::Recording {
                command,
                resend_at: Some(resend_at),
            },
        );
    }

    fn on_expiry_answer(&mut self, id: MessageId, answer: HubAnswer, now: Timestamp) {
        let Some(Stage::Expiring { attempt }) = self.stage(id).cloned() else {
            return;
        };
        let wait = self.stale_wait(id, now);
        match answer {
            // Not expired (the hub's clock may be behind ours): ask again, later.
            HubAnswer::Phase(DispatchPhase::Claimed { attempt, since }) => {
                let expires_at = (since + self.config.in_doubt_timeout).max(wait);
                self.set_stage(
                    id,
                    Stage::InDoubt {
                        attempt,
                        expires_at,
                    },
                );
            }
            HubAnswer::Phase(phase) => self.adopt(id, phase, now),
            HubAnswer::Unavailable => self.set_stage(
                id,
                Stage::InDoubt {
                    attempt,
                    expires_at: wait,
                },
            ),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Time passes

    fn pump<R>(&mut self, now: Timestamp, effects: &mut Vec<Effect<R>>) {
        self.fire_timers(now, effects);
        if !self.shutting_down {
            self.claim_ready(now, effects);
        }
        self.prune_pairs(now);
        let watermark = self
            .positions
            .first()
            .map_or(self.read_up_to, |(position, _)| {
                (*position).min(self.read_up_to)
            });
        if watermark > self.checkpoint_saved {
            self.checkpoint_saved = watermark;
            effects.push(Effect::SaveCheckpoint(watermark));
        }
        if self.shutting_down && self.busy == 0 {
            self.stopped = true;
            effects.push(Effect::Stopped);
            return;
        }
        let wake = self.next_wake();
        debug_assert!(wake.is_none_or(|wake| wake > now), "a due item was left");
        if wake.is_some() && wake != self.sleeping_until {
            self.sleeping_until = wake;
            if let Some(wake) = wake {
                effects.push(Effect::SleepUntil(wake));
            }
        }
    }

    fn fire_timers<R>(&mut self, now: Timestamp, effects: &mut Vec<Effect<R>>) {
        let due: Vec<MessageId> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            match self.stage(id).cloned() {
                Some(Stage::InDoubt { attempt, .. }) if !self.shutting_down => {
                    self.set_stage(id, Stage::Expiring { attempt });
                    effects.push(Effect::ExpireInDoubt {
                        message_id: id,
                        attempt,
                    });
                }
                Some(Stage::Recording {
                    command,
                    resend_at: Some(_),
                }) => {
                    effects.push(Effect::RecordOutcome(command.clone()));
                    self.set_stage(
                        id,
                        Stage::Recording {
                            command,
                            resend_at: None,
                        },
                    );
                }
                _ => {}
            }
        }
    }

    /// Claims every message that is due and within its limits, one per sender in turn so a
    /// busy sender cannot take all the in-flight slots.
    fn claim_ready<R>(&mut self, now: Timestamp, effects: &mut Vec<Effect<R>>) {
        let senders: Vec<WhatsAppAddress> = self.queues.keys().cloned().collect();
        if senders.is_empty() {
            return;
        }
        let start = self.sender_cursor % senders.len();
        loop {
            let mut progressed = false;
            for offset in 0..senders.len() {
                if self.claims_in_flight >= self.config.claims_in_flight_max {
                    return;
                }
                let index = (start + offset) % senders.len();
                if self.claim_one(&senders[index], now, effects) {
                    progressed = true;
                    self.sender_cursor = index + 1;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Claims the sender's first due message; false when there is none or the sender's limit
    /// says wait.
    fn claim_one<R>(
        &mut self,
        sender: &WhatsAppAddress,
        now: Timestamp,
        effects: &mut Vec<Effect<R>>,
    ) -> bool {
        loop {
            let Some(queue) = self.queues.get(sender) else {
                return false;
            };
            let Some(&(ready_at, id)) = queue.waiting.first() else {
                return false;
            };
            if ready_at > now {
                return false;
            }
            if let Some(limit) = &queue.limit {
                if !queue.bucket.allows(limit, now) {
                    return false;
                }
            }
            let waiting = self
                .messages
                .get(&id)
                .and_then(|tracked| match &tracked.stage {
                    Stage::Waiting { next_attempt, .. } => Some((tracked, *next_attempt)),
                    _ => None,
                });
            let Some((tracked, next_attempt)) = waiting else {
                // Unreachable while set_stage and forget keep queues and stages in step; a
                // stray entry is dropped rather than claimed.
                if let Some(queue) = self.queues.get_mut(sender) {
                    queue.waiting.remove(&(ready_at, id));
                }
                continue;
            };
            let pair_key = (tracked.sender.clone(), tracked.recipient.clone());
            if let Some(limit) = &self.config.pair_limit {
                let pair = self.pairs.get(&pair_key).copied().unwrap_or_default();
                if !pair.allows(limit, now) {
                    // Pushed back to when the pair allows it; the next one may go now.
                    let ready_at = pair.ready_at(limit).unwrap_or(now);
                    self.set_stage(
                        id,
                        Stage::Waiting {
                            next_attempt,
                            ready_at,
                        },
                    );
                    continue;
                }
                self.pairs.entry(pair_key).or_default().take(limit, now);
            }
            if let Some(queue) = self.queues.get_mut(sender) {
                if let Some(limit) = &queue.limit {
                    queue.bucket.take(limit, now);
                }
            }
            self.set_stage(id, Stage::Claiming { next_attempt });
            effects.push(Effect::Claim { message_id: id });
            return true;
        }
    }

    fn prune_pairs(&mut self, now: Timestamp) {
        let due = self
            .pairs_pruned_at
            .is_none_or(|last| now - last >= PAIR_PRUNE_INTERVAL);
        if due {
            self.pairs.retain(|_, bucket| !bucket.is_idle(now));
            self.pairs_pruned_at = Some(now);
        }
    }

    fn next_wake(&self) -> Option<Timestamp> {
        let timer = self
            .timers
            .iter()
            .find(|(_, id)| {
                !(self.shutting_down && matches!(self.stage(*id), Some(Stage::InDoubt { .. })))
            })
            .map(|(at, _)| *at);
        let claims = (!self.shutting_down
            && self.claims_in_flight < self.config.claims_in_flight_max)
            .then(|| {
                self.queues
                    .values()
                    .filter_map(|queue| {
                        let (ready_at, _) = queue.waiting.first()?;
                        let limit_at = queue
                            .limit
                            .as_ref()
                            .and_then(|limit| queue.bucket.ready_at(limit));
                        Some(limit_at.map_or(*ready_at, |at| at.max(*ready_at)))
                    })
                    .min()
            })
            .flatten();
        [timer, claims].into_iter().flatten().min()
    }

    // -----------------------------------------------------------------------------------------
    // Bookkeeping: every stage change goes through `set_stage` / `forget`, which keep the
    // queues, timers and counters in step with the stages.

    fn stage(&self, id: MessageId) -> Option<&Stage> {
        self.messages.get(&id).map(|tracked| &tracked.stage)
    }

    fn set_stale(&mut self, id: MessageId, count: u32) {
        if let Some(tracked) = self.messages.get_mut(&id) {
            tracked.stale_answers = count;
        }
    }

    /// Counts one more answer that did not move the message; returns when to ask again.
    fn stale_wait(&mut self, id: MessageId, now: Timestamp) -> Timestamp {
        let count = match self.messages.get_mut(&id) {
            Some(tracked) => {
                tracked.stale_answers = tracked.stale_answers.saturating_add(1);
                tracked.stale_answers
            }
            None => 1,
        };
        let doublings = (count - 1).min(STALE_BACKOFF_DOUBLINGS_MAX);
        now + self.config.hub_retry_delay * (1_i32 << doublings)
    }

    /// The stage a message in `phase` (per the hub) starts in; `None`: nothing to do.
    fn stage_for(&self, phase: DispatchPhase, now: Timestamp) -> Option<Stage> {
        match phase {
            DispatchPhase::Pending {
                next_attempt,
                not_before,
            } => Some(Stage::Waiting {
                next_attempt,
                ready_at: not_before.unwrap_or(now),
            }),
            DispatchPhase::Claimed { attempt, since } => Some(Stage::InDoubt {
                attempt,
                expires_at: since + self.config.in_doubt_timeout,
            }),
            DispatchPhase::Done | DispatchPhase::NotAllowed => None,
        }
    }

    /// Takes the hub's word for where the message stands.
    fn adopt(&mut self, id: MessageId, phase: DispatchPhase, now: Timestamp) {
        match self.stage_for(phase, now) {
            Some(stage) => self.set_stage(id, stage),
            None => self.forget(id),
        }
    }

    fn set_stage(&mut self, id: MessageId, stage: Stage) {
        let Some(tracked) = self.messages.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut tracked.stage, stage.clone());
        let sender = tracked.sender.clone();
        self.unindex(id, &sender, &old);
        self.index(id, &sender, &stage);
    }

    fn forget(&mut self, id: MessageId) {
        if let Some(tracked) = self.messages.remove(&id) {
            self.unindex(id, &tracked.sender, &tracked.stage);
            self.positions.remove(&(tracked.position, id));
        }
    }

    /// A sender's rate as the hub reports it now: a re-registration (an upgraded tier, an
    /// operator's figure) applies to its queue from here, keeping the bucket's state.
    fn learn_rate(&mut self, sender: &WhatsAppAddress, limit: RateLimit) {
        if self.reported_limits.get(sender) == Some(&limit) {
            return;
        }
        self.reported_limits.insert(sender.clone(), limit);
        let limit = self.config.sender_limit(sender, Some(&limit));
        if let Some(queue) = self.queues.get_mut(sender) {
            queue.limit = limit;
        }
    }

    fn index(&mut self, id: MessageId, sender: &WhatsAppAddress, stage: &Stage) {
        if let Stage::Waiting { ready_at, .. } = stage {
            let limit = self
                .config
                .sender_limit(sender, self.reported_limits.get(sender));
            self.queues
                .entry(sender.clone())
                .or_insert_with(|| SenderQueue {
                    limit,
                    bucket: Bucket::default(),
                    waiting: BTreeSet::new(),
                })
                .waiting
                .insert((*ready_at, id));
        }
        if let Some(at) = stage.timer() {
            self.timers.insert((at, id));
        }
        self.claims_in_flight += usize::from(stage.holds_claim());
        self.busy += usize::from(stage.is_busy());
    }

    fn unindex(&mut self, id: MessageId, sender: &WhatsAppAddress, stage: &Stage) {
        if let Stage::Waiting { ready_at, .. } = stage {
            if let Some(queue) = self.queues.get_mut(sender) {
                queue.waiting.remove(&(*ready_at, id));
            }
        }
        if let Some(at) = stage.timer() {
            self.timers.remove(&(at, id));
        }
        self.claims_in_flight -= usize::from(stage.holds_claim());
        self.busy -= usize::from(stage.is_busy());
    }
}
