//! Consent capture: published consent wordings, consent campaigns (a hosted form, a QR code, a
//! click-to-chat link) and the double opt-in they run.
//!
//! A wording is immutable: its version is derived from its business, language and text
//! ([`wording_version`]), so the same text published twice is the same version and new text is
//! always a new one. A campaign cites one wording and one sender. A person who submits the
//! campaign's form is recorded as `OptInRequested` (pending, it lets nothing through); the
//! opt-in is confirmed only by the person's own signed message carrying the campaign code, sent
//! to the campaign's sender ([`confirm`]), which appends the ordinary `OptedIn` the send gate
//! reads.
//!
//! Streams: `consent-wording:<version>`, `consent-campaign:<code>`, `consent-requests:<contact>`.
//! One aggregate, [`ConsentState`], folds any of them.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::decide::CommandError;
use crate::events::{ApprovalStatus, ContactEvent, Event, OptInSource, TemplateCategory};
use crate::ids::{ContactId, MessageId, TemplateId, WhatsAppAddress, Workflow};
use crate::template::TemplateState;
use crate::{Aggregate, ContactState, Timestamp};

/// The prefix of every campaign code, so an inbound message can be searched for one cheaply.
pub const CAMPAIGN_CODE_PREFIX: &str = "WG-";

/// Where a campaign is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CampaignMedium {
    /// The hosted page (`/consent/{campaign}`).
    WebForm,
    /// A printed QR code (an open house, a flyer).
    QrCode,
    /// A letter or postcard carrying the link or the QR code.
    DirectMail,
}

impl CampaignMedium {
    pub const ALL: [Self; 3] = [Self::WebForm, Self::QrCode, Self::DirectMail];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebForm => "web_form",
            Self::QrCode => "qr_code",
            Self::DirectMail => "direct_mail",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == input)
    }

    /// The opt-in source a confirmation through this campaign records.
    pub fn opt_in_source(self) -> OptInSource {
        match self {
            Self::WebForm => OptInSource::WebForm,
            Self::QrCode | Self::DirectMail => OptInSource::QrCode,
        }
    }
}

impl fmt::Display for CampaignMedium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The facts of consent capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentEvent {
    /// A consent text an operator published: immutable, cited by its version.
    WordingPublished {
        version: String,
        business: String,
        language: String,
        text: String,
        /// SHA-256 of the text, hex.
        text_hash: String,
        at: Timestamp,
    },
    /// A consent campaign: its code is its id.
    CampaignCreated {
        campaign: String,
        sender: WhatsAppAddress,
        wording_version: String,
        workflows: Vec<Workflow>,
        medium: CampaignMedium,
        /// The approved utility template the hub sends to confirm a form submission (schema
        /// v2; `None` when read from v1: the person confirms by the prefilled message only).
        confirmation_template: Option<TemplateId>,
        at: Timestamp,
    },
    /// A person submitted a campaign's form: pending until their own message confirms it.
    OptInRequested {
        contact: ContactId,
        campaign: String,
        wording_version: String,
        text_hash: String,
        /// What the form recorded: the submission time, the client's IP and user agent
        /// (personal data: kept in the log, never written to logs).
        evidence: String,
        at: Timestamp,
    },
    /// An operator closed a campaign: its page records nothing more and its code confirms no
    /// opt-in from then on (an inbound carrying it is an ordinary inbound).
    CampaignClosed { campaign: String, at: Timestamp },
    /// The hub sent the campaign's confirmation template for the contact's pending request:
    /// the one message a pending opt-in permits (`crate::consent_confirmation`); recorded with
    /// the send so that no second one passes the gates.
    ConfirmationSent {
        contact: ContactId,
        campaign: String,
        message_id: MessageId,
        at: Timestamp,
    },
}

impl ConsentEvent {
    pub fn at(&self) -> Timestamp {
        match self {
            Self::WordingPublished { at, .. }
            | Self::CampaignCreated { at, .. }
            | Self::OptInRequested { at, .. }
            | Self::CampaignClosed { at, .. }
            | Self::ConfirmationSent { at, .. } => *at,
        }
    }

    /// The store's stream name.
    pub fn stream_name(&self) -> String {
        match self {
            Self::WordingPublished { version, .. } => wording_stream(version),
            Self::CampaignCreated { campaign, .. } => campaign_stream(campaign),
            Self::OptInRequested { contact, .. } => requests_stream(contact),
            Self::CampaignClosed { campaign, .. } => campaign_stream(campaign),
            Self::ConfirmationSent { contact, .. } => requests_stream(contact),
        }
    }
}

pub fn wording_stream(version: &str) -> String {
    format!("consent-wording:{version}")
}

pub fn campaign_stream(campaign: &str) -> String {
    format!("consent-campaign:{campaign}")
}

pub fn requests_stream(contact: &ContactId) -> String {
    format!("consent-requests:{contact}")
}

/// SHA-256 of a text, lower-case hex.
pub fn text_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A wording's version: `w-` and the first 16 hex digits of the hash of its business, language
/// and text. Derived, not counted, so publishing needs no shared counter and cannot renumber.
pub fn wording_version(business: &str, language: &str, text: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [business, language, text] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hex::encode(hasher.finalize());
    format!("w-{}", &digest[..16])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wording {
    pub version: String,
    pub business: String,
    pub language: String,
    pub text: String,
    pub text_hash: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub code: String,
    pub sender: WhatsAppAddress,
    pub wording_version: String,
    pub workflows: Vec<Workflow>,
    pub medium: CampaignMedium,
    /// The template that asks the person to confirm (`crate::consent_confirmation`).
    pub confirmation_template: Option<TemplateId>,
    pub at: Timestamp,
    /// When an operator closed it; a closed campaign records and confirms nothing.
    pub closed_at: Option<Timestamp>,
}

impl Campaign {
    pub fn is_closed(&self) -> bool {
        self.closed_at.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptInRequest {
    pub campaign: String,
    pub wording_version: String,
    pub text_hash: String,
    pub evidence: String,
    pub at: Timestamp,
    /// The confirmation template sent for this request, if any (at most one).
    pub confirmation_sent: Option<MessageId>,
}

/// Any consent stream folded: a wording's, a campaign's or a contact's requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsentState {
    pub wording: Option<Wording>,
    pub campaign: Option<Campaign>,
    /// Oldest first.
    pub requests: Vec<OptInRequest>,
}

impl Aggregate for ConsentState {
    type Event = ConsentEvent;

    fn apply(mut self, event: &ConsentEvent) -> Self {
        match event {
            ConsentEvent::WordingPublished {
                version,
                business,
                language,
                text,
                text_hash,
                at,
            } => {
                // Immutable: the first publication stands.
                self.wording.get_or_insert_with(|| Wording {
                    version: version.clone(),
                    business: business.clone(),
                    language: language.clone(),
                    text: text.clone(),
                    text_hash: text_hash.clone(),
                    at: *at,
                });
            }
            ConsentEvent::CampaignCreated {
                campaign,
                sender,
                wording_version,
                workflows,
                medium,
                confirmation_template,
                at,
            } => {
                self.campaign.get_or_insert_with(|| Campaign {
                    code: campaign.clone(),
                    sender: sender.clone(),
                    wording_version: wording_version.clone(),
                    workflows: workflows.clone(),
                    medium: *medium,
                    confirmation_template: confirmation_template.clone(),
                    at: *at,
                    closed_at: None,
                });
            }
            ConsentEvent::CampaignClosed { at, .. } => {
                // The first close stands; closing is not undone.
                if let Some(campaign) = &mut self.campaign {
                    campaign.closed_at.get_or_insert(*at);
                }
            }
            ConsentEvent::OptInRequested {
                campaign,
                wording_version,
                text_hash,
                evidence,
                at,
                ..
            } => self.requests.push(OptInRequest {
                campaign: campaign.clone(),
                wording_version: wording_version.clone(),
                text_hash: text_hash.clone(),
                evidence: evidence.clone(),
                at: *at,
                confirmation_sent: None,
            }),
            ConsentEvent::ConfirmationSent {
                campaign,
                message_id,
                ..
            } => {
                // It answers the newest request for its campaign (the one it was sent for).
                if let Some(request) = self
                    .requests
                    .iter_mut()
                    .rev()
                    .find(|r| &r.campaign == campaign)
                {
                    request.confirmation_sent.get_or_insert(*message_id);
                }
            }
        }
        self
    }
}

fn require(field: &'static str, value: &str, len_max: usize) -> Result<(), CommandError> {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishWording {
    pub business: String,
    pub language: String,
    pub text: String,
}

/// Publishes a wording on its version's stream (`existing`). The same text again appends
/// nothing: the version is derived from the text, so it is the same, already published one.
pub fn publish_wording(
    existing: &ConsentState,
    command: &PublishWording,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    require("business", &command.business, 200)?;
    require("language", &command.language, 35)?;
    require("text", &command.text, 4096)?;
    if !command
        .language
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(CommandError::InvalidField {
            field: "language",
            reason: format!(
                "{:?} is not a language tag (letters, digits, - or _, e.g. de or en_US)",
                command.language
            ),
        });
    }
    if existing.wording.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![Event::Consent(ConsentEvent::WordingPublished {
        version: wording_version(&command.business, &command.language, &command.text),
        business: command.business.clone(),
        language: command.language.clone(),
        text: command.text.clone(),
        text_hash: text_hash(&command.text),
        at: now,
    })])
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCampaign {
    /// The campaign code (`WG-` and letters or digits), drawn by the caller.
    pub code: String,
    pub sender: WhatsAppAddress,
    pub wording_version: String,
    pub workflows: Vec<Workflow>,
    pub medium: CampaignMedium,
    /// The confirmation template, if the campaign has one.
    pub confirmation_template: Option<TemplateId>,
}

/// Creates a campaign citing a published wording (`wording`, that version's stream) and a
/// registered sender (`sender_registered`); `template` is the confirmation template's state
/// when the command names one (it must be registered, approved and of category utility).
pub fn create_campaign(
    wording: &ConsentState,
    sender_registered: bool,
    template: Option<&TemplateState>,
    command: &CreateCampaign,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    if !is_campaign_code(&command.code) {
        return Err(CommandError::InvalidField {
            field: "id",
            reason: format!("{:?} is not a campaign code", command.code),
        });
    }
    if wording.wording.is_none() {
        return Err(CommandError::InvalidField {
            field: "wording_version",
            reason: format!(
                "{:?} is not a published consent wording (publish it with POST \
                 /v1/consent/wordings first)",
                command.wording_version
            ),
        });
    }
    if !sender_registered {
        return Err(CommandError::InvalidField {
            field: "sender",
            reason: format!("{} is not a registered sender", command.sender),
        });
    }
    if command.workflows.is_empty() {
        return Err(CommandError::InvalidField {
            field: "workflows",
            reason: "name at least one workflow the consent covers".into(),
        });
    }
    if let Some(id) = &command.confirmation_template {
        check_confirmation_template(id, template)?;
    }
    Ok(vec![Event::Consent(ConsentEvent::CampaignCreated {
        campaign: command.code.clone(),
        sender: command.sender.clone(),
        wording_version: command.wording_version.clone(),
        workflows: command.workflows.clone(),
        medium: command.medium,
        confirmation_template: command.confirmation_template.clone(),
        at: now,
    })])
}

/// A confirmation template asks a person who has not yet confirmed: it must be one Meta approved,
/// and of category utility (a marketing template is never a confirmation).
fn check_confirmation_template(
    id: &TemplateId,
    template: Option<&TemplateState>,
) -> Result<(), CommandError> {
    let invalid = |reason: String| CommandError::InvalidField {
        field: "confirmation_template",
        reason,
    };
    let Some(definition) = template.and_then(|t| t.definition.as_ref()) else {
        return Err(invalid(format!("{id} is not a registered template")));
    };
    let approval = template.and_then(|t| t.approval);
    if approval != Some(ApprovalStatus::Approved) {
        return Err(invalid(format!(
            "{id} is not approved (status {})",
            approval.map_or("unknown", ApprovalStatus::as_str)
        )));
    }
    if definition.category != TemplateCategory::Utility {
        return Err(invalid(format!(
            "{id} is of category {}: a confirmation template must be utility",
            definition.category.as_str()
        )));
    }
    if !definition.placeholders.is_empty() {
        return Err(invalid(format!(
            "{id} has variables ({}): the hub sends the confirmation without any",
            definition.placeholders.join(", ")
        )));
    }
    Ok(())
}

/// Closes a campaign (its stream, `existing`). Closing a closed campaign appends nothing.
pub fn close_campaign(
    existing: &ConsentState,
    code: &str,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    let Some(campaign) = &existing.campaign else {
        return Err(CommandError::NotFound {
            what: format!("consent campaign {code}"),
        });
    };
    if campaign.is_closed() {
        return Ok(Vec::new());
    }
    Ok(vec![Event::Consent(ConsentEvent::CampaignClosed {
        campaign: campaign.code.clone(),
        at: now,
    })])
}

/// `WG-` followed by 4 to 32 upper-case letters or digits.
pub fn is_campaign_code(code: &str) -> bool {
    code.strip_prefix(CAMPAIGN_CODE_PREFIX).is_some_and(|rest| {
        (4..=32).contains(&rest.len())
            && rest
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

/// The campaign code a message carries: a whole word `WG-…` (case ignored), if any.
pub fn campaign_code_in(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .map(str::to_ascii_uppercase)
        .find(|word| is_campaign_code(word))
}

/// The message a click-to-chat link pre-fills: it names the business and carries the code.
pub fn prefilled_message(business: &str, code: &str) -> String {
    format!("Yes, I agree to receive WhatsApp messages from {business}. Code: {code}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOptIn {
    pub contact: ContactId,
    /// Submission time, client IP, user agent.
    pub evidence: String,
}

/// A form submission: a pending opt-in with its evidence. Refused when the campaign or its
/// wording is unknown.
pub fn request_opt_in(
    campaign: &ConsentState,
    wording: &ConsentState,
    command: &RequestOptIn,
    now: Timestamp,
) -> Result<Vec<Event>, CommandError> {
    let Some(campaign) = &campaign.campaign else {
        return Err(CommandError::NotFound {
            what: "consent campaign".into(),
        });
    };
    if let Some(closed) = campaign.closed_at {
        return Err(CommandError::Conflict {
            reason: format!(
                "consent campaign {} was closed at {}: it records no opt-in",
                campaign.code,
                closed.to_rfc3339()
            ),
        });
    }
    let Some(wording) = &wording.wording else {
        return Err(CommandError::NotFound {
            what: format!("consent wording {}", campaign.wording_version),
        });
    };
    require("evidence", &command.evidence, 4096)?;
    Ok(vec![Event::Consent(ConsentEvent::OptInRequested {
        contact: command.contact.clone(),
        campaign: campaign.code.clone(),
        wording_version: wording.version.clone(),
        text_hash: wording.text_hash.clone(),
        evidence: command.evidence.clone(),
        at: now,
    })])
}

/// Why a message carrying a campaign code confirmed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotConfirmed {
    /// The campaign is closed: its code confirms nothing (the inbound stays an ordinary one).
    Closed,
    /// Sent to another business number than the campaign's.
    WrongSender,
    /// No form submission for this campaign from this number.
    NoPendingRequest,
    /// Already opted in through this campaign after the newest request.
    AlreadyConfirmed,
    /// Written before the contact's newest opt-out.
    BeforeOptOut,
}

/// A signed inbound message that carries a campaign code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeMessage {
    pub contact: ContactId,
    /// The business number it was sent to.
    pub to: Option<WhatsAppAddress>,
    /// The provider's message id (Twilio SID, wamid): the evidence of the confirmation.
    pub message_ref: String,
    /// When the person wrote it.
    pub written_at: Timestamp,
}

/// The person's own signed message carrying `campaign`'s code, sent to the campaign's sender,
/// confirms their newest pending request for that campaign: an `OptedIn` citing the request's
/// wording, with the form's evidence and the message's. `contact` is the contact's state before
/// the message; `requests` their `consent-requests` stream.
pub fn confirm(
    campaign: &Campaign,
    wording: &Wording,
    requests: &ConsentState,
    contact: &ContactState,
    message: &CodeMessage,
    now: Timestamp,
) -> Result<Vec<Event>, NotConfirmed> {
    if campaign.is_closed() {
        return Err(NotConfirmed::Closed);
    }
    if message.to.as_ref() != Some(&campaign.sender) {
        return Err(NotConfirmed::WrongSender);
    }
    // Ordered by when the person wrote, as STOP and START are: a message written before their
    // newest opt-out (a late delivery) confirms nothing; in the same instant (Meta's times are
    // whole seconds) arrival order stands, as for START.
    if contact
        .last_opt_out_at
        .is_some_and(|stop| message.written_at < stop)
    {
        return Err(NotConfirmed::BeforeOptOut);
    }
    let Some(request) = requests
        .requests
        .iter()
        .rev()
        .find(|r| r.campaign == campaign.code)
    else {
        return direct(campaign, wording, contact, message, now);
    };
    if let crate::Consent::OptedIn(receipt) = &contact.consent {
        if receipt
            .evidence
            .starts_with(&confirmation_prefix(&campaign.code))
            && receipt.at >= request.at
        {
            return Err(NotConfirmed::AlreadyConfirmed);
        }
    }
    Ok(vec![ContactEvent::OptedIn {
        contact: message.contact.clone(),
        source: campaign.medium.opt_in_source(),
        evidence: format!(
            "{}; wording text sha256 {}; form: {}; confirmed by message {}",
            confirmation_prefix(&campaign.code),
            request.text_hash,
            request.evidence,
            message.message_ref
        ),
        recorded_by: "wagate:consent".into(),
        wording_version: request.wording_version.clone(),
        evidence_at: message.written_at,
        at: now,
    }
    .into()])
}

/// A printed QR code or a letter has no form: the person's own message, carrying the code of a
/// `qr_code` or `direct_mail` campaign to its sender, is the opt-in itself (the prefilled message
/// names the business and says they agree), evidenced by that message. A web-form campaign's
/// code without a form submission records nothing: its page is where the wording is shown.
fn direct(
    campaign: &Campaign,
    wording: &Wording,
    contact: &ContactState,
    message: &CodeMessage,
    now: Timestamp,
) -> Result<Vec<Event>, NotConfirmed> {
    if campaign.medium == CampaignMedium::WebForm {
        return Err(NotConfirmed::NoPendingRequest);
    }
    if let crate::Consent::OptedIn(receipt) = &contact.consent {
        if receipt
            .evidence
            .starts_with(&confirmation_prefix(&campaign.code))
        {
            return Err(NotConfirmed::AlreadyConfirmed);
        }
    }
    Ok(vec![ContactEvent::OptedIn {
        contact: message.contact.clone(),
        source: OptInSource::QrCode,
        evidence: format!(
            "{}; wording text sha256 {}; opted in by message {} (the campaign's prefilled \
             message, {})",
            confirmation_prefix(&campaign.code),
            wording.text_hash,
            message.message_ref,
            campaign.medium
        ),
        recorded_by: "wagate:consent".into(),
        wording_version: wording.version.clone(),
        evidence_at: message.written_at,
        at: now,
    }
    .into()])
}

/// How a campaign confirmation's evidence starts, so a receipt can be traced to its campaign.
pub fn confirmation_prefix(code: &str) -> String {
    format!("campaign {code}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> Timestamp {
        chrono::Utc
            .timestamp_opt(1_780_000_000 + s, 0)
            .single()
            .expect("time")
    }

    fn fold(events: &[Event]) -> ConsentState {
        events.iter().fold(ConsentState::default(), |s, e| match e {
            Event::Consent(c) => s.apply(c),
            _ => s,
        })
    }

    fn sender(n: &str) -> WhatsAppAddress {
        WhatsAppAddress::parse(&format!("whatsapp:{n}")).expect("sender")
    }

    fn wording_of(state: &ConsentState) -> Wording {
        state.wording.clone().expect("published")
    }

    #[test]
    fn a_qr_campaigns_code_alone_opts_in_but_a_web_forms_does_not() {
        let (wording, campaign) = setup();
        let qr = Campaign {
            medium: CampaignMedium::QrCode,
            ..campaign.clone()
        };
        let none = ConsentState::default();
        let events = confirm(
            &qr,
            &wording_of(&wording),
            &none,
            &ContactState::default(),
            &message(&qr.sender, "wamid.1", 3),
            t(3),
        )
        .expect("opted in");
        let Event::Contact(ContactEvent::OptedIn {
            source, evidence, ..
        }) = &events[0]
        else {
            panic!("{events:?}");
        };
        assert_eq!(*source, OptInSource::QrCode);
        assert!(evidence.contains("wamid.1"));
        assert_eq!(
            confirm(
                &qr,
                &wording_of(&wording),
                &none,
                &ContactState::default(),
                &message(&sender("+41445559999"), "wamid.2", 3),
                t(3)
            ),
            Err(NotConfirmed::WrongSender)
        );
    }

    fn message(to: &WhatsAppAddress, reference: &str, at: i64) -> CodeMessage {
        CodeMessage {
            contact: ContactId::parse("+41790000001").expect("contact"),
            to: Some(to.clone()),
            message_ref: reference.into(),
            written_at: t(at),
        }
    }

    fn setup() -> (ConsentState, Campaign) {
        let wording = fold(
            &publish_wording(
                &ConsentState::default(),
                &PublishWording {
                    business: "Acme Homes".into(),
                    language: "en".into(),
                    text: "I agree to WhatsApp messages from Acme Homes.".into(),
                },
                t(0),
            )
            .expect("published"),
        );
        let version = wording.wording.clone().expect("wording").version;
        let campaign = fold(
            &create_campaign(
                &wording,
                true,
                None,
                &CreateCampaign {
                    code: "WG-OPEN1".into(),
                    sender: sender("+41445550000"),
                    wording_version: version,
                    workflows: vec![Workflow::parse("lead_qualification").expect("workflow")],
                    medium: CampaignMedium::WebForm,
                    confirmation_template: None,
                },
                t(1),
            )
            .expect("campaign"),
        );
        (wording, campaign.campaign.expect("campaign"))
    }

    #[test]
    fn the_version_follows_the_text_and_a_republication_appends_nothing() {
        let a = wording_version("Acme", "en", "text one");
        assert_eq!(a, wording_version("Acme", "en", "text one"));
        assert_ne!(a, wording_version("Acme", "en", "text two"));
        assert_ne!(a, wording_version("Acme", "de", "text one"));
        let (wording, _) = setup();
        let again = publish_wording(
            &wording,
            &PublishWording {
                business: "Acme Homes".into(),
                language: "en".into(),
                text: "I agree to WhatsApp messages from Acme Homes.".into(),
            },
            t(5),
        )
        .expect("same");
        assert!(again.is_empty());
    }

    #[test]
    fn a_campaign_needs_a_published_wording_and_a_workflow() {
        let missing = create_campaign(
            &ConsentState::default(),
            true,
            None,
            &CreateCampaign {
                code: "WG-ABCD".into(),
                sender: sender("+41445550000"),
                wording_version: "w-0".into(),
                workflows: vec![],
                medium: CampaignMedium::QrCode,
                confirmation_template: None,
            },
            t(0),
        );
        assert!(matches!(
            missing,
            Err(CommandError::InvalidField {
                field: "wording_version",
                ..
            })
        ));
        let (wording, _) = setup();
        let no_workflow = create_campaign(
            &wording,
            true,
            None,
            &CreateCampaign {
                code: "WG-ABCD".into(),
                sender: sender("+41445550000"),
                wording_version: "x".into(),
                workflows: vec![],
                medium: CampaignMedium::QrCode,
                confirmation_template: None,
            },
            t(0),
        );
        assert!(matches!(
            no_workflow,
            Err(CommandError::InvalidField {
                field: "workflows",
                ..
            })
        ));
    }

    #[test]
    fn codes_are_found_as_whole_words() {
        assert_eq!(
            campaign_code_in(&prefilled_message("Acme", "WG-OPEN1")),
            Some("WG-OPEN1".into())
        );
        assert_eq!(campaign_code_in("code wg-open1."), Some("WG-OPEN1".into()));
        assert_eq!(campaign_code_in("WG-X"), None);
        assert_eq!(campaign_code_in("hello"), None);
    }

    #[test]
    fn only_the_campaigns_sender_with_a_pending_request_confirms() {
        let (wording, campaign) = setup();
        let contact = ContactId::parse("+41790000001").expect("contact");
        let campaign_state = ConsentState {
            campaign: Some(campaign.clone()),
            ..ConsentState::default()
        };
        let none = ConsentState::default();
        let state = ContactState::default();
        assert_eq!(
            confirm(
                &campaign,
                &wording_of(&wording),
                &none,
                &state,
                &message(&campaign.sender, "SM1", 3),
                t(3)
            ),
            Err(NotConfirmed::NoPendingRequest)
        );
        let requests = fold(
            &request_opt_in(
                &campaign_state,
                &wording,
                &RequestOptIn {
                    contact: contact.clone(),
                    evidence: "ip 192.0.2.1".into(),
                },
                t(2),
            )
            .expect("requested"),
        );
        assert_eq!(
            confirm(
                &campaign,
                &wording_of(&wording),
                &requests,
                &state,
                &message(&sender("+41445559999"), "SM1", 3),
                t(3)
            ),
            Err(NotConfirmed::WrongSender)
        );
        let events = confirm(
            &campaign,
            &wording_of(&wording),
            &requests,
            &state,
            &message(&campaign.sender, "SM1", 3),
            t(3),
        )
        .expect("confirmed");
        let Event::Contact(ContactEvent::OptedIn {
            wording_version,
            source,
            ..
        }) = &events[0]
        else {
            panic!("not an opt-in: {events:?}");
        };
        assert_eq!(wording_version, &campaign.wording_version);
        assert_eq!(*source, OptInSource::WebForm);
        let opted_in = match &events[0] {
            Event::Contact(e) => state.apply(e),
            _ => unreachable!(),
        };
        assert_eq!(
            confirm(
                &campaign,
                &wording_of(&wording),
                &requests,
                &opted_in,
                &message(&campaign.sender, "SM2", 4),
                t(4)
            ),
            Err(NotConfirmed::AlreadyConfirmed)
        );
    }

    #[test]
    fn a_closed_campaign_records_and_confirms_nothing_and_closes_once() {
        let (wording, campaign) = setup();
        let contact = ContactId::parse("+41790000001").expect("contact");
        let open = ConsentState {
            campaign: Some(campaign.clone()),
            ..ConsentState::default()
        };
        let requests = fold(
            &request_opt_in(
                &open,
                &wording,
                &RequestOptIn {
                    contact,
                    evidence: "ip 192.0.2.1".into(),
                },
                t(2),
            )
            .expect("requested while open"),
        );
        let closing = close_campaign(&open, &campaign.code, t(3)).expect("closes");
        assert_eq!(closing.len(), 1);
        let Event::Consent(event) = &closing[0] else {
            panic!("{closing:?}");
        };
        let closed = open.clone().apply(event);
        assert_eq!(
            closed.campaign.as_ref().and_then(|c| c.closed_at),
            Some(t(3))
        );
        assert!(close_campaign(&closed, &campaign.code, t(4))
            .expect("again")
            .is_empty());
        assert!(matches!(
            close_campaign(&ConsentState::default(), "WG-NONE", t(4)),
            Err(CommandError::NotFound { .. })
        ));
        let refused = request_opt_in(
            &closed,
            &wording,
            &RequestOptIn {
                contact: ContactId::parse("+41790000002").expect("contact"),
                evidence: "ip 192.0.2.2".into(),
            },
            t(5),
        );
        assert!(
            matches!(&refused, Err(CommandError::Conflict { reason }) if reason.contains("closed")),
            "{refused:?}"
        );
        let closed_campaign = closed.campaign.clone().expect("campaign");
        // The pending request made while it was open is not confirmed after the close, and a
        // QR campaign's code alone opts no one in either.
        for medium in [CampaignMedium::WebForm, CampaignMedium::QrCode] {
            let c = Campaign {
                medium,
                ..closed_campaign.clone()
            };
            assert_eq!(
                confirm(
                    &c,
                    &wording_of(&wording),
                    &requests,
                    &ContactState::default(),
                    &message(&c.sender, "wamid.9", 6),
                    t(6)
                ),
                Err(NotConfirmed::Closed)
            );
        }
    }

    #[test]
    fn an_unknown_campaign_records_no_request() {
        let (wording, _) = setup();
        let refused = request_opt_in(
            &ConsentState::default(),
            &wording,
            &RequestOptIn {
                contact: ContactId::parse("+41790000001").expect("contact"),
                evidence: "x".into(),
            },
            t(0),
        );
        assert!(matches!(refused, Err(CommandError::NotFound { .. })));
    }
}
