//! Persisted forms of the app's snapshots, versioned like the events' schema versions: the
//! bytes start with a format version (u16, big-endian), then the postcard body of that version.
//! A reader that finds another version, or bytes that do not decode, gets a [`FormError`] and
//! rebuilds the state from the log; a snapshot is never trusted blindly. The domain stays free
//! of serde: these forms hold identifiers as their text (each domain id parses its `Display`).

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use wagate_domain::{ContactId, MessagingLimit, PortfolioId, PortfolioState, Timestamp};

/// The projection snapshot's current form.
pub const PROJECTION_FORM: u16 = 1;
/// The portfolio aggregate snapshot's current form.
pub const PORTFOLIO_FORM: u16 = 1;

/// Why snapshot bytes were not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error("snapshot form {found}, this build reads form {expected}")]
    Version { found: u16, expected: u16 },
    #[error("snapshot bytes do not decode: {0}")]
    Malformed(String),
}

/// The projection's in-memory part: what is small and bounded by open work (the big indexes
/// are the slot's entries, read from disk on demand).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionV1 {
    pub senders: Vec<String>,
    pub templates: Vec<String>,
    /// Open messages (UUID bytes) with the log position of their intent event.
    pub open_messages: Vec<([u8; 16], u64)>,
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

pub fn encode_projection(form: &ProjectionV1) -> Vec<u8> {
    encode_versioned(PROJECTION_FORM, form)
}

pub fn decode_projection(bytes: &[u8]) -> Result<ProjectionV1, FormError> {
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PortfolioV1 {
    id: Option<String>,
    limit: Option<LimitV1>,
    reached: Vec<(String, TimeV1)>,
}

pub fn encode_portfolio(state: &PortfolioState) -> Vec<u8> {
    let form = PortfolioV1 {
        id: state.id.as_ref().map(ToString::to_string),
        limit: state.limit.map(|limit| match limit {
            MessagingLimit::Limited(n) => LimitV1::Limited(n),
            MessagingLimit::Unlimited => LimitV1::Unlimited,
        }),
        reached: state
            .reached()
            .iter()
            .map(|(contact, at)| (contact.to_string(), time_form(at)))
            .collect(),
    };
    encode_versioned(PORTFOLIO_FORM, &form)
}

pub fn decode_portfolio(bytes: &[u8]) -> Result<PortfolioState, FormError> {
    let form: PortfolioV1 = decode_versioned(PORTFOLIO_FORM, bytes)?;
    let malformed = |error: wagate_domain::IdError| FormError::Malformed(error.to_string());
    let id = form
        .id
        .map(|id| PortfolioId::parse(&id).map_err(malformed))
        .transpose()?;
    let limit = form.limit.map(|limit| match limit {
        LimitV1::Limited(n) => MessagingLimit::Limited(n),
        LimitV1::Unlimited => MessagingLimit::Unlimited,
    });
    let reached = form
        .reached
        .into_iter()
        .map(|(contact, at)| Ok((ContactId::parse(&contact).map_err(malformed)?, time_of(at)?)))
        .collect::<Result<Vec<_>, FormError>>()?;
    Ok(PortfolioState::from_parts(id, limit, reached))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_projection_round_trips_and_other_versions_are_refused() {
        let form = ProjectionV1 {
            senders: vec!["whatsapp:+15550000001".into()],
            templates: vec!["welcome".into()],
            open_messages: vec![([7; 16], 42)],
        };
        let bytes = encode_projection(&form);
        assert_eq!(decode_projection(&bytes), Ok(form));
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
