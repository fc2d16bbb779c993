//! The persisted form of a send's answer, stored with its `Idempotency-Key` so a retried request
//! gets the first answer back (up to `COMMAND_KEY_TTL` later, across an upgrade).
//!
//! The same rules as the events' persisted forms (docs/events.md, "Schema versions"): a postcard
//! mirror struct per version, led by a format byte, decoded strictly; golden bytes of every
//! version live in `fixtures/send_results/` and are decoded by a test forever. Identifiers and
//! rule ids are validated on the way out, so a corrupt record is an error, never a wrong answer.
//!
//! Before this form, results were stored as text (`ok\n<message id>` or
//! `refused\n<rule>\n<sentence>`); keys written so are still live for a day after an upgrade, so
//! that form stays readable. Its first byte is `o` or `r`, never a format byte.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wagate_domain::{MessageId, Refusal, RuleId};

/// The format byte of schema version 1.
const FORMAT_V1: u8 = 1;

/// What a send answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// Allowed and recorded: the dispatcher will send it.
    Accepted { message_id: MessageId },
    /// Refused by a compliance rule (recorded as `SendRefused`).
    Refused(Refusal),
}

/// Why stored bytes are not a send result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendResultError {
    #[error("empty send result")]
    Empty,
    #[error("send result format {0} is unknown (this wagate reads format {FORMAT_V1} and the legacy text)")]
    UnknownFormat(u8),
    #[error("malformed send result: {0}")]
    Malformed(String),
}

// Mirror types. Never edit these: add a V2 with a new format byte instead.

#[derive(Serialize, Deserialize)]
struct SendResultV1 {
    format: u8,
    /// Set for an accepted send, absent for a refused one (exactly one of the two is set).
    message_id: Option<[u8; 16]>,
    refusal: Option<RefusalV1>,
}

#[derive(Serialize, Deserialize)]
struct RefusalV1 {
    rule: String,
    message: String,
    also_broken: Vec<String>,
}

pub fn encode(result: &SendResult) -> Vec<u8> {
    let stored = match result {
        SendResult::Accepted { message_id } => SendResultV1 {
            format: FORMAT_V1,
            message_id: Some(*message_id.as_uuid().as_bytes()),
            refusal: None,
        },
        SendResult::Refused(refusal) => SendResultV1 {
            format: FORMAT_V1,
            message_id: None,
            refusal: Some(RefusalV1 {
                rule: refusal.rule.as_str().to_owned(),
                message: refusal.message.clone(),
                also_broken: refusal
                    .also_broken
                    .iter()
                    .map(|rule| rule.as_str().to_owned())
                    .collect(),
            }),
        },
    };
    postcard::to_allocvec(&stored)
        .expect("postcard encodes a struct of options, strings and byte arrays into a Vec")
}

/// Decodes either form: the versioned one, or the legacy text written before it.
pub fn decode(bytes: &[u8]) -> Result<SendResult, SendResultError> {
    match bytes.first() {
        None => Err(SendResultError::Empty),
        Some(&FORMAT_V1) => decode_v1(bytes),
        Some(b'o' | b'r') => decode_legacy_text(bytes),
        Some(&other) => Err(SendResultError::UnknownFormat(other)),
    }
}

fn decode_v1(bytes: &[u8]) -> Result<SendResult, SendResultError> {
    let malformed = |reason: String| SendResultError::Malformed(reason);
    let (stored, rest) = postcard::take_from_bytes::<SendResultV1>(bytes)
        .map_err(|error| malformed(error.to_string()))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} bytes after the record", rest.len())));
    }
    match (stored.message_id, stored.refusal) {
        (Some(raw), None) => Ok(SendResult::Accepted {
            message_id: message_id(Uuid::from_bytes(raw))?,
        }),
        (None, Some(refusal)) => Ok(SendResult::Refused(Refusal {
            rule: rule(&refusal.rule)?,
            message: refusal.message,
            also_broken: refusal
                .also_broken
                .iter()
                .map(|text| rule(text))
                .collect::<Result<_, _>>()?,
        })),
        _ => Err(malformed(
            "exactly one of message id and refusal must be set".into(),
        )),
    }
}

/// `ok\n<message id>` or `refused\n<rule>\n<sentence>` (the sentence may hold newlines); a
/// refusal read so lists no other broken rules, as it did then.
fn decode_legacy_text(bytes: &[u8]) -> Result<SendResult, SendResultError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|error| SendResultError::Malformed(format!("legacy text: {error}")))?;
    let mut parts = text.splitn(3, '\n');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("ok"), Some(id), None) => Ok(SendResult::Accepted {
            message_id: MessageId::parse(id)
                .map_err(|error| SendResultError::Malformed(error.to_string()))?,
        }),
        (Some("refused"), Some(text_rule), Some(message)) => Ok(SendResult::Refused(Refusal {
            rule: rule(text_rule)?,
            message: message.to_owned(),
            also_broken: Vec::new(),
        })),
        _ => Err(SendResultError::Malformed(
            "legacy text is neither ok nor refused".into(),
        )),
    }
}

fn message_id(uuid: Uuid) -> Result<MessageId, SendResultError> {
    MessageId::from_uuid(uuid).map_err(|error| SendResultError::Malformed(error.to_string()))
}

fn rule(text: &str) -> Result<RuleId, SendResultError> {
    RuleId::parse(text).ok_or_else(|| SendResultError::Malformed(format!("unknown rule {text:?}")))
}
