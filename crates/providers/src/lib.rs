//! wagate-providers: the wire formats of Twilio (as WhatsApp BSP) and Meta's Cloud API.
//!
//! * Webhooks: signature verification ([`twilio::verify_signature`],
//!   [`meta::verify_signature`]), Meta's subscription handshake
//!   ([`meta::verify_subscription`]) and parsing into provider-neutral [`WebhookEvent`]s, each
//!   with a stable [`DedupKey`].
//! * Sending: one [`Provider`] trait implemented by [`twilio::TwilioClient`] and
//!   [`meta::MetaClient`], with errors ([`SendError`]) that keep the provider's code, the HTTP
//!   status and the transport failure apart so the dispatcher can classify them (the
//!   classification itself lives in `wagate-domain`).
//! * [`sandbox::SandboxProvider`]: Twilio on loopback with no credentials (signed status
//!   callbacks to the hub, test numbers that fail with Twilio's real codes).
//!
//! Ids, statuses and error classification belong to `wagate-domain`; this crate only maps
//! wire formats onto them.

pub mod details;
mod error;
pub mod event;
mod http;
pub mod hubspot;
pub mod meta;
pub mod sandbox;
mod secret;
mod send;
pub mod templates;
pub mod twilio;

pub use error::{ParseError, SignatureError};
pub use event::{
    BusinessEndpoint, ContactRef, DedupKey, InboundContent, InboundMessage, MediaRef,
    PreferenceValue, ProviderErrorDetail, ProviderNotice, StatusUpdate, SystemNotice,
    SystemNoticeKind, UserPreferenceChange, WebhookEvent,
};
pub use secret::Secret;
pub use send::{
    ConfigError, OutboundContent, OutboundRequest, Provider, SendAccepted, SendError, SendFuture,
    Sender, TemplateContent,
};
