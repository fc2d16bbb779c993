//! The sending boundary shared by every provider: what to send, what came back, what failed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use wagate_domain::classify::{classify_code, classify_http_status, classify_transport};
use wagate_domain::{
    ContactId, ErrorClass, MessageContent, MessageId, MessageStatus, PhoneNumber, ProviderError,
    ProviderKind, ProviderMessageRef, Retry, RichReply, TemplateId, TemplateMedia, TwilioSid,
};

/// One message to hand to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    /// wagate's id, echoed back in status callbacks (Twilio `StatusCallback` query,
    /// Meta `biz_opaque_callback_data`).
    pub message_id: MessageId,
    /// Which business sender sends it.
    pub from: Sender,
    /// The recipient.
    pub to: PhoneNumber,
    /// What to send.
    pub content: OutboundContent,
}

/// A business sender as a provider addresses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A WhatsApp sender number: Twilio `From=whatsapp:+E164`; Meta looks the number up in
    /// [`crate::meta::MetaConfig::phone_number_ids`].
    Number(PhoneNumber),
    /// Twilio Messaging Service (`MG…`): Twilio picks the sender from its pool.
    TwilioMessagingService(TwilioSid),
    /// Meta phone-number id.
    MetaPhoneNumberId(String),
}

/// Freeform text or an approved template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundContent {
    /// Freeform text, only allowed inside the 24-hour window.
    Text {
        /// The text.
        body: String,
    },
    /// A template.
    Template(TemplateContent),
    /// Freeform media by link or quick-reply buttons, only allowed inside the 24-hour window.
    Rich(RichReply),
}

impl OutboundContent {
    /// The wire content for a domain message. The domain does not know Meta's language code
    /// or button payloads; a Meta sender sets [`TemplateContent::language`] afterwards.
    pub fn from_domain(content: &MessageContent) -> Self {
        match content {
            MessageContent::Freeform { text } => Self::Text { body: text.clone() },
            MessageContent::Rich(rich) => Self::Rich(rich.clone()),
            MessageContent::Template {
                template,
                variables,
                media,
                ..
            } => Self::Template(TemplateContent {
                template: template.clone(),
                language: None,
                variables: variables.clone(),
                media: media.clone(),
                button_payloads: Vec::new(),
            }),
        }
    }
}

/// A template and its variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateContent {
    /// Twilio: the Content SID (`HX…`); Meta: the template name.
    pub template: TemplateId,
    /// Meta: the template language (`en_US`), required there. Twilio ignores it: a Content
    /// SID already names one language.
    pub language: Option<String>,
    /// Placeholder key → value. Twilio sends them as `ContentVariables` JSON in this order;
    /// Meta sends numeric keys as positional body parameters in numeric order and other keys
    /// as named parameters.
    pub variables: Vec<(String, String)>,
    /// Meta: quick-reply button payloads, by button index. Twilio keeps payloads in the
    /// Content template itself.
    pub button_payloads: Vec<String>,
    /// Meta: the header media of this send (header and carousel-card `header` parameters).
    /// Twilio names media in the Content template and fills them from `variables`, so a
    /// Twilio send with media here is refused locally.
    pub media: Vec<TemplateMedia>,
}

/// The provider accepted the message. Not delivered yet: statuses follow by webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAccepted {
    /// Twilio `sid` / Meta `messages[0].id`.
    pub provider_message_id: ProviderMessageRef,
    /// Twilio `status` (`queued`, `accepted`); Meta `message_status` (`accepted`,
    /// `held_for_quality_assessment`, `paused`) when sent, which only happens for templates.
    pub status: Option<MessageStatus>,
    /// HTTP status of the answer (201 Twilio, 200 Meta).
    pub http_status: u16,
    /// The identity the provider says it delivered to (Meta `contacts[0].wa_id`, which can
    /// differ from the number given: Brazil's ninth digit, Mexico's `521`), when it named one.
    pub recipient: Option<ContactId>,
}

/// A send that did not end in [`SendAccepted`].
///
/// What the dispatcher needs to decide is kept apart: the provider's error code and HTTP
/// status (classified by `wagate_domain::classify_code` / `classify_http_status`), and
/// transport failures, of which only [`SendError::Connect`] proves the request never
/// reached the provider.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The provider answered with an error.
    #[error("{} rejected the message: HTTP {http_status}, code {}: {message}", .provider.as_str(), fmt_code(.code))]
    Rejected {
        /// Who answered.
        provider: ProviderKind,
        /// HTTP status.
        http_status: u16,
        /// Twilio `code` / Meta `error.code`; `None` when the body carried none.
        code: Option<u32>,
        /// The provider's message.
        message: String,
        /// Meta `error_data.details`.
        details: Option<String>,
        /// Twilio `more_info` / Meta `fbtrace_id`: what to quote to the provider's support.
        reference: Option<String>,
    },
    /// No answer within the timeout. The provider may have accepted the message: in doubt.
    #[error("{} did not answer within {timeout:?}; the message may have been accepted", .provider.as_str())]
    Timeout {
        /// Who did not answer.
        provider: ProviderKind,
        /// The configured timeout.
        timeout: Duration,
    },
    /// No connection could be made (refused, DNS, TLS handshake): nothing was sent.
    #[error("could not connect to {}: {reason}", .provider.as_str())]
    Connect {
        /// Who could not be reached.
        provider: ProviderKind,
        /// Why.
        reason: String,
    },
    /// The connection failed after the request may have left (reset, truncated answer):
    /// in doubt.
    #[error("transport error talking to {}: {reason}", .provider.as_str())]
    Transport {
        /// Who was being talked to.
        provider: ProviderKind,
        /// Why.
        reason: String,
    },
    /// The provider answered, but not in its documented shape. With a 2xx status the message
    /// was most likely accepted: in doubt.
    #[error("{} answered HTTP {http_status} in an unexpected shape: {reason}", .provider.as_str())]
    UnexpectedResponse {
        /// Who answered.
        provider: ProviderKind,
        /// HTTP status.
        http_status: u16,
        /// What was wrong.
        reason: String,
    },
    /// The request cannot be expressed for this provider (e.g. a Meta sender on Twilio, a
    /// Meta template without language). Nothing was sent; retrying will not help.
    #[error("cannot send through {}: {reason}", .provider.as_str())]
    InvalidRequest {
        /// The provider asked.
        provider: ProviderKind,
        /// Why not.
        reason: String,
    },
}

fn fmt_code(code: &Option<u32>) -> String {
    code.map_or_else(|| "none".to_owned(), |c| c.to_string())
}

impl SendError {
    /// The provider involved.
    pub fn provider(&self) -> ProviderKind {
        match self {
            Self::Rejected { provider, .. }
            | Self::Timeout { provider, .. }
            | Self::Connect { provider, .. }
            | Self::Transport { provider, .. }
            | Self::UnexpectedResponse { provider, .. }
            | Self::InvalidRequest { provider, .. } => *provider,
        }
    }

    /// The provider's error code, if it sent one.
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Rejected { code, .. } => *code,
            _ => None,
        }
    }

    /// The HTTP status, if the provider answered at all.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Rejected { http_status, .. } | Self::UnexpectedResponse { http_status, .. } => {
                Some(*http_status)
            }
            _ => None,
        }
    }

    /// Timeout, connection or other network failure: no provider verdict exists.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::Connect { .. } | Self::Transport { .. }
        )
    }

    /// The request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// The domain's classification: the provider's code when there is one, else the HTTP
    /// status, else transport. Check [`SendError::may_have_been_sent`] before retrying a
    /// retryable error: a timed-out request may already have been accepted.
    pub fn classify(&self) -> ErrorClass {
        match self {
            Self::Rejected {
                provider,
                code: Some(code),
                ..
            } => classify_code(*provider, *code),
            Self::Rejected { http_status, .. } | Self::UnexpectedResponse { http_status, .. } => {
                classify_http_status(*http_status)
            }
            Self::Timeout { .. } | Self::Connect { .. } | Self::Transport { .. } => {
                classify_transport()
            }
            Self::InvalidRequest { .. } => ErrorClass {
                retry: Retry::Permanent,
                follow_up: None,
            },
        }
    }

    /// The error as the domain records it.
    pub fn to_provider_error(&self) -> ProviderError {
        ProviderError {
            provider: self.provider(),
            code: self.code(),
            http_status: self.http_status(),
            message: self.to_string(),
        }
    }

    /// Whether the provider may have accepted the message despite the error: the attempt is
    /// *in doubt*. True for a timeout (the request may have left), a connection lost after the
    /// request was written ([`SendError::Transport`]) and a 2xx answer wagate cannot read. A
    /// dispatcher never resends these; it waits for the status callback (which carries
    /// wagate's message id) or the in-doubt expiry. Only [`SendError::Connect`] (no connection:
    /// refused, DNS, TLS handshake), an error answer and a locally refused request prove that
    /// nothing was accepted.
    pub fn may_have_been_sent(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Transport { .. } => true,
            Self::UnexpectedResponse { http_status, .. } => (200..300).contains(http_status),
            Self::Rejected { .. } | Self::Connect { .. } | Self::InvalidRequest { .. } => false,
        }
    }
}

/// Why a provider client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A base URL is not an absolute http(s) URL.
    #[error("{name} is not an absolute http(s) URL")]
    InvalidUrl {
        /// Which setting.
        name: &'static str,
    },
    /// A setting is out of range.
    #[error("{name}: {reason}")]
    Invalid {
        /// Which setting.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The HTTP client (TLS backend) could not be initialised.
    #[error("HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// The future [`Provider::send`] returns: boxed so the trait stays dyn-compatible.
pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SendAccepted, SendError>> + Send + 'a>>;

/// A WhatsApp provider the dispatcher can send through.
pub trait Provider: Send + Sync + fmt::Debug {
    /// Which provider this is (for error classification).
    fn kind(&self) -> ProviderKind;

    /// Sends one message. One HTTP request, no retries: retrying is the dispatcher's decision.
    fn send<'a>(&'a self, request: &'a OutboundRequest) -> SendFuture<'a>;
}

#[cfg(test)]
mod tests {
    use wagate_domain::FollowUp;

    use super::*;

    fn rejected(provider: ProviderKind, http_status: u16, code: Option<u32>) -> SendError {
        SendError::Rejected {
            provider,
            http_status,
            code,
            message: "m".into(),
            details: None,
            reference: None,
        }
    }

    #[test]
    fn classification_uses_the_domain_rules() {
        use ProviderKind::{Meta, Twilio};
        let retryable = |e: SendError| e.classify().retry == Retry::Retryable;
        assert!(retryable(rejected(Twilio, 429, Some(20429))));
        assert!(retryable(rejected(Meta, 400, Some(130429))));
        assert!(!retryable(rejected(Twilio, 400, Some(21211))));
        assert!(!retryable(rejected(Meta, 401, Some(190))));
        assert_eq!(
            rejected(Twilio, 400, Some(63007)).classify().follow_up,
            Some(FollowUp::SuspendSender)
        );
        // No code: the HTTP status decides.
        assert!(retryable(rejected(Twilio, 503, None)));
        assert!(!retryable(rejected(Twilio, 400, None)));
        assert!(retryable(SendError::Timeout {
            provider: Meta,
            timeout: Duration::from_secs(1)
        }));
        assert!(!retryable(SendError::InvalidRequest {
            provider: Meta,
            reason: "r".into()
        }));
        let recorded = rejected(Twilio, 400, Some(21211)).to_provider_error();
        assert_eq!(
            (recorded.provider, recorded.code, recorded.http_status),
            (Twilio, Some(21211), Some(400))
        );
    }
}
