//! wagate-api: the JSON shapes of the hub's HTTP API, in one place, shared by the server
//! (wagate-http), the out-of-process dispatcher (wagate-dispatch) and the CLI client. Every type
//! is `Serialize + Deserialize + ToSchema`: docs/openapi.yaml is generated from these types (by
//! wagate-http, which adds the routes), and docs/api.md describes them with examples.
//!
//! This crate knows no server, no app and no store, so a client links only these shapes.
//!
//! Conventions:
//! - times are RFC 3339 strings in UTC with milliseconds (`2026-11-25T09:00:00.000Z`);
//! - ids are their canonical strings: E.164 numbers (`+41790000001`), WhatsApp addresses
//!   (`whatsapp:+15550001111`), message ids (UUID v7), template ids (Twilio Content SID `HX…`
//!   or a Meta template name), provider message ids (`SM…`, `wamid.…`);
//! - optional fields are `null` (or absent in requests);
//! - an error is `{"error": {"code": "...", "message": "...", ...}}` (see [`ErrorBody`]).

use std::collections::BTreeMap;

mod campaigns;
pub use campaigns::*;

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::Ref;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------------------------
// Errors

/// Every non-2xx answer of the command API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// `refused` (422), `invalid` (400), `not_found` (404), `not_claimable` (409),
    /// `idempotency_key_reused` (409, `field` `Idempotency-Key`), `unauthorized` (401),
    /// `forbidden` (403), `request_timeout` (408), `payload_too_large` (413), `unavailable` (503),
    /// `internal` (500).
    pub code: String,
    /// A sentence for a person.
    pub message: String,
    /// The compliance rule that refused the send (`opted_out`, `window_closed`, …): 422 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Other rules the same request also breaks, in check order: 422 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also_broken: Option<Vec<String>>,
    /// The least privileged role that may use the route (`agent`, `dispatcher`, `operator`,
    /// `auditor`): 403 `forbidden` for a known token of another role only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_role: Option<String>,
    /// The request field that is wrong: 400 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Where the message stands for the dispatcher: 409 on claim only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The request's id, as in its `x-request-id` response header (and the hub's logs): quote
    /// it when asking about a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Contacts

/// `POST /v1/contacts/{e164}/opt-in`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptInRequest {
    /// `web_form`, `qr_code`, `click_to_whatsapp_ad`, `keyword`, `operator` or `api`.
    pub source: String,
    /// Free text or a URL: the form submission, the ad click, …
    pub evidence: String,
    /// Who recorded it (an operator, an agent).
    pub recorded_by: String,
    /// Required: the version of the published consent wording the contact agreed to
    /// (`POST /v1/consent/wordings` answers it). Optional in the schema only so that a
    /// request without it gets a 400 that says what to send.
    #[serde(default)]
    pub wording_version: Option<String>,
    /// When the evidence is dated (RFC 3339), e.g. when the form was submitted; default now.
    /// Required after the contact opted out, and then it must be after the opt-out: only new
    /// evidence can opt them in again. Never in the future.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub evidence_at: Option<String>,
}

/// `POST /v1/contacts/{e164}/opt-out` (the body is optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutRequest {
    /// `api` (default), `operator`, `keyword` or `provider_report`.
    #[serde(default)]
    pub source: Option<String>,
    /// Why (default: empty).
    #[serde(default)]
    pub detail: Option<String>,
}

/// The answer to a command that appended events (or found nothing to change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Recorded {
    /// Log positions of the appended events; empty when nothing changed.
    pub positions: Vec<u64>,
}

/// `GET /v1/contacts/{e164}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactResponse {
    pub contact: String,
    /// The contact stream's version (0: nothing recorded yet).
    pub version: u64,
    pub consent: ConsentView,
    /// For any sender: the latest end of any business number's window (24 h after the person
    /// last wrote to it, less the safety margin); `null` when no window was opened or the
    /// provider reported them closed. A send is gated by its own sender's window: see `windows`.
    #[schema(format = DateTime)]
    pub window_open_until: Option<String>,
    /// When the person last wrote to any of our numbers (their time, never later than receipt).
    #[schema(format = DateTime)]
    pub last_inbound_at: Option<String>,
    /// The 24 h window of each business number the person wrote to: freeform text from a
    /// sender is allowed only inside that sender's window.
    pub windows: Vec<SenderWindow>,
    pub flags: FlagsView,
    /// Free-text opt-out mentions waiting for a person.
    pub reviews_requested: u32,
    /// Newest first.
    pub recent_messages: Vec<MessageSummary>,
    /// The person's other identities (Meta's `wa_id` for the number, a business-scoped user
    /// id, an old or new number), each with its own consent. A send to this contact is judged
    /// by the most restrictive consent among all of them: an opt-out under any one stops all.
    pub linked_identities: Vec<LinkedIdentityView>,
    /// The consent sends to this contact are judged by (`unknown`, `opted_in`, `opted_out`):
    /// `consent.state` combined with the linked identities'.
    pub effective_consent: String,
}

/// Another identity of the same person, linked by a provider's word (`IdentityLinked`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LinkedIdentityView {
    /// `+E164` or `bsuid:…`.
    pub contact: String,
    pub consent: ConsentView,
}

/// One business number's window with a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SenderWindow {
    /// The business number (`whatsapp:+E164`).
    pub sender: String,
    /// When the person last wrote to this number.
    #[schema(format = DateTime)]
    pub last_inbound_at: Option<String>,
    /// Freeform text from this sender may be sent until then; `null` when the provider reported
    /// the window closed (63016/131047) and the person has not written since.
    #[schema(format = DateTime)]
    pub open_until: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentView {
    /// `unknown`, `opted_in` or `opted_out`.
    pub state: String,
    /// The opt-in receipt (when opted in), or the opt-in withdrawn by the opt-out.
    pub receipt: Option<ConsentReceiptView>,
    /// The opt-out (when opted out).
    pub opt_out: Option<OptOutView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentReceiptView {
    pub source: String,
    pub evidence: String,
    pub recorded_by: String,
    pub wording_version: String,
    /// When the evidence is dated (the person's own time for a keyword).
    #[schema(format = DateTime)]
    pub evidence_at: String,
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OptOutView {
    pub source: String,
    pub detail: String,
    /// When the person opted out (their own time for a keyword).
    #[schema(format = DateTime)]
    pub evidence_at: String,
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FlagsView {
    /// Since when the number is reported not on WhatsApp.
    #[schema(format = DateTime)]
    pub not_on_whatsapp: Option<String>,
    /// Since when the contact stopped marketing messages.
    #[schema(format = DateTime)]
    pub marketing_paused: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageSummary {
    #[schema(format = "uuid")]
    pub message_id: String,
    pub status: String,
    /// The rule that refused it, if it was refused.
    pub refused: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Messages

/// `POST /v1/messages` (with optional `Idempotency-Key` header and `?dry_run=true`).
/// Exactly one of `template` and `text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// The recipient, E.164.
    pub to: String,
    /// The sender, `whatsapp:+E164`; optional when exactly one sender is registered.
    #[serde(default)]
    pub from: Option<String>,
    /// The task-specific workflow (`lead_qualification`, `appointment_scheduling`, …).
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default)]
    pub template: Option<TemplateContentRequest>,
    /// Freeform text: only inside the 24 h window.
    #[serde(default)]
    pub text: Option<String>,
    /// Freeform media by https link with an optional caption: only inside the 24 h window.
    #[serde(default)]
    pub media: Option<MediaRequest>,
    /// Body text with 1 to 3 quick-reply buttons: only inside the 24 h window.
    #[serde(default)]
    pub interactive: Option<InteractiveRequest>,
}

/// An image, video or document the provider downloads from `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaRequest {
    /// `image` (JPEG, PNG), `video` (MP4, 3GPP) or `document` (PDF, text, Office).
    #[serde(rename = "type")]
    pub kind: String,
    /// `https://` only; a file extension, when the path has one, must fit the type.
    pub url: String,
    /// Shown under the media, up to 1,024 characters.
    #[serde(default)]
    pub caption: Option<String>,
}

/// Quick-reply buttons under a body text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractiveRequest {
    /// Up to 1,024 characters.
    pub body: String,
    /// 1 to 3 buttons, ids and titles unique.
    pub buttons: Vec<ReplyButtonBody>,
}

/// One quick-reply button: `title` (up to 20 characters) is shown, `id` (up to 256) comes back
/// in the contact's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyButtonBody {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateContentRequest {
    /// The template's id as `GET /v1/templates` lists it (give this or `content_sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The template id: a Twilio Content SID (`HX…`) or a Meta template name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sid: Option<String>,
    /// Placeholder key → value; must match the template's placeholders exactly.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Header media of this send (Cloud API templates with a media header or a carousel):
    /// at most one per header. Twilio Content templates name their media in the definition:
    /// give the URL as the variable the template defines instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<TemplateMediaBody>,
}

/// One header medium of a template send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateMediaBody {
    /// Absent: the template's own header; 0 to 9: the header of that carousel card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<u8>,
    /// `image`, `video` or `document` (a carousel card: image or video).
    #[serde(rename = "type")]
    pub kind: String,
    /// `https://` only; a file extension, when the path has one, must fit the type.
    pub url: String,
}

/// 202 answer of `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SendMessageResponse {
    #[schema(format = "uuid")]
    pub message_id: String,
    /// Always `queued`.
    pub status: String,
    /// True when nothing was recorded (`?dry_run=true`): the send would be allowed now.
    pub dry_run: bool,
}

/// `GET /v1/messages/{id}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageResponse {
    #[schema(format = "uuid")]
    pub message_id: String,
    /// `queued`, `sending`, `sent`, `delivered`, `read`, `failed`, `undelivered`, `canceled`, …
    pub status: String,
    /// What was allowed; `null` when the send was refused.
    pub intent: Option<IntentView>,
    /// The refusal, when the send broke a rule.
    pub refused: Option<RefusedView>,
    /// The rule that canceled the message at claim time.
    pub canceled_by: Option<String>,
    pub phase: Phase,
    /// Provider calls claimed so far.
    pub attempts: u32,
    pub provider_ref: Option<String>,
    pub last_error: Option<ProviderErrorView>,
    /// Every status observation, applied or not.
    pub statuses: Vec<StatusObservationView>,
    /// Every event of the message's stream, in the export format.
    #[schema(schema_with = history_schema)]
    pub history: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RefusedView {
    pub rule: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusObservationView {
    pub status: String,
    pub error_code: Option<u32>,
    #[schema(format = DateTime)]
    pub at: String,
    /// Whether it moved the message's status (late or duplicate reports do not).
    pub applied: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderErrorView {
    /// `twilio`, `meta` or `sandbox`.
    pub provider: String,
    pub code: Option<u32>,
    pub http_status: Option<u16>,
    pub message: String,
}

/// An allowed message: who, from which number, what, in which workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IntentView {
    /// The contact (E.164, or `bsuid:<id>`).
    pub to: String,
    /// The sender, `whatsapp:+E164`.
    pub from: String,
    pub workflow: String,
    pub content: ContentView,
    #[schema(format = DateTime)]
    pub decided_at: String,
}

/// What the message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentView {
    Template {
        /// The template id (Content SID or Meta template name).
        template: String,
        /// `marketing`, `utility` or `authentication`.
        category: String,
        variables: BTreeMap<String, String>,
        /// Header media of the send; absent when none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        media: Vec<TemplateMediaBody>,
    },
    Text {
        text: String,
    },
    /// Freeform media (`kind`: image, video, document).
    Media {
        kind: String,
        url: String,
        caption: String,
    },
    /// Quick-reply buttons under a body text.
    Buttons {
        body: String,
        buttons: Vec<ReplyButtonBody>,
    },
}

/// `GET /v1/messages/{id}/explain`: why a message was allowed or refused, in plain words, each
/// fact citing the log position of the event the decision relied on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExplainResponse {
    #[schema(format = "uuid")]
    pub message_id: String,
    pub decision: ExplainDecision,
    /// The rule that refused the send, or that refused its dispatch claim and canceled it; absent
    /// when allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The decision first, then each rule it relied on.
    pub facts: Vec<ExplainFact>,
}

/// What was decided: `refused` also when an allowed send was canceled by a refused claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExplainDecision {
    Allowed,
    Refused,
}

/// One event a decision relied on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExplainFact {
    /// The event's log position (`GET /v1/events?after=position-1` shows it).
    #[schema(minimum = 1)]
    pub position: u64,
    pub text: String,
}

/// Where a message stands for the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// No intent: the send was refused (or there is no such message).
    NotAllowed,
    /// Waiting for its first claim, or for a retry due at `not_before`.
    Pending {
        next_attempt: u32,
        #[schema(format = DateTime)]
        not_before: Option<String>,
    },
    /// Claimed with no outcome recorded: in flight, or in doubt after a crash.
    Claimed {
        attempt: u32,
        #[schema(format = DateTime)]
        since: String,
    },
    /// Nothing more for the dispatcher to do.
    Done,
}

// ---------------------------------------------------------------------------------------------
// Templates, senders, portfolios

/// `POST /v1/templates`: either registers a template that exists at the provider (give
/// `content_sid`), or creates one in wagate and submits it for approval (give `provider` and
/// `body`, no `content_sid`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterTemplateRequest {
    /// Registering: the template id, a Twilio Content SID (`HX` + 32 hex) or a Meta template
    /// name. Leave it out to create the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sid: Option<String>,
    /// Creating: `twilio` or `meta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The template's name (Meta: lower-case letters, digits, `_`).
    pub name: String,
    /// Language code, e.g. `en` or `de_CH`.
    pub language: String,
    /// `marketing`, `utility` or `authentication` (any case).
    pub category: String,
    /// Registering: placeholder keys, `"1"`, `"2"` for Twilio, names for named Meta parameters.
    /// Creating: taken from the text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placeholders: Vec<String>,
    /// Creating: the body text with `{{1}}`… placeholders (not at the very start or end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Creating: an optional header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<TemplateHeaderBody>,
    /// Creating: quick-reply and call-to-action buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<TemplateButtonBody>,
    /// Creating: a carousel of 2–10 cards laid out alike.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cards: Vec<TemplateCardBody>,
    /// Creating: a sample value per placeholder, shown to the provider's reviewers
    /// (`example_<key>` where missing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub examples: BTreeMap<String, String>,
    /// Creating a Meta template with a media header: the sample file Meta's reviewers see
    /// (`wagate templates create --header-file`). Without it wagate fetches the sample from
    /// the header's URL. Either way it is uploaded through Meta's Resumable Upload API
    /// (needs `WAGATE_META_APP_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_sample: Option<TemplateHeaderSample>,
}

/// A media header's sample file, carried in the request (the JSON body is limited to 2 MiB,
/// so a file of about 1.5 MiB at most).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateHeaderSample {
    /// The file's name, e.g. `listing.jpg`.
    pub file_name: String,
    /// `image/jpeg`, `image/png` (image header), `video/mp4` (video) or `application/pdf`
    /// (document).
    pub content_type: String,
    /// The file's bytes, base64 (standard alphabet, padded).
    pub data_base64: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateHeaderBody {
    /// `text`, `image`, `video` or `document`.
    pub format: String,
    /// The text (at most 60 characters, one placeholder), or the media's https URL.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateButtonBody {
    /// `quick_reply`, `url` or `phone_number`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The label (at most 25 characters).
    pub text: String,
    /// The https URL or the E.164 number; empty for a quick reply.
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateCardBody {
    /// An `image` or `video` header.
    pub header: TemplateHeaderBody,
    /// At most 160 characters.
    pub body: String,
    /// One or two buttons, the same kinds in the same order on every card.
    pub buttons: Vec<TemplateButtonBody>,
}

/// `POST /v1/templates/{content_sid}/status`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateStatusRequest {
    /// `unsubmitted`, `pending`, `approved`, `rejected`, `paused` or `disabled` (any case;
    /// Twilio's `received` means pending).
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A template as registered, in `GET /v1/templates` and the answers of the template commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TemplateView {
    /// The id a send names (`"template": {"id": …}`): the Content SID, the Meta name, or
    /// `name@language` for a Meta template created or imported by wagate.
    pub id: String,
    /// The same id, under its older name.
    pub content_sid: String,
    pub name: Option<String>,
    pub language: Option<String>,
    pub category: Option<String>,
    pub placeholders: Vec<String>,
    /// `null` until registered.
    pub status: Option<String>,
    /// Who set the status: `provider` (its API, the poll or a webhook) or `operator`.
    pub source: Option<String>,
    /// The provider's reason (rejection reason, pause cause) or the operator's note.
    pub reason: Option<String>,
    /// For a template created in wagate: `twilio` or `meta`, and the provider's own id.
    pub provider: Option<String>,
    pub provider_ref: Option<String>,
}

/// 200 answer of `POST /v1/templates/sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TemplateSyncResponse {
    /// Templates the providers listed.
    pub listed: u64,
    /// Of those, templates wagate did not know and registered.
    pub imported: u64,
    /// Status changes recorded.
    pub changed: u64,
}

/// `POST /v1/senders`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterSenderRequest {
    /// `whatsapp:+E164`.
    pub address: String,
    /// `twilio`, `meta` or `sandbox`.
    pub provider: String,
    /// The Meta business portfolio whose messaging limit the number shares (default `default`).
    #[serde(default)]
    pub portfolio: Option<String>,
    /// Cloud API senders are addressed by phone-number id.
    #[serde(default)]
    pub meta_phone_number_id: Option<String>,
    /// Meta upgraded this Cloud API number to 1,000 msg/s (default false: 80 msg/s). Twilio
    /// senders have one tier (80 msg/s).
    #[serde(default)]
    pub upgraded: Option<bool>,
    /// Messages per second to hold this sender to, over its provider's and tier's default
    /// (1 to 1,000).
    #[serde(default)]
    pub rate_per_second: Option<u32>,
}

/// `POST /v1/senders/{address}/authorize` (the body is optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeSenderRequest {
    /// Who authorized it (default `api`).
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST /v1/senders/{address}/suspend`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendSenderRequest {
    pub reason: String,
}

/// A sender, in `GET /v1/senders` and the answers of the sender commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SenderView {
    pub address: String,
    pub provider: Option<String>,
    pub portfolio: Option<String>,
    pub meta_phone_number_id: Option<String>,
    /// Meta upgraded the Cloud API number (registered as such).
    #[serde(default)]
    pub upgraded: bool,
    /// The rate the dispatcher holds it to, in messages per second (its provider's and tier's
    /// default unless registered with its own); absent before registration.
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    pub authorized_by: Option<String>,
    pub suspended: Option<String>,
    /// Registered, authorized and not suspended.
    pub may_send: bool,
}

/// `POST /v1/portfolios/{portfolio}/messaging-limit`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagingLimitRequest {
    /// Unique recipients per rolling 24 h (a number), or the string `unlimited`.
    #[schema(schema_with = messaging_limit_schema)]
    pub limit: serde_json::Value,
}

// ---------------------------------------------------------------------------------------------
// Dispatch (for a dispatcher running as its own process)

/// One entry of `GET /v1/dispatch/pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingMessageView {
    #[schema(format = "uuid")]
    pub message_id: String,
    /// The sender (`whatsapp:+E164`): the per-sender rate limit's key.
    pub sender: String,
    /// The contact: with `sender`, the pair rate limit's key.
    pub recipient: String,
    #[serde(flatten)]
    pub phase: Phase,
    /// Log position of the message's intent event.
    pub position: u64,
    /// The sender's rate in messages per second from its registration (provider, tier or an
    /// operator's figure); absent from a hub that does not say (the dispatcher's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_rate_per_second: Option<u32>,
}

/// `GET /v1/dispatch/pending`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingResponse {
    pub messages: Vec<PendingMessageView>,
    /// The durable log head when the list was taken: every intent at or below it is listed
    /// (unless done).
    pub head: u64,
}

/// 200 answer of `POST /v1/messages/{id}/claim`: everything the provider call needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimResponse {
    #[schema(format = "uuid")]
    pub message_id: String,
    /// The attempt this claim is for; report it with the outcome.
    pub attempt: u32,
    pub intent: IntentView,
    pub sender: SenderView,
    /// For template messages: the registration (Meta needs name and language).
    pub template: Option<TemplateDefinitionView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TemplateDefinitionView {
    pub name: String,
    pub language: String,
    pub category: String,
    pub placeholders: Vec<String>,
}

/// `POST /v1/messages/{id}/outcome`: exactly one of `accepted`, `rejected`, `transport`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    /// The attempt the claim answered with.
    pub attempt: u32,
    #[serde(default)]
    pub accepted: Option<AcceptedOutcome>,
    #[serde(default)]
    pub rejected: Option<RejectedOutcome>,
    #[serde(default)]
    pub transport: Option<TransportOutcome>,
    /// Added to the retry backoff (the dispatcher draws it), milliseconds.
    #[serde(default)]
    pub jitter_ms: u64,
}

/// The provider accepted the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptedOutcome {
    /// `SM…` / `MM…` (Twilio, sandbox) or `wamid.…` (Meta).
    pub provider_ref: String,
    /// The status the provider answered with (`queued`, `accepted`, …).
    pub provider_status: String,
    /// The identity the provider says it delivered to (Meta's `contacts[].wa_id`, as `+E164`,
    /// or `bsuid:…`), when it named one; linked to the message's contact when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
}

/// The provider answered with an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectedOutcome {
    /// `twilio`, `meta` or `sandbox`.
    pub provider: String,
    #[serde(default)]
    pub code: Option<u32>,
    #[serde(default)]
    pub http_status: Option<u16>,
    pub message: String,
}

/// No answer from the provider (timeout, connection error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransportOutcome {
    pub provider: String,
    pub message: String,
}

/// The answer to `outcome` and `expire-in-doubt`: what was appended and the phase now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DispatchRecorded {
    pub positions: Vec<u64>,
    #[serde(flatten)]
    pub phase: Phase,
}

// ---------------------------------------------------------------------------------------------
// Health

/// `GET /healthz`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
    /// The durable log head.
    pub head: u64,
    /// `sandbox` or `providers`.
    pub mode: String,
}

/// `GET /readyz`: whether the hub can make writes durable right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready` (200) or `unavailable` (503).
    pub status: String,
    /// Why the hub is not ready (`store failed: …`, `draining`); absent when ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The durable log head.
    pub head: u64,
}

// ---------------------------------------------------------------------------------------------
// Webhooks

/// 200 answer of `POST /webhooks/meta`: what became of the batch's items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MetaWebhookSummary {
    /// Items appended to the log.
    pub appended: u64,
    /// Items already in the log (a redelivery).
    pub duplicates: u64,
    /// Items not used (written to the webhook rejection log).
    pub rejected: u64,
}

/// 200 answer of `POST /v1/webhooks/retry-rejected`: what became of the rejection log's refused
/// requests not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetryRejectedSummary {
    /// Requests run through their webhook handler again.
    pub retried: u64,
    /// Of those, genuine under today's configuration and appended.
    pub ingested: u64,
    /// Genuine, and already in the log (a provider's redelivery got there first).
    pub duplicates: u64,
    /// Still refused (signature, parsing or store): kept for a later retry.
    pub still_rejected: u64,
}

// ---------------------------------------------------------------------------------------------
// Schemas written by hand: values the types above carry as `serde_json::Value`.

/// The name of [`exported_event_schema`] among the document's schemas.
pub const EXPORTED_EVENT: &str = "ExportedEvent";

/// One event in the export format (wagate-export's `ExportedEvent`, see docs/events.md): a line
/// of `GET /v1/events` and an entry of a message's `history`. Written by hand because the type
/// lives in wagate-export, which this crate must not depend on; wagate-http's tests check that
/// a real exported event has exactly these properties.
pub fn exported_event_schema() -> Schema {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let position = || {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
    };
    ObjectBuilder::new()
        .description(Some("One event in the export format (docs/events.md)."))
        .property("position", position())
        .property("stream", string())
        .property("version", position())
        .property(
            "type",
            string().description(Some("The event type, e.g. `TemplateSent`.")),
        )
        .property(
            "timestamp",
            string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .property(
            "event_id",
            string().format(Some(SchemaFormat::Custom("uuid".into()))),
        )
        .property(
            "payload",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some("The event's fields; per type in docs/events.md.")),
        )
        .property(
            "actor",
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::Object,
                    Type::Null,
                ]))
                .description(Some(
                    "Who asked for the event: `kind` a role (`agent`, `operator`, `dispatcher`, \
                     `auditor`) or `webhook`, `name` the token's name, the provider, or \
                     `in-process` (the hub's own dispatcher); null for events recorded before \
                     actors were.",
                ))
                .property("kind", string())
                .property("name", string())
                .required("kind")
                .required("name"),
        )
        .required("position")
        .required("stream")
        .required("version")
        .required("type")
        .required("timestamp")
        .required("event_id")
        .required("payload")
        .into()
}

fn history_schema() -> Schema {
    ArrayBuilder::new()
        .items(Ref::from_schema_name(EXPORTED_EVENT))
        .description(Some(
            "Every event of the message's stream, in the export format.",
        ))
        .into()
}

fn messaging_limit_schema() -> Schema {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["unlimited"])),
        )
        .description(Some(
            "Unique recipients per rolling 24 h (a number), or the string `unlimited`.",
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The tagged and flattened shapes are the ones clients parse: pin them.
    #[test]
    fn phases_are_tagged_and_flattened_into_their_parents() {
        let pending = PendingMessageView {
            message_id: "01934b8e-0000-7000-8000-000000000000".into(),
            sender: "whatsapp:+15550001111".into(),
            recipient: "+41790000001".into(),
            phase: Phase::Pending {
                next_attempt: 2,
                not_before: None,
            },
            position: 7,
            sender_rate_per_second: None,
        };
        let wire = json!({
            "message_id": "01934b8e-0000-7000-8000-000000000000",
            "sender": "whatsapp:+15550001111",
            "recipient": "+41790000001",
            "phase": "pending",
            "next_attempt": 2,
            "not_before": null,
            "position": 7,
        });
        assert_eq!(serde_json::to_value(&pending).expect("json"), wire);
        let back: PendingMessageView = serde_json::from_value(wire).expect("parses");
        assert_eq!(back, pending);

        let recorded = DispatchRecorded {
            positions: vec![9],
            phase: Phase::Done,
        };
        assert_eq!(
            serde_json::to_value(&recorded).expect("json"),
            json!({"positions": [9], "phase": "done"})
        );
    }

    #[test]
    fn content_is_tagged_by_type_and_errors_omit_absent_details() {
        let text = ContentView::Text { text: "hi".into() };
        assert_eq!(
            serde_json::to_value(&text).expect("json"),
            json!({"type": "text", "text": "hi"})
        );
        let error = ErrorBody {
            error: ErrorDetail {
                code: "invalid".into(),
                message: "invalid to".into(),
                rule: None,
                also_broken: None,
                field: Some("to".into()),
                phase: None,
                required_role: None,
                request_id: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&error).expect("json"),
            json!({"error": {"code": "invalid", "message": "invalid to", "field": "to"}})
        );
    }

    /// An opt-out's `detail` may be absent or `null`; unknown fields are refused.
    #[test]
    fn opt_out_detail_may_be_null() {
        let request: OptOutRequest =
            serde_json::from_value(json!({"detail": null})).expect("null detail");
        assert_eq!(request, OptOutRequest::default());
        assert!(serde_json::from_value::<OptOutRequest>(json!({"details": "x"})).is_err());
    }
}

/// One item of the review queue: something that needs a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewItemView {
    /// Stable: the log position of the event that raised it.
    pub id: u64,
    /// `opt_out_request`, `permanent_failure`, `not_on_whatsapp`, `in_doubt_expired`,
    /// `retries_exhausted`, `sender_suspended`, `template_not_sendable`, `quality_drop`,
    /// `no_terminal_status`, `webhook_silence`, `webhook_rejections`, `alert_delivery_failed`,
    /// `crm_sync_failed`.
    pub reason: String,
    /// `open` or `resolved`.
    pub state: String,
    /// For people: what happened.
    pub title: String,
    /// The contact it is about (E.164 or `bsuid:…`), when it is about one.
    pub contact: Option<String>,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub template: Option<String>,
    /// The free text, the error, the reason given.
    pub detail: String,
    /// RFC 3339.
    pub raised_at: String,
    /// What resolving it means.
    pub resolving: String,
    /// The decisions that resolve it.
    pub decisions: Vec<String>,
    /// Set once resolved.
    pub resolution: Option<ReviewResolutionView>,
}

/// How an item was resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewResolutionView {
    pub decision: String,
    pub note: String,
    /// The token name that resolved it.
    pub by: Option<String>,
    /// RFC 3339.
    pub at: String,
}

/// `GET /v1/review`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewList {
    /// Oldest first.
    pub items: Vec<ReviewItemView>,
}

/// `POST /v1/review/{id}/resolve`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveReviewRequest {
    /// `confirm_opt_out` or `dismiss` for an `opt_out_request`; `handled` or `dismiss` otherwise.
    pub decision: String,
    #[serde(default)]
    pub note: String,
}

// ---------------------------------------------------------------------------------------------
// Consent capture

/// `POST /v1/consent/wordings`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishWordingRequest {
    /// The business the person agrees to hear from, as the page names it.
    pub business: String,
    /// Language tag (`en`, `de`, `pt_BR`).
    pub language: String,
    /// The exact consent text shown to the person.
    pub text: String,
}

/// A published consent wording: immutable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentWordingView {
    /// `w-` and 16 hex digits, derived from business, language and text.
    pub version: String,
    pub business: String,
    pub language: String,
    pub text: String,
    /// SHA-256 of `text`, hex.
    pub text_hash: String,
    #[schema(format = DateTime)]
    pub published_at: String,
}

/// `POST /v1/consent/campaigns`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaignRequest {
    /// The business number people confirm to (`whatsapp:+E164`), registered.
    pub sender: String,
    /// A published wording's version.
    pub wording_version: String,
    /// The workflows the consent covers (at least one).
    pub workflows: Vec<String>,
    /// Where it is used: `web_form`, `qr_code` or `direct_mail`.
    pub medium: String,
    /// A registered, approved template of category utility without variables (template id or
    /// Twilio content SID) that the hub sends after each form submission, asking the person to
    /// confirm; they answer YES (or press its button carrying `confirmation_payload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_template: Option<String>,
}

/// A consent campaign with its page, click-to-chat link and QR codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentCampaignView {
    /// The campaign code (`WG-…`), also carried by the prefilled message.
    pub id: String,
    pub sender: String,
    pub business: String,
    pub wording_version: String,
    pub text_hash: String,
    pub workflows: Vec<String>,
    pub medium: String,
    /// The message the click-to-chat link prefills; sent by the person, it confirms.
    pub prefilled_message: String,
    /// The hosted opt-in page (public).
    pub page_url: String,
    /// `https://wa.me/<number>?text=<prefilled message>`.
    pub wa_me_link: String,
    pub qr_svg_url: String,
    pub qr_png_url: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When an operator closed it (`POST …/close`); a closed campaign records nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
    /// The confirmation template the hub sends after a form submission, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_template: Option<String>,
    /// The quick-reply payload that confirms (`<id>:CONFIRM`), when there is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_payload: Option<String>,
}

/// `GET /v1/contacts/{contact}/consent`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentReceiptsResponse {
    pub contact: String,
    /// Oldest first.
    pub receipts: Vec<ConsentReceipt>,
}

/// What the person agreed to, when and how, and whether they withdrew it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConsentReceipt {
    /// `web_form`, `qr_code`, `api`, `keyword`, …
    pub source: String,
    /// `confirmed` (an opt-in) or `pending` (a form submission waiting for the person's message).
    pub state: String,
    /// The campaign, for opt-ins captured by one.
    pub campaign: Option<String>,
    pub wording_version: String,
    /// The wording's exact text and hash, when that version is published.
    pub wording_text: Option<String>,
    pub text_hash: Option<String>,
    /// What proves it (for a campaign: the form's time, IP and user agent, and the message).
    pub evidence: String,
    pub recorded_by: String,
    #[schema(format = DateTime)]
    pub requested_at: Option<String>,
    #[schema(format = DateTime)]
    pub confirmed_at: Option<String>,
    /// The first opt-out after it (STOP, the page's opt-out, an operator).
    #[schema(format = DateTime)]
    pub withdrawn_at: Option<String>,
    /// Log position of the `OptedIn` (or of the `OptInRequested` while pending).
    pub position: u64,
}
/// `POST /v1/webhook-endpoints`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterEndpointRequest {
    /// `https://…`, or `http://` to a loopback host (127.0.0.0/8, `localhost`, `[::1]`).
    pub url: String,
    /// The event types to deliver: `inbound_message`, `opted_out`, `opted_in`,
    /// `status_changed`, `send_refused`, `review_item_raised`.
    pub events: Vec<String>,
}

/// An outgoing webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EndpointView {
    /// `ep_` and 32 hex digits.
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// The token name that registered it.
    pub created_by: Option<String>,
    /// Deliveries start after this log position.
    pub position: u64,
    /// Every event up to this log position was delivered (acknowledged 2xx) or is not of the
    /// types asked for; compare with the log's head to see how far behind the endpoint is.
    pub delivered_through: u64,
    /// `active`, `disabled` (failed continuously too long: nothing is delivered until
    /// `POST /v1/webhook-endpoints/{id}/retry`) or `deleted`.
    pub state: String,
    /// RFC 3339, when deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// RFC 3339: the first failed attempt since the last acknowledged one (absent: not failing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    /// RFC 3339: the last acknowledged (2xx) delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
    /// RFC 3339, when disabled after failing too long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    /// Why it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// The signing secret (`whsec_…`): only in the answer to its registration. Deliveries carry
    /// `Wagate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `GET /v1/webhook-endpoints`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EndpointList {
    /// In registration order, deleted ones included.
    pub endpoints: Vec<EndpointView>,
}

/// One row of `GET /v1/costs`: what the delivered messages of one group cost in one currency.
/// Amounts are decimal strings with six decimals (exact, never floats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CostGroupView {
    /// The group (a campaign id or `(none)`, a workflow, a template, a sender, a month
    /// `YYYY-MM`); empty in `totals`.
    pub key: String,
    /// Delivered messages.
    pub messages: u64,
    /// Of them, the ones the provider bills (not `billable: false`).
    pub billable: u64,
    /// Of them, the ones the price table has no rate for (their cost is not included).
    pub unpriced: u64,
    /// The provider's (Meta's) price.
    pub provider: String,
    /// The BSP's fee (e.g. Twilio's per-message fee).
    pub fee: String,
    pub total: String,
    /// ISO 4217; `null` for the row of unpriced messages.
    pub currency: Option<String>,
}

/// `GET /v1/costs?by=…`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CostReport {
    /// `campaign`, `workflow`, `template`, `sender` or `month`.
    pub by: String,
    /// One row per group and currency, by key.
    pub groups: Vec<CostGroupView>,
    /// One row per currency, the unpriced row last.
    pub totals: Vec<CostGroupView>,
}

/// `POST /v1/crm/backfill`: mirror the log into HubSpot again from a position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrmBackfillRequest {
    /// The first log position to mirror (1 is the beginning), at most the head + 1.
    pub from: u64,
}

/// What `POST /v1/crm/backfill` scheduled (202), or the backfill already running (in a 409's
/// message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CrmBackfillScheduled {
    /// The first position re-read.
    pub from: u64,
    /// The log's head when it was scheduled: the backfill stops there (the live mirror has
    /// every later event).
    pub to: u64,
}
/// One delivery attempt to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttemptView {
    /// The delivered event's log position.
    pub position: u64,
    /// The delivered event's id.
    pub event_id: String,
    /// The delivery's event type (`inbound_message`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339, when it was attempted.
    #[schema(format = DateTime)]
    pub at: String,
    /// 1 for the event's first attempt, counting on while it fails.
    pub attempt: u32,
    /// The receiver's HTTP status (absent: no answer, see `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why there was no answer (connection refused, timeout, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the receiver acknowledged it (any 2xx).
    pub acknowledged: bool,
}

/// `GET /v1/webhook-endpoints/{id}/deliveries`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub endpoint: EndpointView,
    /// Newest first (at most the `limit` asked for, and at most the 1000 kept).
    pub deliveries: Vec<DeliveryAttemptView>,
}
