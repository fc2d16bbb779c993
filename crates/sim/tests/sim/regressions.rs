//! Named scenarios.

use wagate_domain::{Event, MessageEvent, MessageStatus};
use wagate_sim::{Action, LastStatus, ProviderBehaviour, Violation, World};

use crate::support::{calls_for, drain, only_message};

fn accepting_world() -> Result<World, Violation> {
    World::new(
        vec![ProviderBehaviour::Accept {
            last: LastStatus::Delivered,
        }],
        Vec::new(),
        1,
    )
}

fn in_doubt_expired(world: &World) -> usize {
    world
        .hub
        .log()
        .iter()
        .filter(|record| {
            matches!(
                record.event,
                Event::Message(MessageEvent::InDoubtExpired { .. })
            )
        })
        .count()
}

/// Sends one template and performs `steps` queued items (snapshot, claim, answer, call, …).
fn one_message_after(steps: usize) -> Result<World, Violation> {
    let mut world = accepting_world()?;
    world.apply(&Action::OptIn(0))?;
    world.apply(&Action::SendTemplate {
        contact: 0,
        template: 0,
    })?;
    world.apply(&Action::Poll)?;
    for _ in 0..steps {
        world.apply(&Action::Work(0))?;
    }
    Ok(world)
}

/// Issue 5: a crash between the claim and the outcome must never lead to a second send. The
/// work queue at this point: [initial snapshot, poll snapshot] → Claim → ClaimAnswered →
/// CallProvider → ProviderAnswered → RecordOutcome → OutcomeRecorded.
#[test]
fn issue_5_crash_between_claim_and_outcome_is_never_resent() -> Result<(), Violation> {
    for steps in 0..10 {
        for deliver_callbacks in [true, false] {
            let mut world = one_message_after(steps)?;
            let message = only_message(&world);
            let calls_before = calls_for(&world, message);
            let claimed_before = world.hub.message(message).is_some_and(|m| m.attempts > 0);
            world.apply(&Action::Crash)?;
            if !deliver_callbacks {
                while !world.webhooks.is_empty() {
                    world.apply(&Action::DropCallback(0))?;
                }
            }
            world.settle(200)?;
            let calls = calls_for(&world, message);
            // A claim made before the crash is never used again: only an unclaimed message is
            // claimed (and sent) by the new dispatcher.
            let expected = if claimed_before { calls_before } else { 1 };
            assert_eq!(calls, expected, "steps {steps}: sent {calls} times");
            let status = world.hub.message(message).map(|m| m.status.clone());
            let claimed_without_outcome = world
                .hub
                .message(message)
                .is_some_and(|m| m.attempts == 1 && m.provider_ref.is_none());
            if claimed_without_outcome {
                // Crashed between claim and outcome, and no callback came: expired, failed.
                assert_eq!(in_doubt_expired(&world), 1, "steps {steps}");
                assert_eq!(status, Some(MessageStatus::Failed), "steps {steps}");
            }
        }
    }
    Ok(())
}

/// The claim was appended but its answer lost with the crash: the provider is never called,
/// and the claim expires after the in-doubt timeout.
#[test]
fn claim_lost_in_a_crash_expires_without_a_call() -> Result<(), Violation> {
    // Two snapshots, then the Claim itself: the claim is in the log, its answer in the queue.
    let mut world = one_message_after(3)?;
    let message = only_message(&world);
    assert_eq!(
        world.hub.message(message).map(|m| m.attempts),
        Some(1),
        "the claim is appended"
    );
    world.apply(&Action::Crash)?;
    drain(&mut world)?;
    world.settle(200)?;
    assert_eq!(calls_for(&world, message), 0);
    assert_eq!(in_doubt_expired(&world), 1);
    let status = world.hub.message(message).map(|m| m.status.clone());
    assert_eq!(status, Some(MessageStatus::Failed));
    Ok(())
}

/// Provider accepted, the dispatcher crashed before recording: the callback, delivered twice
/// and out of order, settles the message; nothing is sent again and nothing expires.
#[test]
fn callback_settles_a_send_interrupted_by_a_crash() -> Result<(), Violation> {
    let mut world = one_message_after(5)?;
    let message = only_message(&world);
    assert_eq!(
        calls_for(&world, message),
        1,
        "the provider has the message"
    );
    world.apply(&Action::Crash)?;
    // delivered, then sent, then queued, each twice.
    for _ in 0..3 {
        let last = world.webhooks.len() - 1;
        world.apply(&Action::Deliver {
            index: last,
            keep: true,
        })?;
        world.apply(&Action::Deliver {
            index: last,
            keep: false,
        })?;
    }
    world.settle(200)?;
    assert_eq!(calls_for(&world, message), 1);
    assert_eq!(in_doubt_expired(&world), 0);
    let status = world.hub.message(message).map(|m| m.status.clone());
    assert_eq!(status, Some(MessageStatus::Delivered));
    Ok(())
}

/// A freeform reply decided inside the window but claimed after it closed is refused.
#[test]
fn window_closing_before_the_claim_cancels_a_reply() -> Result<(), Violation> {
    let mut world = accepting_world()?;
    world.apply(&Action::Inbound(0, wagate_sim::InboundText::Hello))?;
    world.apply(&Action::SendFreeform(0))?;
    let message = only_message(&world);
    world.apply(&Action::AdvanceToWindowEdge {
        contact: 0,
        offset_ms: 0,
    })?;
    world.settle(200)?;
    assert_eq!(calls_for(&world, message), 0);
    let status = world.hub.message(message).map(|m| m.status.clone());
    assert_eq!(status, Some(MessageStatus::Canceled));
    Ok(())
}
