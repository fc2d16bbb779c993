//! The ops counts: refusals by rule per hour (the last 7 days), the send funnel per workflow and
//! template, dispatch outcomes, and each portfolio's messaging-limit usage. The ops page, the
//! `/metrics` series built from the log and any API that reports these numbers read this one
//! projection, so they always agree.
//!
//! Incremental, like [`Projection`](crate::projection::Projection): filled by the same replay of
//! the log when the hub opens (no second pass) and then by the hub after each of its own appends,
//! so a page view or a scrape reads counters and never scans the log. Bounded where it matters:
//! refusals are kept in one bucket per hour, buckets older than 7 days (behind the newest event)
//! are dropped; portfolio reaches are pruned by [`PortfolioState`] itself. The funnel keeps one
//! small entry per message (its key and the stages it reached), like the projection's
//! provider-reference index, so that a repeated status callback is never counted twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use parking_lot::RwLock;
use wagate_domain::{
    Event, MessageEvent, MessageId, MessageStatus, MessagingLimit, PortfolioId, PortfolioState,
    Timestamp,
};

/// Hours of refusal history kept: 7 days.
pub const REFUSAL_HOURS_KEPT: i64 = 7 * 24;

/// The funnel's stages, in order; `Refused` and `Failed` are the branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Requested,
    Allowed,
    Refused,
    Claimed,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Requested,
        Stage::Allowed,
        Stage::Refused,
        Stage::Claimed,
        Stage::Sent,
        Stage::Delivered,
        Stage::Read,
        Stage::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Requested => "requested",
            Stage::Allowed => "allowed",
            Stage::Refused => "refused",
            Stage::Claimed => "claimed",
            Stage::Sent => "sent",
            Stage::Delivered => "delivered",
            Stage::Read => "read",
            Stage::Failed => "failed",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The workflow recorded for a send refused before it had an intent (a refusal records no
/// workflow), and the template column of a freeform reply.
pub const NO_WORKFLOW: &str = "(refused before intent)";
pub const FREEFORM: &str = "(freeform)";

/// One funnel row: messages of a workflow and template that reached each stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelRow {
    pub workflow: String,
    pub template: String,
    /// Indexed like [`Stage::ALL`].
    pub stages: [u64; 8],
}

impl FunnelRow {
    pub fn count(&self, stage: Stage) -> u64 {
        self.stages[stage as usize]
    }
}

/// A portfolio's unique recipients in the moving 24 h against its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortfolioUsage {
    pub portfolio: PortfolioId,
    pub used: usize,
    /// `None`: unlimited.
    pub limit: Option<u32>,
}

/// The counts at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpsCounts {
    /// Refusals (sends and claims) by rule in the 24 h and the 7 days before now.
    pub refusals_24h: BTreeMap<&'static str, u64>,
    pub refusals_7d: BTreeMap<&'static str, u64>,
    /// Refusals per hour over the last 24 h, oldest first (24 entries).
    pub refusals_hourly: Vec<u64>,
    pub funnel: Vec<FunnelRow>,
    /// Dispatch outcomes since the log began: `succeeded`, `retry_scheduled`, `failed`,
    /// `claim_refused`, `in_doubt_expired`.
    pub dispatch: BTreeMap<&'static str, u64>,
    /// Claims with no outcome recorded yet (in doubt once past the in-doubt timeout).
    pub claims_awaiting_outcome: usize,
    pub portfolios: Vec<PortfolioUsage>,
}

#[derive(Debug, Default)]
struct Tallies {
    /// Hour number (unix hours) → rule → refusals.
    refusals: BTreeMap<i64, BTreeMap<&'static str, u64>>,
    funnel: BTreeMap<(String, String), [u64; 8]>,
    /// Message → its funnel key and the stages it reached (bits of [`Stage`]).
    messages: HashMap<MessageId, ((String, String), u8)>,
    dispatch: BTreeMap<&'static str, u64>,
    /// Claimed messages without an outcome (bounded by the claims in flight).
    awaiting_outcome: HashSet<MessageId>,
    portfolios: BTreeMap<PortfolioId, PortfolioState>,
}

impl Tallies {
    fn refusal(&mut self, rule: &'static str, at: Timestamp) {
        let hour = at.timestamp().div_euclid(3600);
        *self
            .refusals
            .entry(hour)
            .or_default()
            .entry(rule)
            .or_default() += 1;
        if let Some(newest) = self.refusals.keys().next_back().copied() {
            self.refusals = self.refusals.split_off(&(newest - REFUSAL_HOURS_KEPT));
        }
    }

    /// Marks `stages` reached by `message`, counting each stage once per message.
    fn reach(&mut self, message: MessageId, key: Option<(String, String)>, stages: &[Stage]) {
        let entry = match (self.messages.get_mut(&message), key) {
            (Some(entry), _) => entry,
            (None, Some(key)) => self.messages.entry(message).or_insert((key, 0)),
            // An event for a message whose intent was never seen: nothing to count it under.
            (None, None) => return,
        };
        let row = self.funnel.entry(entry.0.clone()).or_insert([0; 8]);
        for stage in stages {
            if entry.1 & stage.bit() == 0 {
                entry.1 |= stage.bit();
                row[*stage as usize] += 1;
            }
        }
    }

    fn outcome(&mut self, outcome: &'static str) {
        *self.dispatch.entry(outcome).or_default() += 1;
    }

    fn observe(&mut self, event: &Event) {
        match event {
            Event::Message(message) => self.observe_message(message),
            Event::Portfolio(portfolio) => {
                let id = portfolio.portfolio().clone();
                let state = self.portfolios.remove(&id).unwrap_or_default();
                self.portfolios.insert(id, state.apply(portfolio));
            }
            _ => {}
        }
    }

    fn observe_message(&mut self, event: &MessageEvent) {
        use Stage::*;
        match event {
            MessageEvent::TemplateSent {
                message_id,
                template,
                workflow,
                ..
            } => {
                let key = (workflow.to_string(), template.to_string());
                self.reach(*message_id, Some(key), &[Requested, Allowed]);
            }
            MessageEvent::ReplySent {
                message_id,
                workflow,
                ..
            } => {
                let key = (workflow.to_string(), FREEFORM.to_owned());
                self.reach(*message_id, Some(key), &[Requested, Allowed]);
            }
            MessageEvent::SendRefused {
                message_id,
                template,
                rule,
                at,
                ..
            } => {
                self.refusal(rule.as_str(), *at);
                let template = template
                    .as_ref()
                    .map_or_else(|| FREEFORM.to_owned(), ToString::to_string);
                let key = (NO_WORKFLOW.to_owned(), template);
                self.reach(*message_id, Some(key), &[Requested, Refused]);
            }
            MessageEvent::ClaimRefused {
                message_id,
                rule,
                at,
                ..
            } => {
                self.refusal(rule.as_str(), *at);
                self.outcome("claim_refused");
                self.reach(*message_id, None, &[Refused]);
            }
            MessageEvent::DispatchClaimed { message_id, .. } => {
                self.awaiting_outcome.insert(*message_id);
                self.reach(*message_id, None, &[Claimed]);
            }
            MessageEvent::DispatchSucceeded { message_id, .. } => {
                self.awaiting_outcome.remove(message_id);
                self.outcome("succeeded");
                self.reach(*message_id, None, &[Claimed, Sent]);
            }
            MessageEvent::DispatchFailed {
                message_id,
                retry_at,
                ..
            } => {
                self.awaiting_outcome.remove(message_id);
                if retry_at.is_some() {
                    self.outcome("retry_scheduled");
                } else {
                    self.outcome("failed");
                    self.reach(*message_id, None, &[Failed]);
                }
            }
            MessageEvent::InDoubtExpired { message_id, .. } => {
                self.awaiting_outcome.remove(message_id);
                self.outcome("in_doubt_expired");
                self.reach(*message_id, None, &[Failed]);
            }
            MessageEvent::StatusChanged {
                message_id, status, ..
            } => {
                // A later status implies the earlier ones (Meta may skip `delivered`).
                let stages: &[Stage] = match status {
                    MessageStatus::Sent => &[Sent],
                    MessageStatus::Delivered => &[Sent, Delivered],
                    MessageStatus::Read => &[Sent, Delivered, Read],
                    MessageStatus::Failed | MessageStatus::Undelivered => &[Failed],
                    _ => &[],
                };
                self.reach(*message_id, None, stages);
            }
            MessageEvent::UnmatchedStatusReceived { .. } => {}
        }
    }
}

/// The projection: see the module documentation.
#[derive(Debug, Default)]
pub struct Counts {
    tallies: RwLock<Tallies>,
}

impl Counts {
    pub fn observe(&self, event: &Event) {
        self.tallies.write().observe(event);
    }

    /// The counts as of `now`; a portfolio without a limit of its own has `default_limit`.
    pub fn snapshot(&self, now: Timestamp, default_limit: MessagingLimit) -> OpsCounts {
        let tallies = self.tallies.read();
        let this_hour = now.timestamp().div_euclid(3600);
        let mut counts = OpsCounts {
            refusals_hourly: vec![0; 24],
            ..OpsCounts::default()
        };
        for (hour, rules) in tallies.refusals.range(this_hour - REFUSAL_HOURS_KEPT + 1..) {
            if *hour > this_hour {
                continue;
            }
            let age = (this_hour - hour) as usize;
            for (rule, count) in rules {
                *counts.refusals_7d.entry(rule).or_default() += count;
                if age < 24 {
                    *counts.refusals_24h.entry(rule).or_default() += count;
                    counts.refusals_hourly[23 - age] += count;
                }
            }
        }
        counts.funnel = tallies
            .funnel
            .iter()
            .map(|((workflow, template), stages)| FunnelRow {
                workflow: workflow.clone(),
                template: template.clone(),
                stages: *stages,
            })
            .collect();
        counts.dispatch = tallies.dispatch.clone();
        counts.claims_awaiting_outcome = tallies.awaiting_outcome.len();
        counts.portfolios = tallies
            .portfolios
            .iter()
            .map(|(id, state)| PortfolioUsage {
                portfolio: id.clone(),
                used: state.recipients_within_period(now),
                limit: match state.limit.unwrap_or(default_limit) {
                    MessagingLimit::Limited(limit) => Some(limit),
                    MessagingLimit::Unlimited => None,
                },
            })
            .collect();
        counts
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};
    use wagate_domain::{RuleId, TemplateId, WhatsAppAddress};

    use super::*;

    fn at(hours_ago: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 11, 25, 12, 30, 0)
            .single()
            .expect("time")
            - TimeDelta::hours(hours_ago)
    }

    fn message(n: u8) -> MessageId {
        MessageId::parse(&format!("0193b0c2-7c1e-7d4e-9d7a-1f2e3d4c5b{n:02x}")).expect("id")
    }

    fn refused(n: u8, hours_ago: i64) -> Event {
        Event::Message(MessageEvent::SendRefused {
            message_id: message(n),
            to: "+41790000001".into(),
            sender: WhatsAppAddress::parse("whatsapp:+15555550100").expect("sender"),
            template: Some(TemplateId::parse("HX0123456789abcdef0123456789abcdef").expect("t")),
            rule: RuleId::OptedOut,
            message: "opted out".into(),
            also_broken: Vec::new(),
            at: at(hours_ago),
        })
    }

    #[test]
    fn refusals_fall_into_24_hour_and_7_day_windows_and_old_hours_are_dropped() {
        let counts = Counts::default();
        for (n, hours_ago) in [(1, 0), (2, 23), (3, 24), (4, 167), (5, 168), (6, 400)] {
            counts.observe(&refused(n, hours_ago));
        }
        let snapshot = counts.snapshot(at(0), MessagingLimit::Limited(250));
        assert_eq!(snapshot.refusals_24h.get("opted_out"), Some(&2));
        assert_eq!(snapshot.refusals_7d.get("opted_out"), Some(&4));
        assert_eq!(snapshot.refusals_hourly.len(), 24);
        assert_eq!(snapshot.refusals_hourly[23], 1);
        assert_eq!(snapshot.refusals_hourly[0], 1);
        // Only the hours of the last 7 days (behind the newest event) are kept.
        assert!(counts.tallies.read().refusals.len() <= REFUSAL_HOURS_KEPT as usize + 1);
        let row = &snapshot.funnel[0];
        assert_eq!(row.workflow, NO_WORKFLOW);
        assert_eq!(row.count(Stage::Requested), 6);
        assert_eq!(row.count(Stage::Refused), 6);
        assert_eq!(row.count(Stage::Allowed), 0);
    }

    #[test]
    fn a_repeated_status_counts_once_and_read_implies_delivered() {
        let counts = Counts::default();
        let status = |status| {
            Event::Message(MessageEvent::StatusChanged {
                message_id: message(1),
                provider_ref: None,
                status,
                error_code: None,
                details: Vec::new(),
                at: at(0),
            })
        };
        counts.observe(&refused(1, 0));
        counts.observe(&status(MessageStatus::Read));
        counts.observe(&status(MessageStatus::Read));
        // A status for a message never requested has no row to count under.
        counts.observe(&Event::Message(MessageEvent::StatusChanged {
            message_id: message(9),
            provider_ref: None,
            status: MessageStatus::Read,
            error_code: None,
            details: Vec::new(),
            at: at(0),
        }));
        let snapshot = counts.snapshot(at(0), MessagingLimit::Unlimited);
        assert_eq!(snapshot.funnel.len(), 1);
        let row = &snapshot.funnel[0];
        assert_eq!(
            [Stage::Sent, Stage::Delivered, Stage::Read].map(|s| row.count(s)),
            [1, 1, 1]
        );
    }

    #[test]
    fn dispatch_outcomes_retries_and_claims_awaiting_their_outcome() {
        let counts = Counts::default();
        let id = message(1);
        let claimed = |attempt| {
            Event::Message(MessageEvent::DispatchClaimed {
                message_id: id,
                attempt,
                at: at(0),
            })
        };
        counts.observe(&refused(1, 0));
        counts.observe(&claimed(1));
        assert_eq!(
            counts
                .snapshot(at(0), MessagingLimit::Unlimited)
                .claims_awaiting_outcome,
            1
        );
        counts.observe(&Event::Message(MessageEvent::DispatchFailed {
            message_id: id,
            attempt: 1,
            error: wagate_domain::ProviderError {
                provider: wagate_domain::ProviderKind::Twilio,
                code: Some(20429),
                http_status: Some(429),
                message: "too many requests".into(),
            },
            retry: wagate_domain::Retry::Retryable,
            retry_at: Some(at(0)),
            at: at(0),
        }));
        counts.observe(&claimed(2));
        counts.observe(&Event::Message(MessageEvent::InDoubtExpired {
            message_id: id,
            attempt: 2,
            at: at(0),
        }));
        let snapshot = counts.snapshot(at(0), MessagingLimit::Unlimited);
        assert_eq!(snapshot.claims_awaiting_outcome, 0);
        assert_eq!(snapshot.dispatch.get("retry_scheduled"), Some(&1));
        assert_eq!(snapshot.dispatch.get("in_doubt_expired"), Some(&1));
        let row = &snapshot.funnel[0];
        assert_eq!(row.count(Stage::Claimed), 1, "a message is claimed once");
        assert_eq!(row.count(Stage::Failed), 1);
    }
}
