//! The portfolio aggregate: Meta's messaging limit is per business portfolio (since Oct 2025),
//! shared by all its numbers, and counts unique recipients reached outside an open window in a
//! moving 24 h.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::events::{MessagingLimit, PortfolioEvent};
use crate::ids::{ContactId, PortfolioId};
use crate::policy::TIER_PERIOD;
use crate::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortfolioState {
    pub id: Option<PortfolioId>,
    /// `None` until an event sets it: the policy's default applies.
    pub limit: Option<MessagingLimit>,
    /// The reaches of the rolling 24 h before [`PortfolioState::newest`], sorted by time
    /// (equal times in log order). Older ones are dropped as events are applied: a decision
    /// taken at or after the newest event counts only reaches in the 24 h before it, so they
    /// cannot change it. Sorted so that pruning pops from the front (a replay of a long stream
    /// stays linear). Shared copy-on-write: states are cloned on every load and rarely changed.
    reached: Arc<VecDeque<(ContactId, Timestamp)>>,
    /// The time of the newest event applied: what the 24 h kept are relative to.
    newest: Option<Timestamp>,
}

impl PortfolioState {
    pub fn apply(mut self, event: &PortfolioEvent) -> Self {
        self.id.get_or_insert_with(|| event.portfolio().clone());
        match event {
            PortfolioEvent::MessagingLimitChanged { limit, .. } => self.limit = Some(*limit),
            PortfolioEvent::RecipientReached { contact, at, .. } => {
                let reached = Arc::make_mut(&mut self.reached);
                let slot = reached.partition_point(|(_, kept)| kept <= at);
                reached.insert(slot, (contact.clone(), *at));
            }
        }
        self.newest = self.newest.max(Some(event.at()));
        self.prune();
        self
    }

    /// Drops the reaches at or before 24 h before the newest event: none of them is within
    /// the period of a decision taken at or after it.
    fn prune(&mut self) {
        let Some(newest) = self.newest else { return };
        let horizon = newest - TIER_PERIOD;
        let expired = self.reached.partition_point(|(_, at)| *at <= horizon);
        if expired > 0 {
            Arc::make_mut(&mut self.reached).drain(..expired);
        }
    }

    /// The reaches kept (the 24 h before the newest event), oldest first: what a snapshot of
    /// the state saves.
    pub fn reached(&self) -> impl ExactSizeIterator<Item = &(ContactId, Timestamp)> {
        self.reached.iter()
    }

    /// The time of the newest event applied, if any: what a snapshot saves with the reaches.
    pub fn newest(&self) -> Option<Timestamp> {
        self.newest
    }

    /// The state a snapshot saved (its parts as [`PortfolioState::reached`] and
    /// [`PortfolioState::newest`] gave them). Reaches are sorted and pruned again, so a
    /// snapshot of an older form, which kept more, restores to what `apply` would have kept.
    /// Without a saved `newest` (older forms), the newest reach stands in: it is at most the
    /// true one, so this keeps at least what `apply` keeps.
    pub fn from_parts(
        id: Option<PortfolioId>,
        limit: Option<MessagingLimit>,
        reached: Vec<(ContactId, Timestamp)>,
        newest: Option<Timestamp>,
    ) -> Self {
        let mut reached = reached;
        reached.sort_by_key(|(_, at)| *at);
        let newest = newest.max(reached.last().map(|(_, at)| *at));
        let mut state = PortfolioState {
            id,
            limit,
            reached: Arc::new(reached.into()),
            newest,
        };
        state.prune();
        state
    }

    fn within_period(now: Timestamp, at: Timestamp) -> bool {
        at > now - TIER_PERIOD && at <= now
    }

    /// Unique recipients reached in the 24 h before `now`.
    pub fn recipients_within_period(&self, now: Timestamp) -> usize {
        let mut contacts: Vec<&ContactId> = self
            .reached
            .iter()
            .filter(|(_, at)| Self::within_period(now, *at))
            .map(|(contact, _)| contact)
            .collect();
        contacts.sort();
        contacts.dedup();
        contacts.len()
    }

    /// When the earliest reach within the 24 h before `now` leaves the period (freeing one
    /// recipient of headroom); `None` when nothing is within the period.
    pub fn next_headroom_at(&self, now: Timestamp) -> Option<Timestamp> {
        self.reached
            .iter()
            .filter(|(_, at)| Self::within_period(now, *at))
            .map(|(_, at)| *at + TIER_PERIOD)
            .min()
    }

    pub fn reached_within_period(&self, contact: &ContactId, now: Timestamp) -> bool {
        self.reached
            .iter()
            .any(|(reached, at)| reached == contact && Self::within_period(now, *at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MessageId;
    use chrono::{DateTime, TimeDelta};

    fn reach(contact: &str, at: Timestamp) -> PortfolioEvent {
        PortfolioEvent::RecipientReached {
            portfolio: PortfolioId::parse("default").expect("portfolio"),
            contact: ContactId::parse(contact).expect("contact"),
            message_id: MessageId::from_uuid(uuid::Uuid::from_u128(
                0x0190_b5a2_7c1e_7000_8000_0000_0000_0001,
            ))
            .expect("id"),
            at,
        }
    }

    #[test]
    fn only_the_rolling_24_h_before_the_newest_event_is_kept_and_answers_are_unchanged() {
        let t0 = DateTime::from_timestamp(1_764_000_000, 0).expect("time");
        let hours = TimeDelta::hours;
        let a = "+41790000001";
        let b = "+41790000002";
        let events = [
            reach(a, t0),
            reach(b, t0 + hours(1)),
            reach(a, t0 + hours(20)),
            // Out of order by an hour (another hub's clock): sorted in, not lost.
            reach(b, t0 + hours(19)),
            reach(b, t0 + hours(25)),
        ];
        let state = events
            .iter()
            .fold(PortfolioState::default(), PortfolioState::apply);
        // +0 h and +1 h are 24 h or more before +25 h: gone.
        let kept: Vec<Timestamp> = state.reached().map(|(_, at)| *at).collect();
        assert_eq!(kept, [t0 + hours(19), t0 + hours(20), t0 + hours(25)]);
        assert_eq!(state.newest(), Some(t0 + hours(25)));
        // Every answer at or after the newest event is the one all reaches give.
        let all: Vec<(ContactId, Timestamp)> = events
            .iter()
            .map(|event| match event {
                PortfolioEvent::RecipientReached { contact, at, .. } => (contact.clone(), *at),
                PortfolioEvent::MessagingLimitChanged { .. } => unreachable!("reaches only"),
            })
            .collect();
        for now in [0, 1, 12, 24, 43, 44, 48, 49, 60].map(|h| t0 + hours(25) + hours(h)) {
            let within = |at: &Timestamp| *at > now - TIER_PERIOD && *at <= now;
            let mut unique: Vec<&ContactId> = all
                .iter()
                .filter(|(_, at)| within(at))
                .map(|(c, _)| c)
                .collect();
            unique.sort();
            unique.dedup();
            assert_eq!(
                state.recipients_within_period(now),
                unique.len(),
                "count at {now}"
            );
            for contact in [a, b] {
                let contact = ContactId::parse(contact).expect("contact");
                let unpruned = all.iter().any(|(c, at)| *c == contact && within(at));
                assert_eq!(
                    state.reached_within_period(&contact, now),
                    unpruned,
                    "{contact} at {now}"
                );
            }
        }
        // A later limit change moves the horizon too.
        let later = state.apply(&PortfolioEvent::MessagingLimitChanged {
            portfolio: PortfolioId::parse("default").expect("portfolio"),
            limit: MessagingLimit::Limited(10),
            at: t0 + hours(44),
        });
        assert_eq!(later.reached().len(), 1);
    }

    #[test]
    fn a_restored_older_snapshot_is_pruned_like_apply() {
        let t0 = DateTime::from_timestamp(1_764_000_000, 0).expect("time");
        let contact = ContactId::parse("+41790000001").expect("contact");
        let reached = vec![
            (contact.clone(), t0 + TimeDelta::hours(30)),
            (contact.clone(), t0),
            (contact, t0 + TimeDelta::hours(5)),
        ];
        let state = PortfolioState::from_parts(None, None, reached, None);
        let kept: Vec<Timestamp> = state.reached().map(|(_, at)| *at).collect();
        assert_eq!(kept, [t0 + TimeDelta::hours(30)]);
    }
}
