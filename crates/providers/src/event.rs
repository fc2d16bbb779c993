//! Provider-neutral webhook events. Providers own the wire formats; what leaves this crate is
//! one of these, built from validated domain ids, with a stable de-duplication key.

use std::fmt;

use sha2::{Digest, Sha256};
use wagate_domain::{
    BusinessScopedUserId, ContactId, MessageId, MessageStatus, PhoneNumber, ProviderDetails,
    ProviderError, ProviderKind, ProviderMessageRef, StatusPricing,
};

/// One thing a provider told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A contact wrote to a business number.
    Inbound(InboundMessage),
    /// A status report about a message a business number sent.
    Status(StatusUpdate),
    /// Meta `user_preferences`: a contact stopped or resumed marketing messages.
    UserPreference(UserPreferenceChange),
    /// Anything else a provider said that is about its account, numbers or templates rather
    /// than one message: Meta's value-level `errors`, `account_update`,
    /// `phone_number_quality_update`, `business_capability_update`, template updates, fields
    /// this crate does not know. Recorded as a provider notice, never dropped.
    Notice(ProviderNotice),
    /// Meta `type: system` message: a notice from WhatsApp about the contact (a changed
    /// number, a changed user id, a changed identity), not a message the person wrote.
    SystemNotice(SystemNotice),
}

impl WebhookEvent {
    /// Which provider sent the event.
    pub fn provider(&self) -> ProviderKind {
        match self {
            Self::Inbound(m) => provider_of(&m.id),
            Self::Status(s) => provider_of(&s.id),
            Self::SystemNotice(n) => provider_of(&n.id),
            Self::UserPreference(_) => ProviderKind::Meta,
            Self::Notice(n) => n.provider,
        }
    }

    /// Key under which a redelivery of the same event is recognised. Stable across
    /// redeliveries and across releases (it is stored); distinct for distinct events.
    ///
    /// * Twilio inbound: `MessageSid`; Twilio status: `(MessageSid, MessageStatus, ErrorCode)`.
    /// * Meta inbound: message `id`; Meta status: `(id, status, error codes)`.
    pub fn dedup_key(&self) -> DedupKey {
        let provider = self.provider().as_str();
        match self {
            Self::Inbound(m) => DedupKey(format!("{provider}/inbound/{}", m.id)),
            Self::SystemNotice(n) => DedupKey(format!("{provider}/system/{}", n.id)),
            Self::Status(s) => DedupKey(format!(
                "{provider}/status/{}/{}/{}",
                s.id,
                s.status.as_str(),
                join_codes(&s.errors)
            )),
            Self::UserPreference(p) => DedupKey(format!(
                "{provider}/user_preference/{}/{}/{}/{}",
                p.contact.id,
                p.category,
                p.preference.as_str(),
                p.timestamp.map(|t| t.to_string()).unwrap_or_default()
            )),
            // No id exists for these; the full content (with Meta's `entry.time`) is the
            // identity, hashed to keep the key short.
            Self::Notice(n) => DedupKey(format!(
                "{provider}/notice/{}/{}/{}",
                n.kind,
                n.account.as_deref().unwrap_or_default(),
                content_hash(&n.details)
            )),
        }
    }
}

fn provider_of(id: &ProviderMessageRef) -> ProviderKind {
    match id {
        ProviderMessageRef::Twilio(_) => ProviderKind::Twilio,
        ProviderMessageRef::Meta(_) => ProviderKind::Meta,
    }
}

fn content_hash(details: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (key, value) in details {
        // Lengths first, so ("ab","c") and ("a","bc") differ.
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

fn join_codes(errors: &[ProviderErrorDetail]) -> String {
    errors
        .iter()
        .map(|e| e.code.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// See [`WebhookEvent::dedup_key`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DedupKey(String);

impl DedupKey {
    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A contact as a provider identified them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRef {
    /// The phone number when known, else the business-scoped user id.
    pub id: ContactId,
    /// The business-scoped user id (Meta `user_id`/`from_user_id`, Twilio `ExternalUserId`)
    /// when the provider sent one, also when `id` is the phone number: it links the two.
    pub bsuid: Option<BusinessScopedUserId>,
}

/// The business side of an event: which of our numbers, under which account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BusinessEndpoint {
    /// Twilio `To` (inbound) / `From` (status); Meta `metadata.display_phone_number`.
    pub number: Option<PhoneNumber>,
    /// Meta `metadata.phone_number_id`.
    pub phone_number_id: Option<String>,
    /// Twilio `AccountSid`; Meta WhatsApp Business Account id (`entry[].id`).
    pub account: Option<String>,
}

/// A provider error as reported in a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderErrorDetail {
    /// Twilio `ErrorCode` / Meta `errors[].code`; classify with the event's provider.
    pub code: u32,
    /// Meta `title`.
    pub title: Option<String>,
    /// Meta `message`; Twilio `ErrorMessage` when sent.
    pub message: Option<String>,
    /// Meta `error_data.details`; Twilio `ChannelStatusMessage`.
    pub details: Option<String>,
}

/// A message from a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Twilio `MessageSid` / Meta message `id`.
    pub id: ProviderMessageRef,
    /// Who wrote.
    pub from: ContactRef,
    /// Which business number received it.
    pub to: BusinessEndpoint,
    /// WhatsApp profile name (Twilio `ProfileName`, Meta `contacts[].profile.name`).
    pub profile_name: Option<String>,
    /// Unix seconds (Meta only; Twilio sends none, use the arrival time).
    pub timestamp: Option<u64>,
    /// The message this one replies to (Twilio `OriginalRepliedMessageSid`, Meta `context.id`).
    pub reply_to: Option<ProviderMessageRef>,
    /// What was sent.
    pub content: InboundContent,
    /// Meta attaches errors to messages it could not render (`type: unsupported`).
    pub errors: Vec<ProviderErrorDetail>,
    /// The group chat it was written in (Meta `group_id`), when it was not a one-to-one
    /// message: it opens no window.
    pub group: Option<String>,
    /// Everything else the provider said about it ([`crate::details`]).
    pub details: ProviderDetails,
}

/// A Meta system notice (`messages[].type = "system"`): WhatsApp telling the business about a
/// contact. Not a message from the person: it opens no window and carries no keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemNotice {
    /// The notice's message `id`.
    pub id: ProviderMessageRef,
    /// The identity the notice is about (`from` / `from_user_id`: the old one for a change).
    pub from: ContactRef,
    /// Which business number received it.
    pub to: BusinessEndpoint,
    /// What changed.
    pub kind: SystemNoticeKind,
    /// Meta's human-readable `system.body`.
    pub body: Option<String>,
    /// Unix seconds.
    pub timestamp: Option<u64>,
    /// Everything the provider said about it ([`crate::details`]).
    pub details: ProviderDetails,
}

/// What a system notice says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemNoticeKind {
    /// `user_changed_number` (older versions: `customer_changed_number`): the person now uses
    /// `new_number` (`system.new_wa_id`, or `system.wa_id` in older versions).
    ChangedNumber {
        /// The new number.
        new_number: PhoneNumber,
    },
    /// `user_changed_user_id`: the person's business-scoped user id is now `new_user_id`
    /// (`system.new_user_id`, or `system.user_id`; the shape is unverified).
    ChangedUserId {
        /// The new business-scoped user id.
        new_user_id: BusinessScopedUserId,
    },
    /// `customer_identity_changed` (or `user_identity_changed`): the person's identity key
    /// changed (a new phone, a reinstall, or someone else holding the number).
    IdentityChanged {
        /// `system.identity`, Meta's hash of the new identity.
        identity: Option<String>,
    },
    /// Any other system type, kept by name.
    Other(String),
}

impl SystemNoticeKind {
    /// Meta's type name (the current spelling).
    pub fn as_str(&self) -> &str {
        match self {
            Self::ChangedNumber { .. } => "user_changed_number",
            Self::ChangedUserId { .. } => "user_changed_user_id",
            Self::IdentityChanged { .. } => "customer_identity_changed",
            Self::Other(kind) => kind,
        }
    }
}

/// The content of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundContent {
    /// Text the contact typed: the only content STOP/START keywords are read from.
    Text {
        /// The text.
        body: String,
    },
    /// A quick-reply button of a template was tapped.
    Button {
        /// The button's label.
        text: String,
        /// The payload set in the template, if any.
        payload: Option<String>,
    },
    /// Meta interactive `button_reply`.
    ButtonReply {
        /// Our button id.
        id: String,
        /// The button's title.
        title: String,
    },
    /// Meta interactive `list_reply`.
    ListReply {
        /// Our row id.
        id: String,
        /// The row's title.
        title: String,
        /// The row's description.
        description: Option<String>,
    },
    /// Image, audio, video, document, sticker.
    Media {
        /// The provider's type name (`image`, `document`, …).
        kind: String,
        /// Where to fetch the media.
        media: Vec<MediaRef>,
        /// Caption (Twilio `Body`; for documents Twilio puts the file name there).
        caption: Option<String>,
    },
    /// Any other type (location, contacts, reaction, order, system, unsupported, …),
    /// kept by name so nothing is dropped.
    Other {
        /// The provider's type name.
        kind: String,
        /// Twilio `Body` when not empty.
        body: Option<String>,
    },
}

impl InboundContent {
    /// The text a contact typed, if this is a text message. Captions, file names and button
    /// labels are not typed text.
    pub fn typed_text(&self) -> Option<&str> {
        match self {
            Self::Text { body } => Some(body),
            _ => None,
        }
    }

    /// The type name (`text`, `button`, `interactive`, `image`, …).
    pub fn kind(&self) -> &str {
        match self {
            Self::Text { .. } => "text",
            Self::Button { .. } => "button",
            Self::ButtonReply { .. } | Self::ListReply { .. } => "interactive",
            Self::Media { kind, .. } | Self::Other { kind, .. } => kind,
        }
    }
}

/// Where inbound media can be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaRef {
    /// Twilio `MediaUrl{N}` (fetch with Basic auth) and `MediaContentType{N}`.
    Url {
        /// Media URL.
        url: String,
        /// MIME type.
        content_type: Option<String>,
    },
    /// Meta media id (resolve with the Graph API) and `mime_type`.
    MetaId {
        /// Media id.
        id: String,
        /// MIME type.
        mime_type: Option<String>,
    },
}

/// A delivery status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// Twilio `MessageSid` / Meta status `id`.
    pub id: ProviderMessageRef,
    /// The reported status; unknown words are kept as `MessageStatus::Other`.
    pub status: MessageStatus,
    /// Error(s) reported with the status.
    pub errors: Vec<ProviderErrorDetail>,
    /// The wagate message id we put in the callback (Twilio `StatusCallback` query
    /// `message_id`, Meta `biz_opaque_callback_data`), when it is one.
    pub message_id: Option<MessageId>,
    /// Meta `biz_opaque_callback_data` verbatim when it is not a wagate message id
    /// (a message sent outside wagate).
    pub callback_data: Option<String>,
    /// The recipient (Twilio `To`; Meta `recipient_id` or `recipient_user_id`).
    pub recipient: Option<ContactRef>,
    /// The sending business number.
    pub business: BusinessEndpoint,
    /// Unix seconds (Meta only).
    pub timestamp: Option<u64>,
    /// Twilio `EventType` (`READ`, `DELIVERED`).
    pub event_type: Option<String>,
    /// Everything else the provider said: pricing, conversation, every error's title,
    /// message and details, Twilio's extra fields ([`crate::details`]).
    pub details: ProviderDetails,
    /// Meta's `pricing` object (on one of `sent`/`delivered`), typed. Twilio: always `None`
    /// (its price is read from the Message resource, [`crate::twilio::price`]).
    pub pricing: Option<StatusPricing>,
}

impl StatusUpdate {
    /// The reported errors as the domain records them (no HTTP status: webhooks carry none).
    pub fn provider_errors(&self) -> Vec<ProviderError> {
        let provider = provider_of(&self.id);
        self.errors
            .iter()
            .map(|detail| ProviderError {
                provider,
                code: Some(detail.code),
                http_status: None,
                message: [&detail.title, &detail.message, &detail.details]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(": "),
            })
            .collect()
    }
}

/// Meta `user_preferences` change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPreferenceChange {
    /// Whose preference changed.
    pub contact: ContactRef,
    /// Which business number's contact.
    pub business: BusinessEndpoint,
    /// e.g. `marketing_messages`.
    pub category: String,
    /// Stop or resume.
    pub preference: PreferenceValue,
    /// Meta's human-readable detail.
    pub detail: Option<String>,
    /// Unix seconds.
    pub timestamp: Option<u64>,
    /// Everything the provider said about it ([`crate::details`]).
    pub details: ProviderDetails,
}

/// A `user_preferences` value. Meta's exact strings are unverified; `stop` stops, `resume`
/// and `signup` (both readings are in use) resume, and anything else is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreferenceValue {
    /// The contact stopped these messages.
    Stop,
    /// The contact resumed them.
    Resume,
    /// Anything else, lower-cased.
    Other(String),
}

impl PreferenceValue {
    /// Never fails.
    pub fn parse(input: &str) -> Self {
        match input.trim().to_ascii_lowercase().as_str() {
            "stop" => Self::Stop,
            "resume" | "signup" => Self::Resume,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire word.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stop => "stop",
            Self::Resume => "resume",
            Self::Other(other) => other,
        }
    }
}

/// A provider notice: what the provider said, by kind, with all its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderNotice {
    /// Who sent it.
    pub provider: ProviderKind,
    /// Meta's WhatsApp Business Account id (`entry[].id`), when given.
    pub account: Option<String>,
    /// Meta's change `field` (`errors` for value-level errors).
    pub kind: String,
    /// Every value of the change, flattened (`value.…`, `entry.time`).
    pub details: ProviderDetails,
}

impl ProviderNotice {
    /// The first value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
