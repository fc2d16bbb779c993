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
//!
//! Version 2 adds the digest of the request the answer belongs to, so a key reused with a
//! different request is told apart from a retry (HTTP 409 instead of the first answer). A
//! version 1 or legacy record has no digest: the app treats any request replayed against it as
//! the same one, as it did when that record was written (they expire within a day anyway).

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wagate_domain::{MessageId, Refusal, RuleId};

/// The format byte of schema version 1 (no request digest; still decoded).
const FORMAT_V1: u8 = 1;
/// The format byte of schema version 2, the one written.
const FORMAT_V2: u8 = 2;

/// A digest of the request a stored answer belongs to (the app's canonical form of it, hashed
/// with SHA-256). Opaque to the store: it only keeps and returns it.
pub type RequestDigest = [u8; 32];

/// A stored answer with the request it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSend {
    pub result: SendResult,
    /// `None` for records written before digests were kept (format 1 and the legacy text).
    pub request: Option<RequestDigest>,
}

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
    #[error("send result format {0} is unknown (this wagate reads formats {FORMAT_V1} and {FORMAT_V2} and the legacy text)")]
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

/// Version 2: version 1's fields after the digest of the request they answered.
#[derive(Serialize, Deserialize)]
struct SendResultV2 {
    format: u8,
    request: [u8; 32],
    /// Set for an accepted send, absent for a refused one (exactly one of the two is set).
    message_id: Option<[u8; 16]>,
    refusal: Option<RefusalV1>,
}

/// Encodes in the current format (2), with the digest of the request `result` answered.
pub fn encode(result: &SendResult, request: &RequestDigest) -> Vec<u8> {
    let (message_id, refusal) = match result {
        SendResult::Accepted { message_id } => (Some(*message_id.as_uuid().as_bytes()), None),
        SendResult::Refused(refusal) => (
            None,
            Some(RefusalV1 {
                rule: refusal.rule.as_str().to_owned(),
                message: refusal.message.clone(),
                also_broken: refusal
                    .also_broken
                    .iter()
                    .map(|rule| rule.as_str().to_owned())
                    .collect(),
            }),
        ),
    };
    let stored = SendResultV2 {
        format: FORMAT_V2,
        request: *request,
        message_id,
        refusal,
    };
    postcard::to_allocvec(&stored)
        .expect("postcard encodes a struct of options, strings and byte arrays into a Vec")
}

/// Decodes every form: version 2, version 1, or the legacy text written before them.
pub fn decode(bytes: &[u8]) -> Result<StoredSend, SendResultError> {
    match bytes.first() {
        None => Err(SendResultError::Empty),
        Some(&FORMAT_V2) => decode_v2(bytes),
        Some(&FORMAT_V1) => Ok(StoredSend {
            result: decode_v1(bytes)?,
            request: None,
        }),
        Some(b'o' | b'r') => Ok(StoredSend {
            result: decode_legacy_text(bytes)?,
            request: None,
        }),
        Some(&other) => Err(SendResultError::UnknownFormat(other)),
    }
}

/// Postcard of `T`, with nothing after it.
fn take_whole<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, SendResultError> {
    let (stored, rest) = postcard::take_from_bytes::<T>(bytes)
        .map_err(|error| SendResultError::Malformed(error.to_string()))?;
    if !rest.is_empty() {
        return Err(SendResultError::Malformed(format!(
            "{} bytes after the record",
            rest.len()
        )));
    }
    Ok(stored)
}

fn decode_v2(bytes: &[u8]) -> Result<StoredSend, SendResultError> {
    let stored = take_whole::<SendResultV2>(bytes)?;
    Ok(StoredSend {
        result: result_of(stored.message_id, stored.refusal)?,
        request: Some(stored.request),
    })
}

fn decode_v1(bytes: &[u8]) -> Result<SendResult, SendResultError> {
    let stored = take_whole::<SendResultV1>(bytes)?;
    result_of(stored.message_id, stored.refusal)
}

/// The answer of a record's two exclusive fields, validated.
fn result_of(
    message_id_bytes: Option<[u8; 16]>,
    refusal: Option<RefusalV1>,
) -> Result<SendResult, SendResultError> {
    let malformed = |reason: String| SendResultError::Malformed(reason);
    match (message_id_bytes, refusal) {
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
