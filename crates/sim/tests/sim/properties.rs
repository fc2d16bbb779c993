//! Random runs of the whole world. Every invariant in `wagate_sim::check` holds after every
//! action (provider calls only under a claim whose gates held — opt-out, opt-in, window,
//! template approval, sender authorization — at most one call per claim and a second call per
//! message only after a recorded retryable failure; statuses only move forward; duplicated
//! callbacks append nothing; the checkpoint never passes an open message), and once the faults
//! stop, every message comes to rest.

use chrono::TimeDelta;
use proptest::prelude::*;
use wagate_domain::MessageStatus;
use wagate_sim::{Action, InboundText, LastStatus, ProviderBehaviour, World};

use crate::support::{
    action, behaviour, calls_for, config, drain, failed, hub_fault, only_message,
};

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn invariants_hold_through_crashes_faults_and_shuffled_callbacks(
        script in prop::collection::vec(behaviour(), 1..6),
        faults in prop::collection::vec(hub_fault(), 1..6),
        seed in any::<u64>(),
        actions in prop::collection::vec(action(), 1..160),
    ) {
        let mut world = World::new(script, faults, seed).map_err(failed)?;
        for action in &actions {
            world.apply(action).map_err(failed)?;
        }
        world.settle(200).map_err(failed)?;
    }

    /// A STOP that lands while a retry waits in backoff (at any point of it, with or without a
    /// crash, whatever the hub drops) means the retry is never sent.
    #[test]
    fn stop_during_backoff_is_never_sent(
        offset_ms in 0..1_300_i64,
        crash in any::<bool>(),
        faults in prop::collection::vec(hub_fault(), 1..4),
        seed in any::<u64>(),
    ) {
        let script = vec![
            ProviderBehaviour::Reject { code: 20429 },
            ProviderBehaviour::Accept { last: LastStatus::Read },
        ];
        let mut world = World::new(script, Vec::new(), seed).map_err(failed)?;
        for setup in [
            Action::OptIn(0),
            Action::SendTemplate { contact: 0, template: 0 },
            Action::Poll,
        ] {
            world.apply(&setup).map_err(failed)?;
        }
        drain(&mut world).map_err(failed)?;
        let message = only_message(&world);
        prop_assert_eq!(calls_for(&world, message), 1);
        world.set_hub_faults(faults);
        world.apply(&Action::Advance(TimeDelta::milliseconds(offset_ms))).map_err(failed)?;
        world.apply(&Action::Inbound(0, InboundText::Stop)).map_err(failed)?;
        if crash {
            world.apply(&Action::Crash).map_err(failed)?;
        }
        world.settle(200).map_err(failed)?;
        prop_assert_eq!(calls_for(&world, message), 1);
        let status = world.hub.message(message).map(|m| m.status.clone());
        prop_assert_eq!(status, Some(MessageStatus::Canceled));
    }
}
