//! Command handlers: `decide(state, command, now)` returns the events to append, or why not.
//! Pure: the caller loads the state, passes the time, and appends what comes back with the
//! expected versions of every stream it read.

use std::collections::BTreeMap;

use chrono::TimeDelta;

use crate::classify::{
    classify_code, classify_http_status, classify_transport, FollowUp, ProviderKind, Retry,
};
use crate::consent_confirmation::ConfirmationCheck;
use crate::contact::{written_at, ContactState};
use crate::events::{
    ApprovalStatus, ContactEvent, ContactFlag, Event, IdentitySource, MessageEvent, MessagingLimit,
    OptInSource, OptOutSource, PortfolioEvent, ProviderError, SenderEvent, TemplateCategory,
    TemplateEvent,
};
use crate::gates::{self, Recipient, SendContent, SendFacts};
use crate::ids::{
    ContactId, MessageId, PortfolioId, ProviderMessageRef, TemplateId, WhatsAppAddress,
};
use crate::keywords::{self, KeywordMatch};
use crate::message::{DispatchPhase, MessageContent, MessageState};
use crate::policy::{Policy, PROVIDER_CLOCK_SKEW, PROVIDER_RETRY_HORIZON};
use crate::portfolio::PortfolioState;
use crate::rules::Refusal;
use crate::sender::{SenderRate, SenderState};
use crate::template::{TemplateContent, TemplateState};
use crate::Timestamp;

/// A command that cannot be carried out for a reason other than a compliance rule: bad input or
/// a missing aggregate. (Compliance refusals are `Refusal`s and are recorded.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("{what} not found")]
    NotFound { what: String },
    /// The command contradicts what the provider reported (answered 409).
    #[error("{reason}")]
    Conflict { reason: String },
    #[error("message {message_id} cannot be claimed: {reason}")]
    NotClaimable {
        message_id: MessageId,
        reason: String,
    },
}

fn require_text(field: &'static str, value: &str, len_max: usize) -> Result<(), CommandError> {
    if value.trim().is_empty() {
        return Err(CommandError::InvalidField {
            field,
            reason: "must not be empty".into(),
        });
    }
    if value.chars().count() > len_max {
        return Err(CommandError::InvalidField {
            field,
            reason: format!("longer than {len_max} characters"),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Consent

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOptIn {
    pub contact: ContactId,
    pub source: OptInSource,
    pub evidence: String,
    pub recorded_by: String,
    pub wording_version: String,
    /// When the evidence is dated (the form submission, the ad click). Required after a STOP,
    /// and then it must be after the STOP; never in the future. `None` means now.
    pub evidence_at: Option<Timestamp>,
}

/// Records an explicit opt-in. Always recorded, even over an earlier one: each is a receipt.
///
/// Facts come from their sources: consent by keyword comes only from the contact's own signed
/// message (`inbound`), never from this command; and after a STOP only new evidence, dated
/// after it, can opt the contact in again. Every opt-in cites a published consent wording:
/// `wording` is the stream of `command.wording_version` (`consent-wording:<version>`), and an
/// unpublished version is refused. Only new commands are checked: history (opt-ins of wave 1
/// citing `"unversioned"`) is applied as it was recorded.
pub fn opt_in(
    contact: &ContactState,
    wording: &crate::consent::ConsentState,
    command: &RecordOptIn,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    if command.source == OptInSource::Keyword {
        return Err(CommandError::InvalidField {
            field: "source",
            reason: "\"keyword\" consent comes only from the contact's own message (a signed \
                     inbound START); record where this opt-in was collected instead"
                .into(),
        });
    }
    require_text("evidence", &command.evidence, 4096)?;
    require_text("recorded_by", &command.recorded_by, 256)?;
    require_text("wording_version", &command.wording_version, 256)?;
    if wording
        .wording
        .as_ref()
        .is_none_or(|w| w.version != command.wording_version)
    {
        return Err(CommandError::InvalidField {
            field: "wording_version",
            reason: format!(
                "{:?} is not a published consent wording (publish the text with POST \
                 /v1/consent/wordings and cite the version it answers)",
                command.wording_version
            ),
        });
    }
    let evidence_at = match (command.evidence_at, contact.last_opt_out_at) {
        (Some(at), _) if at > now => {
            return Err(CommandError::InvalidField {
                field: "evidence_at",
                reason: format!(
                    "{} is in the future (now is {})",
                    at.to_rfc3339(),
                    now.to_rfc3339()
                ),
            })
        }
        (Some(at), _) => at,
        (None, Some(stop)) if contact.is_opted_out() => {
            return Err(CommandError::InvalidField {
                field: "evidence_at",
                reason: format!(
                    "the contact opted out at {}: opting them in again needs evidence_at, the \
                     date of new evidence of consent after that",
                    stop.to_rfc3339()
                ),
            })
        }
        (None, _) => now,
    };
    if let Some(stop) = contact.last_opt_out_at {
        if evidence_at <= stop {
            return Err(CommandError::InvalidField {
                field: "evidence_at",
                reason: format!(
                    "{} is not after the contact's opt-out at {}: only evidence newer than the \
                     STOP can opt them in again",
                    evidence_at.to_rfc3339(),
                    stop.to_rfc3339()
                ),
            });
        }
    }
    Ok(vec![ContactEvent::OptedIn {
        contact: command.contact.clone(),
        source: command.source,
        evidence: command.evidence.clone(),
        recorded_by: command.recorded_by.clone(),
        wording_version: command.wording_version.clone(),
        evidence_at,
        at: now,
    }
    .into()])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOptOut {
    pub contact: ContactId,
    pub source: OptOutSource,
    pub detail: String,
}

/// Records an opt-out; a contact already opted out stays as it is (nothing appended).
pub fn opt_out(contact: &ContactState, command: &RecordOptOut, now: Timestamp) -> Vec<Event> {
    if contact.is_opted_out() {
        return Vec::new();
    }
    vec![ContactEvent::OptedOut {
        contact: command.contact.clone(),
        source: command.source,
        detail: command.detail.clone(),
        evidence_at: now,
        at: now,
    }
    .into()]
}

/// An inbound message from a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveInbound {
    pub contact: ContactId,
    pub sender: Option<WhatsAppAddress>,
    pub provider_ref: Option<ProviderMessageRef>,
    pub kind: String,
    pub text: String,
    /// When the provider says the person wrote it (Meta's `timestamp`); `None` when the
    /// provider gives no such time (Twilio), and receipt time stands for it.
    pub provider_at: Option<Timestamp>,
    /// The rest of what the provider said (recorded, never decided on).
    pub details: crate::events::ProviderDetails,
}

/// Message kinds whose text the contact typed or tapped; a document's body is its file name.
pub(crate) const KEYWORD_KINDS: [&str; 3] = ["text", "button", "interactive"];

/// Records the inbound (it opens the sender's window) and applies STOP/START keywords.
///
/// Consent changes are ordered by when the person wrote, not by when the webhook arrived; when
/// the two orders disagree the outcome is the one that sends less: a STOP always opts out, a
/// START opts in only if it was not written before the newest opt-out (and within the
/// providers' retry horizon: an older one can only be a replay). A provider time further in the future
/// than the clock skew allows is refused: nothing is recorded.
pub fn inbound(
    contact: &ContactState,
    command: &ReceiveInbound,
    policy: &Policy,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    if let Some(provider_at) = command.provider_at {
        if provider_at > now + PROVIDER_CLOCK_SKEW {
            return Err(CommandError::InvalidField {
                field: "timestamp",
                reason: format!(
                    "the provider's time {} is in the future (received at {})",
                    provider_at.to_rfc3339(),
                    now.to_rfc3339()
                ),
            });
        }
    }
    let written = written_at(command.provider_at, now);
    let mut events: Vec<Event> = vec![ContactEvent::InboundReceived {
        contact: command.contact.clone(),
        sender: command.sender.clone(),
        provider_ref: command.provider_ref.clone(),
        kind: command.kind.clone(),
        text: command.text.clone(),
        provider_at: command.provider_at,
        details: command.details.clone(),
        at: now,
    }
    .into()];
    if !KEYWORD_KINDS.contains(&command.kind.as_str()) {
        return Ok(events);
    }
    let may_opt_in = now - written <= PROVIDER_RETRY_HORIZON
        // Not older than the newest STOP. The same instant is not a disagreement between the
        // two orders (Meta's times are whole seconds), so arrival order stands.
        && contact.last_opt_out_at.is_none_or(|stop| written >= stop);
    let reference = command
        .provider_ref
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), ToString::to_string);
    let opt_in = |keyword: String| -> Event {
        ContactEvent::OptedIn {
            contact: command.contact.clone(),
            source: OptInSource::Keyword,
            evidence: format!("inbound message {reference}: {keyword}"),
            recorded_by: "wagate:keyword".into(),
            wording_version: policy.keyword_wording_version.clone(),
            evidence_at: written,
            at: now,
        }
        .into()
    };
    match keywords::classify(&command.text) {
        KeywordMatch::OptOut(keyword) if !contact.is_opted_out() => {
            events.push(
                ContactEvent::OptedOut {
                    contact: command.contact.clone(),
                    source: OptOutSource::Keyword,
                    detail: keyword,
                    evidence_at: written,
                    at: now,
                }
                .into(),
            );
        }
        KeywordMatch::OptIn(keyword) if may_opt_in && !contact.is_opted_in() => {
            events.push(opt_in(keyword))
        }
        KeywordMatch::OptInIfOptedOut(keyword) if may_opt_in && contact.is_opted_out() => {
            events.push(opt_in(keyword))
        }
        KeywordMatch::OptOutMention(matched) if !contact.is_opted_out() => {
            events.push(
                ContactEvent::OptOutReviewRequested {
                    contact: command.contact.clone(),
                    text: command.text.clone(),
                    matched,
                    at: now,
                }
                .into(),
            );
        }
        _ => {}
    }
    Ok(events)
}

/// Two identities of one person, as a provider asserted them (a send response's `wa_id`, a
/// webhook's number and user id, a change-of-number notice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkIdentities {
    pub contact: ContactId,
    pub other: ContactId,
    pub source: IdentitySource,
}

/// Links two identities: an `IdentityLinked` on each one's stream, naming the other. Nothing
/// when they are the same identity or already linked (`contact` is the state of
/// `command.contact`; links are always appended to both streams, so one side suffices).
pub fn link_identities(
    contact: &ContactState,
    command: &LinkIdentities,
    now: Timestamp,
) -> Vec<Event> {
    if command.contact == command.other || contact.linked.contains(&command.other) {
        return Vec::new();
    }
    let link = |contact: &ContactId, other: &ContactId| -> Event {
        ContactEvent::IdentityLinked {
            contact: contact.clone(),
            other: other.clone(),
            source: command.source,
            at: now,
        }
        .into()
    };
    vec![
        link(&command.contact, &command.other),
        link(&command.other, &command.contact),
    ]
}

/// Something about a contact that a person must look at (Meta's `customer_identity_changed`
/// notice, a STOP typed in a group): recorded as a review request on the contact's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestReview {
    pub contact: ContactId,
    /// What was received, for the reviewer.
    pub text: String,
    /// Why it needs a review (`customer_identity_changed`, `stop_in_group`, …).
    pub reason: String,
}

pub fn request_review(command: &RequestReview, now: Timestamp) -> Vec<Event> {
    vec![ContactEvent::OptOutReviewRequested {
        contact: command.contact.clone(),
        text: command.text.clone(),
        matched: command.reason.clone(),
        at: now,
    }
    .into()]
}

/// A message a contact wrote in a group chat the business is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveGroupMessage {
    pub contact: ContactId,
    /// The provider's group id.
    pub group: String,
    pub sender: Option<WhatsAppAddress>,
    pub provider_ref: Option<ProviderMessageRef>,
    pub kind: String,
    pub text: String,
}

/// Records a group message. It opens no one-to-one window (the person wrote to the group, not
/// to the business); a STOP typed in it still opts the person out (that sends less) and asks a
/// person to review it, since it may have been meant for the group. START in a group is not
/// consent to one-to-one messages and is ignored.
pub fn group_inbound(
    contact: &ContactState,
    command: &ReceiveGroupMessage,
    now: Timestamp,
) -> Vec<Event> {
    let mut events: Vec<Event> = vec![ContactEvent::GroupMessageReceived {
        contact: command.contact.clone(),
        group: command.group.clone(),
        sender: command.sender.clone(),
        provider_ref: command.provider_ref.clone(),
        kind: command.kind.clone(),
        text: command.text.clone(),
        at: now,
    }
    .into()];
    if !KEYWORD_KINDS.contains(&command.kind.as_str()) {
        return events;
    }
    if let KeywordMatch::OptOut(keyword) = keywords::classify(&command.text) {
        if !contact.is_opted_out() {
            events.push(
                ContactEvent::OptedOut {
                    contact: command.contact.clone(),
                    source: OptOutSource::Keyword,
                    detail: format!("{keyword} (in group {})", command.group),
                    // Group messages carry no provider time here: receipt stands for it (a
                    // STOP opts out however late it is, so this only ever sends less).
                    evidence_at: now,
                    at: now,
                }
                .into(),
            );
        }
        events.extend(request_review(
            &RequestReview {
                contact: command.contact.clone(),
                text: command.text.clone(),
                reason: "stop_in_group".into(),
            },
            now,
        ));
    }
    events
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetContactFlag {
    pub contact: ContactId,
    pub flag: ContactFlag,
    pub raised: bool,
    pub reason: String,
}

/// Raises or clears a flag; nothing is appended when it is already so.
pub fn set_contact_flag(
    contact: &ContactState,
    command: &SetContactFlag,
    now: Timestamp,
) -> Vec<Event> {
    let is_raised = contact.flag(command.flag).is_some();
    if is_raised == command.raised {
        return Vec::new();
    }
    let event = if command.raised {
        ContactEvent::FlagRaised {
            contact: command.contact.clone(),
            flag: command.flag,
            reason: command.reason.clone(),
            at: now,
        }
    } else {
        ContactEvent::FlagCleared {
            contact: command.contact.clone(),
            flag: command.flag,
            reason: command.reason.clone(),
            at: now,
        }
    };
    vec![event.into()]
}

// ---------------------------------------------------------------------------------------------
// Sending

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    pub message_id: MessageId,
    pub sender: WhatsAppAddress,
    /// Parsed once by the caller; an invalid number is a recorded `invalid_number` refusal.
    pub to: Recipient,
    pub workflow: Option<String>,
    pub content: SendContent,
}

/// The state a send decision reads.
#[derive(Debug, Clone, Copy)]
pub struct SendState<'a> {
    pub sender: &'a SenderState,
    pub contact: &'a ContactState,
    /// The states of the contact's other identities (every one reachable through
    /// `IdentityLinked`; empty when none): consent is judged over all of them
    /// (`ContactState::with_linked`).
    pub linked: &'a [ContactState],
    pub template: &'a TemplateState,
    pub portfolio: &'a PortfolioState,
    /// The contact's pending opt-in, loaded only for a send naming the workflow
    /// `consent_confirmation` (`None` otherwise): see `crate::consent_confirmation`.
    pub confirmation: Option<crate::consent_confirmation::PendingConfirmation<'a>>,
}

/// What a send decision appends (unless it was a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendDecision {
    /// Every gate holds (events: the intent, maybe a limit count).
    Allowed { events: Vec<Event> },
    /// A rule is broken (events: the `SendRefused` that records it, so auditors see every
    /// attempt).
    Refused {
        refusal: Refusal,
        events: Vec<Event>,
    },
}

impl SendDecision {
    pub fn events(&self) -> &[Event] {
        match self {
            Self::Allowed { events } | Self::Refused { events, .. } => events,
        }
    }

    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            Self::Allowed { .. } => None,
            Self::Refused { refusal, .. } => Some(refusal),
        }
    }

    /// The events to append, and the refusal to answer with once they are durable.
    pub fn into_parts(self) -> (Vec<Event>, Option<Refusal>) {
        match self {
            Self::Allowed { events } => (events, None),
            Self::Refused { refusal, events } => (events, Some(refusal)),
        }
    }
}

/// Decides a send: the intent (plus the limit count), or the refusal with the event that
/// records it.
pub fn send(
    state: &SendState<'_>,
    command: &SendMessage,
    policy: &Policy,
    now: Timestamp,
) -> SendDecision {
    let contact = state.contact.with_linked(state.linked);
    let facts = SendFacts {
        sender_address: &command.sender,
        sender: state.sender,
        to: &command.to,
        contact: &contact,
        content: &command.content,
        template: state.template,
        workflow: command.workflow.as_deref(),
        portfolio: state.portfolio,
        confirmation: state.confirmation.map(|pending| ConfirmationCheck {
            pending,
            message_id: command.message_id,
        }),
    };
    let allowed = match gates::check(&facts, policy, now) {
        Ok(allowed) => allowed,
        Err(refusal) => {
            let events = vec![refusal_event(command, &refusal, now)];
            return SendDecision::Refused { refusal, events };
        }
    };
    let intent: Event = match &command.content {
        SendContent::Template {
            template,
            variables,
            media,
        } => MessageEvent::TemplateSent {
            media: media.clone(),
            message_id: command.message_id,
            contact: allowed.contact.clone(),
            sender: command.sender.clone(),
            template: template.clone(),
            category: allowed
                .category
                .expect("an allowed template send has a registered template, hence a category"),
            variables: variables
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            workflow: allowed.workflow.clone(),
            at: now,
        }
        .into(),
        SendContent::Freeform { text } => MessageEvent::ReplySent {
            message_id: command.message_id,
            contact: allowed.contact.clone(),
            sender: command.sender.clone(),
            text: text.clone(),
            rich: None,
            workflow: allowed.workflow.clone(),
            at: now,
        }
        .into(),
        SendContent::Rich(rich) => MessageEvent::ReplySent {
            message_id: command.message_id,
            contact: allowed.contact.clone(),
            sender: command.sender.clone(),
            text: rich.text().to_owned(),
            rich: Some(rich.clone()),
            workflow: allowed.workflow.clone(),
            at: now,
        }
        .into(),
    };
    let mut events = vec![intent];
    events.extend(limit_count(state, &allowed, command.message_id, now));
    // The one message a pending opt-in permits is spent: recorded with the send, so a second
    // confirmation finds it and is refused `no_opt_in`.
    if let Some(campaign) = &allowed.confirmation_of {
        events.push(
            crate::consent::ConsentEvent::ConfirmationSent {
                contact: allowed.contact.clone(),
                campaign: campaign.clone(),
                message_id: command.message_id,
                at: now,
            }
            .into(),
        );
    }
    SendDecision::Allowed { events }
}

fn limit_count(
    state: &SendState<'_>,
    allowed: &gates::Allowed,
    message_id: MessageId,
    now: Timestamp,
) -> Option<Event> {
    if !allowed.counts_toward_limit {
        return None;
    }
    let portfolio = state.sender.registration.as_ref()?.portfolio.clone();
    Some(
        PortfolioEvent::RecipientReached {
            portfolio,
            contact: allowed.contact.clone(),
            message_id,
            at: now,
        }
        .into(),
    )
}

/// The event that records a refused send: the recipient exactly as given.
fn refusal_event(command: &SendMessage, refusal: &Refusal, now: Timestamp) -> Event {
    MessageEvent::SendRefused {
        message_id: command.message_id,
        to: command.to.to_string(),
        sender: command.sender.clone(),
        template: match &command.content {
            SendContent::Template { template, .. } => Some(template.clone()),
            SendContent::Freeform { .. } | SendContent::Rich(_) => None,
        },
        rule: refusal.rule,
        message: refusal.message.clone(),
        also_broken: refusal.also_broken.clone(),
        at: now,
    }
    .into()
}

// ---------------------------------------------------------------------------------------------
// Dispatch

/// The dispatcher asks to send a message now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimDispatch {
    pub message_id: MessageId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Every gate holds: send it (events: the claim, maybe a limit count).
    Claimed { attempt: u32, events: Vec<Event> },
    /// A gate is broken now: the message is canceled (events: the refused claim).
    Refused {
        refusal: Refusal,
        events: Vec<Event>,
    },
}

/// Re-checks every gate against the newest state and claims the message for one attempt.
pub fn claim(
    message: &MessageState,
    state: &SendState<'_>,
    command: &ClaimDispatch,
    policy: &Policy,
    now: Timestamp,
) -> Result<ClaimDecision, CommandError> {
    let not_claimable = |reason: String| CommandError::NotClaimable {
        message_id: command.message_id,
        reason,
    };
    let attempt = match message.phase() {
        DispatchPhase::NotAllowed => return Err(not_claimable("it was never allowed".into())),
        DispatchPhase::Done => return Err(not_claimable(format!("it is {}", message.status))),
        DispatchPhase::Claimed { attempt, .. } => {
            return Err(not_claimable(format!(
                "attempt {attempt} has no outcome yet"
            )))
        }
        DispatchPhase::Pending {
            not_before: Some(due),
            ..
        } if now < due => {
            return Err(not_claimable(format!(
                "its retry is due at {}",
                due.to_rfc3339()
            )))
        }
        DispatchPhase::Pending { next_attempt, .. } => next_attempt,
    };
    if attempt > policy.dispatch_attempts_max {
        return Err(not_claimable(format!(
            "all {} attempts are used",
            policy.dispatch_attempts_max
        )));
    }
    let Some(intent) = &message.intent else {
        return Err(not_claimable("it was never allowed".into()));
    };
    let content = match &intent.content {
        MessageContent::Template {
            template,
            variables,
            media,
            ..
        } => SendContent::Template {
            media: media.clone(),
            template: template.clone(),
            variables: variables.iter().cloned().collect::<BTreeMap<_, _>>(),
        },
        MessageContent::Freeform { text } => SendContent::Freeform { text: text.clone() },
        MessageContent::Rich(rich) => SendContent::Rich(rich.clone()),
    };
    let to = Recipient::of_contact(&intent.contact);
    let contact = state.contact.with_linked(state.linked);
    let facts = SendFacts {
        sender_address: &intent.sender,
        sender: state.sender,
        to: &to,
        contact: &contact,
        content: &content,
        template: state.template,
        workflow: Some(intent.workflow.as_str()),
        portfolio: state.portfolio,
        confirmation: state.confirmation.map(|pending| ConfirmationCheck {
            pending,
            message_id: command.message_id,
        }),
    };
    match gates::check(&facts, policy, now) {
        Ok(allowed) => {
            let mut events: Vec<Event> = vec![MessageEvent::DispatchClaimed {
                message_id: command.message_id,
                attempt,
                at: now,
            }
            .into()];
            // The decision counted this recipient; a claim more than 24 h later counts again.
            let counted = state.portfolio.reached_within_period(&allowed.contact, now);
            if !counted {
                events.extend(limit_count(state, &allowed, command.message_id, now));
            }
            Ok(ClaimDecision::Claimed { attempt, events })
        }
        Err(refusal) => {
            let events = vec![MessageEvent::ClaimRefused {
                message_id: command.message_id,
                attempt,
                rule: refusal.rule,
                message: refusal.message.clone(),
                at: now,
            }
            .into()];
            Ok(ClaimDecision::Refused { refusal, events })
        }
    }
}

/// What happened when the dispatcher called the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatchOutcome {
    Accepted {
        provider_ref: ProviderMessageRef,
        provider_status: crate::status::MessageStatus,
        /// The identity the provider says it delivered to, when it named one (Meta's
        /// `contacts[].wa_id`): when it is not the number messaged, the caller links the two
        /// (`RecordOutcome::identity_link`, `link_identities`).
        recipient: Option<ContactId>,
    },
    /// The provider answered with an error.
    Rejected { error: ProviderError },
    /// No connection could be made (refused, DNS, TLS handshake): nothing reached the provider,
    /// so a retry cannot duplicate the message. Answers that leave the provider possibly holding
    /// the message (a timeout, a connection lost mid-exchange, an unreadable 2xx) are not
    /// outcomes: the dispatcher records nothing and the claim stays in doubt until a callback
    /// or `expire_in_doubt` settles it.
    Transport {
        provider: ProviderKind,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOutcome {
    pub message_id: MessageId,
    pub attempt: u32,
    pub outcome: DispatchOutcome,
    /// Drawn by the caller (the domain has no randomness): added to the backoff delay.
    pub jitter: TimeDelta,
}

impl RecordOutcome {
    /// The provider id whose early callbacks this outcome joins: the caller loads them from
    /// that id's stream (`StreamKey::ProviderMessage`) and passes them to `record_outcome`.
    pub fn joins(&self) -> Option<&ProviderMessageRef> {
        match &self.outcome {
            DispatchOutcome::Accepted { provider_ref, .. } => Some(provider_ref),
            DispatchOutcome::Rejected { .. } | DispatchOutcome::Transport { .. } => None,
        }
    }

    /// The link an accepted outcome asks for: the message's contact and the identity the
    /// provider delivered to, when they differ (the caller decides it with `link_identities`
    /// against the contact's state, so a link already on record appends nothing).
    pub fn identity_link(&self, message: &MessageState) -> Option<LinkIdentities> {
        let DispatchOutcome::Accepted {
            recipient: Some(recipient),
            ..
        } = &self.outcome
        else {
            return None;
        };
        let contact = &message.intent.as_ref()?.contact;
        (contact != recipient).then(|| LinkIdentities {
            contact: contact.clone(),
            other: recipient.clone(),
            source: IdentitySource::SendResponse,
        })
    }
}

/// A status callback that arrived before its message was known (providers often post `queued`
/// or `sent` before the send's HTTP response is recorded): kept as `UnmatchedStatusReceived` on
/// the provider id's stream until an outcome names that id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarlyStatus {
    pub status: crate::status::MessageStatus,
    pub error_code: Option<u32>,
    pub details: crate::events::ProviderDetails,
}

impl EarlyStatus {
    /// The early status an event records, if it records one.
    pub fn of(event: &Event) -> Option<Self> {
        match event {
            Event::Message(MessageEvent::UnmatchedStatusReceived {
                status,
                error_code,
                details,
                ..
            }) => Some(Self {
                status: status.clone(),
                error_code: *error_code,
                details: details.clone(),
            }),
            _ => None,
        }
    }
}

/// Records a provider call's outcome, schedules a retry when allowed, and emits the error's
/// follow-ups (contact flags, sender suspension, …). An accepted outcome also joins `early`,
/// the callbacks kept on the stream of the provider id it names (`RecordOutcome::joins`), in
/// their order, as if each had arrived just now; other outcomes ignore them.
pub fn record_outcome(
    message: &MessageState,
    command: &RecordOutcome,
    early: &[EarlyStatus],
    policy: &Policy,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    let mut events = outcome_events(message, command, policy, now)?;
    let Some(provider_ref) = command.joins() else {
        return Ok(events);
    };
    let mut state = fold_message(message.clone(), &events);
    for early in early {
        let joined = record_status(
            &state,
            &RecordStatus {
                message_id: command.message_id,
                provider: provider_ref.provider(),
                provider_ref: Some(provider_ref.clone()),
                status: early.status.clone(),
                error_code: early.error_code,
                details: early.details.clone(),
                // An early status keeps Meta's `pricing` only in its details.
                pricing: crate::events::StatusPricing::from_details(&early.details),
            },
            now,
        );
        state = fold_message(state, &joined);
        events.extend(joined);
    }
    Ok(events)
}

/// The message's state after `events` (events of other aggregates are skipped).
fn fold_message(state: MessageState, events: &[Event]) -> MessageState {
    events.iter().fold(state, |state, event| match event {
        Event::Message(event) => state.apply(event),
        _ => state,
    })
}

fn outcome_events(
    message: &MessageState,
    command: &RecordOutcome,
    policy: &Policy,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    if message.outcome_recorded_for == Some(command.attempt) {
        return Err(CommandError::NotClaimable {
            message_id: command.message_id,
            reason: format!(
                "the outcome of attempt {} is already recorded",
                command.attempt
            ),
        });
    }
    match message.phase() {
        DispatchPhase::Claimed { attempt, .. } if attempt == command.attempt => {}
        _ if message.attempts == command.attempt && message.dispatch_closed => {
            // A callback resolved this attempt first (the response was slow): record the outcome
            // for the audit trail, but it can no longer schedule anything.
        }
        _ => {
            return Err(CommandError::NotClaimable {
                message_id: command.message_id,
                reason: format!("attempt {} is not the open claim", command.attempt),
            })
        }
    }
    let message_id = command.message_id;
    let attempt = command.attempt;
    let (error, class) = match &command.outcome {
        DispatchOutcome::Accepted {
            provider_ref,
            provider_status,
            ..
        } => {
            return Ok(vec![MessageEvent::DispatchSucceeded {
                message_id,
                attempt,
                provider_ref: provider_ref.clone(),
                provider_status: provider_status.clone(),
                at: now,
            }
            .into()]);
        }
        DispatchOutcome::Rejected { error } => {
            let class = match error.code {
                Some(code) => classify_code(error.provider, code),
                None => classify_http_status(error.http_status.unwrap_or(0)),
            };
            (error.clone(), class)
        }
        DispatchOutcome::Transport { provider, message } => (
            ProviderError {
                provider: *provider,
                code: None,
                http_status: None,
                message: message.clone(),
            },
            classify_transport(),
        ),
    };
    let may_retry = class.retry == Retry::Retryable && attempt < policy.dispatch_attempts_max;
    let retry_at = may_retry.then(|| now + policy.retry_delay(attempt + 1, command.jitter));
    let mut events: Vec<Event> = vec![MessageEvent::DispatchFailed {
        message_id,
        attempt,
        error: error.clone(),
        retry: class.retry,
        retry_at,
        at: now,
    }
    .into()];
    if let (Some(follow_up), Some(code)) = (class.follow_up, error.code) {
        events.extend(follow_up_events(
            message,
            follow_up,
            code,
            error.provider,
            now,
        ));
    }
    Ok(events)
}

/// A provider status callback for a known message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordStatus {
    pub message_id: MessageId,
    pub provider: ProviderKind,
    pub provider_ref: Option<ProviderMessageRef>,
    pub status: crate::status::MessageStatus,
    pub error_code: Option<u32>,
    /// The rest of what the provider said (recorded, never decided on).
    pub details: crate::events::ProviderDetails,
    /// Meta's `pricing` object (recorded for the cost ledger, never decided on).
    pub pricing: Option<crate::events::StatusPricing>,
}

/// Records a status callback (even one that changes nothing, so auditors see it) with its
/// error's follow-ups. The exact same observation twice appends nothing.
pub fn record_status(message: &MessageState, command: &RecordStatus, now: Timestamp) -> Vec<Event> {
    if message.has_observed(&command.status, command.error_code) {
        return Vec::new();
    }
    let mut events: Vec<Event> = vec![MessageEvent::StatusChanged {
        message_id: command.message_id,
        provider_ref: command.provider_ref.clone(),
        status: command.status.clone(),
        error_code: command.error_code,
        details: command.details.clone(),
        pricing: command.pricing.clone(),
        at: now,
    }
    .into()];
    if let Some(code) = command.error_code {
        if let Some(follow_up) = classify_code(command.provider, code).follow_up {
            events.extend(follow_up_events(
                message,
                follow_up,
                code,
                command.provider,
                now,
            ));
        }
    }
    events
}

/// A provider status callback as the webhook layer parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    pub provider: ProviderKind,
    pub provider_ref: Option<ProviderMessageRef>,
    pub status: crate::status::MessageStatus,
    pub error_code: Option<u32>,
    /// Pricing, conversation, every error's title/message/details, …: recorded, never decided on.
    pub details: crate::events::ProviderDetails,
    /// Meta's `pricing` object, typed (recorded for the cost ledger, never decided on).
    pub pricing: Option<crate::events::StatusPricing>,
}

/// Where a status callback goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusDecision {
    /// Matched to its message (events: `record_status`'s, none for an exact repeat).
    Matched {
        message_id: MessageId,
        events: Vec<Event>,
    },
    /// No message matches yet (events: `UnmatchedStatusReceived` on the provider id's stream,
    /// joined by `record_outcome` when an outcome names that id).
    Unmatched {
        provider_ref: ProviderMessageRef,
        events: Vec<Event>,
    },
}

impl StatusDecision {
    pub fn events(&self) -> &[Event] {
        match self {
            Self::Matched { events, .. } | Self::Unmatched { events, .. } => events,
        }
    }

    pub fn into_events(self) -> Vec<Event> {
        match self {
            Self::Matched { events, .. } | Self::Unmatched { events, .. } => events,
        }
    }
}

/// Decides a status callback: `matched` is the message it names (by wagate id or by the
/// provider id of a recorded outcome), if any is known. A callback that matches nothing and
/// names no provider id cannot be kept anywhere and is an error.
pub fn status_callback(
    matched: Option<(MessageId, &MessageState)>,
    callback: &StatusCallback,
    now: Timestamp,
) -> Result<StatusDecision, CommandError> {
    match (matched, &callback.provider_ref) {
        (Some((message_id, message)), _) => {
            let command = RecordStatus {
                message_id,
                provider: callback.provider,
                provider_ref: callback.provider_ref.clone(),
                status: callback.status.clone(),
                error_code: callback.error_code,
                details: callback.details.clone(),
                pricing: callback.pricing.clone(),
            };
            Ok(StatusDecision::Matched {
                message_id,
                events: record_status(message, &command, now),
            })
        }
        (None, Some(provider_ref)) => Ok(StatusDecision::Unmatched {
            provider_ref: provider_ref.clone(),
            events: vec![MessageEvent::UnmatchedStatusReceived {
                provider_ref: provider_ref.clone(),
                status: callback.status.clone(),
                error_code: callback.error_code,
                details: callback.details.clone(),
                at: now,
            }
            .into()],
        }),
        (None, None) => Err(CommandError::InvalidField {
            field: "callback",
            reason: "names neither a wagate message id nor a provider message id".into(),
        }),
    }
}

/// Fails a claim that has had no outcome and no callback for the in-doubt timeout. It is not
/// re-sent: a person looks at it.
pub fn expire_in_doubt(message: &MessageState, policy: &Policy, now: Timestamp) -> Vec<Event> {
    match (message.phase(), message.id) {
        (DispatchPhase::Claimed { attempt, since }, Some(message_id))
            if now - since >= policy.in_doubt_timeout =>
        {
            vec![MessageEvent::InDoubtExpired {
                message_id,
                attempt,
                at: now,
            }
            .into()]
        }
        _ => Vec::new(),
    }
}

fn follow_up_events(
    message: &MessageState,
    follow_up: FollowUp,
    code: u32,
    provider: ProviderKind,
    now: Timestamp,
) -> Vec<Event> {
    let Some(intent) = &message.intent else {
        return Vec::new();
    };
    let contact = intent.contact.clone();
    let reason = format!("{} error {code}", provider.as_str());
    let event: Event = match follow_up {
        // Only the number that sent was refused: the window is that number's.
        FollowUp::WindowClosed => ContactEvent::WindowReportedClosed {
            contact,
            sender: Some(intent.sender.clone()),
            code,
            at: now,
        }
        .into(),
        FollowUp::NotOnWhatsapp => ContactEvent::FlagRaised {
            contact,
            flag: ContactFlag::NotOnWhatsapp,
            reason,
            at: now,
        }
        .into(),
        FollowUp::MarketingPaused => ContactEvent::FlagRaised {
            contact,
            flag: ContactFlag::MarketingPaused,
            reason,
            at: now,
        }
        .into(),
        FollowUp::OptOut => ContactEvent::OptedOut {
            contact,
            source: OptOutSource::ProviderReport,
            detail: reason,
            evidence_at: now,
            at: now,
        }
        .into(),
        FollowUp::SuspendSender => SenderEvent::Suspended {
            sender: intent.sender.clone(),
            reason,
            at: now,
        }
        .into(),
        FollowUp::TemplateNotApproved => match &intent.content {
            MessageContent::Template { template, .. } => TemplateEvent::ApprovalChanged {
                template: template.clone(),
                status: ApprovalStatus::Paused,
                reason,
                at: now,
            }
            .into(),
            MessageContent::Freeform { .. } | MessageContent::Rich(_) => return Vec::new(),
        },
        // Recorded on the message itself; nothing to change elsewhere.
        FollowUp::TemplateVariables | FollowUp::InvalidNumber => return Vec::new(),
    };
    vec![event]
}

// ---------------------------------------------------------------------------------------------
// Senders, templates, portfolios

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterSender {
    pub sender: WhatsAppAddress,
    pub provider: ProviderKind,
    pub portfolio: PortfolioId,
    pub meta_phone_number_id: Option<String>,
    /// Tier and optional override of its throughput (`SenderRate::default()`: the provider's).
    pub rate: SenderRate,
}

/// The highest per-sender rate a provider documents (Meta's upgraded tier): a larger figure is
/// a typo, and the dispatcher would hold the number to a rate the provider refuses.
pub const SENDER_RATE_MAX: u32 = crate::sender::CLOUD_API_UPGRADED_PER_SECOND;

pub fn register_sender(
    state: &SenderState,
    command: &RegisterSender,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    if command.provider == ProviderKind::Meta && command.meta_phone_number_id.is_none() {
        return Err(CommandError::InvalidField {
            field: "meta_phone_number_id",
            reason: "a Cloud API sender needs its phone-number id".into(),
        });
    }
    if let Some(rate) = command.rate.per_second {
        if rate == 0 || rate > SENDER_RATE_MAX {
            return Err(CommandError::InvalidField {
                field: "rate_per_second",
                reason: format!("must be 1 to {SENDER_RATE_MAX} messages per second, not {rate}"),
            });
        }
    }
    if let Some(existing) = &state.registration {
        let same = existing.provider == command.provider
            && existing.portfolio == command.portfolio
            && existing.meta_phone_number_id == command.meta_phone_number_id
            && existing.rate == command.rate;
        if same {
            return Ok(Vec::new());
        }
    }
    Ok(vec![SenderEvent::Registered {
        sender: command.sender.clone(),
        provider: command.provider,
        portfolio: command.portfolio.clone(),
        meta_phone_number_id: command.meta_phone_number_id.clone(),
        rate: command.rate,
        at: now,
    }
    .into()])
}

pub fn authorize_sender(
    state: &SenderState,
    sender: &WhatsAppAddress,
    by: &str,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    require_text("by", by, 256)?;
    if state.registration.is_none() {
        return Err(CommandError::NotFound {
            what: format!("sender {sender}"),
        });
    }
    if state.authorized_by.is_some() && state.suspended.is_none() {
        return Ok(Vec::new());
    }
    Ok(vec![SenderEvent::Authorized {
        sender: sender.clone(),
        by: by.to_owned(),
        at: now,
    }
    .into()])
}

pub fn suspend_sender(
    state: &SenderState,
    sender: &WhatsAppAddress,
    reason: &str,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    require_text("reason", reason, 1024)?;
    if state.registration.is_none() {
        return Err(CommandError::NotFound {
            what: format!("sender {sender}"),
        });
    }
    if state.suspended.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![SenderEvent::Suspended {
        sender: sender.clone(),
        reason: reason.to_owned(),
        at: now,
    }
    .into()])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterTemplate {
    pub template: TemplateId,
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub placeholders: Vec<String>,
}

pub fn register_template(
    _state: &TemplateState,
    command: &RegisterTemplate,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    require_text("name", &command.name, 512)?;
    require_text("language", &command.language, 16)?;
    for (index, key) in command.placeholders.iter().enumerate() {
        require_text("placeholders", key, 64)?;
        if command.placeholders[..index].contains(key) {
            return Err(CommandError::InvalidField {
                field: "placeholders",
                reason: format!("{key:?} appears twice"),
            });
        }
    }
    Ok(vec![TemplateEvent::Registered {
        template: command.template.clone(),
        name: command.name.clone(),
        language: command.language.clone(),
        category: command.category,
        placeholders: command.placeholders.clone(),
        at: now,
    }
    .into()])
}

pub fn set_template_status(
    state: &TemplateState,
    template: &TemplateId,
    status: ApprovalStatus,
    reason: &str,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    if state.definition.is_none() {
        return Err(CommandError::NotFound {
            what: format!("template {template}"),
        });
    }
    let provider_refused = matches!(
        state.provider_status,
        Some(ApprovalStatus::Rejected | ApprovalStatus::Paused | ApprovalStatus::Disabled)
    );
    if status == ApprovalStatus::Approved && provider_refused {
        let reported = state.provider_status.map_or("", ApprovalStatus::as_str);
        return Err(CommandError::Conflict {
            reason: format!(
                "template {template} is {reported} at the provider{}: only the provider can approve it again",
                if state.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", state.reason)
                }
            ),
        });
    }
    if state.approval == Some(status) {
        return Ok(Vec::new());
    }
    Ok(vec![TemplateEvent::ApprovalChanged {
        template: template.clone(),
        status,
        reason: reason.to_owned(),
        at: now,
    }
    .into()])
}

/// A template the provider's API accepted: its definition, and the status the provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTemplate {
    pub template: TemplateId,
    pub provider: ProviderKind,
    pub provider_ref: String,
    pub name: String,
    pub language: String,
    pub category: TemplateCategory,
    pub content: TemplateContent,
    pub status: ApprovalStatus,
    pub reason: String,
}

/// Records a created template once: a second creation under the same id is a conflict (the
/// provider gave the same id twice, or a Meta name and language that already exist). A template
/// the status sync imported meanwhile (registered between the provider's answer and this
/// record) gets its full definition now.
pub fn create_template(
    state: &TemplateState,
    command: &CreateTemplate,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    if state.created.is_some() {
        return Err(CommandError::Conflict {
            reason: format!("template {} already exists", command.template),
        });
    }
    require_text("name", &command.name, 512)?;
    require_text("language", &command.language, 16)?;
    crate::template::validate(&command.content)?;
    let mut events: Vec<Event> = vec![TemplateEvent::Created {
        template: command.template.clone(),
        provider: command.provider,
        provider_ref: command.provider_ref.clone(),
        name: command.name.clone(),
        language: command.language.clone(),
        category: command.category,
        content: command.content.clone(),
        at: now,
    }
    .into()];
    if command.status != ApprovalStatus::Unsubmitted {
        events.push(
            TemplateEvent::StatusReported {
                template: command.template.clone(),
                status: command.status,
                reason: command.reason.clone(),
                at: now,
            }
            .into(),
        );
    }
    Ok(events)
}

/// A status the provider reported (an API answer, a poll, a webhook). Appends only when the
/// status or its reason changed, so a poll that finds nothing new leaves the log alone. An
/// unknown template is recorded too (its stream then has a status and no definition, which no
/// send can use): what a provider says is never dropped.
pub fn report_template_status(
    state: &TemplateState,
    template: &TemplateId,
    status: ApprovalStatus,
    reason: &str,
    now: Timestamp,
) -> Vec<Event> {
    if state.provider_status == Some(status)
        && state.approval == Some(status)
        && state.reason == reason
    {
        return Vec::new();
    }
    vec![TemplateEvent::StatusReported {
        template: template.clone(),
        status,
        reason: reason.to_owned(),
        at: now,
    }
    .into()]
}

/// The provider moved a known template to `category`; nothing when it already has it (a
/// redelivered or repeated report). A template wagate does not know is not created by it.
pub fn report_template_category(
    state: &TemplateState,
    template: &TemplateId,
    category: TemplateCategory,
    previous: &str,
    now: Timestamp,
) -> Vec<Event> {
    match &state.definition {
        Some(definition) if definition.category != category => {
            vec![TemplateEvent::CategoryReported {
                template: template.clone(),
                category,
                previous: previous.to_owned(),
                at: now,
            }
            .into()]
        }
        _ => Vec::new(),
    }
}

/// The provider reported a registered sender's quality; nothing when it changes nothing (the
/// same drop again, or a recovery while none was recorded).
pub fn report_sender_quality(
    state: &SenderState,
    sender: &WhatsAppAddress,
    event: &str,
    dropped: bool,
    now: Timestamp,
) -> Vec<Event> {
    let unchanged = match &state.quality_dropped {
        Some(previous) => dropped && previous == event,
        None => !dropped,
    };
    if state.registration.is_none() || unchanged {
        return Vec::new();
    }
    vec![SenderEvent::QualityReported {
        sender: sender.clone(),
        event: event.to_owned(),
        dropped,
        at: now,
    }
    .into()]
}

pub fn set_messaging_limit(
    state: &PortfolioState,
    portfolio: &PortfolioId,
    limit: MessagingLimit,
    now: Timestamp,
) -> Vec<Event> {
    if state.limit == Some(limit) {
        return Vec::new();
    }
    vec![PortfolioEvent::MessagingLimitChanged {
        portfolio: portfolio.clone(),
        limit,
        at: now,
    }
    .into()]
}

/// A provider notice as the webhook layer parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordProviderNotice {
    pub provider: ProviderKind,
    /// Meta's account (WABA) id, when the notice names one.
    pub account: Option<String>,
    pub kind: String,
    pub details: crate::events::ProviderDetails,
}

/// Records a provider notice on its account's stream (`provider:<provider>:<account>`, or
/// `provider:<provider>` when it names none). Always recorded: auditors see what the provider
/// said even when wagate does not act on it.
pub fn record_provider_notice(
    command: &RecordProviderNotice,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    require_text("kind", &command.kind, 256)?;
    let provider = command.provider.as_str();
    let subject = match &command.account {
        Some(account) => format!("{provider}:{account}"),
        None => provider.to_owned(),
    };
    Ok(vec![crate::events::ProviderEvent::NoticeReceived {
        provider: command.provider,
        subject,
        kind: command.kind.clone(),
        details: command.details.clone(),
        at: now,
    }
    .into()])
}
