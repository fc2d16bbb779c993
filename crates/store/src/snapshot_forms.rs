//! Persisted forms of the app's snapshots, versioned like the events' schema versions: the
//! bytes start with a format version (u16, big-endian), then the postcard body of that version.
//! A reader that finds another version, or bytes that do not decode, gets a [`FormError`] and
//! rebuilds the state from the log; a snapshot is never trusted blindly. The domain stays free
//! of serde: these forms hold identifiers as their text (each domain id parses its `Display`).

use serde::{Deserialize, Serialize};

/// The projection snapshot's current form.
pub const PROJECTION_FORM: u16 = 1;

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

#[cfg(test)]
mod tests {
    use super::*;

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
