//! Behaviour tests of the step machine against a small fake hub built on the domain's real
//! `MessageState` and `decide::record_outcome`/`expire_in_doubt` (the gates are reduced to an
//! opted-out set), on a fake clock: every rate is measured exactly.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, TimeDelta};
use wagate_domain::decide::{self, DispatchOutcome};
use wagate_domain::{
    ContactId, DispatchPhase, Event, MessageEvent, MessageId, MessageState, MessageStatus,
    PhoneNumber, Policy, ProviderError, ProviderKind, ProviderMessageRef, RuleId, SenderRate,
    Timestamp, TwilioSid, WhatsAppAddress, Workflow,
};

use crate::{ClaimAnswer, Config, Dispatcher, Effect, HubAnswer, Input, PendingIntent, RateLimit};

/// The request the fake hub hands out: just the message id.
type Request = MessageId;

fn t0() -> Timestamp {
    DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01 is a valid time")
}

fn millis(timestamp: Timestamp) -> i64 {
    (timestamp - t0()).num_milliseconds()
}

fn message_id(n: u64) -> MessageId {
    let mut random = [0_u8; 10];
    random[2..].copy_from_slice(&n.to_be_bytes());
    let uuid = uuid::Builder::from_unix_timestamp_millis(1_767_225_600_000, &random).into_uuid();
    MessageId::from_uuid(uuid).expect("a v7 uuid")
}

fn number(n: u64) -> PhoneNumber {
    PhoneNumber::parse(&format!("+1555{n:07}")).expect("a valid number")
}

fn sender(n: u64) -> WhatsAppAddress {
    WhatsAppAddress::from_number(number(9_000_000 + n))
}

fn sid(n: u64) -> ProviderMessageRef {
    ProviderMessageRef::Twilio(TwilioSid::parse(&format!("SM{n:032x}")).expect("a valid sid"))
}

fn accepted(n: u64) -> DispatchOutcome {
    DispatchOutcome::Accepted {
        provider_ref: sid(n),
        provider_status: MessageStatus::Queued,
        recipient: None,
    }
}

fn rejected(code: u32) -> DispatchOutcome {
    DispatchOutcome::Rejected {
        error: ProviderError {
            provider: ProviderKind::Twilio,
            code: Some(code),
            http_status: Some(400),
            message: format!("error {code}"),
        },
    }
}

/// The hub, reduced: real message aggregates, gates replaced by an opted-out set.
#[derive(Debug, Default)]
struct FakeHub {
    policy: Policy,
    messages: BTreeMap<MessageId, (MessageState, WhatsAppAddress, ContactId, u64)>,
    opted_out: BTreeSet<ContactId>,
    available: bool,
    /// Each sender's registered rate, as the hub's pending list reports it.
    sender_rates: BTreeMap<WhatsAppAddress, u32>,
}

impl FakeHub {
    fn new() -> Self {
        Self {
            available: true,
            ..Self::default()
        }
    }

    fn add(&mut self, id: MessageId, from: WhatsAppAddress, to: ContactId, at: Timestamp) {
        let event = MessageEvent::ReplySent {
            message_id: id,
            contact: to.clone(),
            sender: from.clone(),
            text: "hello".into(),
            rich: None,
            workflow: Workflow::parse("status_update").expect("a valid workflow"),
            at,
        };
        let position = self.messages.len() as u64;
        let state = MessageState::default().apply(&event);
        self.messages.insert(id, (state, from, to, position));
    }

    fn apply(&mut self, id: MessageId, events: &[Event]) {
        if let Some((state, ..)) = self.messages.get_mut(&id) {
            for event in events {
                if let Event::Message(event) = event {
                    *state = std::mem::take(state).apply(event);
                }
            }
        }
    }

    fn phase(&self, id: MessageId) -> DispatchPhase {
        self.messages
            .get(&id)
            .map_or(DispatchPhase::NotAllowed, |(state, ..)| state.phase())
    }

    fn snapshot(&self) -> Input<Request> {
        let intents = self
            .messages
            .iter()
            .map(|(id, (state, from, to, position))| PendingIntent {
                message_id: *id,
                sender: from.clone(),
                recipient: to.clone(),
                phase: state.phase(),
                position: *position,
                sender_rate_per_second: self.sender_rates.get(from).copied(),
            })
            .collect();
        Input::IntentsAvailable {
            intents,
            read_up_to: self.messages.len() as u64,
        }
    }

    fn claim(&mut self, id: MessageId, now: Timestamp) -> ClaimAnswer<Request> {
        if !self.available {
            return ClaimAnswer::Unavailable;
        }
        let Some((_, _, to, _)) = self.messages.get(&id) else {
            return ClaimAnswer::NotClaimable {
                phase: DispatchPhase::NotAllowed,
            };
        };
        let opted_out = self.opted_out.contains(to);
        match self.phase(id) {
            DispatchPhase::Pending {
                next_attempt,
                not_before,
            } if not_before.is_none_or(|due| due <= now) => {
                let event = if opted_out {
                    MessageEvent::ClaimRefused {
                        message_id: id,
                        attempt: next_attempt,
                        rule: RuleId::OptedOut,
                        message: "opted out".into(),
                        at: now,
                    }
                } else {
                    MessageEvent::DispatchClaimed {
                        message_id: id,
                        attempt: next_attempt,
                        at: now,
                    }
                };
                self.apply(id, &[event.into()]);
                if opted_out {
                    ClaimAnswer::Refused {
                        rule: RuleId::OptedOut,
                    }
                } else {
                    ClaimAnswer::Claimed {
                        attempt: next_attempt,
                        request: id,
                    }
                }
            }
            phase => ClaimAnswer::NotClaimable { phase },
        }
    }

    fn record(&mut self, command: &decide::RecordOutcome, now: Timestamp) -> HubAnswer {
        if !self.available {
            return HubAnswer::Unavailable;
        }
        let id = command.message_id;
        let Some((state, ..)) = self.messages.get(&id) else {
            return HubAnswer::Phase(DispatchPhase::NotAllowed);
        };
        if let Ok(events) = decide::record_outcome(state, command, &[], &self.policy, now) {
            self.apply(id, &events);
        }
        HubAnswer::Phase(self.phase(id))
    }

    fn expire(&mut self, id: MessageId, now: Timestamp) -> HubAnswer {
        let Some((state, ..)) = self.messages.get(&id) else {
            return HubAnswer::Phase(DispatchPhase::NotAllowed);
        };
        let events = decide::expire_in_doubt(state, &self.policy, now);
        self.apply(id, &events);
        HubAnswer::Phase(self.phase(id))
    }
}

type Behaviour = Box<dyn FnMut(MessageId, u32) -> DispatchOutcome>;

fn unthrottled() -> Config {
    Config {
        sender_limit_default: None,
        pair_limit: None,
        ..Config::default()
    }
}

/// Drives the machine against the fake hub and a zero-latency provider on a fake clock.
struct Harness {
    machine: Dispatcher,
    hub: FakeHub,
    now: Timestamp,
    wake: Option<Timestamp>,
    queue: VecDeque<Effect<Request>>,
    /// Calls held back (not answered) while `hold_calls` is set.
    held: Vec<(MessageId, u32)>,
    hold_calls: bool,
    behaviour: Behaviour,
    calls: Vec<(Timestamp, MessageId, u32)>,
    claims: Vec<MessageId>,
    records: Vec<decide::RecordOutcome>,
    expiries: Vec<MessageId>,
    checkpoints: Vec<u64>,
    stopped: bool,
    /// The most calls in flight for one message, ever (must stay 1).
    calls_per_message_max: usize,
    in_flight: BTreeMap<MessageId, usize>,
}

impl Harness {
    fn new(config: Config) -> Self {
        let mut counter = 0_u64;
        Self {
            machine: Dispatcher::new(config, 0),
            hub: FakeHub::new(),
            now: t0(),
            wake: None,
            queue: VecDeque::new(),
            held: Vec::new(),
            hold_calls: false,
            behaviour: Box::new(move |_, _| {
                counter += 1;
                accepted(counter)
            }),
            calls: Vec::new(),
            claims: Vec::new(),
            records: Vec::new(),
            expiries: Vec::new(),
            checkpoints: Vec::new(),
            stopped: false,
            calls_per_message_max: 0,
            in_flight: BTreeMap::new(),
        }
    }

    fn unthrottled() -> Self {
        Self::new(unthrottled())
    }

    /// Adds `count` messages from `from`, each to its own recipient (or all to one).
    fn add(&mut self, count: u64, from: WhatsAppAddress, same_recipient: bool) -> Vec<MessageId> {
        let base = self.hub.messages.len() as u64;
        (0..count)
            .map(|i| {
                let id = message_id(base + i);
                let to = if same_recipient { 0 } else { base + i };
                self.hub.add(id, from.clone(), number(to).into(), self.now);
                id
            })
            .collect()
    }

    fn feed(&mut self, input: Input<Request>) {
        let effects = self.machine.step(input, self.now);
        self.queue.extend(effects);
        self.drain();
    }

    fn poll(&mut self) {
        let snapshot = self.hub.snapshot();
        self.feed(snapshot);
    }

    fn drain(&mut self) {
        while let Some(effect) = self.queue.pop_front() {
            let answer = match effect {
                Effect::Claim { message_id } => {
                    self.claims.push(message_id);
                    let answer = self.hub.claim(message_id, self.now);
                    Some(Input::ClaimAnswered { message_id, answer })
                }
                Effect::CallProvider {
                    message_id,
                    attempt,
                    request,
                } => {
                    assert_eq!(request, message_id);
                    assert_eq!(
                        self.hub.phase(message_id),
                        DispatchPhase::Claimed {
                            attempt,
                            since: self.now
                        },
                        "a call needs the hub's claim for exactly this attempt"
                    );
                    self.calls.push((self.now, message_id, attempt));
                    let in_flight = self.in_flight.entry(message_id).or_default();
                    *in_flight += 1;
                    self.calls_per_message_max = self.calls_per_message_max.max(*in_flight);
                    if self.hold_calls {
                        self.held.push((message_id, attempt));
                        None
                    } else {
                        Some(self.answer_call(message_id, attempt))
                    }
                }
                Effect::RecordOutcome(command) => {
                    let answer = self.hub.record(&command, self.now);
                    let message_id = command.message_id;
                    self.records.push(command);
                    Some(Input::OutcomeRecorded { message_id, answer })
                }
                Effect::ExpireInDoubt { message_id, .. } => {
                    self.expiries.push(message_id);
                    let answer = self.hub.expire(message_id, self.now);
                    Some(Input::ExpiryAnswered { message_id, answer })
                }
                Effect::SleepUntil(at) => {
                    self.wake = Some(at);
                    None
                }
                Effect::SaveCheckpoint(position) => {
                    self.checkpoints.push(position);
                    None
                }
                Effect::Stopped => {
                    self.stopped = true;
                    None
                }
            };
            if let Some(input) = answer {
                let effects = self.machine.step(input, self.now);
                self.queue.extend(effects);
            }
        }
    }

    fn answer_call(&mut self, message_id: MessageId, attempt: u32) -> Input<Request> {
        if let Some(in_flight) = self.in_flight.get_mut(&message_id) {
            *in_flight -= 1;
        }
        let outcome = (self.behaviour)(message_id, attempt);
        Input::ProviderAnswered {
            message_id,
            attempt,
            outcome,
        }
    }

    fn release_held(&mut self) {
        for (message_id, attempt) in std::mem::take(&mut self.held) {
            let input = self.answer_call(message_id, attempt);
            self.feed(input);
        }
    }

    /// Sleeps and ticks until `end` (exclusive), answering everything at once.
    fn run_until(&mut self, end: Timestamp) {
        self.drain();
        while let Some(wake) = self.wake.take() {
            if wake >= end {
                self.wake = Some(wake);
                break;
            }
            assert!(wake > self.now, "the machine asked to sleep into the past");
            self.now = wake;
            self.feed(Input::Tick);
        }
        self.now = self.now.max(end);
    }

    fn calls_before(&self, end: Timestamp) -> usize {
        self.calls.iter().filter(|(at, ..)| *at < end).count()
    }

    /// Milliseconds after t0.
    fn call_times(&self, id: MessageId) -> Vec<i64> {
        self.calls
            .iter()
            .filter(|(_, call, _)| *call == id)
            .map(|(at, ..)| millis(*at))
            .collect()
    }
}

fn assert_rate(harness: &Harness, expected_per_second: f64, seconds: i64) {
    let count = harness.calls_before(t0() + TimeDelta::seconds(seconds)) as f64;
    let expected = expected_per_second * seconds as f64;
    let error = (count - expected).abs() / expected;
    assert!(
        error <= 0.02,
        "{count} calls in {seconds} s, expected {expected} ± 2 % (off by {:.3} %)",
        error * 100.0
    );
    // No one-second window anywhere holds more than the rate plus the burst.
    let times: Vec<Timestamp> = harness.calls.iter().map(|(at, ..)| *at).collect();
    let burst = RateLimit::per_second(expected_per_second as u32).burst as usize;
    let mut end = 0;
    for (start, first) in times.iter().enumerate() {
        while end < times.len() && times[end] < *first + TimeDelta::seconds(1) {
            end += 1;
        }
        assert!(end - start <= expected_per_second as usize + burst);
    }
}

#[test]
fn holds_80_per_second_for_60_seconds() {
    let mut harness = Harness::new(Config::default());
    harness.add(6_000, sender(1), false);
    harness.poll();
    harness.run_until(t0() + TimeDelta::seconds(60));
    assert_rate(&harness, 80.0, 60);
    // 4,800 at the steady rate plus the burst of 4, less the one that starts the 61st second.
    assert_eq!(harness.calls_before(t0() + TimeDelta::seconds(60)), 4_803);
}

#[test]
fn holds_1000_per_second_for_60_seconds() {
    let config = Config {
        sender_limit_default: Some(RateLimit::CLOUD_API_UPGRADED),
        ..Config::default()
    };
    let mut harness = Harness::new(config);
    harness.add(61_000, sender(1), false);
    harness.poll();
    harness.run_until(t0() + TimeDelta::seconds(60));
    assert_rate(&harness, 1000.0, 60);
}

#[test]
fn unthrottled_sends_everything_without_waiting() {
    let mut harness = Harness::unthrottled();
    harness.add(10_000, sender(1), false);
    harness.poll();
    assert_eq!(harness.calls.len(), 10_000);
    assert!(harness.calls.iter().all(|(at, ..)| *at == t0()));
    assert_eq!(harness.records.len(), 10_000);
    assert_eq!(harness.machine.tracked(), 0);
    assert_eq!(harness.machine.claims_in_flight(), 0);
}

#[test]
fn claims_in_flight_are_bounded() {
    let mut harness = Harness::new(Config {
        claims_in_flight_max: 8,
        ..unthrottled()
    });
    harness.hold_calls = true;
    harness.add(20, sender(1), false);
    harness.poll();
    assert_eq!(harness.calls.len(), 8);
    harness.release_held();
    assert_eq!(harness.calls.len(), 16);
    harness.release_held();
    harness.release_held();
    assert_eq!(harness.calls.len(), 20);
}

/// Two senders of different tiers: a Cloud API number at its default and an upgraded one,
/// each held to its own rate on the fake clock.
#[test]
fn senders_of_different_tiers_get_their_own_rates() {
    let mut config = Config {
        sender_limit_default: None,
        ..Config::default()
    };
    config.sender_limits.insert(
        sender(1),
        Some(RateLimit::for_tier(ProviderKind::Meta, false)),
    );
    config.sender_limits.insert(
        sender(2),
        Some(RateLimit::for_tier(ProviderKind::Meta, true)),
    );
    let mut harness = Harness::new(config);
    let standard: BTreeSet<MessageId> = harness.add(2_000, sender(1), false).into_iter().collect();
    let upgraded: BTreeSet<MessageId> = harness.add(20_000, sender(2), false).into_iter().collect();
    harness.poll();
    harness.run_until(t0() + TimeDelta::seconds(10));
    let count = |ids: &BTreeSet<MessageId>| {
        harness
            .calls
            .iter()
            .filter(|(_, id, _)| ids.contains(id))
            .count()
    };
    // 80/s + burst 4 and 1000/s + burst 50, minus the call that opens second 11.
    assert_eq!(count(&standard), 803);
    assert_eq!(count(&upgraded), 10_049);
    assert_eq!(
        RateLimit::for_tier(ProviderKind::Twilio, true),
        RateLimit::TWILIO_SENDER,
        "Twilio has no upgraded tier"
    );
}

/// The rates come from the hub (each sender's registration: provider and tier), not from the
/// dispatcher's configuration: a Twilio number, a Cloud API number and an upgraded one, each at
/// its own rate on the fake clock, while the configured default (1/s) applies to none of them.
#[test]
fn each_sender_is_held_to_the_rate_its_registration_reports() {
    let mut harness = Harness::new(Config {
        sender_limit_default: Some(RateLimit::per_second(1)),
        ..Config::default()
    });
    let registered = |provider, upgraded| {
        let rate = SenderRate {
            upgraded,
            per_second: None,
        };
        rate.per_second_for(provider)
    };
    harness
        .hub
        .sender_rates
        .insert(sender(1), registered(ProviderKind::Twilio, true));
    harness
        .hub
        .sender_rates
        .insert(sender(2), registered(ProviderKind::Meta, false));
    harness
        .hub
        .sender_rates
        .insert(sender(3), registered(ProviderKind::Meta, true));
    let twilio: BTreeSet<MessageId> = harness.add(2_000, sender(1), false).into_iter().collect();
    let cloud: BTreeSet<MessageId> = harness.add(2_000, sender(2), false).into_iter().collect();
    let upgraded: BTreeSet<MessageId> = harness.add(20_000, sender(3), false).into_iter().collect();
    harness.poll();
    harness.run_until(t0() + TimeDelta::seconds(10));
    let count = |ids: &BTreeSet<MessageId>| {
        harness
            .calls
            .iter()
            .filter(|(_, id, _)| ids.contains(id))
            .count()
    };
    // 80/s + burst 4 and 1000/s + burst 50, minus the call that opens second 11.
    assert_eq!(count(&twilio), 803);
    assert_eq!(count(&cloud), 803);
    assert_eq!(count(&upgraded), 10_049);
}

/// An operator's own figure at registration wins over the tier, and an explicit dispatcher
/// override (`Config::sender_limits`) wins over both.
#[test]
fn a_registered_rate_applies_and_an_explicit_override_beats_it() {
    let mut config = Config::default();
    config
        .sender_limits
        .insert(sender(2), Some(RateLimit::per_second(40)));
    let mut harness = Harness::new(config);
    let own = SenderRate {
        upgraded: true,
        per_second: Some(200),
    };
    harness
        .hub
        .sender_rates
        .insert(sender(1), own.per_second_for(ProviderKind::Meta));
    harness.hub.sender_rates.insert(sender(2), 1000);
    let first: BTreeSet<MessageId> = harness.add(5_000, sender(1), false).into_iter().collect();
    let second: BTreeSet<MessageId> = harness.add(5_000, sender(2), false).into_iter().collect();
    harness.poll();
    harness.run_until(t0() + TimeDelta::seconds(10));
    let count = |ids: &BTreeSet<MessageId>| {
        harness
            .calls
            .iter()
            .filter(|(_, id, _)| ids.contains(id))
            .count()
    };
    // 200/s + burst 10 and 40/s + burst 2, minus the call that opens second 11.
    assert_eq!(count(&first), 2_009);
    assert_eq!(count(&second), 401);
}

#[test]
fn each_sender_has_its_own_limit() {
    let mut config = Config::default();
    config.sender_limits.insert(
        sender(2),
        Some(RateLimit::for_tier(ProviderKind::Meta, true)),
    );
    let mut harness = Harness::new(config);
    let twilio = harness.add(2_000, sender(1), false);
    let meta = harness.add(20_000, sender(2), false);
    harness.poll();
    harness.run_until(t0() + TimeDelta::seconds(10));
    let count = |ids: &[MessageId]| {
        let ids: BTreeSet<&MessageId> = ids.iter().collect();
        harness
            .calls
            .iter()
            .filter(|(_, id, _)| ids.contains(id))
            .count()
    };
    // 80/s + burst 4 and 1000/s + burst 50, minus the call that opens second 11.
    assert_eq!(count(&twilio), 803);
    assert_eq!(count(&meta), 10_049);
}

#[test]
fn one_message_per_six_seconds_per_recipient() {
    let mut harness = Harness::new(Config::default());
    let same = harness.add(3, sender(1), true);
    let other = harness.add(1, sender(1), false);
    harness.poll();
    harness.run_until(t0() + TimeDelta::seconds(30));
    let times: Vec<i64> = same.iter().flat_map(|id| harness.call_times(*id)).collect();
    assert_eq!(times, [0, 6_000, 12_000]);
    // The pair limit holds back only its pair: the other recipient goes at once.
    assert_eq!(harness.call_times(other[0]), [0]);
}

#[test]
fn retryable_failures_back_off_one_two_four_seconds_with_jitter() {
    let run = |seed: u64| {
        let mut harness = Harness::new(Config {
            seed,
            ..unthrottled()
        });
        harness.behaviour = Box::new(|_, attempt| {
            if attempt < 3 {
                rejected(20429)
            } else {
                accepted(1)
            }
        });
        let id = harness.add(1, sender(1), false)[0];
        harness.poll();
        harness.run_until(t0() + TimeDelta::seconds(30));
        // Accepted as `queued`, which does not move a message that is already `sending`.
        assert_eq!(harness.hub.messages[&id].0.status, MessageStatus::Sending);
        assert_eq!(harness.hub.phase(id), DispatchPhase::Done);
        let attempts: Vec<u32> = harness.calls.iter().map(|(.., a)| *a).collect();
        assert_eq!(attempts, [1, 2, 3]);
        let jitter: Vec<i64> = harness
            .records
            .iter()
            .map(|record| record.jitter.num_milliseconds())
            .collect();
        assert!(jitter.iter().all(|ms| (0..=250).contains(ms)), "{jitter:?}");
        let times = harness.call_times(id);
        let expected = [0, 1_000 + jitter[0], 3_000 + jitter[0] + jitter[1]];
        assert_eq!(times, expected);
        times
    };
    assert_eq!(run(7), run(7), "the same seed replays the same jitter");
    assert_ne!(run(7), run(8));
}

#[test]
fn three_retries_then_failed() {
    let mut harness = Harness::unthrottled();
    harness.behaviour = Box::new(|_, _| rejected(20500));
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    harness.run_until(t0() + TimeDelta::seconds(60));
    assert_eq!(harness.calls.len(), 4);
    assert_eq!(harness.hub.messages[&id].0.status, MessageStatus::Failed);
    assert!(!harness.machine.is_tracking(id));
}

#[test]
fn permanent_failures_are_never_retried() {
    let mut harness = Harness::unthrottled();
    harness.behaviour = Box::new(|_, _| rejected(63003));
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    harness.run_until(t0() + TimeDelta::seconds(60));
    assert_eq!(harness.calls.len(), 1);
    assert_eq!(harness.hub.messages[&id].0.status, MessageStatus::Failed);
}

#[test]
fn stop_during_backoff_cancels_the_retry() {
    let mut harness = Harness::unthrottled();
    harness.behaviour = Box::new(|_, _| rejected(20429));
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    assert_eq!(harness.calls.len(), 1);
    // The STOP lands while the retry waits.
    harness.hub.opted_out.insert(number(0).into());
    harness.run_until(t0() + TimeDelta::seconds(60));
    assert_eq!(harness.calls.len(), 1, "never sent after the STOP");
    assert_eq!(
        harness.claims.len(),
        2,
        "the retry was claimed, and refused"
    );
    assert_eq!(harness.hub.messages[&id].0.status, MessageStatus::Canceled);
    assert!(!harness.machine.is_tracking(id));
}

#[test]
fn an_unavailable_hub_means_no_call_until_it_answers() {
    let mut harness = Harness::unthrottled();
    harness.hub.available = false;
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    harness.run_until(t0() + TimeDelta::seconds(10));
    assert!(harness.calls.is_empty());
    // Asked at 0, 1, 3, 7 s: the wait doubles.
    assert_eq!(harness.claims.len(), 4);
    harness.hub.available = true;
    harness.run_until(t0() + TimeDelta::seconds(20));
    assert_eq!(harness.call_times(id), [15_000]);
    assert_eq!(harness.hub.phase(id), DispatchPhase::Done);
}

#[test]
fn an_unrecorded_outcome_is_sent_again_with_the_same_jitter() {
    let mut harness = Harness::unthrottled();
    harness.hold_calls = true;
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    harness.hub.available = false;
    harness.release_held();
    harness.run_until(t0() + TimeDelta::seconds(2));
    harness.hub.available = true;
    harness.run_until(t0() + TimeDelta::seconds(10));
    assert_eq!(harness.calls.len(), 1);
    assert_eq!(
        harness.records.len(),
        3,
        "at 0 s, 1 s (unavailable), then 3 s"
    );
    assert!(harness.records.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(harness.hub.phase(id), DispatchPhase::Done);
}

#[test]
fn after_a_restart_an_open_claim_is_never_called_and_expires() {
    let mut harness = Harness::unthrottled();
    harness.hold_calls = true;
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    assert_eq!(harness.calls.len(), 1);
    // Crash with the call in flight: the machine and the answer are gone.
    harness.held.clear();
    harness.machine = Dispatcher::new(harness.machine.config().clone(), 0);
    harness.now += TimeDelta::seconds(5);
    harness.poll();
    harness.run_until(t0() + TimeDelta::minutes(14));
    assert_eq!(
        harness.calls.len(),
        1,
        "an in-doubt claim is never called again"
    );
    assert!(harness.expiries.is_empty(), "not before the timeout");
    harness.run_until(t0() + TimeDelta::minutes(16));
    assert_eq!(harness.expiries, [id]);
    assert_eq!(harness.hub.messages[&id].0.status, MessageStatus::Failed);
    assert_eq!(harness.calls.len(), 1);
    assert!(!harness.machine.is_tracking(id));
}

#[test]
fn a_callback_settles_an_in_doubt_claim_before_it_expires() {
    let mut harness = Harness::unthrottled();
    harness.hold_calls = true;
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    harness.held.clear();
    harness.machine = Dispatcher::new(harness.machine.config().clone(), 0);
    harness.poll();
    let callback = MessageEvent::StatusChanged {
        details: Vec::new(),
        message_id: id,
        provider_ref: Some(sid(1)),
        status: MessageStatus::Delivered,
        error_code: None,
        at: harness.now,
        pricing: None,
    };
    harness.hub.apply(id, &[callback.into()]);
    harness.now += TimeDelta::minutes(1);
    harness.poll();
    assert!(!harness.machine.is_tracking(id));
    harness.run_until(t0() + TimeDelta::hours(1));
    assert!(harness.expiries.is_empty());
    assert_eq!(harness.calls.len(), 1);
}

#[test]
fn never_two_calls_in_flight_for_one_message() {
    let mut harness = Harness::unthrottled();
    harness.hold_calls = true;
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    // Stale and current snapshots while the call is out change nothing.
    let stale = Input::IntentsAvailable {
        intents: vec![PendingIntent {
            message_id: id,
            sender: sender(1),
            recipient: number(0).into(),
            phase: DispatchPhase::Pending {
                next_attempt: 1,
                not_before: None,
            },
            position: 0,
            sender_rate_per_second: None,
        }],
        read_up_to: 1,
    };
    harness.feed(stale);
    harness.poll();
    harness.now += TimeDelta::hours(1);
    harness.feed(Input::Tick);
    assert_eq!(harness.calls.len(), 1);
    assert_eq!(harness.claims.len(), 1);
    assert!(harness.expiries.is_empty(), "its own call is not in doubt");
    harness.release_held();
    assert_eq!(harness.calls_per_message_max, 1);
    assert_eq!(harness.hub.phase(id), DispatchPhase::Done);
}

#[test]
fn answers_that_do_not_match_are_ignored() {
    let mut harness = Harness::unthrottled();
    harness.hold_calls = true;
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    // An answer for another attempt, and a claim answer nobody asked for.
    harness.feed(Input::ProviderAnswered {
        message_id: id,
        attempt: 2,
        outcome: accepted(9),
    });
    harness.feed(Input::ClaimAnswered {
        message_id: id,
        answer: ClaimAnswer::Claimed {
            attempt: 2,
            request: id,
        },
    });
    assert!(harness.records.is_empty());
    assert_eq!(harness.calls.len(), 1);
}

#[test]
fn shutdown_stops_claiming_and_finishes_in_flight_calls() {
    let mut harness = Harness::new(Config {
        claims_in_flight_max: 2,
        ..unthrottled()
    });
    harness.hold_calls = true;
    let ids = harness.add(5, sender(1), false);
    harness.poll();
    assert_eq!(harness.calls.len(), 2);
    harness.feed(Input::ShutdownRequested);
    assert!(!harness.stopped, "two calls are still out");
    harness.release_held();
    assert!(harness.stopped);
    assert_eq!(
        harness.calls.len(),
        2,
        "no claim after the shutdown request"
    );
    assert_eq!(harness.records.len(), 2, "in-flight calls were recorded");
    assert_eq!(
        harness.checkpoints.last(),
        Some(&2),
        "resume from the first unsent"
    );
    for id in &ids[2..] {
        let untouched = DispatchPhase::Pending {
            next_attempt: 1,
            not_before: None,
        };
        assert_eq!(harness.hub.phase(*id), untouched);
    }
    // Stopped is final.
    harness.poll();
    assert_eq!(harness.claims.len(), 2);
}

#[test]
fn the_checkpoint_never_passes_a_tracked_message() {
    let mut harness = Harness::unthrottled();
    harness.hold_calls = true;
    harness.add(3, sender(1), false);
    harness.poll();
    assert!(harness.checkpoints.is_empty(), "all three are in flight");
    let held = std::mem::take(&mut harness.held);
    // The second and third finish first: the first still holds the checkpoint at 0.
    for (id, attempt) in held.iter().skip(1) {
        let input = harness.answer_call(*id, *attempt);
        harness.feed(input);
    }
    assert!(harness.checkpoints.is_empty());
    let input = harness.answer_call(held[0].0, held[0].1);
    harness.feed(input);
    assert_eq!(harness.checkpoints, [3]);
}

/// Calls the harness holds and then answers "in doubt" (timeout, unreadable 2xx, …).
fn answer_held_in_doubt(harness: &mut Harness) {
    for (message_id, attempt) in std::mem::take(&mut harness.held) {
        if let Some(in_flight) = harness.in_flight.get_mut(&message_id) {
            *in_flight -= 1;
        }
        harness.feed(Input::ProviderInDoubt {
            message_id,
            attempt,
        });
    }
}

#[test]
fn an_in_doubt_answer_is_never_retried_and_expires_into_failed() {
    let mut harness = Harness::unthrottled();
    harness.hold_calls = true;
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    assert_eq!(harness.calls.len(), 1);
    answer_held_in_doubt(&mut harness);
    assert!(harness.records.is_empty(), "nothing is recorded");
    assert_eq!(
        harness.machine.claims_in_flight(),
        0,
        "an in-doubt attempt holds no claim slot"
    );
    // Snapshots, ticks and the whole retry schedule pass: never claimed or called again.
    for minute in 1..15 {
        harness.now = t0() + TimeDelta::minutes(minute);
        harness.poll();
        harness.feed(Input::Tick);
    }
    assert_eq!(harness.claims, [id]);
    assert_eq!(harness.calls.len(), 1);
    assert!(harness.expiries.is_empty(), "not before the timeout");
    assert!(harness.machine.is_tracking(id));
    // Shutdown does not wait for it.
    let mut stopping = Harness::unthrottled();
    stopping.hold_calls = true;
    stopping.add(1, sender(1), false);
    stopping.poll();
    answer_held_in_doubt(&mut stopping);
    stopping.feed(Input::ShutdownRequested);
    assert!(stopping.stopped);

    harness.run_until(t0() + TimeDelta::minutes(16));
    assert_eq!(harness.expiries, [id]);
    assert_eq!(harness.hub.messages[&id].0.status, MessageStatus::Failed);
    assert_eq!(harness.calls.len(), 1);
    assert!(!harness.machine.is_tracking(id));
}

#[test]
fn a_callback_settles_an_attempt_left_in_doubt_by_its_answer() {
    let mut harness = Harness::unthrottled();
    harness.hold_calls = true;
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    answer_held_in_doubt(&mut harness);
    let callback = MessageEvent::StatusChanged {
        details: Vec::new(),
        message_id: id,
        provider_ref: Some(sid(1)),
        status: MessageStatus::Delivered,
        error_code: None,
        at: harness.now,
        pricing: None,
    };
    harness.hub.apply(id, &[callback.into()]);
    harness.now += TimeDelta::minutes(1);
    harness.poll();
    assert!(!harness.machine.is_tracking(id));
    harness.run_until(t0() + TimeDelta::hours(1));
    assert!(harness.expiries.is_empty());
    assert_eq!(harness.calls.len(), 1);
    assert!(harness.records.is_empty());
    assert_eq!(harness.hub.messages[&id].0.status, MessageStatus::Delivered);
}

#[test]
fn an_in_doubt_answer_for_another_attempt_is_ignored() {
    let mut harness = Harness::unthrottled();
    harness.hold_calls = true;
    let id = harness.add(1, sender(1), false)[0];
    harness.poll();
    harness.feed(Input::ProviderInDoubt {
        message_id: id,
        attempt: 2,
    });
    assert_eq!(harness.machine.claims_in_flight(), 1, "still calling");
    harness.release_held();
    assert_eq!(harness.hub.phase(id), DispatchPhase::Done);
}
