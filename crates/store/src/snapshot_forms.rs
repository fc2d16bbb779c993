//! Persisted forms of the app's snapshots, versioned like the events' schema versions: the
//! bytes start with a format version (u16, big-endian), then the postcard body of that version.
//! A reader that finds another version, or bytes that do not decode, gets a [`FormError`] and
//! rebuilds the state from the log; a snapshot is never trusted blindly. The domain stays free
//! of serde: these forms hold identifiers as their text (each domain id parses its `Display`).

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use wagate_domain::contact::SenderWindow;
use wagate_domain::{
    Consent, ConsentReceipt, ContactId, ContactState, MessageId, MessagingLimit, OptInSource,
    OptOutSource, PortfolioId, PortfolioState, ReviewState, Timestamp, WhatsAppAddress,
};

/// The projection snapshot's current form (2: adds the provider ids kept in memory, and no
/// longer has one index entry per message dispatched; a form-1 snapshot is not restored, the
/// projection is rebuilt from the log and its next save replaces the slot's index whole, which
/// removes those entries).
pub const PROJECTION_FORM: u16 = 2;
/// The portfolio aggregate snapshot's current form (2: the reaches of the rolling 24 h and the
/// newest event's time they are relative to; 1, which kept two periods and no time, still
/// restores, pruned to the 24 h before its newest reach).
pub const PORTFOLIO_FORM: u16 = 2;
/// The contact aggregate snapshot's current form.
pub const CONTACT_FORM: u16 = 1;
/// The ops counts snapshot's current form.
pub const COUNTS_FORM: u16 = 1;
/// The cost ledger's snapshot's current form (2: adds the charged messages awaiting their
/// provider's price; a form-1 snapshot is not restored, the ledger is rebuilt from the log).
pub const COSTS_FORM: u16 = 2;
/// The review queue's aggregate (`review:queue`) snapshot's current form.
pub const REVIEW_FORM: u16 = 1;
/// A webhook endpoint's delivery log (slot `webhook-deliveries:<id>`) current form, of its
/// state and of each attempt entry.
pub const DELIVERY_LOG_FORM: u16 = 1;

/// Why snapshot bytes were not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error("snapshot form {found}, this build reads form {expected}")]
    Version { found: u16, expected: u16 },
    #[error("snapshot bytes do not decode: {0}")]
    Malformed(String),
}

/// Form 1 of the projection, no longer written nor restored (see [`PROJECTION_FORM`]): its
/// slot index held one `p` entry per message ever dispatched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionV1 {
    pub senders: Vec<String>,
    pub templates: Vec<String>,
    /// Open messages (UUID bytes) with the log position of their intent event.
    pub open_messages: Vec<([u8; 16], u64)>,
}

/// The projection's in-memory part: what is bounded by open work and a horizon of recent
/// messages (a contact's recent messages are the slot's entries, read from disk on demand).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionV2 {
    pub senders: Vec<String>,
    pub templates: Vec<String>,
    /// Open messages (UUID bytes) with the log position of their intent event.
    pub open_messages: Vec<([u8; 16], u64)>,
    /// The newest event time observed (unix seconds): what the horizon is relative to.
    pub newest: Option<i64>,
    /// The messages whose provider ids are kept (open, or with an event within the
    /// projection's horizon), as [`encode_provider_refs`] bytes: most of the snapshot, so kept
    /// apart to be decoded apart (the app does it in the background at start). Read as one
    /// byte string (the same postcard bytes as a sequence of `u8`, copied at once instead of
    /// byte by byte: at 600,000 provider ids this field is ~90 MB).
    #[serde(with = "byte_string")]
    pub provider_refs: Vec<u8>,
}

/// `Vec<u8>` fields written and read as postcard byte strings (varint length, then the bytes:
/// exactly what a sequence of `u8` is in postcard, so the encoding does not change).
mod byte_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        crate::envelope::ByteBuf::deserialize(deserializer).map(|bytes| bytes.0)
    }
}

/// The provider ids a projection keeps, by message: UUID bytes, the time of its latest event
/// (unix seconds), its provider ids. Versioned by the [`ProjectionV2`] that holds it.
pub type ProviderRefsV1 = Vec<([u8; 16], i64, Vec<String>)>;

pub fn encode_provider_refs(refs: &ProviderRefsV1) -> Vec<u8> {
    // As in `encode_versioned`: a Vec grows, and these are supported types.
    postcard::to_allocvec(refs).unwrap_or_default()
}

pub fn decode_provider_refs(bytes: &[u8]) -> Result<ProviderRefsV1, FormError> {
    match postcard::take_from_bytes::<ProviderRefsV1>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(FormError::Malformed(format!(
            "{} bytes left over",
            rest.len()
        ))),
        Err(error) => Err(FormError::Malformed(error.to_string())),
    }
}

/// The ops counts' state (the app's `counts` module): aggregated rows, and the funnel entries
/// of the messages still open (bounded by open work). Rules and outcomes are held by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsV1 {
    /// Hour number (unix hours) → rule name → refusals.
    pub refusals: Vec<(i64, Vec<(String, u64)>)>,
    /// Workflow, template, messages per stage.
    pub funnel: Vec<(String, String, [u64; 8])>,
    /// Open messages' entries: UUID bytes, index of their row in `funnel`, the stages reached
    /// (bits), their intent's time (unix seconds).
    pub messages: Vec<([u8; 16], u32, u8, i64)>,
    /// Outcome name → count.
    pub dispatch: Vec<(String, u64)>,
    /// Claimed messages without an outcome (UUID bytes).
    pub awaiting_outcome: Vec<[u8; 16]>,
    /// Each portfolio's state in its own form ([`encode_portfolio`]).
    pub portfolios: Vec<Vec<u8>>,
    /// The newest event time seen (unix seconds): what ages the funnel entries.
    pub newest: Option<i64>,
}

/// The cost ledger's state (the app's `costs` module): the sums per group, and the messages
/// still waiting to be charged (bounded by open work). Everything is held as text or integers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostsV2 {
    /// A digest of the price table the sums were priced with: another table rebuilds them.
    pub prices: String,
    /// Dimension (0 campaign, 1 workflow, 2 template, 3 sender, 4 month), key, currency (`None`:
    /// unpriced), [messages, billable, unpriced], provider micros, fee micros.
    pub groups: Vec<CostGroupV1>,
    /// Messages waiting: UUID bytes and their entry.
    pub messages: Vec<([u8; 16], CostEntryV1)>,
    /// Campaign attributions seen before their message's intent: UUID bytes, campaign, unix
    /// seconds.
    pub pending_campaigns: Vec<([u8; 16], String, i64)>,
    /// Open customer-service windows: contact, business number (`None`: any), last inbound
    /// (unix seconds).
    pub windows: Vec<(String, Option<String>, i64)>,
    /// The newest event time seen (unix seconds).
    pub newest: Option<i64>,
    /// Charged Twilio messages awaiting the price Twilio reports: UUID bytes, their five group
    /// keys (campaign, workflow, template, sender, month), the currency and provider micros
    /// they were charged with, when they were charged (unix seconds).
    pub awaiting_price: Vec<AwaitingPriceV2>,
}

/// A charged Twilio message awaiting its price: UUID bytes, group keys, currency, provider
/// micros, charged at (unix seconds).
pub type AwaitingPriceV2 = ([u8; 16], [String; 5], Option<String>, i64, i64);

/// One group's sums: dimension, key, currency, [messages, billable, unpriced], provider micros,
/// fee micros.
pub type CostGroupV1 = (u8, String, Option<String>, [u64; 3], i64, i64);

/// One message waiting to be charged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostEntryV1 {
    pub workflow: String,
    pub template: String,
    pub sender: String,
    pub campaign: Option<String>,
    /// The category it is priced by unless the provider reports one (`marketing`, …).
    pub category: String,
    /// The recipient (`+E164` or `bsuid:…`).
    pub contact: String,
    pub window_open: bool,
    pub intent_at: i64,
    /// What the provider reported in `pricing` (category as Meta spells it, billable).
    pub provider_category: Option<String>,
    pub billable: Option<bool>,
}

pub fn encode_costs(form: &CostsV2) -> Vec<u8> {
    encode_versioned(COSTS_FORM, form)
}

pub fn decode_costs(bytes: &[u8]) -> Result<CostsV2, FormError> {
    decode_versioned(COSTS_FORM, bytes)
}

pub fn encode_counts(form: &CountsV1) -> Vec<u8> {
    encode_versioned(COUNTS_FORM, form)
}

pub fn decode_counts(bytes: &[u8]) -> Result<CountsV1, FormError> {
    decode_versioned(COUNTS_FORM, bytes)
}

/// A webhook endpoint's delivery log state: the next attempt's number (attempts are the slot's
/// entries, keyed by number; the oldest beyond the bound are removed as new ones are written),
/// and the endpoint's health. Times are (unix seconds, nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryLogV1 {
    pub next: u64,
    /// The first failure since the last acknowledged attempt (`None`: not failing).
    pub failing_since: Option<(i64, u32)>,
    pub last_success: Option<(i64, u32)>,
}

/// One delivery attempt: never a body, a header or a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttemptV1 {
    pub position: u64,
    pub event_id: String,
    /// The outgoing kind's name (`opted_out`, …).
    pub kind: String,
    pub at: (i64, u32),
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The transport error, when it did not (or how an answer was read).
    pub error: Option<String>,
    /// 1 for the first attempt of this event, counting on while it fails.
    pub attempt: u32,
    pub acknowledged: bool,
}

pub fn encode_delivery_log(form: &DeliveryLogV1) -> Vec<u8> {
    encode_versioned(DELIVERY_LOG_FORM, form)
}

pub fn decode_delivery_log(bytes: &[u8]) -> Result<DeliveryLogV1, FormError> {
    decode_versioned(DELIVERY_LOG_FORM, bytes)
}

pub fn encode_delivery_attempt(form: &DeliveryAttemptV1) -> Vec<u8> {
    encode_versioned(DELIVERY_LOG_FORM, form)
}

pub fn decode_delivery_attempt(bytes: &[u8]) -> Result<DeliveryAttemptV1, FormError> {
    decode_versioned(DELIVERY_LOG_FORM, bytes)
}

fn encode_versioned<T: Serialize>(version: u16, body: &T) -> Vec<u8> {
    let mut bytes = version.to_be_bytes().to_vec();
    // postcard only fails on a full buffer or an unsupported type; a Vec grows and these forms
    // hold only supported types.
    bytes.extend(postcard::to_allocvec(body).unwrap_or_default());
    bytes
}

fn decode_versioned<'a, T: Deserialize<'a>>(
    expected: u16,
    bytes: &'a [u8],
) -> Result<T, FormError> {
    let (version, body) = match bytes {
        [a, b, body @ ..] => (u16::from_be_bytes([*a, *b]), body),
        _ => return Err(FormError::Malformed("shorter than its version".into())),
    };
    if version != expected {
        return Err(FormError::Version {
            found: version,
            expected,
        });
    }
    match postcard::take_from_bytes::<T>(body) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(FormError::Malformed(format!(
            "{} bytes left over",
            rest.len()
        ))),
        Err(error) => Err(FormError::Malformed(error.to_string())),
    }
}

pub fn encode_projection(form: &ProjectionV2) -> Vec<u8> {
    encode_versioned(PROJECTION_FORM, form)
}

pub fn decode_projection(bytes: &[u8]) -> Result<ProjectionV2, FormError> {
    decode_versioned(PROJECTION_FORM, bytes)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum LimitV1 {
    Limited(u32),
    Unlimited,
}

/// A timestamp as seconds and nanoseconds since the epoch (exact).
type TimeV1 = (i64, u32);

fn time_form(at: &Timestamp) -> TimeV1 {
    (at.timestamp(), at.timestamp_subsec_nanos())
}

fn time_of((secs, nanos): TimeV1) -> Result<Timestamp, FormError> {
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| FormError::Malformed(format!("time {secs}.{nanos} out of range")))
}

/// Form 1 of the portfolio: read only (restored, then pruned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PortfolioV1 {
    id: Option<String>,
    limit: Option<LimitV1>,
    reached: Vec<(String, TimeV1)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PortfolioV2 {
    id: Option<String>,
    limit: Option<LimitV1>,
    /// The reaches of the 24 h before `newest`, oldest first.
    reached: Vec<(String, TimeV1)>,
    /// The newest event applied.
    newest: Option<TimeV1>,
}

pub fn encode_portfolio(state: &PortfolioState) -> Vec<u8> {
    let form = PortfolioV2 {
        id: state.id.as_ref().map(ToString::to_string),
        limit: state.limit.map(|limit| match limit {
            MessagingLimit::Limited(n) => LimitV1::Limited(n),
            MessagingLimit::Unlimited => LimitV1::Unlimited,
        }),
        reached: state
            .reached()
            .map(|(contact, at)| (contact.to_string(), time_form(at)))
            .collect(),
        newest: state.newest().as_ref().map(time_form),
    };
    encode_versioned(PORTFOLIO_FORM, &form)
}

/// Decodes form 2, or form 1 (the counts snapshot embeds portfolios, and a slot may still hold
/// form 1 until the next save).
pub fn decode_portfolio(bytes: &[u8]) -> Result<PortfolioState, FormError> {
    let (id, limit, reached, newest) = match decode_versioned::<PortfolioV2>(PORTFOLIO_FORM, bytes)
    {
        Ok(form) => (form.id, form.limit, form.reached, form.newest),
        Err(FormError::Version { found: 1, .. }) => {
            let form: PortfolioV1 = decode_versioned(1, bytes)?;
            (form.id, form.limit, form.reached, None)
        }
        Err(error) => return Err(error),
    };
    let malformed = |error: wagate_domain::IdError| FormError::Malformed(error.to_string());
    let id = id
        .map(|id| PortfolioId::parse(&id).map_err(malformed))
        .transpose()?;
    let limit = limit.map(|limit| match limit {
        LimitV1::Limited(n) => MessagingLimit::Limited(n),
        LimitV1::Unlimited => MessagingLimit::Unlimited,
    });
    let reached = reached
        .into_iter()
        .map(|(contact, at)| Ok((ContactId::parse(&contact).map_err(malformed)?, time_of(at)?)))
        .collect::<Result<Vec<_>, FormError>>()?;
    let newest = newest.map(time_of).transpose()?;
    Ok(PortfolioState::from_parts(id, limit, reached, newest))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReceiptV1 {
    source: String,
    evidence: String,
    recorded_by: String,
    wording_version: String,
    evidence_at: TimeV1,
    at: TimeV1,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum ConsentV1 {
    Unknown,
    OptedIn(ReceiptV1),
    OptedOut {
        source: String,
        detail: String,
        evidence_at: TimeV1,
        at: TimeV1,
        withdrawn: Option<ReceiptV1>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ContactV1 {
    id: Option<String>,
    consent: ConsentV1,
    last_inbound_at: Option<TimeV1>,
    /// Per business number: last inbound, reported closed.
    windows: Vec<(String, Option<TimeV1>, Option<TimeV1>)>,
    last_opt_out_at: Option<TimeV1>,
    not_on_whatsapp_since: Option<TimeV1>,
    marketing_paused_since: Option<TimeV1>,
    reviews_requested: u32,
    linked: Vec<String>,
}

fn receipt_form(receipt: &ConsentReceipt) -> ReceiptV1 {
    ReceiptV1 {
        source: receipt.source.as_str().into(),
        evidence: receipt.evidence.clone(),
        recorded_by: receipt.recorded_by.clone(),
        wording_version: receipt.wording_version.clone(),
        evidence_at: time_form(&receipt.evidence_at),
        at: time_form(&receipt.at),
    }
}

fn receipt_of(form: ReceiptV1) -> Result<ConsentReceipt, FormError> {
    Ok(ConsentReceipt {
        source: OptInSource::parse(&form.source)
            .ok_or_else(|| FormError::Malformed(format!("opt-in source {}", form.source)))?,
        evidence: form.evidence,
        recorded_by: form.recorded_by,
        wording_version: form.wording_version,
        evidence_at: time_of(form.evidence_at)?,
        at: time_of(form.at)?,
    })
}

fn optional_time(at: Option<TimeV1>) -> Result<Option<Timestamp>, FormError> {
    at.map(time_of).transpose()
}

pub fn encode_contact(state: &ContactState) -> Vec<u8> {
    let consent = match &state.consent {
        Consent::Unknown => ConsentV1::Unknown,
        Consent::OptedIn(receipt) => ConsentV1::OptedIn(receipt_form(receipt)),
        Consent::OptedOut {
            source,
            detail,
            evidence_at,
            at,
            withdrawn,
        } => ConsentV1::OptedOut {
            source: source.as_str().into(),
            detail: detail.clone(),
            evidence_at: time_form(evidence_at),
            at: time_form(at),
            withdrawn: withdrawn.as_ref().map(receipt_form),
        },
    };
    let form = ContactV1 {
        id: state.id.as_ref().map(ToString::to_string),
        consent,
        last_inbound_at: state.last_inbound_at.as_ref().map(time_form),
        windows: state
            .windows
            .iter()
            .map(|(sender, window)| {
                (
                    sender.to_string(),
                    window.last_inbound_at.as_ref().map(time_form),
                    window.reported_closed_at.as_ref().map(time_form),
                )
            })
            .collect(),
        last_opt_out_at: state.last_opt_out_at.as_ref().map(time_form),
        not_on_whatsapp_since: state.not_on_whatsapp_since.as_ref().map(time_form),
        marketing_paused_since: state.marketing_paused_since.as_ref().map(time_form),
        reviews_requested: state.reviews_requested,
        linked: state.linked.iter().map(ToString::to_string).collect(),
    };
    encode_versioned(CONTACT_FORM, &form)
}

pub fn decode_contact(bytes: &[u8]) -> Result<ContactState, FormError> {
    let form: ContactV1 = decode_versioned(CONTACT_FORM, bytes)?;
    let malformed = |error: wagate_domain::IdError| FormError::Malformed(error.to_string());
    let consent = match form.consent {
        ConsentV1::Unknown => Consent::Unknown,
        ConsentV1::OptedIn(receipt) => Consent::OptedIn(receipt_of(receipt)?),
        ConsentV1::OptedOut {
            source,
            detail,
            evidence_at,
            at,
            withdrawn,
        } => Consent::OptedOut {
            source: OptOutSource::parse(&source)
                .ok_or_else(|| FormError::Malformed(format!("opt-out source {source}")))?,
            detail,
            evidence_at: time_of(evidence_at)?,
            at: time_of(at)?,
            withdrawn: withdrawn.map(receipt_of).transpose()?,
        },
    };
    let mut windows = std::collections::BTreeMap::new();
    for (sender, last_inbound_at, reported_closed_at) in form.windows {
        windows.insert(
            WhatsAppAddress::parse(&sender).map_err(malformed)?,
            SenderWindow {
                last_inbound_at: optional_time(last_inbound_at)?,
                reported_closed_at: optional_time(reported_closed_at)?,
            },
        );
    }
    Ok(ContactState {
        id: form
            .id
            .map(|id| ContactId::parse(&id).map_err(malformed))
            .transpose()?,
        consent,
        last_inbound_at: optional_time(form.last_inbound_at)?,
        windows,
        last_opt_out_at: optional_time(form.last_opt_out_at)?,
        not_on_whatsapp_since: optional_time(form.not_on_whatsapp_since)?,
        marketing_paused_since: optional_time(form.marketing_paused_since)?,
        reviews_requested: form.reviews_requested,
        linked: form
            .linked
            .iter()
            .map(|id| ContactId::parse(id).map_err(malformed))
            .collect::<Result<_, _>>()?,
    })
}

/// The review stream's state: resolved item ids, messages raised as overdue (UUID bytes), and
/// when the last rejection-burst and silence items were raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReviewV1 {
    resolved: Vec<u64>,
    overdue_raised: Vec<[u8; 16]>,
    rejections_raised_at: Option<TimeV1>,
    silence_raised_at: Option<TimeV1>,
}

pub fn encode_review(state: &ReviewState) -> Vec<u8> {
    let form = ReviewV1 {
        resolved: state.resolved.iter().copied().collect(),
        overdue_raised: state
            .overdue_raised
            .iter()
            .map(|id| id.as_uuid().into_bytes())
            .collect(),
        rejections_raised_at: state.rejections_raised_at.as_ref().map(time_form),
        silence_raised_at: state.silence_raised_at.as_ref().map(time_form),
    };
    encode_versioned(REVIEW_FORM, &form)
}

pub fn decode_review(bytes: &[u8]) -> Result<ReviewState, FormError> {
    let form: ReviewV1 = decode_versioned(REVIEW_FORM, bytes)?;
    Ok(ReviewState {
        resolved: form.resolved.into_iter().collect(),
        overdue_raised: form
            .overdue_raised
            .into_iter()
            .map(|bytes| {
                MessageId::from_uuid(uuid::Uuid::from_bytes(bytes))
                    .map_err(|error| FormError::Malformed(error.to_string()))
            })
            .collect::<Result<_, _>>()?,
        rejections_raised_at: optional_time(form.rejections_raised_at)?,
        silence_raised_at: optional_time(form.silence_raised_at)?,
    })
}

#[cfg(test)]
mod byte_string_tests {
    /// The byte-string field encodes exactly as the `Vec<u8>` sequence it replaced, so
    /// snapshots written before decode unchanged.
    #[test]
    fn a_byte_string_field_encodes_as_a_sequence_of_u8() {
        #[derive(serde::Serialize)]
        struct Before {
            bytes: Vec<u8>,
        }
        let form = super::ProjectionV2 {
            provider_refs: (0..=255u8).chain(0..=255).collect(),
            ..Default::default()
        };
        let before = (
            &form.senders,
            &form.templates,
            &form.open_messages,
            &form.newest,
            Before {
                bytes: form.provider_refs.clone(),
            },
        );
        let encoded = postcard::to_allocvec(&form).expect("encode");
        assert_eq!(encoded, postcard::to_allocvec(&before).expect("encode"));
        let decoded: super::ProjectionV2 = postcard::from_bytes(&encoded).expect("decode");
        assert_eq!(decoded, form);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_state_round_trips() {
        let at = DateTime::from_timestamp(1_764_000_000, 9).expect("time");
        let state = ReviewState {
            resolved: [3, 17, 4_000_000_000].into(),
            overdue_raised: [MessageId::from_uuid(uuid::Uuid::now_v7()).expect("id")].into(),
            rejections_raised_at: Some(at),
            silence_raised_at: None,
        };
        let bytes = encode_review(&state);
        assert_eq!(decode_review(&bytes), Ok(state));
        assert!(decode_review(&bytes[..bytes.len() - 1]).is_err());
        let mut other = bytes.clone();
        other[..2].copy_from_slice(&2u16.to_be_bytes());
        assert!(matches!(
            decode_review(&other),
            Err(FormError::Version { found: 2, .. })
        ));
    }

    #[test]
    fn a_portfolio_round_trips() {
        use wagate_domain::PortfolioEvent;
        let portfolio = PortfolioId::parse("default").expect("id");
        let at = DateTime::from_timestamp(1_764_000_000, 123).expect("time");
        let state = PortfolioState::default()
            .apply(&PortfolioEvent::MessagingLimitChanged {
                portfolio: portfolio.clone(),
                limit: MessagingLimit::Limited(1000),
                at,
            })
            .apply(&PortfolioEvent::RecipientReached {
                portfolio,
                contact: ContactId::parse("+41790000001").expect("contact"),
                message_id: wagate_domain::MessageId::from_uuid(uuid::Uuid::now_v7()).expect("id"),
                at,
            });
        let bytes = encode_portfolio(&state);
        assert_eq!(decode_portfolio(&bytes), Ok(state));
        assert!(decode_portfolio(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_form_1_portfolio_restores_pruned_to_its_rolling_24_h() {
        let contact = |n: u8| format!("+4179000000{n}");
        let t = |hours: i64| (1_764_000_000 + hours * 3600, 0);
        let form = PortfolioV1 {
            id: Some("default".into()),
            limit: Some(LimitV1::Limited(250)),
            // Form 1 kept two periods: the reach 30 h before the newest is dropped.
            reached: vec![(contact(1), t(0)), (contact(2), t(20)), (contact(3), t(30))],
        };
        let state = decode_portfolio(&encode_versioned(1, &form)).expect("form 1 restores");
        let kept: Vec<String> = state.reached().map(|(c, _)| c.to_string()).collect();
        assert_eq!(kept, [contact(2), contact(3)]);
        assert_eq!(state.limit, Some(MessagingLimit::Limited(250)));
        assert_eq!(state.newest(), Some(time_of(t(30)).expect("time")));
        // Saved again it is form 2, and round-trips.
        let bytes = encode_portfolio(&state);
        assert_eq!(u16::from_be_bytes([bytes[0], bytes[1]]), 2);
        assert_eq!(decode_portfolio(&bytes), Ok(state));
        // A form this build does not know is refused (rebuilt from the log).
        let mut other = bytes.clone();
        other[1] = 9;
        assert!(matches!(
            decode_portfolio(&other),
            Err(FormError::Version { found: 9, .. })
        ));
    }

    #[test]
    fn a_contact_round_trips() {
        let at = DateTime::from_timestamp(1_764_000_000, 7).expect("time");
        let receipt = ConsentReceipt {
            source: OptInSource::WebForm,
            evidence: "https://example.com/forms/1".into(),
            recorded_by: "agent".into(),
            wording_version: "v1".into(),
            evidence_at: at,
            at,
        };
        let sender = WhatsAppAddress::parse("whatsapp:+15550001111").expect("sender");
        let state = ContactState {
            id: Some(ContactId::parse("+41790000001").expect("contact")),
            consent: Consent::OptedOut {
                source: OptOutSource::Keyword,
                detail: "STOP".into(),
                evidence_at: at,
                at,
                withdrawn: Some(receipt),
            },
            last_inbound_at: Some(at),
            windows: [(
                sender,
                SenderWindow {
                    last_inbound_at: Some(at),
                    reported_closed_at: None,
                },
            )]
            .into(),
            last_opt_out_at: Some(at),
            not_on_whatsapp_since: None,
            marketing_paused_since: Some(at),
            reviews_requested: 2,
            linked: [ContactId::parse("+41790000002").expect("linked")].into(),
        };
        let bytes = encode_contact(&state);
        assert_eq!(decode_contact(&bytes), Ok(state));
        assert!(decode_contact(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn counts_round_trip_and_other_versions_are_refused() {
        let form = CountsV1 {
            refusals: vec![(490_000, vec![("opted_out".into(), 3)])],
            funnel: vec![("wf".into(), "tpl".into(), [1, 1, 0, 1, 0, 0, 0, 0])],
            messages: vec![([9; 16], 0, 0b1011, 1_764_000_000)],
            dispatch: vec![("succeeded".into(), 4)],
            awaiting_outcome: vec![[9; 16]],
            portfolios: vec![encode_portfolio(&PortfolioState::default())],
            newest: Some(1_764_000_000),
        };
        let bytes = encode_counts(&form);
        assert_eq!(decode_counts(&bytes), Ok(form));
        let mut older = bytes.clone();
        older[..2].copy_from_slice(&0u16.to_be_bytes());
        assert!(matches!(
            decode_counts(&older),
            Err(FormError::Version { found: 0, .. })
        ));
        assert!(decode_counts(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_projection_round_trips_and_other_versions_are_refused() {
        let form = ProjectionV2 {
            senders: vec!["whatsapp:+15550000001".into()],
            templates: vec!["welcome".into()],
            open_messages: vec![([7; 16], 42)],
            newest: Some(1_764_000_100),
            provider_refs: encode_provider_refs(&vec![(
                [8; 16],
                1_764_000_000,
                vec!["SM0123".into()],
            )]),
        };
        let bytes = encode_projection(&form);
        assert_eq!(decode_projection(&bytes).as_ref(), Ok(&form));
        assert_eq!(
            decode_provider_refs(&form.provider_refs),
            Ok(vec![([8; 16], 1_764_000_000, vec!["SM0123".into()])])
        );
        assert!(decode_provider_refs(&form.provider_refs[1..]).is_err());
        // Form 1 is refused (the projection is rebuilt from the log).
        let first = encode_versioned(1, &ProjectionV1::default());
        assert_eq!(
            decode_projection(&first),
            Err(FormError::Version {
                found: 1,
                expected: PROJECTION_FORM
            })
        );
        let mut older = bytes.clone();
        older[..2].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(
            decode_projection(&older),
            Err(FormError::Version {
                found: 0,
                expected: PROJECTION_FORM
            })
        );
        assert!(matches!(
            decode_projection(&bytes[..bytes.len() - 3]),
            Err(FormError::Malformed(_))
        ));
    }
}
