//! The event catalogue (docs/events.md). Plain Rust types: how they are persisted is the store's
//! business, so nothing here worries about encodings. Every event carries its own timestamp and
//! the id of the aggregate (stream) it belongs to.

use std::fmt;

use crate::classify::{ProviderKind, Retry};
use crate::ids::{
    ContactId, MessageId, PortfolioId, ProviderMessageRef, TemplateId, WhatsAppAddress, Workflow,
};
use crate::review::{ReviewDecision, ReviewReason, ReviewSubject};
use crate::rules::RuleId;
use crate::sender::SenderRate;
use crate::status::MessageStatus;
use crate::template::TemplateContent;
use crate::Timestamp;

/// Where an explicit opt-in was collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptInSource {
    WebForm,
    QrCode,
    ClickToWhatsappAd,
    /// The contact sent START (or YES while opted out).
    Keyword,
    Operator,
    Api,
}

impl OptInSource {
    pub const ALL: [Self; 6] = [
        Self::WebForm,
        Self::QrCode,
        Self::ClickToWhatsappAd,
        Self::Keyword,
        Self::Operator,
        Self::Api,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebForm => "web_form",
            Self::QrCode => "qr_code",
            Self::ClickToWhatsappAd => "click_to_whatsapp_ad",
            Self::Keyword => "keyword",
            Self::Operator => "operator",
            Self::Api => "api",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|source| source.as_str() == input)
    }
}

/// How an opt-out reached wagate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptOutSource {
    /// A STOP-family keyword from the contact.
    Keyword,
    /// An operator recorded it (for example after reviewing a free-text request).
    Operator,
    /// The outreach agent reported it through the API.
    Api,
    /// The provider reported that the contact blocked the business (Twilio 63014).
    ProviderReport,
}

impl OptOutSource {
    pub const ALL: [Self; 4] = [
        Self::Keyword,
        Self::Operator,
        Self::Api,
        Self::ProviderReport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keyword => "keyword",
            Self::Operator => "operator",
            Self::Api => "api",
            Self::ProviderReport => "provider_report",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|source| source.as_str() == input)
    }
}

/// Facts about a contact that block some sends until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactFlag {
    NotOnWhatsapp,
    MarketingPaused,
}

impl ContactFlag {
    pub const ALL: [Self; 2] = [Self::NotOnWhatsapp, Self::MarketingPaused];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotOnWhatsapp => "not_on_whatsapp",
            Self::MarketingPaused => "marketing_paused",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|flag| flag.as_str() == input)
    }
}

/// How wagate learned that two identities belong to one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentitySource {
    /// Meta's send response named a `contacts[].wa_id` other than the number messaged.
    SendResponse,
    /// A webhook carried both a number (`wa_id`, `from`) and a business-scoped user id.
    Webhook,
    /// Meta's `user_changed_number` system notice: the old and the new number.
    UserChangedNumber,
    /// Meta's `user_changed_user_id` system notice: the old and the new user id.
    UserChangedUserId,
}

impl IdentitySource {
    pub const ALL: [Self; 4] = [
        Self::SendResponse,
        Self::Webhook,
        Self::UserChangedNumber,
        Self::UserChangedUserId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendResponse => "send_response",
            Self::Webhook => "webhook",
            Self::UserChangedNumber => "user_changed_number",
            Self::UserChangedUserId => "user_changed_user_id",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|source| source.as_str() == input)
    }
}

/// Meta's template categories; only MARKETING is affected by `marketing_paused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
}

impl TemplateCategory {
    pub const ALL: [Self; 3] = [Self::Marketing, Self::Utility, Self::Authentication];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Marketing => "marketing",
            Self::Utility => "utility",
            Self::Authentication => "authentication",
        }
    }

    /// Accepts Meta's upper-case spelling too.
    pub fn parse(input: &str) -> Option<Self> {
        let lower = input.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|category| category.as_str() == lower)
    }
}

/// A template's approval at the provider. Only `Approved` may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApprovalStatus {
    Unsubmitted,
    Pending,
    Approved,
    Rejected,
    Paused,
    Disabled,
}

impl ApprovalStatus {
    pub const ALL: [Self; 6] = [
        Self::Unsubmitted,
        Self::Pending,
        Self::Approved,
        Self::Rejected,
        Self::Paused,
        Self::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsubmitted => "unsubmitted",
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Paused => "paused",
            Self::Disabled => "disabled",
        }
    }

    /// Accepts provider spellings in any case; Twilio's `received` (just submitted) is pending.
    pub fn parse(input: &str) -> Option<Self> {
        let lower = input.to_ascii_lowercase();
        if lower == "received" {
            return Some(Self::Pending);
        }
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == lower)
    }
}

/// A portfolio's messaging limit: unique recipients of business-initiated messages outside an
/// open window, per rolling 24 h.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessagingLimit {
    Limited(u32),
    Unlimited,
}

/// What a provider said beyond the fields an event structures: its item flattened to
/// `(path, value)` pairs (`interactive.nfm_reply.response_json`, `pricing.category`,
/// `ErrorMessage`, …), in the provider's order, bounded by the webhook layer. Kept so that every
/// value of a genuine webhook is in the log for auditors; no decision reads it.
pub type ProviderDetails = Vec<(String, String)>;

/// Meta's `pricing` object on a status webhook (on one of `sent`/`delivered`), as reported:
/// each field is optional because Meta is deprecating `billable` and older webhooks lack `type`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StatusPricing {
    /// `billable` (to be deprecated by Meta; `type` says the same).
    pub billable: Option<bool>,
    /// `pricing_model`: `PMP` (per message), `CBP` (per conversation, before 2025-07-01).
    pub pricing_model: Option<String>,
    /// `category`: `marketing`, `utility`, `authentication`, `service`, … verbatim.
    pub category: Option<String>,
    /// `type`: `regular`, `free_customer_service`, `free_entry_point`, … verbatim.
    pub kind: Option<String>,
}

impl StatusPricing {
    /// Whether the message is charged: `false` for a `free_*` type or `billable: false`, `true`
    /// for `regular` or `billable: true`, `None` when the object says neither.
    pub fn is_billable(&self) -> Option<bool> {
        match (self.billable, self.kind.as_deref()) {
            (_, Some(kind)) if kind.starts_with("free_") => Some(false),
            (Some(billable), _) => Some(billable),
            (None, Some("regular")) => Some(true),
            _ => None,
        }
    }

    /// The same object read back from a status's `details` (`pricing.category`, …), where
    /// statuses recorded before `StatusChanged` v3 kept it, and where an early
    /// (`UnmatchedStatusReceived`) status still keeps it. `None` when there is no `pricing.*`.
    pub fn from_details(details: &ProviderDetails) -> Option<Self> {
        let get = |key: &str| {
            details
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let pricing = Self {
            billable: get("pricing.billable").and_then(|v| match v.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }),
            pricing_model: get("pricing.pricing_model"),
            category: get("pricing.category"),
            kind: get("pricing.type"),
        };
        (pricing != Self::default()).then_some(pricing)
    }
}

/// An error a provider returned, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderError {
    pub provider: ProviderKind,
    /// The provider's own error code (Twilio 63016, Meta 131047, …), when it gave one.
    pub code: Option<u32>,
    pub http_status: Option<u16>,
    pub message: String,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.provider.as_str())?;
        if let Some(code) = self.code {
            write!(f, " error {code}")?;
        }
        if let Some(status) = self.http_status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactEvent {
    /// Explicit consent to business-initiated messages, with its provenance (a consent receipt).
    OptedIn {
        contact: ContactId,
        source: OptInSource,
        /// Free text or a URL: the form submission, the ad click, the message.
        evidence: String,
        /// Who recorded it (an operator, an agent, `wagate:keyword`).
        recorded_by: String,
        /// Which version of the consent wording the contact agreed to.
        wording_version: String,
        /// When the evidence is dated: the time the person wrote for a keyword (the provider's
        /// time when it gives one), the date given with an API opt-in. Consent changes are
        /// ordered by it (schema v2; `at` when read from v1).
        evidence_at: Timestamp,
        at: Timestamp,
    },
    /// A message from the contact: opens the 24 h window for freeform replies (not an opt-in).
    InboundReceived {
        contact: ContactId,
        /// The business number it was sent to, when known.
        sender: Option<WhatsAppAddress>,
        provider_ref: Option<ProviderMessageRef>,
        /// `text`, `button`, `interactive`, `image`, …: a document's body is its file name.
        kind: String,
        text: String,
        /// When the provider says the person wrote it (Meta's `timestamp`); `None` when the
        /// provider gives no such time (Twilio) and in schema v1 records.
        provider_at: Option<Timestamp>,
        /// Everything else the provider said about it: button payloads, reply ids, Flow
        /// answers, locations, reactions, media, referrals, reply context, the profile name
        /// (schema v3; empty when read from v1/v2).
        details: ProviderDetails,
        /// When wagate received it.
        at: Timestamp,
    },
    OptedOut {
        contact: ContactId,
        source: OptOutSource,
        detail: String,
        /// When the person opted out: the time they wrote for a keyword (the provider's time
        /// when it gives one), else `at` (schema v2; `at` when read from v1).
        evidence_at: Timestamp,
        at: Timestamp,
    },
    /// Free text that mentions opting out: a person must decide (free-text opt-out triage).
    OptOutReviewRequested {
        contact: ContactId,
        text: String,
        matched: String,
        at: Timestamp,
    },
    FlagRaised {
        contact: ContactId,
        flag: ContactFlag,
        reason: String,
        at: Timestamp,
    },
    FlagCleared {
        contact: ContactId,
        flag: ContactFlag,
        reason: String,
        at: Timestamp,
    },
    /// The provider refused a freeform message as outside the window (63016, 131047): its clock
    /// is the one that counts, so the window is closed until the next inbound.
    WindowReportedClosed {
        contact: ContactId,
        /// The business number whose window the provider reported closed (schema v2). `None`
        /// when read from v1, which closes every sender's window: the reading that sends less.
        sender: Option<WhatsAppAddress>,
        code: u32,
        at: Timestamp,
    },
    /// `other` is another identity of the same person (a number and Meta's `wa_id` for it, a
    /// number and a business-scoped user id, an old and a new number). Appended to both
    /// contacts' streams, each naming the other: consent is judged over every linked identity.
    IdentityLinked {
        contact: ContactId,
        other: ContactId,
        source: IdentitySource,
        at: Timestamp,
    },
    /// A message the contact wrote in a group chat the business is in: recorded, but it opens
    /// no one-to-one window and is no consent.
    GroupMessageReceived {
        contact: ContactId,
        /// The provider's group id.
        group: String,
        /// The business number of the group, when known.
        sender: Option<WhatsAppAddress>,
        provider_ref: Option<ProviderMessageRef>,
        kind: String,
        text: String,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageEvent {
    /// A business-initiated template message was allowed: an outbound intent.
    TemplateSent {
        message_id: MessageId,
        contact: ContactId,
        sender: WhatsAppAddress,
        template: TemplateId,
        category: TemplateCategory,
        /// Sorted by key.
        variables: Vec<(String, String)>,
        /// Header media of this send (schema v2; empty when read from v1).
        media: Vec<crate::rich::TemplateMedia>,
        workflow: Workflow,
        at: Timestamp,
    },
    /// A freeform reply inside the window was allowed: an outbound intent.
    ReplySent {
        message_id: MessageId,
        contact: ContactId,
        sender: WhatsAppAddress,
        /// The text, or for rich content its caption or body.
        text: String,
        /// Media or quick-reply buttons (schema v2); `None` for plain text and v1 records.
        rich: Option<crate::rich::RichReply>,
        workflow: Workflow,
        at: Timestamp,
    },
    /// A send that broke a rule. Recorded so auditors see every attempt.
    SendRefused {
        message_id: MessageId,
        /// The recipient as given (it may not have been a valid number).
        to: String,
        sender: WhatsAppAddress,
        /// The template the send asked for; `None` for freeform text, and when read from schema
        /// v1/v2, which did not record it (schema v3). Lets an explanation cite the template's
        /// approval a refusal relied on.
        template: Option<TemplateId>,
        rule: RuleId,
        message: String,
        /// Every other rule the send broke, in check order (schema v2; empty when read from v1).
        also_broken: Vec<RuleId>,
        at: Timestamp,
    },
    /// The dispatcher claimed the message for a provider call; every gate held at this point.
    DispatchClaimed {
        message_id: MessageId,
        attempt: u32,
        at: Timestamp,
    },
    /// A claim that a gate refused (a STOP landed first, the window closed, …): the message is
    /// canceled.
    ClaimRefused {
        message_id: MessageId,
        attempt: u32,
        rule: RuleId,
        message: String,
        at: Timestamp,
    },
    DispatchSucceeded {
        message_id: MessageId,
        attempt: u32,
        provider_ref: ProviderMessageRef,
        provider_status: MessageStatus,
        at: Timestamp,
    },
    DispatchFailed {
        message_id: MessageId,
        attempt: u32,
        error: ProviderError,
        retry: Retry,
        /// When the next attempt may be claimed; `None` means the message has failed for good.
        retry_at: Option<Timestamp>,
        at: Timestamp,
    },
    /// A provider status callback for this message (recorded even when it changes nothing).
    StatusChanged {
        message_id: MessageId,
        provider_ref: Option<ProviderMessageRef>,
        status: MessageStatus,
        error_code: Option<u32>,
        /// Pricing, conversation, every error's code/title/message/details, … (schema v2;
        /// empty when read from v1).
        details: ProviderDetails,
        /// Meta's `pricing` object, typed (schema v3; `None` when read from v1/v2, whose
        /// `details` may still hold it as `pricing.*`).
        pricing: Option<StatusPricing>,
        at: Timestamp,
    },
    /// A claim with no recorded outcome and no callback within the in-doubt timeout: failed, for
    /// a person to look at. Never re-sent blindly.
    InDoubtExpired {
        message_id: MessageId,
        attempt: u32,
        at: Timestamp,
    },
    /// A genuine status callback that matches no message yet (kept, never dropped; joined when
    /// the match appears).
    UnmatchedStatusReceived {
        provider_ref: ProviderMessageRef,
        status: MessageStatus,
        error_code: Option<u32>,
        /// As `StatusChanged`'s (schema v2; empty when read from v1).
        details: ProviderDetails,
        at: Timestamp,
    },
    /// What the provider billed for the message, read from the provider once final (Twilio's
    /// Message resource `price`/`price_unit`). The cost ledger uses it instead of the price
    /// table's provider price.
    PriceReported {
        message_id: MessageId,
        provider: ProviderKind,
        /// The amount charged, in millionths of `currency`, as a positive number (Twilio reports
        /// a charge as a negative price).
        amount_micros: i64,
        /// ISO 4217, upper case.
        currency: String,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent {
    Registered {
        sender: WhatsAppAddress,
        provider: ProviderKind,
        portfolio: PortfolioId,
        /// Meta Cloud API senders are addressed by phone-number id.
        meta_phone_number_id: Option<String>,
        /// Its throughput: the provider's tier default unless set (docs/providers.md).
        rate: SenderRate,
        at: Timestamp,
    },
    Authorized {
        sender: WhatsAppAddress,
        by: String,
        at: Timestamp,
    },
    /// The provider reported the number's quality (Meta's `phone_number_quality_update`):
    /// `event` as sent (`FLAGGED`, `DOWNGRADE`, `UNFLAGGED`, `UPGRADE`, …) and whether it is a
    /// drop, which pauses its marketing templates while the policy says so
    /// (`RuleId::SenderQualityDropped`) until a report that is not a drop.
    QualityReported {
        sender: WhatsAppAddress,
        event: String,
        dropped: bool,
        at: Timestamp,
    },
    Suspended {
        sender: WhatsAppAddress,
        reason: String,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateEvent {
    Registered {
        template: TemplateId,
        name: String,
        language: String,
        category: TemplateCategory,
        /// Placeholder keys (`"1"`, `"2"` for Twilio; names for named Meta parameters).
        placeholders: Vec<String>,
        at: Timestamp,
    },
    ApprovalChanged {
        template: TemplateId,
        status: ApprovalStatus,
        reason: String,
        at: Timestamp,
    },
    /// A template created in wagate and accepted by the provider's API, with all it says.
    Created {
        template: TemplateId,
        provider: ProviderKind,
        /// Twilio's Content SID, Meta's numeric template id.
        provider_ref: String,
        name: String,
        language: String,
        category: TemplateCategory,
        content: TemplateContent,
        at: Timestamp,
    },
    /// The provider moved the template to another category (Meta's `template_category_update`):
    /// the send gates follow it (a template Meta made marketing is gated as marketing).
    CategoryReported {
        template: TemplateId,
        category: TemplateCategory,
        /// The category Meta said it had before, as sent.
        previous: String,
        at: Timestamp,
    },
    /// The provider reported the template's status (its API answer, a poll or a webhook), with
    /// its reason (rejection reason, pause cause; empty when it gave none).
    StatusReported {
        template: TemplateId,
        status: ApprovalStatus,
        reason: String,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortfolioEvent {
    MessagingLimitChanged {
        portfolio: PortfolioId,
        limit: MessagingLimit,
        at: Timestamp,
    },
    /// A business-initiated message to a contact outside an open window: counts toward the limit.
    RecipientReached {
        portfolio: PortfolioId,
        contact: ContactId,
        message_id: MessageId,
        at: Timestamp,
    },
}

/// What a provider tells the business about its account, numbers or templates, as opposed to
/// one message or contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// A genuine provider notice, recorded for auditors whether or not wagate acts on it
    /// (value-level errors such as 130429, quality and limit updates, account updates, fields
    /// wagate does not know yet). Never silently dropped.
    NoticeReceived {
        provider: ProviderKind,
        /// Whom it is about: Meta's account (WABA) id, else the provider's name. The stream.
        subject: String,
        /// Meta's change `field` (`account_update`, `errors`, …) or the provider's kind.
        kind: String,
        /// The notice's values, flattened.
        details: ProviderDetails,
        at: Timestamp,
    },
}

/// The review queue's own facts (stream `review`): items only wagate's watchers notice, and
/// every resolution (who resolved it is the event's actor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewEvent {
    /// Something no other event says (a message with no terminal status, silent or rejected
    /// webhooks, a failing alert endpoint), raised for a person.
    Raised {
        reason: ReviewReason,
        subject: ReviewSubject,
        detail: String,
        at: Timestamp,
    },
    /// A person resolved item `item` (the log position of the event that raised it).
    Resolved {
        item: u64,
        reason: ReviewReason,
        decision: ReviewDecision,
        note: String,
        at: Timestamp,
    },
}

impl ProviderEvent {
    pub fn subject(&self) -> &str {
        match self {
            Self::NoticeReceived { subject, .. } => subject,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Self::NoticeReceived { at, .. } => *at,
        }
    }
}

impl ReviewEvent {
    pub fn at(&self) -> Timestamp {
        match self {
            Self::Raised { at, .. } | Self::Resolved { at, .. } => *at,
        }
    }
}

impl From<ProviderEvent> for Event {
    fn from(event: ProviderEvent) -> Self {
        Self::Provider(event)
    }
}

impl From<crate::consent::ConsentEvent> for Event {
    fn from(event: crate::consent::ConsentEvent) -> Self {
        Self::Consent(event)
    }
}

impl From<crate::endpoints::EndpointEvent> for Event {
    fn from(event: crate::endpoints::EndpointEvent) -> Self {
        Self::Endpoint(event)
    }
}

impl From<ReviewEvent> for Event {
    fn from(event: ReviewEvent) -> Self {
        Self::Review(event)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Contact(ContactEvent),
    Message(MessageEvent),
    Sender(SenderEvent),
    Template(TemplateEvent),
    Portfolio(PortfolioEvent),
    Provider(ProviderEvent),
    Review(ReviewEvent),
    Consent(crate::consent::ConsentEvent),
    /// Outgoing webhook endpoints (crate::endpoints).
    Endpoint(crate::endpoints::EndpointEvent),
    /// Campaigns (crate::campaign): `campaign:<id>` and the index `campaigns:index`.
    Campaign(crate::campaign::CampaignEvent),
}

/// The stream an event belongs to; `Display` gives the store's stream name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StreamKey {
    Contact(ContactId),
    Message(MessageId),
    Sender(WhatsAppAddress),
    Template(TemplateId),
    Portfolio(PortfolioId),
    /// Callbacks that matched no message yet, by provider id.
    ProviderMessage(ProviderMessageRef),
    /// A provider's notices about one account (`provider:meta:<waba id>`).
    Provider(String),
    /// The review queue's resolutions and watcher-raised items: one stream, so resolutions of
    /// the same item conflict instead of both landing.
    Review,
    /// Consent capture: `consent-wording:…`, `consent-campaign:…`, `consent-requests:…`
    /// (the whole name, from `wagate_domain::consent`).
    Consent(String),
    /// Every endpoint's registration and deletion: one stream, so the list is one read.
    Endpoints,
    /// Campaigns: `campaign:<id>` or the index `campaigns:index` (the whole name, from
    /// `wagate_domain::campaign`).
    Campaign(String),
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Contact(id) => write!(f, "contact:{id}"),
            Self::Message(id) => write!(f, "message:{id}"),
            Self::Sender(address) => write!(f, "sender:{address}"),
            Self::Template(id) => write!(f, "template:{id}"),
            Self::Portfolio(id) => write!(f, "portfolio:{id}"),
            Self::ProviderMessage(reference) => write!(f, "provider-message:{reference}"),
            Self::Provider(subject) => write!(f, "provider:{subject}"),
            Self::Review => f.write_str("review:queue"),
            Self::Consent(name) => f.write_str(name),
            Self::Endpoints => f.write_str("webhook:endpoints"),
            Self::Campaign(name) => f.write_str(name),
        }
    }
}

impl Event {
    pub fn stream(&self) -> StreamKey {
        match self {
            Self::Contact(event) => StreamKey::Contact(event.contact().clone()),
            Self::Message(MessageEvent::UnmatchedStatusReceived { provider_ref, .. }) => {
                StreamKey::ProviderMessage(provider_ref.clone())
            }
            Self::Message(event) => match event.message_id() {
                Some(id) => StreamKey::Message(id),
                // Invariant: only UnmatchedStatusReceived has no message id, handled above.
                None => unreachable!("message event without message id: {event:?}"),
            },
            Self::Sender(event) => StreamKey::Sender(event.sender().clone()),
            Self::Template(event) => StreamKey::Template(event.template().clone()),
            Self::Portfolio(event) => StreamKey::Portfolio(event.portfolio().clone()),
            Self::Provider(event) => StreamKey::Provider(event.subject().to_owned()),
            Self::Review(_) => StreamKey::Review,
            Self::Consent(event) => StreamKey::Consent(event.stream_name()),
            Self::Endpoint(_) => StreamKey::Endpoints,
            Self::Campaign(event) => StreamKey::Campaign(event.stream_name()),
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Self::Contact(event) => event.at(),
            Self::Message(event) => event.at(),
            Self::Sender(event) => event.at(),
            Self::Template(event) => event.at(),
            Self::Portfolio(event) => event.at(),
            Self::Provider(event) => event.at(),
            Self::Review(event) => event.at(),
            Self::Consent(event) => event.at(),
            Self::Endpoint(event) => event.at(),
            Self::Campaign(event) => event.at(),
        }
    }

    /// The event's type name in the log export and the docs (`OptedIn`, `StatusChanged`, …).
    pub fn type_name(&self) -> &'static str {
        self.event_type().as_str()
    }

    /// The event's type. Exhaustive, so a new event variant does not compile until it has a
    /// type, and a new type is in `EventType::ALL`, which the tests walk (persisted form,
    /// export form, golden fixture, docs/events.md).
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Contact(event) => match event {
                ContactEvent::OptedIn { .. } => EventType::OptedIn,
                ContactEvent::InboundReceived { .. } => EventType::InboundReceived,
                ContactEvent::OptedOut { .. } => EventType::OptedOut,
                ContactEvent::OptOutReviewRequested { .. } => EventType::OptOutReviewRequested,
                ContactEvent::FlagRaised { .. } => EventType::FlagRaised,
                ContactEvent::FlagCleared { .. } => EventType::FlagCleared,
                ContactEvent::WindowReportedClosed { .. } => EventType::WindowReportedClosed,
                ContactEvent::IdentityLinked { .. } => EventType::IdentityLinked,
                ContactEvent::GroupMessageReceived { .. } => EventType::GroupMessageReceived,
            },
            Self::Message(event) => match event {
                MessageEvent::TemplateSent { .. } => EventType::TemplateSent,
                MessageEvent::ReplySent { .. } => EventType::ReplySent,
                MessageEvent::SendRefused { .. } => EventType::SendRefused,
                MessageEvent::DispatchClaimed { .. } => EventType::DispatchClaimed,
                MessageEvent::ClaimRefused { .. } => EventType::ClaimRefused,
                MessageEvent::DispatchSucceeded { .. } => EventType::DispatchSucceeded,
                MessageEvent::DispatchFailed { .. } => EventType::DispatchFailed,
                MessageEvent::StatusChanged { .. } => EventType::StatusChanged,
                MessageEvent::InDoubtExpired { .. } => EventType::InDoubtExpired,
                MessageEvent::UnmatchedStatusReceived { .. } => EventType::UnmatchedStatusReceived,
                MessageEvent::PriceReported { .. } => EventType::ProviderPriceReported,
            },
            Self::Sender(event) => match event {
                SenderEvent::Registered { .. } => EventType::SenderRegistered,
                SenderEvent::Authorized { .. } => EventType::SenderAuthorized,
                SenderEvent::Suspended { .. } => EventType::SenderSuspended,
                SenderEvent::QualityReported { .. } => EventType::SenderQualityReported,
            },
            Self::Template(event) => match event {
                TemplateEvent::Registered { .. } => EventType::TemplateRegistered,
                TemplateEvent::ApprovalChanged { .. } => EventType::TemplateApprovalChanged,
                TemplateEvent::Created { .. } => EventType::TemplateCreated,
                TemplateEvent::StatusReported { .. } => EventType::TemplateStatusReported,
                TemplateEvent::CategoryReported { .. } => EventType::TemplateCategoryReported,
            },
            Self::Portfolio(event) => match event {
                PortfolioEvent::MessagingLimitChanged { .. } => EventType::MessagingLimitChanged,
                PortfolioEvent::RecipientReached { .. } => EventType::RecipientReached,
            },
            Self::Provider(event) => match event {
                ProviderEvent::NoticeReceived { .. } => EventType::ProviderNoticeReceived,
            },
            Self::Review(event) => match event {
                ReviewEvent::Raised { .. } => EventType::ReviewRaised,
                ReviewEvent::Resolved { .. } => EventType::ReviewResolved,
            },
            Self::Consent(event) => match event {
                crate::consent::ConsentEvent::WordingPublished { .. } => {
                    EventType::ConsentWordingPublished
                }
                crate::consent::ConsentEvent::CampaignCreated { .. } => {
                    EventType::ConsentCampaignCreated
                }
                crate::consent::ConsentEvent::OptInRequested { .. } => EventType::OptInRequested,
                crate::consent::ConsentEvent::CampaignClosed { .. } => {
                    EventType::ConsentCampaignClosed
                }
                crate::consent::ConsentEvent::ConfirmationSent { .. } => {
                    EventType::OptInConfirmationSent
                }
            },
            Self::Endpoint(event) => match event {
                crate::endpoints::EndpointEvent::Registered { .. } => {
                    EventType::WebhookEndpointRegistered
                }
                crate::endpoints::EndpointEvent::Deleted { .. } => {
                    EventType::WebhookEndpointDeleted
                }
                crate::endpoints::EndpointEvent::Disabled { .. } => {
                    EventType::WebhookEndpointDisabled
                }
                crate::endpoints::EndpointEvent::Enabled { .. } => {
                    EventType::WebhookEndpointEnabled
                }
            },
            Self::Campaign(event) => {
                use crate::campaign::CampaignEvent as C;
                match event {
                    C::Created { .. } => EventType::CampaignCreated,
                    C::Listed { .. } => EventType::CampaignListed,
                    C::Started { .. } => EventType::CampaignStarted,
                    C::Paused { .. } => EventType::CampaignPaused,
                    C::Cancelled { .. } => EventType::CampaignCancelled,
                    C::RowSent { .. } => EventType::CampaignRowSent,
                    C::RowRefused { .. } => EventType::CampaignRowRefused,
                    C::Completed { .. } => EventType::CampaignCompleted,
                }
            }
        }
    }
}

impl ContactEvent {
    pub fn contact(&self) -> &ContactId {
        match self {
            Self::OptedIn { contact, .. }
            | Self::InboundReceived { contact, .. }
            | Self::OptedOut { contact, .. }
            | Self::OptOutReviewRequested { contact, .. }
            | Self::FlagRaised { contact, .. }
            | Self::FlagCleared { contact, .. }
            | Self::WindowReportedClosed { contact, .. }
            | Self::IdentityLinked { contact, .. }
            | Self::GroupMessageReceived { contact, .. } => contact,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Self::OptedIn { at, .. }
            | Self::InboundReceived { at, .. }
            | Self::OptedOut { at, .. }
            | Self::OptOutReviewRequested { at, .. }
            | Self::FlagRaised { at, .. }
            | Self::FlagCleared { at, .. }
            | Self::WindowReportedClosed { at, .. }
            | Self::IdentityLinked { at, .. }
            | Self::GroupMessageReceived { at, .. } => *at,
        }
    }
}

impl MessageEvent {
    /// `None` only for `UnmatchedStatusReceived`.
    pub fn message_id(&self) -> Option<MessageId> {
        match self {
            Self::TemplateSent { message_id, .. }
            | Self::ReplySent { message_id, .. }
            | Self::SendRefused { message_id, .. }
            | Self::DispatchClaimed { message_id, .. }
            | Self::ClaimRefused { message_id, .. }
            | Self::DispatchSucceeded { message_id, .. }
            | Self::DispatchFailed { message_id, .. }
            | Self::StatusChanged { message_id, .. }
            | Self::PriceReported { message_id, .. }
            | Self::InDoubtExpired { message_id, .. } => Some(*message_id),
            Self::UnmatchedStatusReceived { .. } => None,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Self::TemplateSent { at, .. }
            | Self::ReplySent { at, .. }
            | Self::SendRefused { at, .. }
            | Self::DispatchClaimed { at, .. }
            | Self::ClaimRefused { at, .. }
            | Self::DispatchSucceeded { at, .. }
            | Self::DispatchFailed { at, .. }
            | Self::StatusChanged { at, .. }
            | Self::InDoubtExpired { at, .. }
            | Self::PriceReported { at, .. }
            | Self::UnmatchedStatusReceived { at, .. } => *at,
        }
    }
}

impl SenderEvent {
    pub fn sender(&self) -> &WhatsAppAddress {
        match self {
            Self::Registered { sender, .. }
            | Self::Authorized { sender, .. }
            | Self::QualityReported { sender, .. }
            | Self::Suspended { sender, .. } => sender,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Self::Registered { at, .. }
            | Self::Authorized { at, .. }
            | Self::QualityReported { at, .. }
            | Self::Suspended { at, .. } => *at,
        }
    }
}

impl TemplateEvent {
    pub fn template(&self) -> &TemplateId {
        match self {
            Self::Registered { template, .. }
            | Self::ApprovalChanged { template, .. }
            | Self::Created { template, .. }
            | Self::CategoryReported { template, .. }
            | Self::StatusReported { template, .. } => template,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Self::Registered { at, .. }
            | Self::ApprovalChanged { at, .. }
            | Self::Created { at, .. }
            | Self::CategoryReported { at, .. }
            | Self::StatusReported { at, .. } => *at,
        }
    }
}

impl PortfolioEvent {
    pub fn portfolio(&self) -> &PortfolioId {
        match self {
            Self::MessagingLimitChanged { portfolio, .. }
            | Self::RecipientReached { portfolio, .. } => portfolio,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Self::MessagingLimitChanged { at, .. } | Self::RecipientReached { at, .. } => *at,
        }
    }
}

impl From<ContactEvent> for Event {
    fn from(event: ContactEvent) -> Self {
        Self::Contact(event)
    }
}

impl From<MessageEvent> for Event {
    fn from(event: MessageEvent) -> Self {
        Self::Message(event)
    }
}

impl From<SenderEvent> for Event {
    fn from(event: SenderEvent) -> Self {
        Self::Sender(event)
    }
}

impl From<TemplateEvent> for Event {
    fn from(event: TemplateEvent) -> Self {
        Self::Template(event)
    }
}

impl From<PortfolioEvent> for Event {
    fn from(event: PortfolioEvent) -> Self {
        Self::Portfolio(event)
    }
}

/// Declares `EventType` with its variants' names and the list of them all, from one list, so no
/// type can be missing from `ALL`.
macro_rules! event_types {
    ($($name:ident),+ $(,)?) => {
        /// Every type of event the log holds, named as in the export, the envelope and
        /// docs/events.md.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum EventType {
            $($name),+
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$name),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$name => stringify!($name)),+
                }
            }
        }
    };
}

event_types! {
    OptedIn,
    InboundReceived,
    OptedOut,
    OptOutReviewRequested,
    FlagRaised,
    FlagCleared,
    WindowReportedClosed,
    TemplateSent,
    ReplySent,
    SendRefused,
    DispatchClaimed,
    ClaimRefused,
    DispatchSucceeded,
    DispatchFailed,
    StatusChanged,
    InDoubtExpired,
    UnmatchedStatusReceived,
    SenderRegistered,
    SenderAuthorized,
    SenderSuspended,
    TemplateRegistered,
    TemplateApprovalChanged,
    TemplateCreated,
    TemplateStatusReported,
    MessagingLimitChanged,
    RecipientReached,
    IdentityLinked,
    GroupMessageReceived,
    ProviderNoticeReceived,
    ReviewRaised,
    ReviewResolved,
    SenderQualityReported,
    TemplateCategoryReported,
    ConsentWordingPublished,
    ConsentCampaignCreated,
    OptInRequested,
    ConsentCampaignClosed,
    WebhookEndpointRegistered,
    WebhookEndpointDeleted,
    ProviderPriceReported,
    CampaignCreated,
    CampaignListed,
    CampaignStarted,
    CampaignPaused,
    CampaignCancelled,
    CampaignRowSent,
    CampaignRowRefused,
    CampaignCompleted,
    WebhookEndpointDisabled,
    WebhookEndpointEnabled,
    OptInConfirmationSent,
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
