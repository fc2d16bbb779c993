//! Error types, one per boundary: signature checks, payload parsing and the Meta
//! subscription handshake. Sending has its own [`crate::SendError`].

/// A webhook whose signature cannot be accepted. Every variant means "answer 403
/// and append nothing"; the variants only differ in what the audit log records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature header was absent (or empty).
    #[error("missing {header} header")]
    MissingHeader {
        /// Header name as sent by the provider.
        header: &'static str,
    },
    /// The header was present but not in the provider's format.
    #[error("malformed {header} header: {reason}")]
    MalformedHeader {
        /// Header name as sent by the provider.
        header: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// `X-Twilio-Webhooks-Signature-Settings` named an algorithm we do not implement;
    /// twilio-python fails validation in this case too.
    #[error("unsupported webhook signature algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The request was signed with a Twilio SharedKey that is not configured here.
    #[error("no Twilio shared key configured with id {0:?}")]
    UnknownSharedKey(String),
    /// The webhook URL could not be split into scheme, authority and path.
    #[error("webhook URL is not absolute: {0}")]
    InvalidUrl(&'static str),
    /// JSON-body variant: the SHA-256 of the raw body differs from `bodySHA256`.
    #[error("body SHA-256 does not match the bodySHA256 query parameter")]
    BodyHashMismatch,
    /// The HMAC over the request does not match the header.
    #[error("signature does not match the request")]
    Mismatch,
}

/// A signed webhook whose payload cannot be turned into events. Field names are
/// given as paths into the payload (`entry[0].changes[1].value.messages[0].id`
/// for Meta, the form key for Twilio); values are never echoed, so message
/// bodies cannot leak into logs through this type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not form-encoded / JSON at all.
    #[error("body is not valid {format}: {reason}")]
    Malformed {
        /// `form` or `JSON`.
        format: &'static str,
        /// Decoder message.
        reason: String,
    },
    /// A field the event cannot exist without is absent or empty.
    #[error("missing required field {field}")]
    MissingField {
        /// Path of the field.
        field: String,
    },
    /// A field is present but its value is not acceptable.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// Path of the field.
        field: String,
        /// What is wrong with the value.
        reason: String,
    },
}

impl ParseError {
    pub(crate) fn missing(field: impl Into<String>) -> Self {
        Self::MissingField {
            field: field.into(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The offending field's path, when the error is about one field.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Malformed { .. } => None,
            Self::MissingField { field } | Self::InvalidField { field, .. } => Some(field),
        }
    }
}
