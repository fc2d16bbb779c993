//! The persisted forms of domain events, and the conversions both ways.
//!
//! Domain events are plain Rust types; what goes on disk is this module's mirror types, encoded
//! with postcard. postcard is not self-describing, so the rules here are strict (docs/events.md,
//! "Schema versions"): one struct per event type and schema version, fields only ever appended
//! by a new version with an upcaster, no `flatten`/`skip*`/`default`/tagged or untagged enums,
//! no floats, no maps; small enums are stored as their stable string ids (a reordered Rust enum cannot turn
//! `OptedOut` into `OptedIn`); times are integer nanoseconds since the epoch; decoding is strict
//! (`take_from_bytes` with no leftover bytes). Identifiers are validated again on the way out, so
//! a corrupt record is an error, never a wrong value.
//!
//! Golden byte files of every event type and version live in `fixtures/events/` and are decoded
//! by a test forever (see `tests/golden.rs`).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wagate_domain::template::{
    ButtonKind, HeaderFormat, TemplateButton, TemplateCard, TemplateContent, TemplateHeader,
};
use wagate_domain::{
    ApprovalStatus, CampaignMedium, ConsentEvent, ContactEvent, ContactFlag, ContactId,
    EndpointEvent, EndpointId, Event, IdentitySource, MediaKind, MessageEvent, MessageId,
    MessageStatus, MessagingLimit, OptInSource, OptOutSource, OutgoingEventKind, PortfolioEvent,
    PortfolioId, ProviderError, ProviderEvent, ProviderKind, ProviderMessageRef, ReplyButton,
    Retry, ReviewDecision, ReviewEvent, ReviewReason, ReviewSubject, RichReply, RuleId,
    SenderEvent, SenderRate, StatusPricing, TemplateCategory, TemplateEvent, TemplateId,
    TemplateMedia, Timestamp, WhatsAppAddress, Workflow,
};

use crate::record::{NewEvent, RecordedEvent};

mod campaign;

/// Why a stored event could not be turned back into a domain event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {event_type:?}")]
    UnknownType { event_type: String },
    #[error("{event_type} has no schema version {version} (this wagate reads up to {current})")]
    UnknownVersion {
        event_type: String,
        version: u16,
        current: u16,
    },
    #[error("{event_type} v{version}: {reason}")]
    Malformed {
        event_type: String,
        version: u16,
        reason: String,
    },
}

/// The schema version each event type is written with. A new shape of an event gets a new
/// version, a new mirror struct, and an upcaster from the previous one in the decoder; older
/// versions stay readable forever.
///
/// History: `SendRefused` v2 added `also_broken` (every rule a refused send broke, not only the
/// first), so auditors see the whole refusal; v1 records read as v2 with an empty list. v3 added
/// `template` (the template a refused send asked for), so an explanation can cite its approval;
/// v1 and v2 records read with none.
/// `OptedIn` v2 and `OptedOut` v2 added `evidence_at` (when the consent change was made, which
/// orders them; v1 reads as `at`). `InboundReceived` v2 added `provider_at` (when the person
/// wrote, by the provider's clock; v1 reads as `None`). `WindowReportedClosed` v2 added `sender`
/// (whose window closed; v1 reads as `None`, every sender's). `InboundReceived` v3,
/// `StatusChanged` v2 and `UnmatchedStatusReceived` v2 added `details` (everything else the
/// provider said; older versions read with none).
/// `ReplySent` v2 added `rich` (freeform media or quick-reply buttons; v1 reads as `None`, plain
/// text). `TemplateSent` v2 added `media` (the header media of the send; v1 reads as none).
/// `StatusChanged` v3 added `pricing` (Meta's `pricing` object, typed; v1 and v2 read as `None`,
/// their `details` may still hold it as `pricing.*` pairs).
/// `ConsentCampaignCreated` v2 added `confirmation_template` (v1 reads as none).
pub fn current_version(event_type: &str) -> u16 {
    match event_type {
        "SendRefused" | "InboundReceived" | "StatusChanged" => 3,
        "OptedIn"
        | "OptedOut"
        | "WindowReportedClosed"
        | "UnmatchedStatusReceived"
        | "ReplySent"
        | "TemplateSent"
        | "SenderRegistered"
        | "ConsentCampaignCreated" => 2,
        _ => 1,
    }
}

/// Every event type name, as stored in the envelope (and returned by `Event::type_name`).
pub const EVENT_TYPES: [&str; 51] = [
    "OptedIn",
    "InboundReceived",
    "OptedOut",
    "OptOutReviewRequested",
    "FlagRaised",
    "FlagCleared",
    "WindowReportedClosed",
    "TemplateSent",
    "ReplySent",
    "SendRefused",
    "DispatchClaimed",
    "ClaimRefused",
    "DispatchSucceeded",
    "DispatchFailed",
    "StatusChanged",
    "InDoubtExpired",
    "UnmatchedStatusReceived",
    "SenderRegistered",
    "SenderAuthorized",
    "SenderSuspended",
    "TemplateRegistered",
    "TemplateApprovalChanged",
    "TemplateCreated",
    "TemplateStatusReported",
    "MessagingLimitChanged",
    "RecipientReached",
    "IdentityLinked",
    "GroupMessageReceived",
    "ProviderNoticeReceived",
    "ReviewRaised",
    "ReviewResolved",
    "SenderQualityReported",
    "TemplateCategoryReported",
    "ConsentWordingPublished",
    "ConsentCampaignCreated",
    "OptInRequested",
    "ConsentCampaignClosed",
    "WebhookEndpointRegistered",
    "WebhookEndpointDeleted",
    "ProviderPriceReported",
    "CampaignCreated",
    "CampaignListed",
    "CampaignStarted",
    "CampaignPaused",
    "CampaignCancelled",
    "CampaignRowSent",
    "CampaignRowRefused",
    "CampaignCompleted",
    "WebhookEndpointDisabled",
    "WebhookEndpointEnabled",
    "OptInConfirmationSent",
];

// ---------------------------------------------------------------------------------------------
// Mirror types, schema version 1. Never edit these: add a V2 and an upcaster instead.

#[derive(Serialize, Deserialize)]
struct OptedInV1 {
    contact: String,
    source: String,
    evidence: String,
    recorded_by: String,
    wording_version: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct InboundReceivedV1 {
    contact: String,
    sender: Option<String>,
    provider_ref: Option<String>,
    kind: String,
    text: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct OptedOutV1 {
    contact: String,
    source: String,
    detail: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct OptOutReviewRequestedV1 {
    contact: String,
    text: String,
    matched: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct FlagV1 {
    contact: String,
    flag: String,
    reason: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct WindowReportedClosedV1 {
    contact: String,
    code: u32,
    at_ns: i64,
}

/// v2: adds `evidence_at`.
#[derive(Serialize, Deserialize)]
struct OptedInV2 {
    contact: String,
    source: String,
    evidence: String,
    recorded_by: String,
    wording_version: String,
    evidence_at_ns: i64,
    at_ns: i64,
}

impl From<OptedInV1> for OptedInV2 {
    /// The upcaster: before v2 the evidence was taken as dated when it was recorded.
    fn from(v1: OptedInV1) -> Self {
        Self {
            contact: v1.contact,
            source: v1.source,
            evidence: v1.evidence,
            recorded_by: v1.recorded_by,
            wording_version: v1.wording_version,
            evidence_at_ns: v1.at_ns,
            at_ns: v1.at_ns,
        }
    }
}

/// v2: adds `provider_at`.
#[derive(Serialize, Deserialize)]
struct InboundReceivedV2 {
    contact: String,
    sender: Option<String>,
    provider_ref: Option<String>,
    kind: String,
    text: String,
    provider_at_ns: Option<i64>,
    at_ns: i64,
}

/// v3: adds `details`.
#[derive(Serialize, Deserialize)]
struct InboundReceivedV3 {
    contact: String,
    sender: Option<String>,
    provider_ref: Option<String>,
    kind: String,
    text: String,
    provider_at_ns: Option<i64>,
    details: Vec<(String, String)>,
    at_ns: i64,
}

impl From<InboundReceivedV2> for InboundReceivedV3 {
    /// The upcaster: v2 did not keep the provider's other fields.
    fn from(v2: InboundReceivedV2) -> Self {
        Self {
            contact: v2.contact,
            sender: v2.sender,
            provider_ref: v2.provider_ref,
            kind: v2.kind,
            text: v2.text,
            provider_at_ns: v2.provider_at_ns,
            details: Vec::new(),
            at_ns: v2.at_ns,
        }
    }
}

impl From<InboundReceivedV1> for InboundReceivedV2 {
    /// The upcaster: v1 did not keep the provider's time.
    fn from(v1: InboundReceivedV1) -> Self {
        Self {
            contact: v1.contact,
            sender: v1.sender,
            provider_ref: v1.provider_ref,
            kind: v1.kind,
            text: v1.text,
            provider_at_ns: None,
            at_ns: v1.at_ns,
        }
    }
}

/// v2: adds `evidence_at`.
#[derive(Serialize, Deserialize)]
struct OptedOutV2 {
    contact: String,
    source: String,
    detail: String,
    evidence_at_ns: i64,
    at_ns: i64,
}

impl From<OptedOutV1> for OptedOutV2 {
    /// The upcaster: before v2 the opt-out was taken as made when it was recorded.
    fn from(v1: OptedOutV1) -> Self {
        Self {
            contact: v1.contact,
            source: v1.source,
            detail: v1.detail,
            evidence_at_ns: v1.at_ns,
            at_ns: v1.at_ns,
        }
    }
}

/// v2: adds `sender`.
#[derive(Serialize, Deserialize)]
struct WindowReportedClosedV2 {
    contact: String,
    sender: Option<String>,
    code: u32,
    at_ns: i64,
}

impl From<WindowReportedClosedV1> for WindowReportedClosedV2 {
    /// The upcaster: v1 did not say whose window; `None` closes every sender's.
    fn from(v1: WindowReportedClosedV1) -> Self {
        Self {
            contact: v1.contact,
            sender: None,
            code: v1.code,
            at_ns: v1.at_ns,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct IdentityLinkedV1 {
    contact: String,
    other: String,
    source: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct GroupMessageReceivedV1 {
    contact: String,
    group: String,
    sender: Option<String>,
    provider_ref: Option<String>,
    kind: String,
    text: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct TemplateSentV1 {
    message_id: [u8; 16],
    contact: String,
    sender: String,
    template: String,
    category: String,
    variables: Vec<(String, String)>,
    workflow: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct ReplySentV1 {
    message_id: [u8; 16],
    contact: String,
    sender: String,
    text: String,
    workflow: String,
    at_ns: i64,
}

/// `TemplateSent` v2: v1 plus the send's header media.
#[derive(Serialize, Deserialize)]
struct TemplateSentV2 {
    message_id: [u8; 16],
    contact: String,
    sender: String,
    template: String,
    category: String,
    variables: Vec<(String, String)>,
    /// (card, kind, url): card `None` is the template's own header.
    media: Vec<(Option<u8>, String, String)>,
    workflow: String,
    at_ns: i64,
}

impl From<TemplateSentV1> for TemplateSentV2 {
    /// A v1 send carried no media.
    fn from(v1: TemplateSentV1) -> Self {
        Self {
            message_id: v1.message_id,
            contact: v1.contact,
            sender: v1.sender,
            template: v1.template,
            category: v1.category,
            variables: v1.variables,
            media: Vec::new(),
            workflow: v1.workflow,
            at_ns: v1.at_ns,
        }
    }
}

/// `ReplySent` v2: v1 plus the rich content.
#[derive(Serialize, Deserialize)]
struct ReplySentV2 {
    message_id: [u8; 16],
    contact: String,
    sender: String,
    text: String,
    rich: Option<RichReplyV2>,
    workflow: String,
    at_ns: i64,
}

impl From<ReplySentV1> for ReplySentV2 {
    /// A v1 reply was plain text.
    fn from(v1: ReplySentV1) -> Self {
        Self {
            message_id: v1.message_id,
            contact: v1.contact,
            sender: v1.sender,
            text: v1.text,
            rich: None,
            workflow: v1.workflow,
            at_ns: v1.at_ns,
        }
    }
}

/// Rich freeform content as stored (`ReplySent` v2). Variant order is part of the format:
/// append new variants, never reorder.
#[derive(Serialize, Deserialize)]
enum RichReplyV2 {
    Media {
        kind: String,
        url: String,
        caption: String,
    },
    Buttons {
        body: String,
        /// (id, title) in display order.
        buttons: Vec<(String, String)>,
    },
}

impl RichReplyV2 {
    fn of(rich: &RichReply) -> Self {
        match rich {
            RichReply::Media(media) => Self::Media {
                kind: media.kind.as_str().into(),
                url: media.url.to_string(),
                caption: media.caption.clone(),
            },
            RichReply::Buttons { body, buttons } => Self::Buttons {
                body: body.clone(),
                buttons: buttons
                    .iter()
                    .map(|button| (button.id.clone(), button.title.clone()))
                    .collect(),
            },
        }
    }

    /// Validated again on the way in: a record that would not pass today's checks is malformed.
    fn into_domain(self) -> Result<RichReply, String> {
        match self {
            Self::Media { kind, url, caption } => {
                let kind = MediaKind::parse(&kind).ok_or(format!("unknown media kind {kind:?}"))?;
                RichReply::media(kind, &url, caption).map_err(|e| e.to_string())
            }
            Self::Buttons { body, buttons } => RichReply::buttons(
                body,
                buttons
                    .into_iter()
                    .map(|(id, title)| ReplyButton { id, title })
                    .collect(),
            )
            .map_err(|e| e.to_string()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SendRefusedV1 {
    message_id: [u8; 16],
    to: String,
    sender: String,
    rule: String,
    message: String,
    at_ns: i64,
}

/// v2: adds `also_broken`.
#[derive(Serialize, Deserialize)]
struct SendRefusedV2 {
    message_id: [u8; 16],
    to: String,
    sender: String,
    rule: String,
    message: String,
    also_broken: Vec<String>,
    at_ns: i64,
}

/// v3: adds `template` (the template the refused send asked for; `None` for freeform text).
#[derive(Serialize, Deserialize)]
struct SendRefusedV3 {
    message_id: [u8; 16],
    to: String,
    sender: String,
    template: Option<String>,
    rule: String,
    message: String,
    also_broken: Vec<String>,
    at_ns: i64,
}

impl From<SendRefusedV2> for SendRefusedV3 {
    /// The upcaster: a v2 refusal did not record its template.
    fn from(v2: SendRefusedV2) -> Self {
        Self {
            message_id: v2.message_id,
            to: v2.to,
            sender: v2.sender,
            template: None,
            rule: v2.rule,
            message: v2.message,
            also_broken: v2.also_broken,
            at_ns: v2.at_ns,
        }
    }
}

impl From<SendRefusedV1> for SendRefusedV2 {
    /// The upcaster: a v1 refusal recorded only its first rule.
    fn from(v1: SendRefusedV1) -> Self {
        Self {
            message_id: v1.message_id,
            to: v1.to,
            sender: v1.sender,
            rule: v1.rule,
            message: v1.message,
            also_broken: Vec::new(),
            at_ns: v1.at_ns,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct DispatchClaimedV1 {
    message_id: [u8; 16],
    attempt: u32,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct ClaimRefusedV1 {
    message_id: [u8; 16],
    attempt: u32,
    rule: String,
    message: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct DispatchSucceededV1 {
    message_id: [u8; 16],
    attempt: u32,
    provider_ref: String,
    provider_status: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct ProviderErrorV1 {
    provider: String,
    code: Option<u32>,
    http_status: Option<u16>,
    message: String,
}

#[derive(Serialize, Deserialize)]
struct DispatchFailedV1 {
    message_id: [u8; 16],
    attempt: u32,
    error: ProviderErrorV1,
    retryable: bool,
    retry_at_ns: Option<i64>,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct StatusChangedV1 {
    message_id: [u8; 16],
    provider_ref: Option<String>,
    status: String,
    error_code: Option<u32>,
    at_ns: i64,
}

/// v2: adds `details`.
#[derive(Serialize, Deserialize)]
struct StatusChangedV2 {
    message_id: [u8; 16],
    provider_ref: Option<String>,
    status: String,
    error_code: Option<u32>,
    details: Vec<(String, String)>,
    at_ns: i64,
}

impl From<StatusChangedV1> for StatusChangedV2 {
    /// The upcaster: v1 kept only the first error code.
    fn from(v1: StatusChangedV1) -> Self {
        Self {
            message_id: v1.message_id,
            provider_ref: v1.provider_ref,
            status: v1.status,
            error_code: v1.error_code,
            details: Vec::new(),
            at_ns: v1.at_ns,
        }
    }
}

/// v3: adds `pricing` (Meta's `pricing` object, typed).
#[derive(Serialize, Deserialize)]
struct StatusChangedV3 {
    message_id: [u8; 16],
    provider_ref: Option<String>,
    status: String,
    error_code: Option<u32>,
    details: Vec<(String, String)>,
    pricing: Option<StatusPricingV1>,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct StatusPricingV1 {
    billable: Option<bool>,
    pricing_model: Option<String>,
    category: Option<String>,
    kind: Option<String>,
}

impl From<StatusChangedV2> for StatusChangedV3 {
    /// The upcaster: v2 kept Meta's pricing only in `details`.
    fn from(v2: StatusChangedV2) -> Self {
        Self {
            message_id: v2.message_id,
            provider_ref: v2.provider_ref,
            status: v2.status,
            error_code: v2.error_code,
            details: v2.details,
            pricing: None,
            at_ns: v2.at_ns,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ProviderPriceReportedV1 {
    message_id: [u8; 16],
    provider: String,
    amount_micros: i64,
    currency: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct InDoubtExpiredV1 {
    message_id: [u8; 16],
    attempt: u32,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct UnmatchedStatusReceivedV1 {
    provider_ref: String,
    status: String,
    error_code: Option<u32>,
    at_ns: i64,
}

/// v2: adds `details`.
#[derive(Serialize, Deserialize)]
struct UnmatchedStatusReceivedV2 {
    provider_ref: String,
    status: String,
    error_code: Option<u32>,
    details: Vec<(String, String)>,
    at_ns: i64,
}

impl From<UnmatchedStatusReceivedV1> for UnmatchedStatusReceivedV2 {
    /// The upcaster: v1 kept only the first error code.
    fn from(v1: UnmatchedStatusReceivedV1) -> Self {
        Self {
            provider_ref: v1.provider_ref,
            status: v1.status,
            error_code: v1.error_code,
            details: Vec::new(),
            at_ns: v1.at_ns,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ProviderNoticeReceivedV1 {
    provider: String,
    subject: String,
    kind: String,
    details: Vec<(String, String)>,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct SenderRegisteredV1 {
    sender: String,
    provider: String,
    portfolio: String,
    meta_phone_number_id: Option<String>,
    at_ns: i64,
}

/// `SenderRegistered` v2: v1 plus the sender's tier and rate override.
#[derive(Serialize, Deserialize)]
struct SenderRegisteredV2 {
    sender: String,
    provider: String,
    portfolio: String,
    meta_phone_number_id: Option<String>,
    upgraded: bool,
    rate_per_second: Option<u32>,
    at_ns: i64,
}

impl From<SenderRegisteredV1> for SenderRegisteredV2 {
    /// A v1 sender is on its provider's default tier with no override.
    fn from(v1: SenderRegisteredV1) -> Self {
        Self {
            sender: v1.sender,
            provider: v1.provider,
            portfolio: v1.portfolio,
            meta_phone_number_id: v1.meta_phone_number_id,
            upgraded: false,
            rate_per_second: None,
            at_ns: v1.at_ns,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SenderAuthorizedV1 {
    sender: String,
    by: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct SenderSuspendedV1 {
    sender: String,
    reason: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct TemplateRegisteredV1 {
    template: String,
    name: String,
    language: String,
    category: String,
    placeholders: Vec<String>,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct TemplateApprovalChangedV1 {
    template: String,
    status: String,
    reason: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct TemplateHeaderV1 {
    format: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct TemplateButtonV1 {
    kind: String,
    text: String,
    value: String,
}

#[derive(Serialize, Deserialize)]
struct TemplateCardV1 {
    header: TemplateHeaderV1,
    body: String,
    buttons: Vec<TemplateButtonV1>,
}

#[derive(Serialize, Deserialize)]
struct TemplateCreatedV1 {
    template: String,
    provider: String,
    provider_ref: String,
    name: String,
    language: String,
    category: String,
    body: String,
    header: Option<TemplateHeaderV1>,
    buttons: Vec<TemplateButtonV1>,
    cards: Vec<TemplateCardV1>,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct SenderQualityReportedV1 {
    sender: String,
    event: String,
    dropped: bool,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct TemplateCategoryReportedV1 {
    template: String,
    category: String,
    previous: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct TemplateStatusReportedV1 {
    template: String,
    status: String,
    reason: String,
    at_ns: i64,
}

fn header_v1(header: &TemplateHeader) -> TemplateHeaderV1 {
    TemplateHeaderV1 {
        format: header.format.as_str().into(),
        value: header.value.clone(),
    }
}

fn buttons_v1(buttons: &[TemplateButton]) -> Vec<TemplateButtonV1> {
    buttons
        .iter()
        .map(|button| TemplateButtonV1 {
            kind: button.kind.as_str().into(),
            text: button.text.clone(),
            value: button.value.clone(),
        })
        .collect()
}

#[derive(Serialize, Deserialize)]
struct MessagingLimitChangedV1 {
    portfolio: String,
    /// `None` is unlimited.
    limit: Option<u32>,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct RecipientReachedV1 {
    portfolio: String,
    contact: String,
    message_id: [u8; 16],
    at_ns: i64,
}

/// What a review item is about, each part when known.
#[derive(Serialize, Deserialize)]
struct ReviewSubjectV1 {
    contact: Option<String>,
    message_id: Option<[u8; 16]>,
    sender: Option<String>,
    template: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ReviewRaisedV1 {
    reason: String,
    subject: ReviewSubjectV1,
    detail: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct ReviewResolvedV1 {
    item: u64,
    reason: String,
    decision: String,
    note: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct ConsentWordingPublishedV1 {
    version: String,
    business: String,
    language: String,
    text: String,
    text_hash: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct ConsentCampaignCreatedV1 {
    campaign: String,
    sender: String,
    wording_version: String,
    workflows: Vec<String>,
    medium: String,
    at_ns: i64,
}

/// v2: adds `confirmation_template`.
#[derive(Serialize, Deserialize)]
struct ConsentCampaignCreatedV2 {
    campaign: String,
    sender: String,
    wording_version: String,
    workflows: Vec<String>,
    medium: String,
    confirmation_template: Option<String>,
    at_ns: i64,
}

impl From<ConsentCampaignCreatedV1> for ConsentCampaignCreatedV2 {
    /// The upcaster: a v1 campaign had no confirmation template.
    fn from(v1: ConsentCampaignCreatedV1) -> Self {
        Self {
            campaign: v1.campaign,
            sender: v1.sender,
            wording_version: v1.wording_version,
            workflows: v1.workflows,
            medium: v1.medium,
            confirmation_template: None,
            at_ns: v1.at_ns,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct OptInConfirmationSentV1 {
    contact: String,
    campaign: String,
    message_id: [u8; 16],
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct OptInRequestedV1 {
    contact: String,
    campaign: String,
    wording_version: String,
    text_hash: String,
    evidence: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct ConsentCampaignClosedV1 {
    campaign: String,
    at_ns: i64,
}

/// No secret: deliveries are signed with a secret derived from a key kept outside the log.
#[derive(Serialize, Deserialize)]
struct WebhookEndpointRegisteredV1 {
    endpoint: String,
    url: String,
    events: Vec<String>,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct WebhookEndpointDeletedV1 {
    endpoint: String,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct WebhookEndpointDisabledV1 {
    endpoint: String,
    reason: String,
    failing_since_ns: i64,
    at_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct WebhookEndpointEnabledV1 {
    endpoint: String,
    at_ns: i64,
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Encodes a domain event as a new log record with id `event_id`.
pub fn encode(event: &Event, event_id: Uuid) -> NewEvent {
    let at = event.at();
    NewEvent {
        event_id,
        event_type: event.type_name().to_owned(),
        schema_version: current_version(event.type_name()),
        timestamp_ms: at.timestamp_millis(),
        payload: encode_payload(event),
        origin: None,
    }
}

fn bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Invariant: the mirror types hold only strings, integers, byte arrays, options and vectors,
    // which postcard always encodes into a growable Vec.
    postcard::to_allocvec(value).expect("postcard encodes plain mirror types into a Vec")
}

fn ns(at: Timestamp) -> i64 {
    // Nanoseconds since the epoch fit in i64 until the year 2262.
    at.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn id(message_id: &MessageId) -> [u8; 16] {
    message_id.as_uuid().into_bytes()
}

fn encode_payload(event: &Event) -> Vec<u8> {
    match event {
        Event::Contact(event) => match event {
            ContactEvent::OptedIn {
                contact,
                source,
                evidence,
                recorded_by,
                wording_version,
                evidence_at,
                at,
            } => bytes(&OptedInV2 {
                contact: contact.to_string(),
                source: source.as_str().into(),
                evidence: evidence.clone(),
                recorded_by: recorded_by.clone(),
                wording_version: wording_version.clone(),
                evidence_at_ns: ns(*evidence_at),
                at_ns: ns(*at),
            }),
            ContactEvent::InboundReceived {
                contact,
                sender,
                provider_ref,
                kind,
                text,
                provider_at,
                details,
                at,
            } => bytes(&InboundReceivedV3 {
                contact: contact.to_string(),
                sender: sender.as_ref().map(ToString::to_string),
                provider_ref: provider_ref.as_ref().map(ToString::to_string),
                kind: kind.clone(),
                text: text.clone(),
                provider_at_ns: provider_at.map(ns),
                details: details.clone(),
                at_ns: ns(*at),
            }),
            ContactEvent::OptedOut {
                contact,
                source,
                detail,
                evidence_at,
                at,
            } => bytes(&OptedOutV2 {
                contact: contact.to_string(),
                source: source.as_str().into(),
                detail: detail.clone(),
                evidence_at_ns: ns(*evidence_at),
                at_ns: ns(*at),
            }),
            ContactEvent::OptOutReviewRequested {
                contact,
                text,
                matched,
                at,
            } => bytes(&OptOutReviewRequestedV1 {
                contact: contact.to_string(),
                text: text.clone(),
                matched: matched.clone(),
                at_ns: ns(*at),
            }),
            ContactEvent::FlagRaised {
                contact,
                flag,
                reason,
                at,
            }
            | ContactEvent::FlagCleared {
                contact,
                flag,
                reason,
                at,
            } => bytes(&FlagV1 {
                contact: contact.to_string(),
                flag: flag.as_str().into(),
                reason: reason.clone(),
                at_ns: ns(*at),
            }),
            ContactEvent::WindowReportedClosed {
                contact,
                sender,
                code,
                at,
            } => bytes(&WindowReportedClosedV2 {
                contact: contact.to_string(),
                sender: sender.as_ref().map(ToString::to_string),
                code: *code,
                at_ns: ns(*at),
            }),
            ContactEvent::IdentityLinked {
                contact,
                other,
                source,
                at,
            } => bytes(&IdentityLinkedV1 {
                contact: contact.to_string(),
                other: other.to_string(),
                source: source.as_str().into(),
                at_ns: ns(*at),
            }),
            ContactEvent::GroupMessageReceived {
                contact,
                group,
                sender,
                provider_ref,
                kind,
                text,
                at,
            } => bytes(&GroupMessageReceivedV1 {
                contact: contact.to_string(),
                group: group.clone(),
                sender: sender.as_ref().map(ToString::to_string),
                provider_ref: provider_ref.as_ref().map(ToString::to_string),
                kind: kind.clone(),
                text: text.clone(),
                at_ns: ns(*at),
            }),
        },
        Event::Message(event) => encode_message(event),
        Event::Sender(event) => match event {
            SenderEvent::Registered {
                sender,
                provider,
                portfolio,
                meta_phone_number_id,
                rate,
                at,
            } => bytes(&SenderRegisteredV2 {
                sender: sender.to_string(),
                provider: provider.as_str().into(),
                portfolio: portfolio.to_string(),
                meta_phone_number_id: meta_phone_number_id.clone(),
                upgraded: rate.upgraded,
                rate_per_second: rate.per_second,
                at_ns: ns(*at),
            }),
            SenderEvent::Authorized { sender, by, at } => bytes(&SenderAuthorizedV1 {
                sender: sender.to_string(),
                by: by.clone(),
                at_ns: ns(*at),
            }),
            SenderEvent::Suspended { sender, reason, at } => bytes(&SenderSuspendedV1 {
                sender: sender.to_string(),
                reason: reason.clone(),
                at_ns: ns(*at),
            }),
            SenderEvent::QualityReported {
                sender,
                event,
                dropped,
                at,
            } => bytes(&SenderQualityReportedV1 {
                sender: sender.to_string(),
                event: event.clone(),
                dropped: *dropped,
                at_ns: ns(*at),
            }),
        },
        Event::Template(event) => match event {
            TemplateEvent::Registered {
                template,
                name,
                language,
                category,
                placeholders,
                at,
            } => bytes(&TemplateRegisteredV1 {
                template: template.to_string(),
                name: name.clone(),
                language: language.clone(),
                category: category.as_str().into(),
                placeholders: placeholders.clone(),
                at_ns: ns(*at),
            }),
            TemplateEvent::ApprovalChanged {
                template,
                status,
                reason,
                at,
            } => bytes(&TemplateApprovalChangedV1 {
                template: template.to_string(),
                status: status.as_str().into(),
                reason: reason.clone(),
                at_ns: ns(*at),
            }),
            TemplateEvent::Created {
                template,
                provider,
                provider_ref,
                name,
                language,
                category,
                content,
                at,
            } => bytes(&TemplateCreatedV1 {
                template: template.to_string(),
                provider: provider.as_str().into(),
                provider_ref: provider_ref.clone(),
                name: name.clone(),
                language: language.clone(),
                category: category.as_str().into(),
                body: content.body.clone(),
                header: content.header.as_ref().map(header_v1),
                buttons: buttons_v1(&content.buttons),
                cards: content
                    .cards
                    .iter()
                    .map(|card| TemplateCardV1 {
                        header: header_v1(&card.header),
                        body: card.body.clone(),
                        buttons: buttons_v1(&card.buttons),
                    })
                    .collect(),
                at_ns: ns(*at),
            }),
            TemplateEvent::StatusReported {
                template,
                status,
                reason,
                at,
            } => bytes(&TemplateStatusReportedV1 {
                template: template.to_string(),
                status: status.as_str().into(),
                reason: reason.clone(),
                at_ns: ns(*at),
            }),
            TemplateEvent::CategoryReported {
                template,
                category,
                previous,
                at,
            } => bytes(&TemplateCategoryReportedV1 {
                template: template.to_string(),
                category: category.as_str().into(),
                previous: previous.clone(),
                at_ns: ns(*at),
            }),
        },
        Event::Portfolio(event) => match event {
            PortfolioEvent::MessagingLimitChanged {
                portfolio,
                limit,
                at,
            } => bytes(&MessagingLimitChangedV1 {
                portfolio: portfolio.to_string(),
                limit: match limit {
                    MessagingLimit::Limited(limit) => Some(*limit),
                    MessagingLimit::Unlimited => None,
                },
                at_ns: ns(*at),
            }),
            PortfolioEvent::RecipientReached {
                portfolio,
                contact,
                message_id,
                at,
            } => bytes(&RecipientReachedV1 {
                portfolio: portfolio.to_string(),
                contact: contact.to_string(),
                message_id: id(message_id),
                at_ns: ns(*at),
            }),
        },
        Event::Provider(ProviderEvent::NoticeReceived {
            provider,
            subject,
            kind,
            details,
            at,
        }) => bytes(&ProviderNoticeReceivedV1 {
            provider: provider.as_str().into(),
            subject: subject.clone(),
            kind: kind.clone(),
            details: details.clone(),
            at_ns: ns(*at),
        }),
        Event::Review(event) => match event {
            ReviewEvent::Raised {
                reason,
                subject,
                detail,
                at,
            } => bytes(&ReviewRaisedV1 {
                reason: reason.as_str().to_owned(),
                subject: ReviewSubjectV1 {
                    contact: subject.contact.as_ref().map(ToString::to_string),
                    message_id: subject.message_id.as_ref().map(id),
                    sender: subject.sender.as_ref().map(ToString::to_string),
                    template: subject.template.as_ref().map(ToString::to_string),
                },
                detail: detail.clone(),
                at_ns: ns(*at),
            }),
            ReviewEvent::Resolved {
                item,
                reason,
                decision,
                note,
                at,
            } => bytes(&ReviewResolvedV1 {
                item: *item,
                reason: reason.as_str().to_owned(),
                decision: decision.as_str().to_owned(),
                note: note.clone(),
                at_ns: ns(*at),
            }),
        },
        Event::Consent(event) => encode_consent(event),
        Event::Campaign(event) => campaign::encode(event),
        Event::Endpoint(event) => match event {
            EndpointEvent::Registered {
                endpoint,
                url,
                events,
                at,
            } => bytes(&WebhookEndpointRegisteredV1 {
                endpoint: endpoint.to_string(),
                url: url.clone(),
                events: events.iter().map(|kind| kind.as_str().to_owned()).collect(),
                at_ns: ns(*at),
            }),
            EndpointEvent::Deleted { endpoint, at } => bytes(&WebhookEndpointDeletedV1 {
                endpoint: endpoint.to_string(),
                at_ns: ns(*at),
            }),
            EndpointEvent::Disabled {
                endpoint,
                reason,
                failing_since,
                at,
            } => bytes(&WebhookEndpointDisabledV1 {
                endpoint: endpoint.to_string(),
                reason: reason.clone(),
                failing_since_ns: ns(*failing_since),
                at_ns: ns(*at),
            }),
            EndpointEvent::Enabled { endpoint, at } => bytes(&WebhookEndpointEnabledV1 {
                endpoint: endpoint.to_string(),
                at_ns: ns(*at),
            }),
        },
    }
}

fn encode_consent(event: &ConsentEvent) -> Vec<u8> {
    match event {
        ConsentEvent::WordingPublished {
            version,
            business,
            language,
            text,
            text_hash,
            at,
        } => bytes(&ConsentWordingPublishedV1 {
            version: version.clone(),
            business: business.clone(),
            language: language.clone(),
            text: text.clone(),
            text_hash: text_hash.clone(),
            at_ns: ns(*at),
        }),
        ConsentEvent::CampaignCreated {
            campaign,
            sender,
            wording_version,
            workflows,
            medium,
            confirmation_template,
            at,
        } => bytes(&ConsentCampaignCreatedV2 {
            campaign: campaign.clone(),
            sender: sender.to_string(),
            wording_version: wording_version.clone(),
            workflows: workflows.iter().map(ToString::to_string).collect(),
            medium: medium.as_str().to_owned(),
            confirmation_template: confirmation_template.as_ref().map(ToString::to_string),
            at_ns: ns(*at),
        }),
        ConsentEvent::OptInRequested {
            contact,
            campaign,
            wording_version,
            text_hash,
            evidence,
            at,
        } => bytes(&OptInRequestedV1 {
            contact: contact.to_string(),
            campaign: campaign.clone(),
            wording_version: wording_version.clone(),
            text_hash: text_hash.clone(),
            evidence: evidence.clone(),
            at_ns: ns(*at),
        }),
        ConsentEvent::CampaignClosed { campaign, at } => bytes(&ConsentCampaignClosedV1 {
            campaign: campaign.clone(),
            at_ns: ns(*at),
        }),
        ConsentEvent::ConfirmationSent {
            contact,
            campaign,
            message_id,
            at,
        } => bytes(&OptInConfirmationSentV1 {
            contact: contact.to_string(),
            campaign: campaign.clone(),
            message_id: id(message_id),
            at_ns: ns(*at),
        }),
    }
}

fn encode_message(event: &MessageEvent) -> Vec<u8> {
    match event {
        MessageEvent::TemplateSent {
            message_id,
            contact,
            sender,
            template,
            category,
            variables,
            media,
            workflow,
            at,
        } => bytes(&TemplateSentV2 {
            message_id: id(message_id),
            contact: contact.to_string(),
            sender: sender.to_string(),
            template: template.to_string(),
            category: category.as_str().into(),
            variables: variables.clone(),
            media: media
                .iter()
                .map(|m| (m.card, m.kind.as_str().to_owned(), m.url.to_string()))
                .collect(),
            workflow: workflow.to_string(),
            at_ns: ns(*at),
        }),
        MessageEvent::ReplySent {
            message_id,
            contact,
            sender,
            text,
            rich,
            workflow,
            at,
        } => bytes(&ReplySentV2 {
            message_id: id(message_id),
            contact: contact.to_string(),
            sender: sender.to_string(),
            text: text.clone(),
            rich: rich.as_ref().map(RichReplyV2::of),
            workflow: workflow.to_string(),
            at_ns: ns(*at),
        }),
        MessageEvent::SendRefused {
            message_id,
            to,
            sender,
            template,
            rule,
            message,
            also_broken,
            at,
        } => bytes(&SendRefusedV3 {
            message_id: id(message_id),
            to: to.clone(),
            sender: sender.to_string(),
            template: template.as_ref().map(ToString::to_string),
            rule: rule.as_str().into(),
            message: message.clone(),
            also_broken: also_broken
                .iter()
                .map(|rule| rule.as_str().to_owned())
                .collect(),
            at_ns: ns(*at),
        }),
        MessageEvent::DispatchClaimed {
            message_id,
            attempt,
            at,
        } => bytes(&DispatchClaimedV1 {
            message_id: id(message_id),
            attempt: *attempt,
            at_ns: ns(*at),
        }),
        MessageEvent::ClaimRefused {
            message_id,
            attempt,
            rule,
            message,
            at,
        } => bytes(&ClaimRefusedV1 {
            message_id: id(message_id),
            attempt: *attempt,
            rule: rule.as_str().into(),
            message: message.clone(),
            at_ns: ns(*at),
        }),
        MessageEvent::DispatchSucceeded {
            message_id,
            attempt,
            provider_ref,
            provider_status,
            at,
        } => bytes(&DispatchSucceededV1 {
            message_id: id(message_id),
            attempt: *attempt,
            provider_ref: provider_ref.to_string(),
            provider_status: provider_status.as_str().into(),
            at_ns: ns(*at),
        }),
        MessageEvent::DispatchFailed {
            message_id,
            attempt,
            error,
            retry,
            retry_at,
            at,
        } => bytes(&DispatchFailedV1 {
            message_id: id(message_id),
            attempt: *attempt,
            error: ProviderErrorV1 {
                provider: error.provider.as_str().into(),
                code: error.code,
                http_status: error.http_status,
                message: error.message.clone(),
            },
            retryable: *retry == Retry::Retryable,
            retry_at_ns: retry_at.map(ns),
            at_ns: ns(*at),
        }),
        MessageEvent::StatusChanged {
            message_id,
            provider_ref,
            status,
            error_code,
            details,
            pricing,
            at,
        } => bytes(&StatusChangedV3 {
            message_id: id(message_id),
            provider_ref: provider_ref.as_ref().map(ToString::to_string),
            status: status.as_str().into(),
            error_code: *error_code,
            details: details.clone(),
            pricing: pricing.as_ref().map(|p| StatusPricingV1 {
                billable: p.billable,
                pricing_model: p.pricing_model.clone(),
                category: p.category.clone(),
                kind: p.kind.clone(),
            }),
            at_ns: ns(*at),
        }),
        MessageEvent::PriceReported {
            message_id,
            provider,
            amount_micros,
            currency,
            at,
        } => bytes(&ProviderPriceReportedV1 {
            message_id: id(message_id),
            provider: provider.as_str().into(),
            amount_micros: *amount_micros,
            currency: currency.clone(),
            at_ns: ns(*at),
        }),
        MessageEvent::InDoubtExpired {
            message_id,
            attempt,
            at,
        } => bytes(&InDoubtExpiredV1 {
            message_id: id(message_id),
            attempt: *attempt,
            at_ns: ns(*at),
        }),
        MessageEvent::UnmatchedStatusReceived {
            provider_ref,
            status,
            error_code,
            details,
            at,
        } => bytes(&UnmatchedStatusReceivedV2 {
            provider_ref: provider_ref.to_string(),
            status: status.as_str().into(),
            error_code: *error_code,
            details: details.clone(),
            at_ns: ns(*at),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes a stored record into the current domain event, upcasting older schema versions.
pub fn decode(record: &RecordedEvent) -> Result<Event, DecodeError> {
    decode_payload(&record.event_type, record.schema_version, &record.payload)
}

/// Decodes a payload by type name and schema version.
pub fn decode_payload(
    event_type: &str,
    version: u16,
    payload: &[u8],
) -> Result<Event, DecodeError> {
    if !EVENT_TYPES.contains(&event_type) {
        return Err(DecodeError::UnknownType {
            event_type: event_type.to_owned(),
        });
    }
    let current = current_version(event_type);
    if version == 0 || version > current {
        return Err(DecodeError::UnknownVersion {
            event_type: event_type.to_owned(),
            version,
            current,
        });
    }
    let mut reader = Reader {
        event_type,
        version,
        payload,
    };
    reader.decode()
}

struct Reader<'a> {
    event_type: &'a str,
    version: u16,
    payload: &'a [u8],
}

impl Reader<'_> {
    fn malformed(&self, reason: impl Into<String>) -> DecodeError {
        DecodeError::Malformed {
            event_type: self.event_type.to_owned(),
            version: self.version,
            reason: reason.into(),
        }
    }

    fn mirror<T: DeserializeOwned>(&mut self) -> Result<T, DecodeError> {
        let (value, rest) = postcard::take_from_bytes::<T>(self.payload)
            .map_err(|error| self.malformed(error.to_string()))?;
        if !rest.is_empty() {
            return Err(self.malformed(format!("{} bytes left over after the payload", rest.len())));
        }
        Ok(value)
    }

    fn at(&self, at_ns: i64) -> Timestamp {
        DateTime::<Utc>::from_timestamp_nanos(at_ns)
    }

    fn contact(&self, text: &str) -> Result<ContactId, DecodeError> {
        ContactId::parse(text).map_err(|error| self.malformed(error.to_string()))
    }

    fn address(&self, text: &str) -> Result<WhatsAppAddress, DecodeError> {
        WhatsAppAddress::parse(text).map_err(|error| self.malformed(error.to_string()))
    }

    fn message_id(&self, raw: [u8; 16]) -> Result<MessageId, DecodeError> {
        MessageId::from_uuid(Uuid::from_bytes(raw))
            .map_err(|error| self.malformed(error.to_string()))
    }

    fn provider_ref(&self, text: &str) -> Result<ProviderMessageRef, DecodeError> {
        ProviderMessageRef::parse(text).map_err(|error| self.malformed(error.to_string()))
    }

    fn endpoint(&self, text: &str) -> Result<EndpointId, DecodeError> {
        EndpointId::parse(text).map_err(|error| self.malformed(error.to_string()))
    }

    fn template(&self, text: &str) -> Result<TemplateId, DecodeError> {
        TemplateId::parse(text).map_err(|error| self.malformed(error.to_string()))
    }

    fn workflow(&self, text: &str) -> Result<Workflow, DecodeError> {
        Workflow::parse(text).map_err(|error| self.malformed(error.to_string()))
    }

    fn portfolio(&self, text: &str) -> Result<PortfolioId, DecodeError> {
        PortfolioId::parse(text).map_err(|error| self.malformed(error.to_string()))
    }

    fn known<T>(
        &self,
        what: &str,
        text: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, DecodeError> {
        parse(text).ok_or_else(|| self.malformed(format!("unknown {what} {text:?}")))
    }

    fn rule(&self, text: &str) -> Result<RuleId, DecodeError> {
        self.known("rule", text, RuleId::parse)
    }

    fn provider(&self, text: &str) -> Result<ProviderKind, DecodeError> {
        self.known("provider", text, ProviderKind::parse)
    }

    fn decode(&mut self) -> Result<Event, DecodeError> {
        if let Some(campaign) = self.decode_campaign() {
            return campaign;
        }
        let event: Event = match self.event_type {
            "OptedIn" => {
                let m: OptedInV2 = match self.version {
                    1 => self.mirror::<OptedInV1>()?.into(),
                    _ => self.mirror()?,
                };
                ContactEvent::OptedIn {
                    contact: self.contact(&m.contact)?,
                    source: self.known("opt-in source", &m.source, OptInSource::parse)?,
                    evidence: m.evidence,
                    recorded_by: m.recorded_by,
                    wording_version: m.wording_version,
                    evidence_at: self.at(m.evidence_at_ns),
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "InboundReceived" => {
                let m: InboundReceivedV3 = match self.version {
                    1 => InboundReceivedV2::from(self.mirror::<InboundReceivedV1>()?).into(),
                    2 => self.mirror::<InboundReceivedV2>()?.into(),
                    _ => self.mirror()?,
                };
                ContactEvent::InboundReceived {
                    contact: self.contact(&m.contact)?,
                    sender: m.sender.as_deref().map(|s| self.address(s)).transpose()?,
                    provider_ref: m
                        .provider_ref
                        .as_deref()
                        .map(|r| self.provider_ref(r))
                        .transpose()?,
                    kind: m.kind,
                    text: m.text,
                    provider_at: m.provider_at_ns.map(|at| self.at(at)),
                    details: m.details,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "OptedOut" => {
                let m: OptedOutV2 = match self.version {
                    1 => self.mirror::<OptedOutV1>()?.into(),
                    _ => self.mirror()?,
                };
                ContactEvent::OptedOut {
                    contact: self.contact(&m.contact)?,
                    source: self.known("opt-out source", &m.source, OptOutSource::parse)?,
                    detail: m.detail,
                    evidence_at: self.at(m.evidence_at_ns),
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "OptOutReviewRequested" => {
                let m: OptOutReviewRequestedV1 = self.mirror()?;
                ContactEvent::OptOutReviewRequested {
                    contact: self.contact(&m.contact)?,
                    text: m.text,
                    matched: m.matched,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "FlagRaised" | "FlagCleared" => {
                let m: FlagV1 = self.mirror()?;
                let contact = self.contact(&m.contact)?;
                let flag = self.known("flag", &m.flag, ContactFlag::parse)?;
                let at = self.at(m.at_ns);
                if self.event_type == "FlagRaised" {
                    ContactEvent::FlagRaised {
                        contact,
                        flag,
                        reason: m.reason,
                        at,
                    }
                    .into()
                } else {
                    ContactEvent::FlagCleared {
                        contact,
                        flag,
                        reason: m.reason,
                        at,
                    }
                    .into()
                }
            }
            "WindowReportedClosed" => {
                let m: WindowReportedClosedV2 = match self.version {
                    1 => self.mirror::<WindowReportedClosedV1>()?.into(),
                    _ => self.mirror()?,
                };
                ContactEvent::WindowReportedClosed {
                    contact: self.contact(&m.contact)?,
                    sender: m.sender.as_deref().map(|s| self.address(s)).transpose()?,
                    code: m.code,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "IdentityLinked" => {
                let m: IdentityLinkedV1 = self.mirror()?;
                ContactEvent::IdentityLinked {
                    contact: self.contact(&m.contact)?,
                    other: self.contact(&m.other)?,
                    source: self.known("identity source", &m.source, IdentitySource::parse)?,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "GroupMessageReceived" => {
                let m: GroupMessageReceivedV1 = self.mirror()?;
                ContactEvent::GroupMessageReceived {
                    contact: self.contact(&m.contact)?,
                    group: m.group,
                    sender: m.sender.as_deref().map(|s| self.address(s)).transpose()?,
                    provider_ref: m
                        .provider_ref
                        .as_deref()
                        .map(|r| self.provider_ref(r))
                        .transpose()?,
                    kind: m.kind,
                    text: m.text,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "SenderRegistered" => {
                let m: SenderRegisteredV2 = match self.version {
                    1 => self.mirror::<SenderRegisteredV1>()?.into(),
                    _ => self.mirror()?,
                };
                SenderEvent::Registered {
                    sender: self.address(&m.sender)?,
                    provider: self.provider(&m.provider)?,
                    portfolio: self.portfolio(&m.portfolio)?,
                    meta_phone_number_id: m.meta_phone_number_id,
                    rate: SenderRate {
                        upgraded: m.upgraded,
                        per_second: m.rate_per_second,
                    },
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "SenderAuthorized" => {
                let m: SenderAuthorizedV1 = self.mirror()?;
                SenderEvent::Authorized {
                    sender: self.address(&m.sender)?,
                    by: m.by,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "SenderSuspended" => {
                let m: SenderSuspendedV1 = self.mirror()?;
                SenderEvent::Suspended {
                    sender: self.address(&m.sender)?,
                    reason: m.reason,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "TemplateRegistered" => {
                let m: TemplateRegisteredV1 = self.mirror()?;
                TemplateEvent::Registered {
                    template: self.template(&m.template)?,
                    name: m.name,
                    language: m.language,
                    category: self.known(
                        "template category",
                        &m.category,
                        TemplateCategory::parse,
                    )?,
                    placeholders: m.placeholders,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "TemplateApprovalChanged" => {
                let m: TemplateApprovalChangedV1 = self.mirror()?;
                TemplateEvent::ApprovalChanged {
                    template: self.template(&m.template)?,
                    status: self.known("approval status", &m.status, ApprovalStatus::parse)?,
                    reason: m.reason,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "TemplateCreated" => {
                let m: TemplateCreatedV1 = self.mirror()?;
                let header = |h: TemplateHeaderV1| -> Result<TemplateHeader, DecodeError> {
                    Ok(TemplateHeader {
                        format: self.known("header format", &h.format, HeaderFormat::parse)?,
                        value: h.value,
                    })
                };
                let buttons =
                    |list: Vec<TemplateButtonV1>| -> Result<Vec<TemplateButton>, DecodeError> {
                        list.into_iter()
                            .map(|b| {
                                Ok(TemplateButton {
                                    kind: self.known("button kind", &b.kind, ButtonKind::parse)?,
                                    text: b.text,
                                    value: b.value,
                                })
                            })
                            .collect()
                    };
                let mut cards = Vec::with_capacity(m.cards.len());
                for card in m.cards {
                    cards.push(TemplateCard {
                        header: header(card.header)?,
                        body: card.body,
                        buttons: buttons(card.buttons)?,
                    });
                }
                TemplateEvent::Created {
                    template: self.template(&m.template)?,
                    provider: self.known("provider", &m.provider, ProviderKind::parse)?,
                    provider_ref: m.provider_ref,
                    name: m.name,
                    language: m.language,
                    category: self.known(
                        "template category",
                        &m.category,
                        TemplateCategory::parse,
                    )?,
                    content: TemplateContent {
                        body: m.body,
                        header: m.header.map(header).transpose()?,
                        buttons: buttons(m.buttons)?,
                        cards,
                    },
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "SenderQualityReported" => {
                let m: SenderQualityReportedV1 = self.mirror()?;
                SenderEvent::QualityReported {
                    sender: self.address(&m.sender)?,
                    event: m.event,
                    dropped: m.dropped,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "TemplateCategoryReported" => {
                let m: TemplateCategoryReportedV1 = self.mirror()?;
                TemplateEvent::CategoryReported {
                    template: self.template(&m.template)?,
                    category: self.known(
                        "template category",
                        &m.category,
                        TemplateCategory::parse,
                    )?,
                    previous: m.previous,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "TemplateStatusReported" => {
                let m: TemplateStatusReportedV1 = self.mirror()?;
                TemplateEvent::StatusReported {
                    template: self.template(&m.template)?,
                    status: self.known("approval status", &m.status, ApprovalStatus::parse)?,
                    reason: m.reason,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "MessagingLimitChanged" => {
                let m: MessagingLimitChangedV1 = self.mirror()?;
                PortfolioEvent::MessagingLimitChanged {
                    portfolio: self.portfolio(&m.portfolio)?,
                    limit: m
                        .limit
                        .map_or(MessagingLimit::Unlimited, MessagingLimit::Limited),
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "ProviderNoticeReceived" => {
                let m: ProviderNoticeReceivedV1 = self.mirror()?;
                ProviderEvent::NoticeReceived {
                    provider: self.provider(&m.provider)?,
                    subject: m.subject,
                    kind: m.kind,
                    details: m.details,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "RecipientReached" => {
                let m: RecipientReachedV1 = self.mirror()?;
                PortfolioEvent::RecipientReached {
                    portfolio: self.portfolio(&m.portfolio)?,
                    contact: self.contact(&m.contact)?,
                    message_id: self.message_id(m.message_id)?,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "ReviewRaised" => {
                let m: ReviewRaisedV1 = self.mirror()?;
                ReviewEvent::Raised {
                    reason: self.known("review reason", &m.reason, ReviewReason::parse)?,
                    subject: ReviewSubject {
                        contact: m
                            .subject
                            .contact
                            .as_deref()
                            .map(|c| self.contact(c))
                            .transpose()?,
                        message_id: m
                            .subject
                            .message_id
                            .map(|raw| self.message_id(raw))
                            .transpose()?,
                        sender: m
                            .subject
                            .sender
                            .as_deref()
                            .map(|s| self.address(s))
                            .transpose()?,
                        template: m
                            .subject
                            .template
                            .as_deref()
                            .map(|t| self.template(t))
                            .transpose()?,
                    },
                    detail: m.detail,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "ReviewResolved" => {
                let m: ReviewResolvedV1 = self.mirror()?;
                ReviewEvent::Resolved {
                    item: m.item,
                    reason: self.known("review reason", &m.reason, ReviewReason::parse)?,
                    decision: self.known("review decision", &m.decision, ReviewDecision::parse)?,
                    note: m.note,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "ConsentWordingPublished" => {
                let m: ConsentWordingPublishedV1 = self.mirror()?;
                ConsentEvent::WordingPublished {
                    version: m.version,
                    business: m.business,
                    language: m.language,
                    text: m.text,
                    text_hash: m.text_hash,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "ConsentCampaignCreated" => {
                let m: ConsentCampaignCreatedV2 = match self.version {
                    1 => self.mirror::<ConsentCampaignCreatedV1>()?.into(),
                    _ => self.mirror()?,
                };
                ConsentEvent::CampaignCreated {
                    campaign: m.campaign,
                    sender: self.address(&m.sender)?,
                    wording_version: m.wording_version,
                    workflows: m
                        .workflows
                        .iter()
                        .map(|w| self.workflow(w))
                        .collect::<Result<_, _>>()?,
                    medium: self.known("campaign medium", &m.medium, CampaignMedium::parse)?,
                    confirmation_template: m
                        .confirmation_template
                        .as_deref()
                        .map(|t| self.template(t))
                        .transpose()?,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "OptInRequested" => {
                let m: OptInRequestedV1 = self.mirror()?;
                ConsentEvent::OptInRequested {
                    contact: self.contact(&m.contact)?,
                    campaign: m.campaign,
                    wording_version: m.wording_version,
                    text_hash: m.text_hash,
                    evidence: m.evidence,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "ConsentCampaignClosed" => {
                let m: ConsentCampaignClosedV1 = self.mirror()?;
                ConsentEvent::CampaignClosed {
                    campaign: m.campaign,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "OptInConfirmationSent" => {
                let m: OptInConfirmationSentV1 = self.mirror()?;
                ConsentEvent::ConfirmationSent {
                    contact: self.contact(&m.contact)?,
                    campaign: m.campaign,
                    message_id: self.message_id(m.message_id)?,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "WebhookEndpointRegistered" => {
                let m: WebhookEndpointRegisteredV1 = self.mirror()?;
                let events = m
                    .events
                    .iter()
                    .map(|kind| self.known("outgoing event kind", kind, OutgoingEventKind::parse))
                    .collect::<Result<Vec<_>, _>>()?;
                EndpointEvent::Registered {
                    endpoint: self.endpoint(&m.endpoint)?,
                    url: m.url,
                    events,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "WebhookEndpointDeleted" => {
                let m: WebhookEndpointDeletedV1 = self.mirror()?;
                EndpointEvent::Deleted {
                    endpoint: self.endpoint(&m.endpoint)?,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "WebhookEndpointDisabled" => {
                let m: WebhookEndpointDisabledV1 = self.mirror()?;
                EndpointEvent::Disabled {
                    endpoint: self.endpoint(&m.endpoint)?,
                    reason: m.reason,
                    failing_since: self.at(m.failing_since_ns),
                    at: self.at(m.at_ns),
                }
                .into()
            }
            "WebhookEndpointEnabled" => {
                let m: WebhookEndpointEnabledV1 = self.mirror()?;
                EndpointEvent::Enabled {
                    endpoint: self.endpoint(&m.endpoint)?,
                    at: self.at(m.at_ns),
                }
                .into()
            }
            _ => self.decode_message()?.into(),
        };
        Ok(event)
    }

    fn decode_message(&mut self) -> Result<MessageEvent, DecodeError> {
        Ok(match self.event_type {
            "TemplateSent" => {
                let m: TemplateSentV2 = match self.version {
                    1 => self.mirror::<TemplateSentV1>()?.into(),
                    _ => self.mirror()?,
                };
                let mut media = Vec::with_capacity(m.media.len());
                for (card, kind, url) in m.media {
                    let kind = MediaKind::parse(&kind)
                        .ok_or_else(|| self.malformed(format!("unknown media kind {kind:?}")))?;
                    media.push(
                        TemplateMedia::new(card, kind, &url)
                            .map_err(|e| self.malformed(e.to_string()))?,
                    );
                }
                MessageEvent::TemplateSent {
                    media,
                    message_id: self.message_id(m.message_id)?,
                    contact: self.contact(&m.contact)?,
                    sender: self.address(&m.sender)?,
                    template: self.template(&m.template)?,
                    category: self.known(
                        "template category",
                        &m.category,
                        TemplateCategory::parse,
                    )?,
                    variables: m.variables,
                    workflow: self.workflow(&m.workflow)?,
                    at: self.at(m.at_ns),
                }
            }
            "ReplySent" => {
                let m: ReplySentV2 = match self.version {
                    1 => self.mirror::<ReplySentV1>()?.into(),
                    _ => self.mirror()?,
                };
                let rich = match m.rich {
                    None => None,
                    Some(rich) => Some(rich.into_domain().map_err(|e| self.malformed(e))?),
                };
                MessageEvent::ReplySent {
                    message_id: self.message_id(m.message_id)?,
                    contact: self.contact(&m.contact)?,
                    sender: self.address(&m.sender)?,
                    text: m.text,
                    rich,
                    workflow: self.workflow(&m.workflow)?,
                    at: self.at(m.at_ns),
                }
            }
            "SendRefused" => {
                let m: SendRefusedV3 = match self.version {
                    1 => SendRefusedV2::from(self.mirror::<SendRefusedV1>()?).into(),
                    2 => self.mirror::<SendRefusedV2>()?.into(),
                    _ => self.mirror()?,
                };
                MessageEvent::SendRefused {
                    message_id: self.message_id(m.message_id)?,
                    to: m.to,
                    sender: self.address(&m.sender)?,
                    template: m
                        .template
                        .as_deref()
                        .map(|template| self.template(template))
                        .transpose()?,
                    rule: self.rule(&m.rule)?,
                    message: m.message,
                    also_broken: m
                        .also_broken
                        .iter()
                        .map(|rule| self.rule(rule))
                        .collect::<Result<_, _>>()?,
                    at: self.at(m.at_ns),
                }
            }
            "DispatchClaimed" => {
                let m: DispatchClaimedV1 = self.mirror()?;
                MessageEvent::DispatchClaimed {
                    message_id: self.message_id(m.message_id)?,
                    attempt: m.attempt,
                    at: self.at(m.at_ns),
                }
            }
            "ClaimRefused" => {
                let m: ClaimRefusedV1 = self.mirror()?;
                MessageEvent::ClaimRefused {
                    message_id: self.message_id(m.message_id)?,
                    attempt: m.attempt,
                    rule: self.rule(&m.rule)?,
                    message: m.message,
                    at: self.at(m.at_ns),
                }
            }
            "DispatchSucceeded" => {
                let m: DispatchSucceededV1 = self.mirror()?;
                MessageEvent::DispatchSucceeded {
                    message_id: self.message_id(m.message_id)?,
                    attempt: m.attempt,
                    provider_ref: self.provider_ref(&m.provider_ref)?,
                    provider_status: MessageStatus::parse(&m.provider_status),
                    at: self.at(m.at_ns),
                }
            }
            "DispatchFailed" => {
                let m: DispatchFailedV1 = self.mirror()?;
                MessageEvent::DispatchFailed {
                    message_id: self.message_id(m.message_id)?,
                    attempt: m.attempt,
                    error: ProviderError {
                        provider: self.provider(&m.error.provider)?,
                        code: m.error.code,
                        http_status: m.error.http_status,
                        message: m.error.message,
                    },
                    retry: if m.retryable {
                        Retry::Retryable
                    } else {
                        Retry::Permanent
                    },
                    retry_at: m.retry_at_ns.map(|at| self.at(at)),
                    at: self.at(m.at_ns),
                }
            }
            "StatusChanged" => {
                let m: StatusChangedV3 = match self.version {
                    1 => StatusChangedV2::from(self.mirror::<StatusChangedV1>()?).into(),
                    2 => self.mirror::<StatusChangedV2>()?.into(),
                    _ => self.mirror()?,
                };
                MessageEvent::StatusChanged {
                    message_id: self.message_id(m.message_id)?,
                    provider_ref: m
                        .provider_ref
                        .as_deref()
                        .map(|r| self.provider_ref(r))
                        .transpose()?,
                    status: MessageStatus::parse(&m.status),
                    error_code: m.error_code,
                    details: m.details,
                    pricing: m.pricing.map(|p| StatusPricing {
                        billable: p.billable,
                        pricing_model: p.pricing_model,
                        category: p.category,
                        kind: p.kind,
                    }),
                    at: self.at(m.at_ns),
                }
            }
            "ProviderPriceReported" => {
                let m: ProviderPriceReportedV1 = self.mirror()?;
                MessageEvent::PriceReported {
                    message_id: self.message_id(m.message_id)?,
                    provider: self.provider(&m.provider)?,
                    amount_micros: m.amount_micros,
                    currency: m.currency,
                    at: self.at(m.at_ns),
                }
            }
            "InDoubtExpired" => {
                let m: InDoubtExpiredV1 = self.mirror()?;
                MessageEvent::InDoubtExpired {
                    message_id: self.message_id(m.message_id)?,
                    attempt: m.attempt,
                    at: self.at(m.at_ns),
                }
            }
            "UnmatchedStatusReceived" => {
                let m: UnmatchedStatusReceivedV2 = match self.version {
                    1 => self.mirror::<UnmatchedStatusReceivedV1>()?.into(),
                    _ => self.mirror()?,
                };
                MessageEvent::UnmatchedStatusReceived {
                    provider_ref: self.provider_ref(&m.provider_ref)?,
                    status: MessageStatus::parse(&m.status),
                    error_code: m.error_code,
                    details: m.details,
                    at: self.at(m.at_ns),
                }
            }
            other => {
                return Err(DecodeError::UnknownType {
                    event_type: other.to_owned(),
                })
            }
        })
    }
}
