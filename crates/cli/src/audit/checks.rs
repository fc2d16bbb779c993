//! The auditor's own checks, run on exported records (`ExportedEvent`), one at a time, in log
//! order.
//!
//! Nothing here calls the domain's decide, gates or apply: consent, windows, approvals, sender
//! authorization and message statuses are re-derived from the records with this module's own
//! small code, so a bug in the command handlers cannot hide itself from the audit. The same
//! checker runs on a database, an export file and a running hub's event feed.
//!
//! The model follows docs/compliance.md: the 24 h window per (sender, contact), dated by when the
//! person wrote (`min(provider_at, at)`), with replays and group messages opening none; consent
//! judged over every linked identity; an opt-in counted only when it came from its source (a
//! keyword from a signed webhook, anything from an operator or a webhook, evidence newer than the
//! newest opt-out). A record's actor is read for those consent checks only; `null` (a log written
//! before actors) is given the benefit of the doubt.
//!
//! Records are read leniently: an event type this version does not know is counted and skipped,
//! and payload fields it does not know are ignored, so a log written by a newer wagate (new
//! events, new fields) is still checked for every rule this version knows.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;
use wagate_export::ExportedEvent;

mod campaigns;

/// Meta's customer-service window. The hub closes it a little earlier (a safety margin); the audit
/// checks the hard limit.
const WINDOW: TimeDelta = TimeDelta::hours(24);

/// Meta retries a webhook for 7 days: an inbound written longer ago than that before wagate
/// received it is a replay. It opens no window, clears no flag and opts nobody in.
const RETRY_HORIZON: TimeDelta = TimeDelta::days(7);

/// Messaging limits count unique recipients over a rolling 24 h (Meta, per business portfolio).
const TIER_PERIOD: TimeDelta = TimeDelta::hours(24);

/// The policy settings the rules are parameterised by. They are configuration, not facts in the
/// log, so the auditor is told them (`wagate audit --workflows`, `--messaging-limit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPolicy {
    /// The workflows a send may name.
    pub workflows: BTreeSet<String>,
    /// The portfolio limit until a `MessagingLimitChanged` sets one (`None`: unlimited).
    pub default_limit: Option<u64>,
    /// Marketing is paused on a number whose last `SenderQualityReported` was a drop.
    pub pause_marketing_on_quality_drop: bool,
}

/// Most violations kept with their details; the count goes on.
pub const VIOLATIONS_KEPT_MAX: usize = 1000;

/// What kind of invariant a violation breaks. The ids are stable (`--json`, docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Positions are not 1, 2, 3, … without a gap.
    PositionGap,
    /// A stream's versions are not 1, 2, 3, … without a gap.
    VersionGap,
    /// A record that cannot be read: undecodable, a missing field, an event on the wrong stream.
    Malformed,
    /// A dispatch claimed after the contact opted out, with no opt-in in between.
    DispatchAfterOptOut,
    /// A send allowed after the contact opted out, with no opt-in in between.
    SendAfterOptOut,
    /// A template sent or claimed without an explicit opt-in on record.
    NoOptIn,
    /// A template sent or claimed while not registered and approved.
    TemplateNotApproved,
    /// A template sent or claimed with variables that do not match its placeholders.
    TemplateVariables,
    /// Freeform text sent or claimed outside the 24 h window.
    WindowClosed,
    /// A send or claim from a sender that was not registered, authorized and unsuspended.
    ChannelNotAuthorized,
    /// A claim that would move a message backwards (after it was sent, or after dispatch ended).
    StatusRegression,
    /// A claim (or a claim's outcome) with no decision before it on its message stream.
    ClaimWithoutDecision,
    /// A send or claim for a recipient that is not an E.164 number.
    InvalidNumber,
    /// A send or claim naming no workflow, or one outside the allowlist.
    WorkflowNotAllowed,
    /// A template to a new recipient outside an open window while the portfolio had already
    /// reached its limit of unique recipients in the rolling 24 h.
    TierLimit,
    /// A send or claim for a contact reported not to be on WhatsApp (no inbound or clearing since).
    NotOnWhatsapp,
    /// A marketing template sent or claimed for a contact who paused marketing messages.
    MarketingPaused,
    /// A marketing template sent or claimed from a number whose last quality report was a drop.
    SenderQualityDropped,
    /// An `OptedIn` with source `keyword` that no signed inbound webhook appended, or that relied
    /// on a message written longer ago than the providers' retry horizon (a replay).
    KeywordOptInNotFromContact,
    /// An `OptedIn` whose evidence is not newer than the contact's newest opt-out.
    OptInOverNewerStop,
    /// An `OptedIn` recorded by a role that may not record consent (only an operator or a
    /// signed webhook may).
    OptInRoleNotAllowed,
    /// A send or claim to a contact while another identity linked to it (directly or through
    /// other links) was opted out.
    LinkedIdentityOptedOut,
    /// A send or claim from a sender whose registration (portfolio, provider or Meta
    /// phone-number id) changed after its last authorization, with no authorization since.
    SenderNotReauthorized,
    /// A campaign row processed (`CampaignRowSent` or `CampaignRowRefused`) a second time.
    CampaignRowTwice,
    /// A campaign row processed after the campaign's `CampaignCancelled` or `CampaignCompleted`.
    CampaignRowAfterEnd,
    /// A `CampaignRowSent` with no `TemplateSent` of its message before it (or a
    /// `CampaignRowRefused` with no `SendRefused`).
    CampaignRowWithoutSend,
    /// A campaign row numbered outside the campaign's rows (or of a campaign never created).
    CampaignRowOutOfRange,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PositionGap => "position_gap",
            Self::VersionGap => "version_gap",
            Self::Malformed => "malformed",
            Self::DispatchAfterOptOut => "dispatch_after_opt_out",
            Self::SendAfterOptOut => "send_after_opt_out",
            Self::NoOptIn => "no_opt_in",
            Self::TemplateNotApproved => "template_not_approved",
            Self::TemplateVariables => "template_variables",
            Self::WindowClosed => "window_closed",
            Self::ChannelNotAuthorized => "channel_not_authorized",
            Self::StatusRegression => "status_regression",
            Self::ClaimWithoutDecision => "claim_without_decision",
            Self::InvalidNumber => "invalid_number",
            Self::WorkflowNotAllowed => "workflow_not_allowed",
            Self::TierLimit => "tier_limit",
            Self::NotOnWhatsapp => "not_on_whatsapp",
            Self::MarketingPaused => "marketing_paused",
            Self::SenderQualityDropped => "sender_quality_dropped",
            Self::KeywordOptInNotFromContact => "keyword_opt_in_not_from_contact",
            Self::OptInOverNewerStop => "opt_in_over_newer_stop",
            Self::OptInRoleNotAllowed => "opt_in_role_not_allowed",
            Self::LinkedIdentityOptedOut => "linked_identity_opted_out",
            Self::SenderNotReauthorized => "sender_not_reauthorized",
            Self::CampaignRowTwice => "campaign_row_twice",
            Self::CampaignRowAfterEnd => "campaign_row_after_end",
            Self::CampaignRowWithoutSend => "campaign_row_without_send",
            Self::CampaignRowOutOfRange => "campaign_row_out_of_range",
        }
    }
}

/// One broken invariant, where it happened, and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The log position of the offending record (`None` when the log itself could not be read
    /// further, e.g. a database the store reports as corrupt).
    pub position: Option<u64>,
    pub check: Check,
    pub stream: Option<String>,
    pub message: String,
}

/// Everything the audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Records checked.
    pub events: u64,
    /// Position of the last record checked.
    pub last_position: u64,
    pub contacts: u64,
    pub contacts_opted_in: u64,
    pub contacts_opted_out: u64,
    pub messages: u64,
    /// Every message by its final status (`refused` for a send that was never allowed).
    pub messages_by_status: BTreeMap<String, u64>,
    /// Sends refused (`SendRefused`), by rule.
    pub refusals_by_rule: BTreeMap<String, u64>,
    /// Claims refused at dispatch time (`ClaimRefused`: the message was canceled), by rule.
    pub claims_refused_by_rule: BTreeMap<String, u64>,
    pub dispatch_claims: u64,
    /// Provider callbacks recorded before (or without) their message.
    pub unmatched_statuses: u64,
    /// Event types this version of wagate does not know (kept, not checked).
    pub unknown_event_types: BTreeMap<String, u64>,
    pub violations_total: u64,
    /// The first [`VIOLATIONS_KEPT_MAX`] violations, in log order.
    pub violations: Vec<Violation>,
}

impl Summary {
    pub fn is_clean(&self) -> bool {
        self.violations_total == 0
    }
}

// ---------------------------------------------------------------------------------------------
// The auditor's own model: small, and deliberately not the domain's.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Consent {
    #[default]
    Unknown,
    In,
    Out,
}

/// One business number's 24 h window with a contact: Meta's window belongs to the number the
/// person wrote to (error 131047: "since the recipient last replied to the sender number").
#[derive(Debug, Default, Clone, Copy)]
struct SenderWindow {
    /// Latest time the person wrote to this number (the provider's time, never later than
    /// receipt).
    last_inbound: Option<DateTime<Utc>>,
    /// Latest provider report that this number's window is closed.
    reported_closed: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
struct ContactFacts {
    /// Folded from the opt-ins and opt-outs; an opt-in that breaks a consent rule (a keyword
    /// not from the contact, a role that may not record it, evidence older than the newest
    /// opt-out) is reported and does not count.
    consent: Consent,
    /// The newest opt-out's `evidence_at` (when the person opted out): an opt-in must be newer.
    last_opt_out: Option<DateTime<Utc>>,
    /// Identities directly linked to this one (`IdentityLinked`, either stream).
    linked: BTreeSet<usize>,
    /// The window of each business number (a sender index) the person wrote to.
    windows: HashMap<usize, SenderWindow>,
    /// Flagged not on WhatsApp (`FlagRaised`), not cleared since by an inbound or `FlagCleared`.
    not_on_whatsapp: bool,
    /// Flagged as having paused marketing messages, not cleared since.
    marketing_paused: bool,
}

impl ContactFacts {
    /// Why freeform text from `sender` is not allowed at `at`, if it is not. `name` gives a
    /// sender's name for the sentence.
    fn window_problem(
        &self,
        sender: usize,
        at: DateTime<Utc>,
        name: impl Fn(usize) -> String,
    ) -> Option<String> {
        let window = self.windows.get(&sender).copied().unwrap_or_default();
        let Some(last) = window.last_inbound else {
            // Say where the person did write, if anywhere: the usual cause is another number.
            let elsewhere = self
                .windows
                .iter()
                .filter_map(|(other, window)| window.last_inbound.map(|last| (last, *other)))
                .max();
            return Some(match elsewhere {
                Some((last, other)) => format!(
                    "the contact had never written to {} (they last wrote to {} at {}, and a window belongs to the number written to)",
                    name(sender),
                    name(other),
                    text_time(last)
                ),
                None => format!("the contact had never written to {}", name(sender)),
            });
        };
        if let Some(closed) = window.reported_closed {
            if closed >= last {
                return Some(format!(
                    "the provider reported the window with {} closed at {} after the contact last wrote to it at {}",
                    name(sender),
                    text_time(closed),
                    text_time(last)
                ));
            }
        }
        if at - last >= WINDOW {
            return Some(format!(
                "the contact last wrote to {} at {}, {} before",
                name(sender),
                text_time(last),
                human_duration(at - last)
            ));
        }
        None
    }
}

#[derive(Debug, Default)]
struct SenderFacts {
    registered: bool,
    authorized: bool,
    suspended: bool,
    /// The portfolio of its latest registration (an index into the portfolios).
    portfolio: Option<usize>,
    /// Its latest registration: provider, portfolio and Meta phone-number id.
    registration: Option<(String, String, Option<String>)>,
    /// How a re-registration changed it after its last authorization, which that withdrew;
    /// cleared by a new authorization.
    withdrawn: Option<String>,
    /// The provider's `event` of its last quality report, when that was a drop.
    quality_dropped: Option<String>,
}

#[derive(Debug, Default)]
struct TemplateFacts {
    registered: bool,
    approval: Option<String>,
    placeholders: Vec<String>,
    /// The category of its latest registration (`marketing`, `utility`, …).
    category: Option<String>,
}

/// A business portfolio: its messaging limit and the recipients it reached recently.
#[derive(Debug, Default)]
struct PortfolioFacts {
    /// `None` until a `MessagingLimitChanged`: the policy's default applies. `Some(None)`:
    /// unlimited.
    limit: Option<Option<u64>>,
    /// Reaches (time, contact) in log order: every `RecipientReached`, and every template the
    /// auditor itself finds sent or claimed outside a window (so a forged send without its
    /// `RecipientReached` still counts). Entries more than two periods older than the newest
    /// are dropped: no count taken at or after the newest reach can include them.
    reaches: VecDeque<(DateTime<Utc>, usize)>,
    newest: Option<DateTime<Utc>>,
}

impl PortfolioFacts {
    fn within_period(now: DateTime<Utc>, at: DateTime<Utc>) -> bool {
        at > now - TIER_PERIOD && at <= now
    }

    fn reach(&mut self, contact: usize, at: DateTime<Utc>) {
        let newest = self.newest.map_or(at, |newest| newest.max(at));
        self.newest = Some(newest);
        let horizon = newest - TIER_PERIOD - TIER_PERIOD;
        while self.reaches.front().is_some_and(|(at, _)| *at <= horizon) {
            self.reaches.pop_front();
        }
        self.reaches.push_back((at, contact));
    }

    fn reached_within_period(&self, contact: usize, now: DateTime<Utc>) -> bool {
        self.reaches
            .iter()
            .any(|(at, reached)| *reached == contact && Self::within_period(now, *at))
    }

    /// Unique recipients reached in the 24 h before `now`, counted up to `stop_at` (enough to
    /// know the limit is reached).
    fn recipients_within_period(&self, now: DateTime<Utc>, stop_at: u64) -> u64 {
        let mut seen = HashSet::new();
        for (at, contact) in &self.reaches {
            if Self::within_period(now, *at)
                && seen.insert(*contact)
                && seen.len() as u64 >= stop_at
            {
                break;
            }
        }
        seen.len() as u64
    }
}

/// The auditor's status table: position on the success path, and the terminal failures.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    /// Accepted or scheduled (Twilio), rank 0.
    Early(String),
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    /// failed, undelivered, canceled.
    Failure(String),
    /// Anything else: recorded, never moves a message.
    Unknown,
}

impl Status {
    fn parse(text: &str) -> Self {
        match text {
            "accepted" | "scheduled" => Self::Early(text.to_owned()),
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" | "undelivered" | "canceled" => Self::Failure(text.to_owned()),
            _ => Self::Unknown,
        }
    }

    fn rank(&self) -> Option<u8> {
        match self {
            Self::Early(_) => Some(0),
            Self::Queued => Some(1),
            Self::Sending => Some(2),
            Self::Sent => Some(3),
            Self::Delivered => Some(4),
            Self::Read => Some(5),
            Self::Failure(_) | Self::Unknown => None,
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Early(name) | Self::Failure(name) => name,
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Unknown => "unknown",
        }
    }

    fn is_terminal(&self) -> bool {
        matches!(self, Self::Read | Self::Failure(_))
    }

    /// Forward only: read and failures are final, a failure cannot follow delivery, unknown
    /// statuses never move anything.
    fn advance(&mut self, observed: Status) {
        if self.is_terminal() {
            return;
        }
        let Some(current) = self.rank() else {
            return;
        };
        let moves = match (&observed, observed.rank()) {
            (Status::Failure(_), _) => current < 4,
            (_, Some(rank)) => rank > current,
            (_, None) => false,
        };
        if moves {
            *self = observed;
        }
    }
}

#[derive(Debug)]
enum Content {
    Template {
        template: usize,
        /// Variable keys, sorted, and whether one of the values is empty.
        keys: Vec<String>,
        any_empty: bool,
    },
    Freeform,
}

#[derive(Debug)]
struct Intent {
    contact: usize,
    sender: usize,
    content: Content,
    /// The workflow the send named (`None`: none, or empty).
    workflow: Option<Box<str>>,
}

#[derive(Debug)]
struct MessageFacts {
    intent: Option<Intent>,
    refused: bool,
    status: Status,
    claims: u32,
    /// Dispatch ended: succeeded, failed for good, canceled, expired, or a callback arrived.
    dispatch_closed: bool,
}

impl Default for MessageFacts {
    fn default() -> Self {
        Self {
            intent: None,
            refused: false,
            status: Status::Queued,
            claims: 0,
            dispatch_closed: false,
        }
    }
}

/// Interns names (contacts, senders, templates) to small indexes so large logs stay compact.
#[derive(Debug)]
struct Table<T> {
    index: HashMap<Box<str>, usize>,
    names: Vec<Box<str>>,
    facts: Vec<T>,
}

impl<T: Default> Table<T> {
    fn new() -> Self {
        Self {
            index: HashMap::new(),
            names: Vec::new(),
            facts: Vec::new(),
        }
    }

    /// The index of `name`, added on first sight.
    fn id(&mut self, name: &str) -> usize {
        if let Some(id) = self.index.get(name) {
            return *id;
        }
        let id = self.facts.len();
        self.index.insert(name.into(), id);
        self.names.push(name.into());
        self.facts.push(T::default());
        id
    }

    /// The facts of an index that [`Table::id`] returned (so always present).
    fn get(&mut self, id: usize) -> &mut T {
        &mut self.facts[id]
    }

    fn name(&self, id: usize) -> &str {
        self.names.get(id).map_or("?", |name| name)
    }

    fn len(&self) -> usize {
        self.facts.len()
    }
}

/// Feeds on records in log order; [`Auditor::finish`] gives the summary.
#[derive(Debug)]
pub struct Auditor {
    policy: AuditPolicy,
    summary: Summary,
    next_position: u64,
    versions: HashMap<Box<str>, u64>,
    contacts: Table<ContactFacts>,
    senders: Table<SenderFacts>,
    templates: Table<TemplateFacts>,
    portfolios: Table<PortfolioFacts>,
    messages: HashMap<u128, MessageFacts>,
    campaigns: HashMap<Box<str>, campaigns::CampaignFacts>,
}

/// One record being checked: the record and its parsed time.
struct At<'a> {
    record: &'a ExportedEvent,
    at: DateTime<Utc>,
}

impl Auditor {
    pub fn new(policy: AuditPolicy) -> Self {
        Self {
            policy,
            summary: Summary::default(),
            next_position: 1,
            versions: HashMap::new(),
            contacts: Table::new(),
            senders: Table::new(),
            templates: Table::new(),
            portfolios: Table::new(),
            messages: HashMap::new(),
            campaigns: HashMap::new(),
        }
    }

    /// Position of the last record seen (0 before the first).
    pub fn last_position(&self) -> u64 {
        self.summary.last_position
    }

    /// A violation found outside the records (the store refused to read further).
    pub fn report(&mut self, position: Option<u64>, check: Check, message: String) {
        self.summary.violations_total += 1;
        if self.summary.violations.len() < VIOLATIONS_KEPT_MAX {
            self.summary.violations.push(Violation {
                position,
                check,
                stream: None,
                message,
            });
        }
    }

    fn violation(&mut self, record: &ExportedEvent, check: Check, message: String) {
        self.summary.violations_total += 1;
        if self.summary.violations.len() < VIOLATIONS_KEPT_MAX {
            self.summary.violations.push(Violation {
                position: Some(record.position),
                check,
                stream: Some(record.stream.clone()),
                message,
            });
        }
    }

    /// A record that could not be decoded at all: its place in the sequence is still checked.
    pub fn observe_undecodable(&mut self, position: u64, stream: &str, version: u64, why: &str) {
        let record = ExportedEvent {
            position,
            stream: stream.to_owned(),
            version,
            event_type: String::new(),
            timestamp: String::new(),
            event_id: String::new(),
            payload: serde_json::Map::new(),
            actor: None,
        };
        self.sequence(&record);
        self.violation(
            &record,
            Check::Malformed,
            format!("the record cannot be decoded: {why}"),
        );
    }

    /// Checks one record and folds it into the auditor's model.
    pub fn observe(&mut self, record: &ExportedEvent) {
        self.sequence(record);
        // The event's own time (the payload's `at`); the record's timestamp as a fallback.
        let at = match parse_time(record.text("at")).or_else(|| parse_time(&record.timestamp)) {
            Some(at) => at,
            None => {
                self.violation(
                    record,
                    Check::Malformed,
                    format!(
                        "{} has no readable timestamp ({:?})",
                        record.event_type, record.timestamp
                    ),
                );
                return;
            }
        };
        let event = At { record, at };
        match record.event_type.as_str() {
            "OptedIn"
            | "OptedOut"
            | "InboundReceived"
            | "WindowReportedClosed"
            | "OptOutReviewRequested"
            | "FlagRaised"
            | "FlagCleared"
            | "IdentityLinked"
            | "GroupMessageReceived" => self.contact_event(&event),
            "SenderRegistered"
            | "SenderAuthorized"
            | "SenderSuspended"
            | "SenderQualityReported" => self.sender_event(&event),
            "TemplateRegistered"
            | "TemplateApprovalChanged"
            | "TemplateCreated"
            | "TemplateStatusReported"
            | "TemplateCategoryReported" => self.template_event(&event),
            "TemplateSent" | "ReplySent" | "SendRefused" | "DispatchClaimed" | "ClaimRefused"
            | "DispatchSucceeded" | "DispatchFailed" | "StatusChanged" | "InDoubtExpired" => {
                self.message_event(&event)
            }
            "UnmatchedStatusReceived" => self.summary.unmatched_statuses += 1,
            "CampaignCreated" | "CampaignListed" | "CampaignStarted" | "CampaignPaused"
            | "CampaignCancelled" | "CampaignRowSent" | "CampaignRowRefused"
            | "CampaignCompleted" => self.campaign_event(&event),
            "MessagingLimitChanged" | "RecipientReached" => self.portfolio_event(&event),
            // The review queue's bookkeeping: no compliance rule reads it (a confirmed opt-out is
            // its own `OptedOut`, checked above).
            "ReviewRaised" | "ReviewResolved" => {}
            // Outgoing webhook endpoints: configuration no compliance rule reads.
            "WebhookEndpointRegistered"
            | "WebhookEndpointDeleted"
            | "WebhookEndpointDisabled"
            | "WebhookEndpointEnabled" => {}
            other => {
                *self
                    .summary
                    .unknown_event_types
                    .entry(other.to_owned())
                    .or_default() += 1;
            }
        }
    }

    fn sequence(&mut self, record: &ExportedEvent) {
        self.summary.events += 1;
        self.summary.last_position = record.position;
        if record.position != self.next_position {
            let message = if self.next_position == 1 {
                format!(
                    "the log starts at position {} instead of 1 (a partial export?)",
                    record.position
                )
            } else {
                format!(
                    "positions jump from {} to {}",
                    self.next_position - 1,
                    record.position
                )
            };
            self.violation(record, Check::PositionGap, message);
        }
        self.next_position = record.position.saturating_add(1);
        let last = match self.versions.get_mut(record.stream.as_str()) {
            Some(last) => last,
            None => self
                .versions
                .entry(record.stream.as_str().into())
                .or_insert(0),
        };
        let expected = last.saturating_add(1);
        *last = record.version;
        if record.version != expected {
            let message = format!(
                "stream {} jumps from version {} to {}",
                record.stream,
                expected - 1,
                record.version
            );
            self.violation(record, Check::VersionGap, message);
        }
    }

    /// A required text field; a `Malformed` violation when it is missing.
    fn field<'r>(&mut self, record: &'r ExportedEvent, name: &str) -> Option<&'r str> {
        let value = record.text(name);
        if value.is_empty() {
            self.violation(
                record,
                Check::Malformed,
                format!("{} has no {name:?} field", record.event_type),
            );
            return None;
        }
        Some(value)
    }

    /// The event must sit on the stream its payload names.
    fn on_stream(&mut self, record: &ExportedEvent, category: &str, id: &str) -> bool {
        let matches = record
            .stream
            .strip_prefix(category)
            .and_then(|rest| rest.strip_prefix(':'))
            == Some(id);
        if !matches {
            self.violation(
                record,
                Check::Malformed,
                format!(
                    "{} for {category} {id} is on stream {}",
                    record.event_type, record.stream
                ),
            );
        }
        matches
    }

    fn contact_event(&mut self, event: &At<'_>) {
        let record = event.record;
        let Some(name) = self.field(record, "contact") else {
            return;
        };
        if !self.on_stream(record, "contact", name) {
            return;
        }
        let at = event.at;
        // The business number an inbound or a window report names (`None`: none known).
        let sender = match record.text("sender") {
            "" => None,
            sender => Some(self.senders.id(sender)),
        };
        let id = self.contacts.id(name);
        match record.event_type.as_str() {
            "OptedIn" => return self.opted_in(event, id),
            "IdentityLinked" => {
                let Some(other) = self.field(record, "other") else {
                    return;
                };
                let other = self.contacts.id(other);
                // Appended to both streams; either one links both ways.
                if other != id {
                    self.contacts.get(id).linked.insert(other);
                    self.contacts.get(other).linked.insert(id);
                }
                return;
            }
            _ => {}
        }
        let contact = self.contacts.get(id);
        match record.event_type.as_str() {
            "OptedOut" => {
                contact.consent = Consent::Out;
                // When the person opted out (absent before evidence times were recorded: `at`).
                let evidence = parse_time(record.text("evidence_at")).unwrap_or(at);
                contact.last_opt_out = Some(
                    contact
                        .last_opt_out
                        .map_or(evidence, |last| last.max(evidence)),
                );
            }
            "InboundReceived" => {
                // When the person wrote it: the provider's time, never later than receipt.
                let written = parse_time(record.text("provider_at")).map_or(at, |p| p.min(at));
                // Written longer ago than any provider retries: a replay, which proves nothing
                // about today.
                if at - written > RETRY_HORIZON {
                    return;
                }
                // A message to an unknown number opens no window: none can be attributed.
                if let Some(sender) = sender {
                    let window = contact.windows.entry(sender).or_default();
                    window.last_inbound = Some(
                        window
                            .last_inbound
                            .map_or(written, |last| last.max(written)),
                    );
                    // A message written at or after the provider's report reopens the window; a
                    // late one written before it does not.
                    if window
                        .reported_closed
                        .is_some_and(|closed| closed <= written)
                    {
                        window.reported_closed = None;
                    }
                }
                // A message from the number proves it is on WhatsApp.
                contact.not_on_whatsapp = false;
            }
            "WindowReportedClosed" => match sender {
                Some(sender) => {
                    contact.windows.entry(sender).or_default().reported_closed = Some(at)
                }
                // A report that names no sender (written before reports named one) closes every
                // window the contact has.
                None => {
                    for window in contact.windows.values_mut() {
                        window.reported_closed = Some(at);
                    }
                }
            },
            "FlagRaised" | "FlagCleared" => {
                let raised = record.event_type == "FlagRaised";
                // A flag this version does not know changes none of the rules it checks.
                match record.text("flag") {
                    "not_on_whatsapp" => contact.not_on_whatsapp = raised,
                    "marketing_paused" => contact.marketing_paused = raised,
                    _ => {}
                }
            }
            // A group message is recorded, but opens no one-to-one window and clears no flag.
            _ => {}
        }
    }

    /// `OptedIn`: checked against where consent may come from, then folded if it holds.
    fn opted_in(&mut self, event: &At<'_>, id: usize) {
        let record = event.record;
        let at = event.at;
        let source = record.text("source");
        // When the evidence is dated (absent before evidence times were recorded: `at`).
        let evidence_at = parse_time(record.text("evidence_at")).unwrap_or(at);
        let mut problems = Vec::new();
        // `null`: recorded before actors were; nothing can be said about who asked.
        let actor = record.actor.as_ref();
        if source == "keyword" {
            if let Some(actor) = actor.filter(|actor| actor.kind != "webhook") {
                problems.push((
                    Check::KeywordOptInNotFromContact,
                    format!(
                        "was recorded with source keyword by {} {:?}, not by a signed inbound webhook: keyword consent comes only from the contact's own message",
                        actor.kind, actor.name
                    ),
                ));
            }
            if at - evidence_at > RETRY_HORIZON {
                problems.push((
                    Check::KeywordOptInNotFromContact,
                    format!(
                        "was recorded with source keyword from a message written at {}, {} before it was received: a replay, which opts nobody in",
                        text_time(evidence_at),
                        human_duration(at - evidence_at)
                    ),
                ));
            }
        }
        if let Some(actor) =
            actor.filter(|actor| !matches!(actor.kind.as_str(), "operator" | "webhook"))
        {
            problems.push((
                Check::OptInRoleNotAllowed,
                format!(
                    "was recorded by {} {:?}: only an operator or a signed webhook may record consent",
                    actor.kind, actor.name
                ),
            ));
        }
        if let Some(stop) = self.contacts.get(id).last_opt_out {
            // The contact's own START in the same instant as the STOP is no disagreement between
            // arrival and provider order (Meta's times are whole seconds): arrival order stands.
            // Other evidence must be strictly newer.
            let newer = if source == "keyword" {
                evidence_at >= stop
            } else {
                evidence_at > stop
            };
            if !newer {
                problems.push((
                    Check::OptInOverNewerStop,
                    format!(
                        "has evidence dated {}, not after the contact's newest opt-out at {}: only evidence newer than the STOP opts them in again",
                        text_time(evidence_at),
                        text_time(stop)
                    ),
                ));
            }
        }
        if problems.is_empty() {
            self.contacts.get(id).consent = Consent::In;
            return;
        }
        let contact = self.contacts.name(id).to_owned();
        for (check, sentence) in problems {
            self.violation(
                record,
                check,
                format!(
                    "OptedIn ({source}) for {contact} {sentence}; it does not count as consent"
                ),
            );
        }
    }

    /// Every identity linked to `id` through any chain of links, itself excluded, by name.
    fn linked_identities(&self, id: usize) -> Vec<usize> {
        let mut seen = BTreeSet::from([id]);
        let mut queue = vec![id];
        while let Some(next) = queue.pop() {
            for other in &self.contacts.facts[next].linked {
                if seen.insert(*other) {
                    queue.push(*other);
                }
            }
        }
        seen.remove(&id);
        let mut linked: Vec<usize> = seen.into_iter().collect();
        linked.sort_by(|a, b| self.contacts.name(*a).cmp(self.contacts.name(*b)));
        linked
    }

    fn sender_event(&mut self, event: &At<'_>) {
        let record = event.record;
        let Some(name) = self.field(record, "sender") else {
            return;
        };
        if !self.on_stream(record, "sender", name) {
            return;
        }
        let (portfolio, registration) = if record.event_type == "SenderRegistered" {
            let Some(portfolio) = self.field(record, "portfolio") else {
                return;
            };
            let registration = (
                record.text("provider").to_owned(),
                portfolio.to_owned(),
                record
                    .payload
                    .get("meta_phone_number_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            );
            (Some(self.portfolios.id(portfolio)), Some(registration))
        } else {
            (None, None)
        };
        let id = self.senders.id(name);
        let sender = self.senders.get(id);
        match record.event_type.as_str() {
            "SenderRegistered" => {
                // An authorization was given for one registration: another provider, portfolio
                // (another messaging limit) or phone-number id is another channel.
                if let (Some(old), Some(new), true) =
                    (&sender.registration, &registration, sender.authorized)
                {
                    if let Some(change) = registration_change(old, new) {
                        sender.authorized = false;
                        sender.withdrawn = Some(format!("{change} at {}", text_time(event.at)));
                    }
                }
                sender.registered = true;
                sender.portfolio = portfolio;
                sender.registration = registration;
            }
            "SenderAuthorized" => {
                sender.authorized = true;
                sender.suspended = false;
                sender.withdrawn = None;
            }
            "SenderSuspended" => sender.suspended = true,
            "SenderQualityReported" => {
                let dropped = record.payload.get("dropped").and_then(Value::as_bool) == Some(true);
                sender.quality_dropped = dropped.then(|| record.text("event").to_owned());
            }
            _ => {}
        }
    }

    fn template_event(&mut self, event: &At<'_>) {
        let record = event.record;
        let Some(name) = self.field(record, "template") else {
            return;
        };
        if !self.on_stream(record, "template", name) {
            return;
        }
        let id = self.templates.id(name);
        match record.event_type.as_str() {
            "TemplateRegistered" => {
                let placeholders: Vec<String> = match record.payload.get("placeholders") {
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                let category = record.text("category").to_owned();
                let template = self.templates.get(id);
                template.registered = true;
                template.placeholders = placeholders;
                template.category = Some(category);
                template.approval.get_or_insert_with(|| "pending".into());
            }
            "TemplateCreated" => {
                // The placeholders are read off the texts here, not taken from the hub.
                let mut texts = vec![record.text("body").to_owned()];
                if let Some(header) = record.payload.get("header") {
                    texts.push(text_of(header.get("value")));
                }
                if let Some(Value::Array(cards)) = record.payload.get("cards") {
                    for card in cards {
                        texts.push(text_of(card.get("body")));
                        texts.push(text_of(card.get("header").and_then(|h| h.get("value"))));
                    }
                }
                let mut placeholders: Vec<String> = Vec::new();
                for text in &texts {
                    for key in placeholder_keys(text) {
                        if !placeholders.contains(&key) {
                            placeholders.push(key);
                        }
                    }
                }
                let category = record.text("category").to_owned();
                let template = self.templates.get(id);
                template.registered = true;
                template.placeholders = placeholders;
                template.category = Some(category);
                template
                    .approval
                    .get_or_insert_with(|| "unsubmitted".into());
            }
            "TemplateApprovalChanged" | "TemplateStatusReported" => {
                let status = record.text("status").to_owned();
                self.templates.get(id).approval = Some(status);
            }
            // The provider decides the category from here on (a known template only).
            "TemplateCategoryReported" => {
                let category = record.text("category").to_owned();
                let template = self.templates.get(id);
                if template.registered {
                    template.category = Some(category);
                }
            }
            _ => {}
        }
    }

    fn portfolio_event(&mut self, event: &At<'_>) {
        let record = event.record;
        let Some(name) = self.field(record, "portfolio") else {
            return;
        };
        if !self.on_stream(record, "portfolio", name) {
            return;
        }
        let id = self.portfolios.id(name);
        match record.event_type.as_str() {
            "MessagingLimitChanged" => {
                // A number of recipients, or null for unlimited.
                let limit = match record.payload.get("limit") {
                    Some(Value::Null) => None,
                    Some(value) => match value.as_u64() {
                        Some(limit) => Some(limit),
                        None => {
                            self.violation(
                                record,
                                Check::Malformed,
                                format!("MessagingLimitChanged has a limit of {value}, neither a number nor null"),
                            );
                            return;
                        }
                    },
                    None => {
                        self.violation(
                            record,
                            Check::Malformed,
                            "MessagingLimitChanged has no \"limit\" field".into(),
                        );
                        return;
                    }
                };
                self.portfolios.get(id).limit = Some(limit);
            }
            "RecipientReached" => {
                let Some(contact) = self.field(record, "contact") else {
                    return;
                };
                let contact = self.contacts.id(contact);
                self.portfolios.get(id).reach(contact, event.at);
            }
            _ => {}
        }
    }

    fn message_event(&mut self, event: &At<'_>) {
        let record = event.record;
        let Some(text_id) = self.field(record, "message_id") else {
            return;
        };
        if !self.on_stream(record, "message", text_id) {
            return;
        }
        let Ok(uuid) = uuid::Uuid::parse_str(text_id) else {
            self.violation(
                record,
                Check::Malformed,
                format!("message id {text_id:?} is not a UUID"),
            );
            return;
        };
        let key = uuid.as_u128();
        match record.event_type.as_str() {
            "TemplateSent" | "ReplySent" => self.decision(event, key),
            "SendRefused" => {
                *self
                    .summary
                    .refusals_by_rule
                    .entry(record.text("rule").to_owned())
                    .or_default() += 1;
                self.messages.entry(key).or_default().refused = true;
            }
            "DispatchClaimed" => self.claim(event, key),
            "ClaimRefused" => {
                *self
                    .summary
                    .claims_refused_by_rule
                    .entry(record.text("rule").to_owned())
                    .or_default() += 1;
                let message = self.messages.entry(key).or_default();
                let problem = claim_problem(message);
                message.claims += 1;
                message.dispatch_closed = true;
                message.status.advance(Status::Failure("canceled".into()));
                if let Some((check, sentence)) = problem {
                    self.violation(record, check, format!("a refused claim {sentence}"));
                }
            }
            "DispatchSucceeded" | "DispatchFailed" | "InDoubtExpired" => {
                let message = self.messages.entry(key).or_default();
                let unclaimed = message.claims == 0;
                match record.event_type.as_str() {
                    "DispatchSucceeded" => {
                        message.dispatch_closed = true;
                        message
                            .status
                            .advance(Status::parse(record.text("provider_status")));
                    }
                    "DispatchFailed" => {
                        let final_failure =
                            record.payload.get("retry_at").is_none_or(Value::is_null);
                        if !message.dispatch_closed && final_failure {
                            message.dispatch_closed = true;
                            message.status.advance(Status::Failure("failed".into()));
                        }
                    }
                    _ => {
                        message.dispatch_closed = true;
                        message.status.advance(Status::Failure("failed".into()));
                    }
                }
                if unclaimed {
                    self.violation(
                        record,
                        Check::ClaimWithoutDecision,
                        format!(
                            "{} for message {text_id}, which was never claimed",
                            record.event_type
                        ),
                    );
                }
            }
            "StatusChanged" => {
                let message = self.messages.entry(key).or_default();
                // A callback proves the provider has the message: once claimed, no new claim.
                if message.claims > 0 {
                    message.dispatch_closed = true;
                }
                message.status.advance(Status::parse(record.text("status")));
            }
            _ => {}
        }
    }

    /// `TemplateSent` / `ReplySent`: an allowed send, checked against the facts at its position.
    fn decision(&mut self, event: &At<'_>, key: u128) {
        let record = event.record;
        let (Some(contact_name), Some(sender_name)) =
            (self.field(record, "contact"), self.field(record, "sender"))
        else {
            return;
        };
        let contact = self.contacts.id(contact_name);
        let sender = self.senders.id(sender_name);
        let content = if record.event_type == "TemplateSent" {
            let Some(template_name) = self.field(record, "template") else {
                return;
            };
            let template = self.templates.id(template_name);
            let (keys, any_empty) = match record.payload.get("variables") {
                Some(Value::Object(map)) => {
                    let mut keys: Vec<String> = map.keys().cloned().collect();
                    keys.sort();
                    let any_empty = map
                        .values()
                        .any(|value| value.as_str().is_none_or(|text| text.trim().is_empty()));
                    (keys, any_empty)
                }
                _ => (Vec::new(), false),
            };
            Content::Template {
                template,
                keys,
                any_empty,
            }
        } else {
            Content::Freeform
        };
        let workflow = Some(record.text("workflow"))
            .filter(|name| !name.is_empty())
            .map(Box::from);
        let intent = Intent {
            contact,
            sender,
            content,
            workflow,
        };
        let problems = self.gate_problems(&intent, event.at, false);
        for (check, sentence) in problems {
            self.violation(
                record,
                check,
                format!("{} to {contact_name} {sentence}", record.event_type),
            );
        }
        let message = self.messages.entry(key).or_default();
        message.intent = Some(intent);
    }

    fn claim(&mut self, event: &At<'_>, key: u128) {
        let record = event.record;
        self.summary.dispatch_claims += 1;
        let message = self.messages.entry(key).or_default();
        let regression = claim_problem(message);
        message.claims += 1;
        message.status.advance(Status::Sending);
        let Some(intent) = message.intent.take() else {
            self.violation(
                record,
                Check::ClaimWithoutDecision,
                format!(
                    "DispatchClaimed for message {} with no TemplateSent or ReplySent before it",
                    record.text("message_id")
                ),
            );
            return;
        };
        let mut problems = self.gate_problems(&intent, event.at, true);
        problems.extend(regression);
        let contact_name = self.contacts.name(intent.contact).to_owned();
        if let Some(message) = self.messages.get_mut(&key) {
            message.intent = Some(intent);
        }
        for (check, sentence) in problems {
            self.violation(
                record,
                check,
                format!(
                    "DispatchClaimed (attempt {}) of a message to {contact_name} {sentence}",
                    record.number("attempt").unwrap_or(0)
                ),
            );
        }
    }

    /// Every rule the auditor re-checks for a send (`claim == false`) or a claim, at time `at`,
    /// against the facts folded so far, in the order of docs/compliance.md. Like the rules, the
    /// ones about the contact are only checked for a valid number.
    fn gate_problems(
        &mut self,
        intent: &Intent,
        at: DateTime<Utc>,
        claim: bool,
    ) -> Vec<(Check, String)> {
        let mut problems = Vec::new();
        let sender_name = self.senders.name(intent.sender).to_owned();
        let sender = self.senders.get(intent.sender);
        let portfolio = sender.portfolio;
        let quality_dropped = sender.quality_dropped.clone();
        if let (true, Some(change)) = (sender.registered, &sender.withdrawn) {
            problems.push((
                Check::SenderNotReauthorized,
                format!(
                    "from sender {sender_name}, whose registration changed ({change}) after its last authorization, which that withdrew; it was not authorized again"
                ),
            ));
        } else if !sender.registered || !sender.authorized || sender.suspended {
            let why = if !sender.registered {
                "not registered"
            } else if !sender.authorized {
                "not authorized"
            } else {
                "suspended"
            };
            problems.push((
                Check::ChannelNotAuthorized,
                format!("from sender {sender_name}, which was {why} at that point"),
            ));
        }
        let number_problem = e164_problem(self.contacts.name(intent.contact));
        let number_valid = number_problem.is_none();
        if let Some(why) = number_problem {
            problems.push((
                Check::InvalidNumber,
                format!("was for a recipient that is not an E.164 number: {why}"),
            ));
        }
        // Consent belongs to the person: every identity linked to this one, through any chain of
        // links, is judged with it.
        let linked = self.linked_identities(intent.contact);
        let linked_out: Vec<&str> = linked
            .iter()
            .filter(|other| self.contacts.facts[**other].consent == Consent::Out)
            .map(|other| self.contacts.name(*other))
            .collect();
        let linked_out = (!linked_out.is_empty()).then(|| linked_out.join(", "));
        let linked_in = linked
            .iter()
            .any(|other| self.contacts.facts[*other].consent == Consent::In);
        let linked_paused = linked
            .iter()
            .any(|other| self.contacts.facts[*other].marketing_paused);
        let contact = self.contacts.get(intent.contact);
        let consent = contact.consent;
        // Whether a window is open: freeform needs one, and a template outside one counts
        // toward the portfolio's limit.
        let senders = &self.senders;
        let window = contact.window_problem(intent.sender, at, |id| senders.name(id).to_owned());
        let not_on_whatsapp = contact.not_on_whatsapp;
        let marketing_paused = contact.marketing_paused || linked_paused;
        if number_valid && consent == Consent::Out {
            let (check, what) = if claim {
                (Check::DispatchAfterOptOut, "dispatched")
            } else {
                (Check::SendAfterOptOut, "allowed")
            };
            problems.push((
                check,
                format!("was {what} after the contact opted out, with no opt-in since"),
            ));
        } else if let (true, Some(others)) = (number_valid, &linked_out) {
            problems.push((
                Check::LinkedIdentityOptedOut,
                format!(
                    "was {} while {others}, linked to the contact as the same person, had opted out: an opt-out under any identity refuses sends to all of them",
                    if claim { "dispatched" } else { "allowed" }
                ),
            ));
        }
        let mut marketing = None;
        match &intent.content {
            Content::Freeform => {
                if let (true, Some(why)) = (number_valid, &window) {
                    problems.push((
                        Check::WindowClosed,
                        format!("was freeform text outside the 24 h window: {why}"),
                    ));
                }
            }
            Content::Template {
                template,
                keys,
                any_empty,
            } => {
                // An opt-in under a linked identity is the person's (none of them opted out).
                if number_valid && consent == Consent::Unknown && !linked_in {
                    problems.push((
                        Check::NoOptIn,
                        "was a template with no explicit opt-in on record".into(),
                    ));
                }
                let template_name = self.templates.name(*template).to_owned();
                let facts = self.templates.get(*template);
                if facts.registered && facts.category.as_deref() == Some("marketing") {
                    marketing = Some(template_name.clone());
                }
                if !facts.registered {
                    problems.push((
                        Check::TemplateNotApproved,
                        format!("used template {template_name}, which was not registered"),
                    ));
                } else if facts.approval.as_deref() != Some("approved") {
                    problems.push((
                        Check::TemplateNotApproved,
                        format!(
                            "used template {template_name} while it was {}",
                            facts.approval.as_deref().unwrap_or("pending")
                        ),
                    ));
                } else {
                    let mut placeholders = facts.placeholders.clone();
                    placeholders.sort();
                    if placeholders != *keys || *any_empty {
                        problems.push((
                            Check::TemplateVariables,
                            format!(
                                "filled template {template_name} with variables [{}] for placeholders [{}]{}",
                                keys.join(", "),
                                placeholders.join(", "),
                                if *any_empty { ", one of them empty" } else { "" }
                            ),
                        ));
                    }
                }
            }
        }
        match intent.workflow.as_deref() {
            None => problems.push((
                Check::WorkflowNotAllowed,
                "named no workflow: every message belongs to a task-specific workflow".into(),
            )),
            Some(name) if !self.policy.workflows.contains(name) => problems.push((
                Check::WorkflowNotAllowed,
                format!(
                    "named workflow {name:?}, which is not in the allowlist ({})",
                    self.policy
                        .workflows
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            Some(_) => {}
        }
        let is_template = matches!(intent.content, Content::Template { .. });
        if let (true, true, true, Some(portfolio)) =
            (number_valid, is_template, window.is_some(), portfolio)
        {
            if let Some(why) = self.tier_problem(portfolio, intent.contact, at, claim) {
                problems.push((Check::TierLimit, why));
            }
        }
        if number_valid && not_on_whatsapp {
            problems.push((
                Check::NotOnWhatsapp,
                "was for a contact reported not to be on WhatsApp, with no inbound message and no clearing since".into(),
            ));
        }
        if let (true, true, Some(template_name)) = (number_valid, marketing_paused, &marketing) {
            problems.push((
                Check::MarketingPaused,
                format!(
                    "used marketing template {template_name} while the contact had paused marketing messages"
                ),
            ));
        }
        if let (true, Some(event), Some(template_name)) = (
            self.policy.pause_marketing_on_quality_drop,
            &quality_dropped,
            &marketing,
        ) {
            problems.push((
                Check::SenderQualityDropped,
                format!(
                    "used marketing template {template_name} from sender {sender_name}, whose quality the provider reported dropped ({event}) with no recovery since"
                ),
            ));
        }
        problems
    }

    /// A template outside an open window reaches `contact` for `portfolio` at `at`: why that
    /// broke the portfolio's messaging limit, if it did. The reach is counted either way.
    fn tier_problem(
        &mut self,
        portfolio: usize,
        contact: usize,
        at: DateTime<Utc>,
        claim: bool,
    ) -> Option<String> {
        let default_limit = self.policy.default_limit;
        let name = self.portfolios.name(portfolio).to_owned();
        let facts = self.portfolios.get(portfolio);
        // A recipient already reached in the period is not new: it never breaks the limit.
        let already = facts.reached_within_period(contact, at);
        let mut problem = None;
        if !already {
            if let Some(limit) = facts.limit.unwrap_or(default_limit) {
                let reached = facts.recipients_within_period(at, limit);
                if reached >= limit {
                    problem = Some(format!(
                        "was a template to a new recipient outside an open window, while portfolio {name} had already reached its limit of {limit} unique recipients in the 24 h before"
                    ));
                }
            }
        }
        // The auditor counts the reach itself, so a send forged without its `RecipientReached`
        // still counts: a decision always, a claim only for a recipient not counted in the
        // period (a claim more than 24 h after its decision counts again).
        if !claim || !already {
            facts.reach(contact, at);
        }
        problem
    }

    /// The summary; the auditor's model is dropped.
    pub fn finish(mut self) -> Summary {
        self.summary.contacts = self.contacts.len() as u64;
        for contact in &self.contacts.facts {
            match contact.consent {
                Consent::In => self.summary.contacts_opted_in += 1,
                Consent::Out => self.summary.contacts_opted_out += 1,
                Consent::Unknown => {}
            }
        }
        self.summary.messages = self.messages.len() as u64;
        for message in self.messages.values() {
            let status = match (&message.intent, message.refused) {
                (None, true) => "refused",
                (None, false) => "no_decision",
                (Some(_), _) => message.status.name(),
            };
            *self
                .summary
                .messages_by_status
                .entry(status.to_owned())
                .or_default() += 1;
        }
        self.summary
    }
}

/// What changed between two registrations (provider, portfolio, Meta phone-number id), if
/// anything.
fn registration_change(
    old: &(String, String, Option<String>),
    new: &(String, String, Option<String>),
) -> Option<String> {
    let mut changes = Vec::new();
    if old.0 != new.0 {
        changes.push(format!("provider {} to {}", old.0, new.0));
    }
    if old.1 != new.1 {
        changes.push(format!("portfolio {} to {}", old.1, new.1));
    }
    if old.2 != new.2 {
        let id = |id: &Option<String>| id.clone().unwrap_or_else(|| "none".into());
        changes.push(format!(
            "Meta phone-number id {} to {}",
            id(&old.2),
            id(&new.2)
        ));
    }
    (!changes.is_empty()).then(|| changes.join(", "))
}

/// A claim on a message that is already past dispatch: a status regression.
fn claim_problem(message: &MessageFacts) -> Option<(Check, String)> {
    let beyond_sending = message.status.rank().is_some_and(|rank| rank > 2);
    if message.dispatch_closed || beyond_sending || message.status.is_terminal() {
        let status = message.status.name();
        return Some((
            Check::StatusRegression,
            format!(
                "came after the message's dispatch had ended (it was {status}): it would move it back to sending"
            ),
        ));
    }
    None
}

/// Why `text` is not an E.164 number (`+`, 7 to 15 digits, the first not 0), if it is not.
fn e164_problem(text: &str) -> Option<String> {
    let Some(digits) = text.strip_prefix('+') else {
        return Some(format!(
            "{text:?} does not start with '+' and a country code"
        ));
    };
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_digit()) {
        return Some(format!("{text:?} has {bad:?}, which is not a digit"));
    }
    if !(7..=15).contains(&digits.len()) {
        return Some(format!("{text:?} has {} digits, not 7 to 15", digits.len()));
    }
    if digits.starts_with('0') {
        return Some(format!(
            "{text:?} starts with 0, which no country code does"
        ));
    }
    None
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

fn text_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn human_duration(delta: TimeDelta) -> String {
    let hours = delta.num_hours();
    let minutes = delta.num_minutes() % 60;
    format!("{hours} h {minutes:02} min")
}

fn text_of(value: Option<&Value>) -> String {
    value.and_then(Value::as_str).unwrap_or_default().to_owned()
}

/// The keys of the `{{key}}` placeholders in `text`, in order.
fn placeholder_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        keys.push(after[..end].to_owned());
        rest = &after[end + 2..];
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    mod campaigns;

    const LEA: &str = "+41790000001";
    const SENDER: &str = "whatsapp:+15550001111";
    const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";
    const M1: &str = "0192f0c1-7a3b-7c4d-8e5f-000000000001";
    const PORTFOLIO: &str = "default";
    const WORKFLOW: &str = "lead_qualification";

    fn policy() -> AuditPolicy {
        AuditPolicy {
            workflows: ["lead_qualification", "status_update"]
                .map(str::to_owned)
                .into(),
            default_limit: Some(250),
            pause_marketing_on_quality_drop: true,
        }
    }

    /// Builds a log, numbering positions and stream versions itself.
    #[derive(Default)]
    struct Log {
        records: Vec<ExportedEvent>,
        versions: HashMap<String, u64>,
        /// Minutes since 09:00.
        minute: i64,
    }

    impl Log {
        fn at(&self) -> String {
            let base = DateTime::parse_from_rfc3339("2026-11-25T09:00:00Z")
                .expect("time")
                .with_timezone(&Utc);
            text_time(base + TimeDelta::minutes(self.minute))
        }

        fn push(&mut self, stream: &str, event_type: &str, payload: Value) -> u64 {
            let version = {
                let version = self.versions.entry(stream.to_owned()).or_default();
                *version += 1;
                *version
            };
            let mut payload = match payload {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            payload.insert("at".into(), json!(self.at()));
            let position = self.records.len() as u64 + 1;
            self.records.push(ExportedEvent {
                position,
                stream: stream.to_owned(),
                version,
                event_type: event_type.to_owned(),
                timestamp: self.at(),
                event_id: format!("id-{position}"),
                payload,
                actor: None,
            });
            position
        }

        fn ready(&mut self) {
            let sender = format!("sender:{SENDER}");
            let template = format!("template:{TEMPLATE}");
            self.push(
                &sender,
                "SenderRegistered",
                json!({"sender": SENDER, "portfolio": PORTFOLIO}),
            );
            self.push(
                &sender,
                "SenderAuthorized",
                json!({"sender": SENDER, "by": "ops"}),
            );
            self.push(
                &template,
                "TemplateRegistered",
                json!({"template": TEMPLATE, "category": "utility", "placeholders": ["1", "2"]}),
            );
            self.push(
                &template,
                "TemplateApprovalChanged",
                json!({"template": TEMPLATE, "status": "approved"}),
            );
        }

        fn contact(&mut self, event_type: &str) -> u64 {
            self.push(
                &format!("contact:{LEA}"),
                event_type,
                json!({"contact": LEA}),
            )
        }

        /// The contact wrote to `sender`, received now (no provider time: Twilio).
        fn inbound(&mut self, contact: &str, sender: &str) -> u64 {
            self.push(
                &format!("contact:{contact}"),
                "InboundReceived",
                json!({"contact": contact, "sender": sender, "kind": "text", "text": "hi",
                       "provider_at": null}),
            )
        }

        fn message(&mut self, event_type: &str, mut payload: Value) -> u64 {
            payload["message_id"] = json!(M1);
            self.push(&format!("message:{M1}"), event_type, payload)
        }

        fn template_sent(&mut self) -> u64 {
            self.message(
                "TemplateSent",
                json!({"contact": LEA, "sender": SENDER, "template": TEMPLATE,
                       "variables": {"1": "Lea", "2": "Thu"}, "workflow": WORKFLOW}),
            )
        }

        fn reply_sent(&mut self) -> u64 {
            self.message(
                "ReplySent",
                json!({"contact": LEA, "sender": SENDER, "text": "hi", "workflow": WORKFLOW}),
            )
        }

        fn audit(&self) -> Summary {
            self.audit_with(policy())
        }

        fn audit_with(&self, policy: AuditPolicy) -> Summary {
            let mut auditor = Auditor::new(policy);
            for record in &self.records {
                auditor.observe(record);
            }
            auditor.finish()
        }
    }

    fn checks(summary: &Summary) -> Vec<(Option<u64>, Check)> {
        summary
            .violations
            .iter()
            .map(|violation| (violation.position, violation.check))
            .collect()
    }

    #[test]
    fn a_full_template_life_is_clean() {
        let mut log = Log::default();
        log.ready();
        log.contact("OptedIn");
        log.template_sent();
        log.message("DispatchClaimed", json!({"attempt": 1}));
        log.message(
            "DispatchSucceeded",
            json!({"attempt": 1, "provider_status": "queued"}),
        );
        for status in ["sent", "read", "delivered", "sent"] {
            log.message("StatusChanged", json!({"status": status}));
        }
        let summary = log.audit();
        assert_eq!(checks(&summary), []);
        assert_eq!(summary.messages_by_status.get("read"), Some(&1));
    }

    #[test]
    fn a_created_template_follows_the_status_the_provider_reported() {
        let mut log = Log::default();
        log.ready();
        log.contact("OptedIn");
        let created = "listing_update@de";
        log.push(
            &format!("template:{created}"),
            "TemplateCreated",
            json!({"template": created, "category": "utility", "body": "Hallo {{1}}, am {{2}}.",
                   "header": null, "buttons": [], "cards": []}),
        );
        let send = |log: &mut Log| {
            log.message(
                "TemplateSent",
                json!({"contact": LEA, "sender": SENDER, "template": created,
                       "variables": {"1": "Lea", "2": "Thu"}, "workflow": WORKFLOW}),
            )
        };
        let unsubmitted = send(&mut log);
        log.push(
            &format!("template:{created}"),
            "TemplateStatusReported",
            json!({"template": created, "status": "approved", "source": "provider"}),
        );
        send(&mut log);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [(Some(unsubmitted), Check::TemplateNotApproved)]
        );
        assert!(summary.violations[0]
            .message
            .contains("while it was unsubmitted"));
    }

    #[test]
    fn a_template_needs_opt_in_approval_and_matching_variables() {
        let mut log = Log::default();
        log.ready();
        let no_opt_in = log.template_sent();
        log.contact("OptedIn");
        log.push(
            &format!("template:{TEMPLATE}"),
            "TemplateApprovalChanged",
            json!({"template": TEMPLATE, "status": "paused"}),
        );
        let paused = log.message("DispatchClaimed", json!({"attempt": 1}));
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(no_opt_in), Check::NoOptIn),
                (Some(paused), Check::TemplateNotApproved)
            ]
        );
        assert!(summary.violations[1]
            .message
            .contains("while it was paused"));
    }

    #[test]
    fn a_claim_after_stop_is_found_and_start_lifts_it() {
        let mut log = Log::default();
        log.ready();
        log.contact("OptedIn");
        log.template_sent();
        log.contact("OptedOut");
        let forged = log.message("DispatchClaimed", json!({"attempt": 1}));
        log.minute = 1;
        log.contact("OptedIn");
        log.message("DispatchFailed", json!({"attempt": 1, "retry_at": "x"}));
        log.message("DispatchClaimed", json!({"attempt": 2}));
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [(Some(forged), Check::DispatchAfterOptOut)]
        );
    }

    #[test]
    fn freeform_needs_an_inbound_less_than_a_day_old_and_no_closing_report_after_it() {
        let mut log = Log::default();
        log.ready();
        let never = log.reply_sent();
        log.inbound(LEA, SENDER);
        log.minute = 60;
        log.message("DispatchClaimed", json!({"attempt": 1}));
        log.push(
            &format!("contact:{LEA}"),
            "WindowReportedClosed",
            json!({"contact": LEA, "code": 63016}),
        );
        // A second message, claimed after the provider's report: closed.
        let other = "0192f0c1-7a3b-7c4d-8e5f-000000000002";
        log.push(
            &format!("message:{other}"),
            "ReplySent",
            json!({"message_id": other, "contact": LEA, "sender": SENDER, "text": "x", "workflow": WORKFLOW}),
        );
        let reported = log.records.len() as u64;
        // The next inbound reopens it; a day later it is closed again.
        log.inbound(LEA, SENDER);
        log.minute = 60 + 23 * 60;
        let inside = log.push(
            &format!("message:{other}"),
            "DispatchClaimed",
            json!({"message_id": other, "attempt": 1}),
        );
        log.minute = 60 + 24 * 60;
        let third = "0192f0c1-7a3b-7c4d-8e5f-000000000003";
        let late = log.push(
            &format!("message:{third}"),
            "ReplySent",
            json!({"message_id": third, "contact": LEA, "sender": SENDER, "text": "x", "workflow": WORKFLOW}),
        );
        let summary = log.audit();
        assert!(inside > reported);
        assert_eq!(
            checks(&summary),
            [
                (Some(never), Check::WindowClosed),
                (Some(reported), Check::WindowClosed),
                (Some(late), Check::WindowClosed),
            ]
        );
    }

    #[test]
    fn a_second_claim_after_the_provider_accepted_is_a_regression() {
        let mut log = Log::default();
        log.ready();
        log.contact("OptedIn");
        log.template_sent();
        log.message("DispatchClaimed", json!({"attempt": 1}));
        log.message(
            "DispatchSucceeded",
            json!({"attempt": 1, "provider_status": "queued"}),
        );
        let again = log.message("DispatchClaimed", json!({"attempt": 2}));
        assert_eq!(
            checks(&log.audit()),
            [(Some(again), Check::StatusRegression)]
        );
    }

    #[test]
    fn claims_need_a_decision_and_an_authorized_sender() {
        let mut log = Log::default();
        let orphan = log.message("DispatchClaimed", json!({"attempt": 1}));
        log.ready();
        log.push(
            &format!("sender:{SENDER}"),
            "SenderSuspended",
            json!({"sender": SENDER, "reason": "63007"}),
        );
        log.contact("OptedIn");
        let suspended = log.template_sent();
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(orphan), Check::ClaimWithoutDecision),
                (Some(suspended), Check::ChannelNotAuthorized)
            ]
        );
    }

    #[test]
    fn gaps_in_positions_and_versions_are_reported_where_they_are() {
        let mut log = Log::default();
        log.ready();
        log.contact("OptedIn");
        log.records.remove(1);
        log.records[2].version = 5;
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [(Some(3), Check::PositionGap), (Some(4), Check::VersionGap)]
        );
        assert!(summary.violations[0].message.contains("from 1 to 3"));
    }

    const MAX: &str = "+41790000002";
    const ZOE: &str = "+41790000003";
    const PROMO: &str = "HXffffffffffffffffffffffffffffffff";

    fn id(n: u32) -> String {
        format!("0192f0c1-7a3b-7c4d-8e5f-{n:012}")
    }

    impl Log {
        fn contact_event(&mut self, contact: &str, event_type: &str, mut payload: Value) -> u64 {
            payload["contact"] = json!(contact);
            self.push(&format!("contact:{contact}"), event_type, payload)
        }

        fn template_to(&mut self, n: u32, contact: &str, template: &str) -> u64 {
            let id = id(n);
            self.push(
                &format!("message:{id}"),
                "TemplateSent",
                json!({"message_id": id, "contact": contact, "sender": SENDER,
                       "template": template, "variables": {"1": "a", "2": "b"},
                       "workflow": WORKFLOW}),
            )
        }

        fn claim(&mut self, n: u32) -> u64 {
            let id = id(n);
            self.push(
                &format!("message:{id}"),
                "DispatchClaimed",
                json!({"message_id": id, "attempt": 1}),
            )
        }

        /// What the hub appends beside a template that counts toward the limit.
        fn reached(&mut self, n: u32, contact: &str) -> u64 {
            self.push(
                &format!("portfolio:{PORTFOLIO}"),
                "RecipientReached",
                json!({"portfolio": PORTFOLIO, "contact": contact, "message_id": id(n)}),
            )
        }

        fn marketing_template(&mut self) {
            let stream = format!("template:{PROMO}");
            self.push(
                &stream,
                "TemplateRegistered",
                json!({"template": PROMO, "category": "marketing", "placeholders": ["1", "2"]}),
            );
            self.push(
                &stream,
                "TemplateApprovalChanged",
                json!({"template": PROMO, "status": "approved"}),
            );
        }
    }

    #[test]
    fn a_send_or_claim_to_a_number_that_is_not_e164_is_invalid_number() {
        let mut log = Log::default();
        log.ready();
        let not_e164 = "0041790000001";
        let sent = log.template_to(1, not_e164, TEMPLATE);
        let claimed = log.claim(1);
        let bsuid = log.template_to(2, "CH.1234567890", TEMPLATE);
        log.contact("OptedIn");
        log.template_to(3, LEA, TEMPLATE);
        let summary = log.audit();
        // The rules about the contact are not checked for an invalid number: one violation each.
        assert_eq!(
            checks(&summary),
            [
                (Some(sent), Check::InvalidNumber),
                (Some(claimed), Check::InvalidNumber),
                (Some(bsuid), Check::InvalidNumber),
            ]
        );
        assert!(summary.violations[0]
            .message
            .contains("not an E.164 number"));
        for (text, valid) in [
            ("+41790000001", true),
            ("+1234567", true),
            ("+123456789012345", true),
            ("41790000001", false),
            ("+123456", false),
            ("+1234567890123456", false),
            ("+0790000001", false),
            ("+41 79 000 00 01", false),
        ] {
            assert_eq!(e164_problem(text).is_none(), valid, "{text}");
        }
    }

    #[test]
    fn a_workflow_outside_the_allowlist_or_none_is_found_and_the_allowlist_is_a_setting() {
        let mut log = Log::default();
        log.ready();
        log.contact("OptedIn");
        log.template_to(1, LEA, TEMPLATE);
        let other = id(2);
        let outside = log.push(
            &format!("message:{other}"),
            "TemplateSent",
            json!({"message_id": other, "contact": LEA, "sender": SENDER, "template": TEMPLATE,
                   "variables": {"1": "a", "2": "b"}, "workflow": "open_chat"}),
        );
        let claimed = log.claim(2);
        let third = id(3);
        let none = log.push(
            &format!("message:{third}"),
            "TemplateSent",
            json!({"message_id": third, "contact": LEA, "sender": SENDER, "template": TEMPLATE,
                   "variables": {"1": "a", "2": "b"}}),
        );
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(outside), Check::WorkflowNotAllowed),
                (Some(claimed), Check::WorkflowNotAllowed),
                (Some(none), Check::WorkflowNotAllowed),
            ]
        );
        assert!(summary.violations[0].message.contains(
            "\"open_chat\", which is not in the allowlist (lead_qualification, status_update)"
        ));
        assert!(summary.violations[2].message.contains("named no workflow"));

        // A hub that allows open_chat: only the send that named none is wrong.
        let mut wider = policy();
        wider.workflows.insert("open_chat".into());
        assert_eq!(
            checks(&log.audit_with(wider)),
            [(Some(none), Check::WorkflowNotAllowed)]
        );
    }

    #[test]
    fn not_on_whatsapp_holds_until_an_inbound_or_a_clearing() {
        let mut log = Log::default();
        log.ready();
        log.contact("OptedIn");
        let flag = json!({"flag": "not_on_whatsapp", "reason": "63003"});
        log.contact_event(LEA, "FlagRaised", flag.clone());
        let flagged = log.template_to(1, LEA, TEMPLATE);
        log.inbound(LEA, SENDER);
        log.reply_sent();
        log.contact_event(LEA, "FlagRaised", flag.clone());
        let claimed = log.message("DispatchClaimed", json!({"attempt": 1}));
        log.contact_event(LEA, "FlagCleared", flag);
        log.template_to(2, LEA, TEMPLATE);
        // A flag this version does not know changes nothing.
        log.contact_event(LEA, "FlagRaised", json!({"flag": "something_new"}));
        log.template_to(3, LEA, TEMPLATE);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(flagged), Check::NotOnWhatsapp),
                (Some(claimed), Check::NotOnWhatsapp),
            ]
        );
        assert!(summary.violations[0]
            .message
            .contains("reported not to be on WhatsApp"));
    }

    #[test]
    fn a_marketing_template_to_a_contact_who_paused_marketing_is_found_utility_is_not() {
        let mut log = Log::default();
        log.ready();
        log.marketing_template();
        log.contact("OptedIn");
        log.template_to(1, LEA, PROMO);
        let flag = json!({"flag": "marketing_paused", "reason": "131050"});
        log.contact_event(LEA, "FlagRaised", flag.clone());
        let claimed = log.claim(1);
        let sent = log.template_to(2, LEA, PROMO);
        log.template_to(3, LEA, TEMPLATE);
        // An inbound does not lift a marketing pause; clearing it does.
        log.inbound(LEA, SENDER);
        let still = log.template_to(4, LEA, PROMO);
        log.contact_event(LEA, "FlagCleared", flag);
        log.template_to(5, LEA, PROMO);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(claimed), Check::MarketingPaused),
                (Some(sent), Check::MarketingPaused),
                (Some(still), Check::MarketingPaused),
            ]
        );
        assert!(summary.violations[1]
            .message
            .contains(&format!("marketing template {PROMO}")));
    }

    /// Marketing from a number whose last quality report was a drop is found; utility is not,
    /// a recovery lifts it, and a template Meta moved to marketing counts as marketing.
    #[test]
    fn marketing_from_a_number_whose_quality_dropped_is_found() {
        let mut log = Log::default();
        log.ready();
        log.marketing_template();
        log.contact("OptedIn");
        let sender = format!("sender:{SENDER}");
        let quality = |event: &str, dropped: bool| json!({"sender": SENDER, "event": event, "dropped": dropped, "source": "provider"});
        log.push(&sender, "SenderQualityReported", quality("FLAGGED", true));
        let sent = log.template_to(1, LEA, PROMO);
        log.template_to(2, LEA, TEMPLATE);
        log.push(
            &format!("template:{TEMPLATE}"),
            "TemplateCategoryReported",
            json!({"template": TEMPLATE, "category": "marketing", "previous": "UTILITY"}),
        );
        let moved = log.template_to(3, LEA, TEMPLATE);
        log.push(
            &sender,
            "SenderQualityReported",
            quality("UNFLAGGED", false),
        );
        log.template_to(4, LEA, PROMO);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(sent), Check::SenderQualityDropped),
                (Some(moved), Check::SenderQualityDropped),
            ]
        );
        assert!(summary.violations[0].message.contains("FLAGGED"));
    }

    /// The same marketing send after a quality drop is a violation when the hub paused
    /// marketing on a drop and clean when it ran with the pause off (`--quality-pause off`).
    #[test]
    fn marketing_after_a_quality_drop_follows_the_hubs_pause_setting() {
        let mut log = Log::default();
        log.ready();
        log.marketing_template();
        log.contact("OptedIn");
        log.push(
            &format!("sender:{SENDER}"),
            "SenderQualityReported",
            json!({"sender": SENDER, "event": "DOWNGRADE", "dropped": true, "source": "provider"}),
        );
        let sent = log.template_to(1, LEA, PROMO);
        let on = log.audit_with(AuditPolicy {
            pause_marketing_on_quality_drop: true,
            ..policy()
        });
        assert_eq!(checks(&on), [(Some(sent), Check::SenderQualityDropped)]);
        let off = log.audit_with(AuditPolicy {
            pause_marketing_on_quality_drop: false,
            ..policy()
        });
        assert_eq!(checks(&off), []);
    }

    #[test]
    fn the_tier_limit_counts_unique_recipients_outside_a_window_in_a_rolling_day() {
        let mut log = Log::default();
        log.ready();
        log.push(
            &format!("portfolio:{PORTFOLIO}"),
            "MessagingLimitChanged",
            json!({"portfolio": PORTFOLIO, "limit": 2}),
        );
        for contact in [LEA, MAX, ZOE] {
            log.contact_event(contact, "OptedIn", json!({}));
        }
        // Lea at 09:00 and Max at 09:10: two recipients, the limit. Max again is not new.
        log.template_to(1, LEA, TEMPLATE);
        log.reached(1, LEA);
        log.minute = 10;
        log.template_to(2, MAX, TEMPLATE);
        log.reached(2, MAX);
        log.template_to(3, MAX, TEMPLATE);
        log.reached(3, MAX);
        // Zoe is a third, new recipient: over the limit (forged, with no RecipientReached)...
        log.minute = 60;
        let over = log.template_to(4, ZOE, TEMPLATE);
        // ...and counted all the same: once Lea's reach has left the day, Max and Zoe still
        // fill it, so Lea is new and over the limit; Zoe is not new.
        log.minute = 24 * 60 + 5;
        log.template_to(5, ZOE, TEMPLATE);
        let lea_again = log.template_to(6, LEA, TEMPLATE);
        // Inside a window she opened, a template neither counts nor is refused by this rule.
        log.inbound(LEA, SENDER);
        log.template_to(7, LEA, TEMPLATE);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(over), Check::TierLimit),
                (Some(lea_again), Check::TierLimit)
            ]
        );
        assert!(summary.violations[0]
            .message
            .contains("portfolio default had already reached its limit of 2 unique recipients"));

        // The same log with a limit of 3 set in it, or none set and an unlimited default: clean.
        let mut wider = Log {
            records: log.records.clone(),
            ..Log::default()
        };
        for record in &mut wider.records {
            if record.event_type == "MessagingLimitChanged" {
                record.payload.insert("limit".into(), json!(3));
            }
        }
        assert_eq!(checks(&wider.audit()), []);
        for record in &mut wider.records {
            if record.event_type == "MessagingLimitChanged" {
                record.payload.insert("limit".into(), Value::Null);
            }
        }
        assert_eq!(checks(&wider.audit()), []);
        let mut unlimited = policy();
        unlimited.default_limit = None;
        wider
            .records
            .retain(|record| record.event_type != "MessagingLimitChanged");
        for (index, record) in wider.records.iter_mut().enumerate() {
            record.position = index as u64 + 1;
        }
        wider.records.iter_mut().for_each(|record| {
            if record.stream.starts_with("portfolio:") {
                record.version -= 1;
            }
        });
        assert_eq!(checks(&wider.audit_with(unlimited)), []);
    }

    #[test]
    fn a_claim_counts_its_recipient_again_only_after_a_day() {
        let mut log = Log::default();
        log.ready();
        log.push(
            &format!("portfolio:{PORTFOLIO}"),
            "MessagingLimitChanged",
            json!({"portfolio": PORTFOLIO, "limit": 1}),
        );
        log.contact_event(LEA, "OptedIn", json!({}));
        log.contact_event(MAX, "OptedIn", json!({}));
        log.template_to(1, LEA, TEMPLATE);
        log.reached(1, LEA);
        // Lea's claim within the day is not a new reach: a day after her send, Max fits.
        log.minute = 60;
        log.claim(1);
        log.minute = 24 * 60 + 30;
        log.template_to(2, MAX, TEMPLATE);
        log.reached(2, MAX);
        // Max's claim more than a day after its decision counts him again (as the hub does)...
        log.minute = 2 * 24 * 60 + 31;
        log.claim(2);
        // ...so Lea, new again, is over the limit.
        log.minute = 2 * 24 * 60 + 32;
        let over = log.template_to(3, LEA, TEMPLATE);
        assert_eq!(checks(&log.audit()), [(Some(over), Check::TierLimit)]);
    }

    const OTHER_SENDER: &str = "whatsapp:+15550002222";

    impl Log {
        /// A second business number, in the same portfolio, registered and authorized.
        fn other_sender(&mut self) {
            let stream = format!("sender:{OTHER_SENDER}");
            self.push(
                &stream,
                "SenderRegistered",
                json!({"sender": OTHER_SENDER, "provider": "sandbox", "portfolio": PORTFOLIO}),
            );
            self.push(
                &stream,
                "SenderAuthorized",
                json!({"sender": OTHER_SENDER, "by": "ops"}),
            );
        }

        fn reply_from(&mut self, n: u32, contact: &str, sender: &str) -> u64 {
            let id = id(n);
            self.push(
                &format!("message:{id}"),
                "ReplySent",
                json!({"message_id": id, "contact": contact, "sender": sender, "text": "x",
                       "workflow": WORKFLOW}),
            )
        }

        /// An inbound to `sender` the provider says was written `minutes_ago` before receipt.
        fn inbound_written(&mut self, contact: &str, sender: &str, minutes_ago: i64) -> u64 {
            let base = DateTime::parse_from_rfc3339(&self.at())
                .expect("time")
                .with_timezone(&Utc);
            let written = text_time(base - TimeDelta::minutes(minutes_ago));
            self.push(
                &format!("contact:{contact}"),
                "InboundReceived",
                json!({"contact": contact, "sender": sender, "kind": "text", "text": "hi",
                       "provider_at": written}),
            )
        }
    }

    #[test]
    fn the_window_belongs_to_the_number_the_contact_wrote_to() {
        let mut log = Log::default();
        log.ready();
        log.other_sender();
        log.inbound(LEA, SENDER);
        log.reply_from(1, LEA, SENDER);
        let other = log.reply_from(2, LEA, OTHER_SENDER);
        let claimed = log.claim(2);
        // She writes to the other number too: both windows are open.
        log.inbound(LEA, OTHER_SENDER);
        log.reply_from(3, LEA, OTHER_SENDER);
        // The provider closes the first number's window only...
        log.push(
            &format!("contact:{LEA}"),
            "WindowReportedClosed",
            json!({"contact": LEA, "sender": SENDER, "code": 131047}),
        );
        let closed = log.reply_from(4, LEA, SENDER);
        log.reply_from(5, LEA, OTHER_SENDER);
        // ...and a report that names no sender (an old log's) closes every window.
        log.push(
            &format!("contact:{LEA}"),
            "WindowReportedClosed",
            json!({"contact": LEA, "sender": null, "code": 63016}),
        );
        let all_closed = log.reply_from(6, LEA, OTHER_SENDER);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(other), Check::WindowClosed),
                (Some(claimed), Check::WindowClosed),
                (Some(closed), Check::WindowClosed),
                (Some(all_closed), Check::WindowClosed),
            ]
        );
        assert!(
            summary.violations[0].message.contains(&format!(
                "never written to {OTHER_SENDER} (they last wrote to {SENDER} at"
            )),
            "{}",
            summary.violations[0].message
        );
        assert!(summary.violations[2]
            .message
            .contains(&format!("reported the window with {SENDER} closed")));
    }

    #[test]
    fn the_window_runs_from_the_providers_time_and_replays_and_groups_open_none() {
        let mut log = Log::default();
        log.ready();
        // Written 20 h before wagate received it: 4 h of window are left.
        log.inbound_written(LEA, SENDER, 20 * 60);
        log.minute = 3 * 60;
        log.reply_from(1, LEA, SENDER);
        log.minute = 4 * 60;
        let late = log.reply_from(2, LEA, SENDER);
        // A provider clock ahead of ours does not stretch it: receipt time bounds it.
        log.inbound_written(MAX, SENDER, -60);
        log.minute = 4 * 60 + 24 * 60 - 1;
        log.reply_from(3, MAX, SENDER);
        log.minute = 4 * 60 + 24 * 60;
        let ahead = log.reply_from(4, MAX, SENDER);
        // A replay (written more than 7 days before receipt) opens no window, and clears no flag.
        log.contact_event(
            ZOE,
            "FlagRaised",
            json!({"flag": "not_on_whatsapp", "reason": "63003"}),
        );
        log.inbound_written(ZOE, SENDER, 7 * 24 * 60 + 1);
        let replayed = log.reply_from(5, ZOE, SENDER);
        // A group message opens no one-to-one window either.
        log.contact_event(
            ZOE,
            "GroupMessageReceived",
            json!({"group": "g1", "sender": SENDER, "kind": "text", "text": "hi all"}),
        );
        let group = log.reply_from(6, ZOE, SENDER);
        // Written exactly at the horizon: a late delivery, not a replay. It proves she is on
        // WhatsApp, but its window closed long ago.
        log.inbound_written(ZOE, SENDER, 7 * 24 * 60);
        let old = log.reply_from(7, ZOE, SENDER);
        log.inbound_written(ZOE, SENDER, 0);
        log.reply_from(8, ZOE, SENDER);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(late), Check::WindowClosed),
                (Some(ahead), Check::WindowClosed),
                (Some(replayed), Check::WindowClosed),
                (Some(replayed), Check::NotOnWhatsapp),
                (Some(group), Check::WindowClosed),
                (Some(group), Check::NotOnWhatsapp),
                (Some(old), Check::WindowClosed),
            ]
        );
        assert!(summary.violations[0]
            .message
            .contains("at 2026-11-24T13:00:00Z, 24 h 00 min before"));
    }

    #[test]
    fn a_template_counts_toward_the_limit_unless_the_sending_number_has_a_window() {
        let mut log = Log::default();
        log.ready();
        log.other_sender();
        log.push(
            &format!("portfolio:{PORTFOLIO}"),
            "MessagingLimitChanged",
            json!({"portfolio": PORTFOLIO, "limit": 1}),
        );
        log.contact_event(LEA, "OptedIn", json!({}));
        log.contact_event(MAX, "OptedIn", json!({}));
        log.template_to(1, LEA, TEMPLATE);
        log.reached(1, LEA);
        // Max wrote to the other number: a template from this one is outside his window.
        log.inbound(MAX, OTHER_SENDER);
        let over = log.template_to(2, MAX, TEMPLATE);
        log.inbound(MAX, SENDER);
        log.template_to(3, MAX, TEMPLATE);
        assert_eq!(checks(&log.audit()), [(Some(over), Check::TierLimit)]);
    }

    impl Log {
        /// An `OptedIn` for `contact` with `source`, recorded by `actor` (kind; `None`: a log
        /// written before actors), its evidence dated `evidence_minutes` after 09:00.
        fn opt_in_by(
            &mut self,
            contact: &str,
            source: &str,
            actor: Option<&str>,
            evidence_minutes: i64,
        ) -> u64 {
            let minute = self.minute;
            self.minute = evidence_minutes;
            let evidence_at = self.at();
            self.minute = minute;
            let position = self.contact_event(
                contact,
                "OptedIn",
                json!({"source": source, "evidence": "x", "recorded_by": "x",
                       "wording_version": "v1", "evidence_at": evidence_at}),
            );
            self.set_actor(position, actor);
            position
        }

        fn set_actor(&mut self, position: u64, kind: Option<&str>) {
            let record = &mut self.records[position as usize - 1];
            record.actor = kind.map(|kind| wagate_export::ExportedActor {
                kind: kind.to_owned(),
                name: format!("{kind}-1"),
            });
        }

        /// An opt-out whose evidence is dated now.
        fn opt_out(&mut self, contact: &str) -> u64 {
            let evidence_at = self.at();
            self.contact_event(
                contact,
                "OptedOut",
                json!({"source": "keyword", "detail": "STOP", "evidence_at": evidence_at}),
            )
        }

        fn link(&mut self, contact: &str, other: &str) {
            for (one, two) in [(contact, other), (other, contact)] {
                self.contact_event(
                    one,
                    "IdentityLinked",
                    json!({"other": two, "source": "webhook"}),
                );
            }
        }
    }

    #[test]
    fn keyword_consent_comes_only_from_a_signed_inbound_and_not_from_a_replay() {
        let mut log = Log::default();
        log.ready();
        log.minute = 8 * 24 * 60;
        // The contact's own START through a webhook, and one in a log from before actors: fine.
        log.opt_in_by(LEA, "keyword", Some("webhook"), log.minute);
        log.opt_in_by(MAX, "keyword", None, log.minute);
        // An operator (or anyone else) recording keyword consent: found, and no consent.
        let forged = log.opt_in_by(ZOE, "keyword", Some("operator"), log.minute);
        let relied = log.template_to(1, ZOE, TEMPLATE);
        // A START written more than 7 days before it was received is a replay.
        let replay = log.opt_in_by(
            ZOE,
            "keyword",
            Some("webhook"),
            log.minute - 7 * 24 * 60 - 1,
        );
        log.opt_in_by(ZOE, "keyword", Some("webhook"), log.minute - 7 * 24 * 60);
        log.template_to(2, ZOE, TEMPLATE);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(forged), Check::KeywordOptInNotFromContact),
                (Some(relied), Check::NoOptIn),
                (Some(replay), Check::KeywordOptInNotFromContact),
            ]
        );
        assert!(summary.violations[0].message.contains(&format!(
            "OptedIn (keyword) for {ZOE} was recorded with source keyword by operator \"operator-1\""
        )));
        assert!(summary.violations[2].message.contains("a replay"));
    }

    #[test]
    fn only_an_operator_or_a_webhook_records_consent() {
        let mut log = Log::default();
        log.ready();
        log.opt_in_by(LEA, "web_form", Some("operator"), 0);
        log.opt_in_by(MAX, "web_form", None, 0);
        let agent = log.opt_in_by(ZOE, "web_form", Some("agent"), 0);
        let dispatcher = log.opt_in_by(ZOE, "api", Some("dispatcher"), 0);
        let relied = log.template_to(1, ZOE, TEMPLATE);
        log.template_to(2, LEA, TEMPLATE);
        log.template_to(3, MAX, TEMPLATE);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(agent), Check::OptInRoleNotAllowed),
                (Some(dispatcher), Check::OptInRoleNotAllowed),
                (Some(relied), Check::NoOptIn),
            ]
        );
        assert!(summary.violations[0]
            .message
            .contains("by agent \"agent-1\": only an operator or a signed webhook"));
    }

    #[test]
    fn an_opt_in_needs_evidence_newer_than_the_newest_stop() {
        let mut log = Log::default();
        log.ready();
        log.opt_in_by(LEA, "web_form", Some("operator"), 0);
        log.minute = 60;
        log.opt_out(LEA);
        log.minute = 120;
        // Old evidence (the form she filled in before her STOP): found, and she stays out.
        let old = log.opt_in_by(LEA, "web_form", Some("operator"), 30);
        let relied = log.template_to(1, LEA, TEMPLATE);
        let same = log.opt_in_by(LEA, "operator", Some("operator"), 60);
        // A START in the same instant as the STOP: arrival order stands.
        log.opt_in_by(LEA, "keyword", Some("webhook"), 60);
        log.template_to(2, LEA, TEMPLATE);
        // Once opted in again, old evidence is still no new consent.
        let still_old = log.opt_in_by(LEA, "qr_code", Some("operator"), 59);
        log.opt_in_by(LEA, "qr_code", Some("operator"), 61);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(old), Check::OptInOverNewerStop),
                (Some(relied), Check::SendAfterOptOut),
                (Some(same), Check::OptInOverNewerStop),
                (Some(still_old), Check::OptInOverNewerStop),
            ]
        );
        assert!(summary.violations[0].message.contains(
            "evidence dated 2026-11-25T09:30:00Z, not after the contact's newest opt-out at 2026-11-25T10:00:00Z"
        ));
    }

    #[test]
    fn an_opt_out_under_any_linked_identity_refuses_sends_to_all() {
        let bsuid = "bsuid:US.1234567890";
        let mut log = Log::default();
        log.ready();
        log.marketing_template();
        // Lea ~ Max ~ the business-scoped id: one person. An opt-in under one counts for all.
        log.link(LEA, MAX);
        log.link(MAX, bsuid);
        log.contact_event(MAX, "OptedIn", json!({}));
        log.template_to(1, LEA, TEMPLATE);
        // A marketing pause under one pauses all.
        log.contact_event(MAX, "FlagRaised", json!({"flag": "marketing_paused"}));
        let paused = log.template_to(2, LEA, PROMO);
        log.contact_event(MAX, "FlagCleared", json!({"flag": "marketing_paused"}));
        // A STOP under the business-scoped id, two links away, refuses Lea.
        log.opt_out(bsuid);
        let claimed = log.claim(1);
        let sent = log.template_to(3, LEA, TEMPLATE);
        // Zoe is nobody's other identity.
        log.contact_event(ZOE, "OptedIn", json!({}));
        log.template_to(4, ZOE, TEMPLATE);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(paused), Check::MarketingPaused),
                (Some(claimed), Check::LinkedIdentityOptedOut),
                (Some(sent), Check::LinkedIdentityOptedOut),
            ]
        );
        assert!(summary.violations[2].message.contains(&format!(
            "was allowed while {bsuid}, linked to the contact as the same person, had opted out"
        )));
    }

    #[test]
    fn a_changed_registration_needs_a_new_authorization() {
        let mut log = Log::default();
        log.ready();
        log.contact("OptedIn");
        let stream = format!("sender:{SENDER}");
        // The same registration again withdraws nothing.
        log.push(
            &stream,
            "SenderRegistered",
            json!({"sender": SENDER, "portfolio": PORTFOLIO}),
        );
        log.template_to(1, LEA, TEMPLATE);
        log.push(
            &stream,
            "SenderRegistered",
            json!({"sender": SENDER, "portfolio": "other"}),
        );
        let moved = log.template_to(2, LEA, TEMPLATE);
        log.push(
            &stream,
            "SenderAuthorized",
            json!({"sender": SENDER, "by": "ops"}),
        );
        log.template_to(3, LEA, TEMPLATE);
        log.push(
            &stream,
            "SenderRegistered",
            json!({"sender": SENDER, "portfolio": "other", "meta_phone_number_id": "1234"}),
        );
        let claimed = log.claim(3);
        let summary = log.audit();
        assert_eq!(
            checks(&summary),
            [
                (Some(moved), Check::SenderNotReauthorized),
                (Some(claimed), Check::SenderNotReauthorized),
            ]
        );
        assert!(summary.violations[0]
            .message
            .contains("registration changed (portfolio default to other at"));
        assert!(summary.violations[1]
            .message
            .contains("Meta phone-number id none to 1234"));
    }

    #[test]
    fn extra_payload_fields_are_ignored() {
        let mut log = Log::default();
        log.ready();
        log.contact_event(
            LEA,
            "OptedIn",
            json!({"actor": {"token": "ops", "role": "operator"}, "provider_at": "x"}),
        );
        log.push(
            &format!("contact:{LEA}"),
            "InboundReceived",
            json!({"contact": LEA, "sender": SENDER, "language": "de", "reaction": {"emoji": "x"}}),
        );
        log.template_to(1, LEA, TEMPLATE);
        let summary = log.audit();
        assert_eq!(checks(&summary), []);
        assert!(summary.unknown_event_types.is_empty());
    }

    #[test]
    fn unknown_types_are_counted_not_checked() {
        let mut log = Log::default();
        log.push("future:1", "SomethingNew", json!({}));
        let summary = log.audit();
        assert!(summary.is_clean());
        assert_eq!(summary.unknown_event_types.get("SomethingNew"), Some(&1));
    }
}
