//! The ops counts: refusals by rule per hour (the last 7 days), the send funnel per workflow and
//! template, dispatch outcomes, and each portfolio's messaging-limit usage. The ops page, the
//! `/metrics` series built from the log and any API that reports these numbers read this one
//! projection, so they always agree.
//!
//! A checkpointed reader of the durable log, like the projection: [`Follower`] holds the tallies
//! and the log position they reflect, and only ever applies the event after that position, so it
//! sees the log in log order and each event once (the hub's append path does not feed it: two
//! concurrent appends finish in any order). The hub catches it up to the durable head, in
//! bounded batches under its lock, before answering the counts and before saving its snapshot
//! (`counts_reader`), so a page view or a scrape reads counters and at most the events appended
//! since the last read. Its state is saved in a snapshot slot of its own ([`COUNTS_SLOT`]) next
//! to the projection's, and restored at open.
//!
//! Bounded by open work: refusals are kept in one bucket per hour, buckets older than 7 days
//! (behind the newest event) are dropped; portfolio reaches are pruned by [`PortfolioState`]
//! itself. The funnel keeps one small entry per message (its row and the stages it reached) so
//! that a repeated status callback is never counted twice, and drops it once the message reaches
//! a terminal stage (read, failed, refused) or once its intent is [`FUNNEL_ENTRY_MAX_AGE`] behind
//! the newest event: a status that arrives for a message after that is not counted (the
//! aggregated rows keep what was counted before). Both rules depend only on the events, so the
//! counts restored from a snapshot equal the counts rebuilt from the whole log.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::TimeDelta;
use uuid::Uuid;
use wagate_domain::{
    Event, MessageEvent, MessageId, MessageStatus, MessagingLimit, PortfolioId, PortfolioState,
    RuleId, Timestamp,
};
use wagate_store::snapshot_forms::{self, CountsV1};

/// Hours of refusal history kept: 7 days.
pub const REFUSAL_HOURS_KEPT: i64 = 7 * 24;

/// How long after its intent a message's funnel entry is kept when it reaches no terminal
/// stage: 7 days (Meta retries a status callback for up to 7 days).
pub const FUNNEL_ENTRY_MAX_AGE: TimeDelta = TimeDelta::days(7);

/// The name of the counts' snapshot slot.
pub const COUNTS_SLOT: &str = "counts";

/// The dispatch outcomes counted, by name (a snapshot holds them by name).
const OUTCOMES: [&str; 5] = [
    "succeeded",
    "retry_scheduled",
    "failed",
    "claim_refused",
    "in_doubt_expired",
];
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
    /// The log position the counts reflect (every event up to it is counted).
    pub position: u64,
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

/// Stages after which a message's funnel entry is dropped: nothing later is counted for it.
const TERMINAL: u8 =
    (1 << Stage::Read as u8) | (1 << Stage::Failed as u8) | (1 << Stage::Refused as u8);

/// A message still followed by the funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: (String, String),
    /// Bits of [`Stage`].
    stages: u8,
    /// Its intent's time, unix seconds.
    intent_at: i64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Tallies {
    /// Hour number (unix hours) → rule → refusals.
    refusals: BTreeMap<i64, BTreeMap<&'static str, u64>>,
    funnel: BTreeMap<(String, String), [u64; 8]>,
    /// Open messages' entries (see the module documentation for when they are dropped).
    messages: HashMap<MessageId, Entry>,
    dispatch: BTreeMap<&'static str, u64>,
    /// Claimed messages without an outcome (bounded by the claims in flight).
    awaiting_outcome: HashSet<MessageId>,
    portfolios: BTreeMap<PortfolioId, PortfolioState>,
    /// The newest event time seen, unix seconds.
    newest: Option<i64>,
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

    /// Marks `stages` reached by `message`, counting each stage once per message. `intent`:
    /// the row and time of the message's intent, when this event is its intent.
    fn reach(
        &mut self,
        message: MessageId,
        intent: Option<((String, String), i64)>,
        stages: &[Stage],
    ) {
        let entry = match (self.messages.get_mut(&message), intent) {
            (Some(entry), _) => entry,
            (None, Some((key, intent_at))) => self.messages.entry(message).or_insert(Entry {
                key,
                stages: 0,
                intent_at,
            }),
            // An intent never seen, or a message already dropped: nothing to count it under.
            (None, None) => return,
        };
        let row = self.funnel.entry(entry.key.clone()).or_insert([0; 8]);
        for stage in stages {
            if entry.stages & stage.bit() == 0 {
                entry.stages |= stage.bit();
                row[*stage as usize] += 1;
            }
        }
        if entry.stages & TERMINAL != 0 {
            self.messages.remove(&message);
        }
    }

    fn outcome(&mut self, outcome: &'static str) {
        *self.dispatch.entry(outcome).or_default() += 1;
    }

    /// Moves the newest time to `at`'s; on each new hour, drops the funnel entries whose intent
    /// is more than [`FUNNEL_ENTRY_MAX_AGE`] behind it (one pass per hour of log time).
    fn advance(&mut self, at: Timestamp) {
        let at = at.timestamp();
        let previous = self.newest.unwrap_or(i64::MIN);
        if at <= previous {
            return;
        }
        self.newest = Some(at);
        if previous != i64::MIN && at.div_euclid(3600) == previous.div_euclid(3600) {
            return;
        }
        let oldest = at - FUNNEL_ENTRY_MAX_AGE.num_seconds();
        self.messages.retain(|_, entry| entry.intent_at >= oldest);
    }

    fn observe(&mut self, event: &Event) {
        self.advance(event.at());
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
                at,
                ..
            } => {
                let key = (workflow.to_string(), template.to_string());
                let intent = Some((key, at.timestamp()));
                self.reach(*message_id, intent, &[Requested, Allowed]);
            }
            MessageEvent::ReplySent {
                message_id,
                workflow,
                at,
                ..
            } => {
                let key = (workflow.to_string(), FREEFORM.to_owned());
                let intent = Some((key, at.timestamp()));
                self.reach(*message_id, intent, &[Requested, Allowed]);
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
                let intent = Some((key, at.timestamp()));
                self.reach(*message_id, intent, &[Requested, Refused]);
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
            MessageEvent::UnmatchedStatusReceived { .. } | MessageEvent::PriceReported { .. } => {}
        }
    }
}

/// The counts and the log position they reflect.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Follower {
    position: u64,
    tallies: Tallies,
}

impl Follower {
    /// The position of the last event applied (0: none).
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    /// Applies the event at `position` if it is after the last one applied; an event at or
    /// before it is already counted and changes nothing. Callers feed the log in log order.
    pub(crate) fn observe(&mut self, position: u64, event: &Event) {
        if position <= self.position {
            return;
        }
        self.tallies.observe(event);
        self.position = position;
    }

    /// The counts as of `now`; a portfolio without a limit of its own has `default_limit`.
    pub(crate) fn counts(&self, now: Timestamp, default_limit: MessagingLimit) -> OpsCounts {
        let tallies = &self.tallies;
        let this_hour = now.timestamp().div_euclid(3600);
        let mut counts = OpsCounts {
            position: self.position,
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

    /// Funnel entries held (messages still followed): for tests of the memory bound.
    pub(crate) fn open_entries(&self) -> usize {
        self.tallies.messages.len()
    }

    /// The snapshot form of this state.
    pub(crate) fn to_form(&self) -> CountsV1 {
        let t = &self.tallies;
        let rows: HashMap<&(String, String), u32> = t
            .funnel
            .keys()
            .enumerate()
            .map(|(i, key)| (key, i as u32))
            .collect();
        CountsV1 {
            refusals: t
                .refusals
                .iter()
                .map(|(hour, rules)| {
                    let rules = rules.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect();
                    (*hour, rules)
                })
                .collect(),
            funnel: t
                .funnel
                .iter()
                .map(|((workflow, template), stages)| (workflow.clone(), template.clone(), *stages))
                .collect(),
            messages: t
                .messages
                .iter()
                .filter_map(|(id, entry)| {
                    let row = *rows.get(&entry.key)?;
                    Some((*id.as_uuid().as_bytes(), row, entry.stages, entry.intent_at))
                })
                .collect(),
            dispatch: t
                .dispatch
                .iter()
                .map(|(o, n)| ((*o).to_owned(), *n))
                .collect(),
            awaiting_outcome: t
                .awaiting_outcome
                .iter()
                .map(|id| *id.as_uuid().as_bytes())
                .collect(),
            portfolios: t
                .portfolios
                .values()
                .map(snapshot_forms::encode_portfolio)
                .collect(),
            newest: t.newest,
        }
    }

    /// The state a snapshot form holds, reflecting `position`; an error names what did not
    /// read (the caller then rebuilds from the log).
    pub(crate) fn from_form(position: u64, form: CountsV1) -> Result<Self, String> {
        let message = |raw: [u8; 16]| {
            MessageId::from_uuid(Uuid::from_bytes(raw)).map_err(|e| format!("message id: {e}"))
        };
        let mut t = Tallies {
            newest: form.newest,
            ..Tallies::default()
        };
        for (hour, rules) in form.refusals {
            let bucket = t.refusals.entry(hour).or_default();
            for (rule, count) in rules {
                let rule = RuleId::ALL
                    .into_iter()
                    .map(RuleId::as_str)
                    .find(|name| *name == rule)
                    .ok_or_else(|| format!("unknown rule {rule}"))?;
                bucket.insert(rule, count);
            }
        }
        let keys: Vec<(String, String)> = form
            .funnel
            .iter()
            .map(|(workflow, template, _)| (workflow.clone(), template.clone()))
            .collect();
        for (workflow, template, stages) in form.funnel {
            t.funnel.insert((workflow, template), stages);
        }
        for (raw, row, stages, intent_at) in form.messages {
            let key = keys
                .get(row as usize)
                .ok_or_else(|| format!("funnel row {row} out of range"))?;
            t.messages.insert(
                message(raw)?,
                Entry {
                    key: key.clone(),
                    stages,
                    intent_at,
                },
            );
        }
        for (outcome, count) in form.dispatch {
            let outcome = OUTCOMES
                .into_iter()
                .find(|name| *name == outcome)
                .ok_or_else(|| format!("unknown dispatch outcome {outcome}"))?;
            t.dispatch.insert(outcome, count);
        }
        for raw in form.awaiting_outcome {
            t.awaiting_outcome.insert(message(raw)?);
        }
        for bytes in form.portfolios {
            let state = snapshot_forms::decode_portfolio(&bytes).map_err(|e| e.to_string())?;
            let id = state
                .id
                .clone()
                .ok_or_else(|| "a portfolio without its id".to_owned())?;
            t.portfolios.insert(id, state);
        }
        Ok(Follower {
            position,
            tallies: t,
        })
    }
}

/// The projection (see the module documentation), restored on first use
/// (`crate::projection_reader`).
pub(crate) type Counts = crate::projection_reader::ReaderCell<Follower>;

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};
    use wagate_domain::{RuleId, TemplateId, WhatsAppAddress};

    use super::*;

    /// A follower fed events at consecutive positions.
    #[derive(Default)]
    struct Feed(Follower);

    impl Feed {
        fn observe(&mut self, event: &Event) {
            let position = self.0.position() + 1;
            self.0.observe(position, event);
        }

        fn snapshot(&self, now: Timestamp, limit: MessagingLimit) -> OpsCounts {
            self.0.counts(now, limit)
        }
    }

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

    fn sent(n: u8, hours_ago: i64) -> Event {
        Event::Message(MessageEvent::TemplateSent {
            message_id: message(n),
            contact: wagate_domain::ContactId::parse("+41790000001").expect("contact"),
            sender: WhatsAppAddress::parse("whatsapp:+15555550100").expect("sender"),
            template: TemplateId::parse("HX0123456789abcdef0123456789abcdef").expect("t"),
            category: wagate_domain::TemplateCategory::Utility,
            variables: Vec::new(),
            workflow: wagate_domain::Workflow::parse("appointment_scheduling").expect("workflow"),
            media: Vec::new(),
            at: at(hours_ago),
        })
    }

    #[test]
    fn refusals_fall_into_24_hour_and_7_day_windows_and_old_hours_are_dropped() {
        let mut counts = Feed::default();
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
        assert!(counts.0.tallies.refusals.len() <= REFUSAL_HOURS_KEPT as usize + 1);
        let row = &snapshot.funnel[0];
        assert_eq!(row.workflow, NO_WORKFLOW);
        assert_eq!(row.count(Stage::Requested), 6);
        assert_eq!(row.count(Stage::Refused), 6);
        assert_eq!(row.count(Stage::Allowed), 0);
    }

    #[test]
    fn a_repeated_status_counts_once_and_read_implies_delivered() {
        let mut counts = Feed::default();
        let status = |status| {
            Event::Message(MessageEvent::StatusChanged {
                message_id: message(1),
                provider_ref: None,
                status,
                error_code: None,
                details: Vec::new(),
                at: at(0),
                pricing: None,
            })
        };
        counts.observe(&sent(1, 0));
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
            pricing: None,
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
        let mut counts = Feed::default();
        let id = message(1);
        let claimed = |attempt| {
            Event::Message(MessageEvent::DispatchClaimed {
                message_id: id,
                attempt,
                at: at(0),
            })
        };
        counts.observe(&sent(1, 0));
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

    fn status(n: u8, status: MessageStatus, hours_ago: i64) -> Event {
        Event::Message(MessageEvent::StatusChanged {
            message_id: message(n),
            provider_ref: None,
            status,
            error_code: None,
            details: Vec::new(),
            at: at(hours_ago),
            pricing: None,
        })
    }

    #[test]
    fn entries_are_dropped_at_a_terminal_stage_and_after_their_age() {
        let mut counts = Feed::default();
        let hours = FUNNEL_ENTRY_MAX_AGE.num_hours();
        // 1 is read, 2 fails, 3 is refused, 4 stays delivered past the age, 5 is recent.
        for n in 1..=4 {
            counts.observe(&sent(n, hours + 10));
        }
        counts.observe(&refused(3, hours + 10));
        counts.observe(&status(1, MessageStatus::Read, hours + 9));
        counts.observe(&status(2, MessageStatus::Failed, hours + 9));
        counts.observe(&status(4, MessageStatus::Delivered, hours + 9));
        assert_eq!(
            counts.0.open_entries(),
            1,
            "only the delivered message is followed"
        );
        counts.observe(&sent(5, 0));
        assert_eq!(
            counts.0.open_entries(),
            1,
            "4 is older than the age: dropped"
        );
        // A late read of 4 is not counted; the rows keep what was counted.
        counts.observe(&status(4, MessageStatus::Read, 0));
        let row = counts
            .snapshot(at(0), MessagingLimit::Unlimited)
            .funnel
            .into_iter()
            .find(|row| row.workflow == "appointment_scheduling")
            .expect("row");
        assert_eq!(row.count(Stage::Allowed), 5);
        assert_eq!(row.count(Stage::Delivered), 2);
        assert_eq!(row.count(Stage::Read), 1);
        assert_eq!(row.count(Stage::Failed), 1);
    }

    #[test]
    fn the_snapshot_form_restores_the_same_state() {
        let mut counts = Feed::default();
        counts.observe(&sent(1, 3));
        counts.observe(&refused(2, 2));
        counts.observe(&status(1, MessageStatus::Delivered, 1));
        counts.observe(&Event::Message(MessageEvent::DispatchClaimed {
            message_id: message(1),
            attempt: 1,
            at: at(1),
        }));
        counts.observe(&Event::Portfolio(
            wagate_domain::PortfolioEvent::RecipientReached {
                portfolio: PortfolioId::parse("default").expect("portfolio"),
                contact: wagate_domain::ContactId::parse("+41790000001").expect("contact"),
                message_id: message(1),
                at: at(1),
            },
        ));
        let form = counts.0.to_form();
        let restored = Follower::from_form(counts.0.position(), form.clone()).expect("restored");
        assert_eq!(restored, counts.0);
        let mut unknown = form;
        unknown.dispatch.push(("exploded".into(), 1));
        assert!(Follower::from_form(5, unknown).is_err());
    }
}
