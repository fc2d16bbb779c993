//! Strategies for actions, provider scripts and hub faults, and small helpers.

use chrono::TimeDelta;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError};
use wagate_domain::MessageId;
use wagate_sim::world::{CONTACTS, TEMPLATES};
use wagate_sim::{Action, HubFault, InboundText, LastStatus, ProviderBehaviour, Violation, World};

/// `PROPTEST_CASES` if set, else `default`: small by default so the suite runs in seconds.
pub fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        // Failing inputs are saved here and replayed first on the next run (proptest cannot
        // find the source of a test under a workspace on its own).
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/sim/proptest-regressions.txt"
        )))),
        ..Config::default()
    }
}

pub fn failed(violation: Violation) -> TestCaseError {
    TestCaseError::fail(violation.0)
}

fn last_status() -> impl Strategy<Value = LastStatus> {
    prop_oneof![
        Just(LastStatus::Sent),
        Just(LastStatus::Delivered),
        Just(LastStatus::Read),
        Just(LastStatus::Undelivered),
    ]
}

pub fn behaviour() -> impl Strategy<Value = ProviderBehaviour> {
    prop_oneof![
        6 => last_status().prop_map(|last| ProviderBehaviour::Accept { last }),
        2 => last_status().prop_map(|last| ProviderBehaviour::AcceptLoseResponse { last }),
        2 => proptest::sample::select(ProviderBehaviour::RETRYABLE_CODES.to_vec())
            .prop_map(|code| ProviderBehaviour::Reject { code }),
        2 => proptest::sample::select(ProviderBehaviour::PERMANENT_CODES.to_vec())
            .prop_map(|code| ProviderBehaviour::Reject { code }),
        1 => Just(ProviderBehaviour::Timeout),
    ]
}

pub fn hub_fault() -> impl Strategy<Value = HubFault> {
    prop_oneof![
        6 => Just(HubFault::None),
        1 => Just(HubFault::LoseRequest),
        1 => Just(HubFault::LoseAnswer),
    ]
}

/// Time jumps biased to the boundaries: backoff (1 s, 2 s, 4 s plus up to 250 ms of jitter),
/// the pair limit, the window (24 h, and 24 h less the 10 min safety margin, ±1 ms), the
/// in-doubt timeout (15 min ±1 s).
pub fn jump() -> impl Strategy<Value = TimeDelta> {
    prop_oneof![
        3 => (1..1_000_i64).prop_map(TimeDelta::milliseconds),
        3 => (0..3_u32, -2..=252_i64).prop_map(|(doublings, ms)| {
            TimeDelta::seconds(1 << doublings) + TimeDelta::milliseconds(ms)
        }),
        1 => Just(TimeDelta::seconds(6)),
        2 => (-1..=1_i64).prop_map(|ms| {
            TimeDelta::hours(24) - TimeDelta::minutes(10) + TimeDelta::milliseconds(ms)
        }),
        1 => (-1..=1_i64).prop_map(|ms| TimeDelta::hours(24) + TimeDelta::milliseconds(ms)),
        1 => (-1..=1_i64).prop_map(|s| TimeDelta::minutes(15) + TimeDelta::seconds(s)),
        1 => (1..48_i64).prop_map(TimeDelta::hours),
    ]
}

fn inbound_text() -> impl Strategy<Value = InboundText> {
    prop_oneof![
        3 => Just(InboundText::Hello),
        2 => Just(InboundText::Stop),
        1 => Just(InboundText::Start),
    ]
}

pub fn action() -> impl Strategy<Value = Action> {
    let contact = 0..CONTACTS;
    prop_oneof![
        4 => contact.clone().prop_map(Action::OptIn),
        2 => contact.clone().prop_map(Action::OptOut),
        6 => (contact.clone(), inbound_text()).prop_map(|(c, text)| Action::Inbound(c, text)),
        6 => (contact.clone(), 0..TEMPLATES)
            .prop_map(|(contact, template)| Action::SendTemplate { contact, template }),
        6 => contact.clone().prop_map(Action::SendFreeform),
        2 => (0..TEMPLATES, any::<bool>())
            .prop_map(|(template, approved)| Action::SetTemplateApproved { template, approved }),
        1 => Just(Action::AuthorizeSender),
        4 => Just(Action::Poll),
        30 => (0..16_usize).prop_map(Action::Work),
        3 => Just(Action::Tick),
        5 => jump().prop_map(Action::Advance),
        3 => (-2..=2_i64).prop_map(|offset_ms| Action::AdvanceToWake { offset_ms }),
        2 => (contact.clone(), -1..=1_i64)
            .prop_map(|(contact, offset_ms)| Action::AdvanceToWindowEdge { contact, offset_ms }),
        4 => Just(Action::Crash),
        1 => Just(Action::Shutdown),
        10 => (0..16_usize, any::<bool>())
            .prop_map(|(index, keep)| Action::Deliver { index, keep }),
        1 => (0..16_usize).prop_map(Action::DropCallback),
    ]
}

/// Performs every queued effect and answer, first in first out.
pub fn drain(world: &mut World) -> Result<(), Violation> {
    while world.work_len() > 0 {
        world.apply(&Action::Work(0))?;
    }
    Ok(())
}

/// Provider calls made for one message.
pub fn calls_for(world: &World, message: MessageId) -> usize {
    world
        .provider
        .calls
        .iter()
        .filter(|call| call.message_id == message)
        .count()
}

/// The one message in the world (panics otherwise: tests only).
pub fn only_message(world: &World) -> MessageId {
    let ids: Vec<MessageId> = world.hub.messages().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 1, "expected exactly one message");
    ids[0]
}
