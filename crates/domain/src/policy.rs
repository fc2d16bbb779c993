//! The hub's compliance configuration: what the rules are parameterised by.

use std::collections::BTreeSet;

use chrono::TimeDelta;

use crate::events::MessagingLimit;
use crate::ids::Workflow;

/// Meta's customer-service window.
pub const WINDOW: TimeDelta = TimeDelta::hours(24);

/// Messaging limits count recipients over a moving 24 h.
pub const TIER_PERIOD: TimeDelta = TimeDelta::hours(24);

/// How long a provider keeps retrying a webhook it could not deliver (Meta: 7 days; Twilio
/// retries for minutes). An inbound the person wrote longer ago than this is a replay, not a
/// late delivery: it opens no window.
pub const PROVIDER_RETRY_HORIZON: TimeDelta = TimeDelta::days(7);

/// How far in the future a provider's timestamp may be before it is refused as wrong: clocks
/// differ a little; a time further ahead is a forgery or a bug, never a message.
pub const PROVIDER_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

/// The default for how long webhooks are remembered for de-duplication: longer than any
/// provider's retry horizon, so a retried or replayed webhook is never applied twice.
pub const WEBHOOK_DEDUP_DEFAULT: TimeDelta = TimeDelta::days(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Task-specific workflows an outreach message may belong to.
    pub workflows_allowed: BTreeSet<Workflow>,
    /// The window is treated as closed this much before 24 h: the provider's clock counts.
    pub window_safety_margin: TimeDelta,
    /// The portfolio limit until a `MessagingLimitChanged` event sets one.
    pub default_messaging_limit: MessagingLimit,
    /// Provider calls per message, first try included (1 + 3 retries).
    pub dispatch_attempts_max: u32,
    /// Backoff before retry n is `base × 2^(n-1)` plus jitter.
    pub retry_backoff_base: TimeDelta,
    /// A claim with no outcome and no callback for this long is failed as in doubt.
    pub in_doubt_timeout: TimeDelta,
    /// The consent wording version recorded for START-keyword opt-ins.
    pub keyword_wording_version: String,
    /// How long inbound and status webhooks are de-duplicated by their provider key; never
    /// shorter than `PROVIDER_RETRY_HORIZON` (the settings refuse less).
    pub webhook_dedup: TimeDelta,
    /// Refuse marketing templates from a number whose quality the provider reported dropped
    /// (`RuleId::SenderQualityDropped`) until it recovers. On by default: Meta lowers a flagged
    /// number's messaging limit if its quality stays low, and marketing is what users most often
    /// block or report, so sending more of it deepens the drop that utility messages share.
    pub pause_marketing_on_quality_drop: bool,
}

impl Default for Policy {
    fn default() -> Self {
        let workflows = [
            "lead_qualification",
            "appointment_scheduling",
            "status_update",
        ];
        Self {
            workflows_allowed: workflows
                .iter()
                .filter_map(|name| Workflow::parse(name).ok())
                .collect(),
            window_safety_margin: TimeDelta::minutes(10),
            // New portfolios start at 250 unique recipients per 24 h (Meta, since Oct 2025).
            default_messaging_limit: MessagingLimit::Limited(250),
            dispatch_attempts_max: 4,
            retry_backoff_base: TimeDelta::seconds(1),
            in_doubt_timeout: TimeDelta::minutes(15),
            keyword_wording_version: "keyword-start".into(),
            webhook_dedup: WEBHOOK_DEDUP_DEFAULT,
            pause_marketing_on_quality_drop: true,
        }
    }
}

impl Policy {
    /// The delay before attempt `next_attempt` (2, 3, …) plus `jitter`, which the caller draws
    /// (the domain has no randomness).
    pub fn retry_delay(&self, next_attempt: u32, jitter: TimeDelta) -> TimeDelta {
        let exponent = next_attempt.saturating_sub(2).min(16);
        self.retry_backoff_base * (1_i32 << exponent) + jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_one_two_four_seconds() {
        let policy = Policy::default();
        let delays: Vec<i64> = (2..=4)
            .map(|n| policy.retry_delay(n, TimeDelta::zero()).num_seconds())
            .collect();
        assert_eq!(delays, [1, 2, 4]);
        assert_eq!(policy.workflows_allowed.len(), 3);
    }
}
