//! Stream ids: validated names such as `contact:+41790000001` or `message:<uuid>`.

use std::fmt;

use crate::error::{Result, StoreError};

/// Longest stream id accepted, in bytes. Stream ids are part of several keys; a bound keeps keys
/// small and sled nodes compact.
pub const MAX_STREAM_ID_BYTES: usize = 256;

/// The name of one stream: `<category>:<id>`, e.g. `contact:+41790000001`, `message:<uuid>`,
/// `sender:whatsapp:+15550001111`, `template:HX…`, `portfolio:default`.
///
/// Rules (checked by [`StreamId::new`]): 3 to 256 bytes; a non-empty category of ASCII lowercase
/// letters, digits, `_` or `-`, then `:`, then a non-empty rest of printable ASCII without spaces.
/// The rest excludes NUL and control bytes because the store separates the stream id from the
/// version in its index keys with a NUL byte, which keeps `contact:+1234` and `contact:+12345` in
/// disjoint key ranges.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(String);

impl StreamId {
    /// Validates and wraps a stream id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        match validate(&id) {
            Ok(()) => Ok(StreamId(id)),
            Err(reason) => Err(StoreError::InvalidStreamId { id, reason }),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category, i.e. the part before the first `:` (`contact` for `contact:+4179…`).
    pub fn category(&self) -> &str {
        // Invariant: validation guarantees a ':' exists.
        self.0.split_once(':').map_or("", |(category, _)| category)
    }

    /// Re-wraps a stream id read back from the database without re-validating it; the envelope
    /// decoder validates it once on the way in.
    pub(crate) fn from_trusted(id: String) -> Self {
        StreamId(id)
    }
}

fn validate(id: &str) -> std::result::Result<(), &'static str> {
    if id.len() < 3 {
        return Err("shorter than 3 bytes");
    }
    if id.len() > MAX_STREAM_ID_BYTES {
        return Err("longer than 256 bytes");
    }
    let Some((category, rest)) = id.split_once(':') else {
        return Err("missing ':' between category and id");
    };
    if category.is_empty() {
        return Err("empty category");
    }
    if !category
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err("category must be ASCII lowercase letters, digits, '_' or '-'");
    }
    if rest.is_empty() {
        return Err("empty id after ':'");
    }
    if !rest.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("id must be printable ASCII without spaces");
    }
    Ok(())
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({:?})", self.0)
    }
}

impl TryFrom<&str> for StreamId {
    type Error = StoreError;
    fn try_from(id: &str) -> Result<Self> {
        StreamId::new(id)
    }
}

impl TryFrom<String> for StreamId {
    type Error = StoreError;
    fn try_from(id: String) -> Result<Self> {
        StreamId::new(id)
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_shapes() {
        for id in [
            "contact:+41790000001",
            "message:0190b5a2-7c1e-7000-8000-000000000001",
            "sender:whatsapp:+15550001111",
            "template:HXb5b62575e6e4ff6129ad7c8efe1f983e",
            "portfolio:default",
        ] {
            let stream = StreamId::new(id).expect(id);
            assert_eq!(stream.as_str(), id);
        }
        assert_eq!(
            StreamId::new("sender:whatsapp:+1")
                .expect("valid")
                .category(),
            "sender"
        );
    }

    #[test]
    fn rejects_bad_shapes() {
        for id in [
            "",
            "ab",
            "nocolon",
            ":x1",
            "Contact:+41",
            "contact:",
            "contact:a b",
            "contact:a\0b",
            "contact:é",
        ] {
            assert!(StreamId::new(id).is_err(), "{id:?} accepted");
        }
        assert!(StreamId::new(format!("c:{}", "x".repeat(300))).is_err());
    }
}
