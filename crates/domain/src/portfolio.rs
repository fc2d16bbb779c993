//! The portfolio aggregate: Meta's messaging limit is per business portfolio (since Oct 2025),
//! shared by all its numbers, and counts unique recipients reached outside an open window in a
//! moving 24 h.

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
    /// Recent reaches, in log order; entries older than two periods are pruned, which cannot
    /// change any count taken at or after the newest event. Shared copy-on-write: states are
    /// cloned on every load (one entry per recipient of the last day), and rarely changed.
    reached: Arc<Vec<(ContactId, Timestamp)>>,
}

impl PortfolioState {
    pub fn apply(mut self, event: &PortfolioEvent) -> Self {
        self.id.get_or_insert_with(|| event.portfolio().clone());
        match event {
            PortfolioEvent::MessagingLimitChanged { limit, .. } => self.limit = Some(*limit),
            PortfolioEvent::RecipientReached { contact, at, .. } => {
                let horizon = *at - TIER_PERIOD - TIER_PERIOD;
                let reached = Arc::make_mut(&mut self.reached);
                reached.retain(|(_, reached_at)| *reached_at > horizon);
                reached.push((contact.clone(), *at));
            }
        }
        self
    }

    /// The reaches kept (at most the last two periods before the newest), oldest first: what a
    /// snapshot of the state saves.
    pub fn reached(&self) -> &[(ContactId, Timestamp)] {
        &self.reached
    }

    /// The state a snapshot saved (its parts as [`PortfolioState::reached`] gave them).
    pub fn from_parts(
        id: Option<PortfolioId>,
        limit: Option<MessagingLimit>,
        reached: Vec<(ContactId, Timestamp)>,
    ) -> Self {
        PortfolioState {
            id,
            limit,
            reached: Arc::new(reached),
        }
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
