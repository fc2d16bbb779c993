//! The portfolio keeps only the rolling 24 h of reaches before its newest event; this checks,
//! over random histories (out-of-order times, repeated recipients, limit changes), that every
//! messaging-limit decision taken at or after the newest event is the one an unpruned list of
//! every reach gives, and through the send gate itself that the decision is the same.

use chrono::TimeDelta;
use proptest::prelude::*;
use wagate_domain::decide::{self, SendDecision, SendMessage};
use wagate_domain::{
    ContactId, MessageId, MessagingLimit, PortfolioEvent, PortfolioId, PortfolioState, Recipient,
    RuleId, SendContent, Timestamp,
};

use crate::support::*;

const PERIOD: TimeDelta = TimeDelta::hours(24);

fn portfolio() -> PortfolioId {
    PortfolioId::parse("default").expect("portfolio")
}

fn contact(n: u8) -> ContactId {
    ContactId::parse(&format!("+4179000{:04}", n)).expect("contact")
}

fn message_id() -> MessageId {
    MessageId::from_uuid(uuid::Uuid::from_u128(
        0x0190_b5a2_7c1e_7000_8000_0000_0000_0001,
    ))
    .expect("id")
}

/// The definition, over every reach ever applied.
fn unpruned_count(all: &[(ContactId, Timestamp)], now: Timestamp) -> usize {
    let mut unique: Vec<&ContactId> = all
        .iter()
        .filter(|(_, at)| *at > now - PERIOD && *at <= now)
        .map(|(c, _)| c)
        .collect();
    unique.sort();
    unique.dedup();
    unique.len()
}

fn unpruned_reached(all: &[(ContactId, Timestamp)], who: &ContactId, now: Timestamp) -> bool {
    all.iter()
        .any(|(c, at)| c == who && *at > now - PERIOD && *at <= now)
}

/// (contact number, minutes after the previous event, may go back up to an hour, limit change?)
fn history() -> impl Strategy<Value = Vec<(u8, i64, bool)>> {
    prop::collection::vec((0u8..12, -60i64..900, prop::bool::weighted(0.05)), 1..120)
}

fn build(steps: &[(u8, i64, bool)]) -> (PortfolioState, Vec<(ContactId, Timestamp)>, Timestamp) {
    let mut at = t0();
    let mut state = PortfolioState::default();
    let mut all = Vec::new();
    for (n, minutes, limit_change) in steps {
        at += TimeDelta::minutes(*minutes);
        let event = if *limit_change {
            PortfolioEvent::MessagingLimitChanged {
                portfolio: portfolio(),
                limit: MessagingLimit::Limited(3),
                at,
            }
        } else {
            all.push((contact(*n), at));
            PortfolioEvent::RecipientReached {
                portfolio: portfolio(),
                contact: contact(*n),
                message_id: message_id(),
                at,
            }
        };
        state = state.apply(&event);
    }
    let newest = state.newest().expect("one event at least");
    (state, all, newest)
}

proptest! {
    #[test]
    fn pruning_never_changes_a_limit_answer(
        steps in history(),
        after in prop::collection::vec(0i64..(60 * 60), 1..8),
    ) {
        let (state, all, newest) = build(&steps);
        // What is kept is exactly the 24 h before the newest event.
        prop_assert!(state.reached().all(|(_, at)| *at > newest - PERIOD));
        let expected = all.iter().filter(|(_, at)| *at > newest - PERIOD).count();
        prop_assert_eq!(state.reached().len(), expected);
        for minutes in after {
            let now = newest + TimeDelta::minutes(minutes);
            prop_assert_eq!(state.recipients_within_period(now), unpruned_count(&all, now));
            for n in 0..12 {
                let who = contact(n);
                prop_assert_eq!(
                    state.reached_within_period(&who, now),
                    unpruned_reached(&all, &who, now)
                );
            }
        }
    }

    #[test]
    fn pruning_never_changes_a_send_decision(
        steps in history(),
        minutes in 0i64..(26 * 60),
        to in 0u8..14,
        limit in 1u32..6,
    ) {
        let (pruned, all, newest) = build(&steps);
        let now = newest + TimeDelta::minutes(minutes);
        let mut fx = Fx::ready();
        fx.portfolio = PortfolioState::from_parts(
            Some(portfolio()),
            Some(MessagingLimit::Limited(limit)),
            pruned.reached().cloned().collect(),
            pruned.newest(),
        );
        let command = SendMessage {
            message_id: fx.next_message_id(),
            sender: fx.sender_address.clone(),
            to: Recipient::parse(&contact(to).to_string()),
            workflow: Some(WORKFLOW.into()),
            content: SendContent::Template {
                media: Vec::new(),
                template: fx.template_id.clone(),
                variables: vars(&[("1", "Lea")]),
            },
        };
        let decision = decide::send(&fx.state(), &command, &fx.policy, now);
        // The decision the definition gives over every reach ever applied.
        let already = unpruned_reached(&all, &contact(to), now);
        let refused_by_limit = !already && unpruned_count(&all, now) >= limit as usize;
        match decision {
            SendDecision::Refused { refusal, .. } => {
                prop_assert!(refused_by_limit, "refused by {:?}", refusal.rule);
                prop_assert_eq!(refusal.rule, RuleId::TierLimit);
            }
            SendDecision::Allowed { .. } => prop_assert!(!refused_by_limit),
        }
    }
}
