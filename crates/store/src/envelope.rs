//! The on-disk envelope of one event: a postcard struct led by a format byte.
//!
//! The envelope's shape never changes within a format: a new shape is a new format byte, and the
//! decoder dispatches on that byte before decoding the rest. Decoding is strict: it fails on
//! leftover bytes (postcard's `from_bytes` would silently ignore them, hiding a shape mismatch).
//! The struct uses no serde attributes: postcard is not self-describing and cannot honour
//! `flatten`, `skip_serializing_if`, `default` or tagged enums.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use crate::record::{Origin, RecordedEvent};
use crate::stream::StreamId;

/// The first envelope format: no origin. Still decoded (as an event with no origin); never
/// written any more.
pub const FORMAT_V1: u8 = 1;
/// Format 2: format 1 plus the event's [`Origin`] (who asked for it), as an `Option` of two
/// strings at the end. What the writer writes.
pub const FORMAT_V2: u8 = 2;

/// Format 2's borrowing view, used to encode without copying the payload: format 1's fields,
/// then the origin (`None` when the appender named
/// none).
#[derive(Serialize)]
struct EnvelopeRefV2<'a> {
    format: u8,
    position: u64,
    stream: &'a str,
    version: u64,
    event_id: [u8; 16],
    event_type: &'a str,
    schema_version: u16,
    timestamp_ms: i64,
    payload: BytesRef<'a>,
    origin: Option<(&'a str, &'a str)>,
}

/// Format 2's decoding target; field order must match [`EnvelopeRefV2`] exactly.
#[derive(Deserialize)]
struct EnvelopeV2 {
    format: u8,
    position: u64,
    stream: String,
    version: u64,
    event_id: [u8; 16],
    event_type: String,
    schema_version: u16,
    timestamp_ms: i64,
    payload: ByteBuf,
    origin: Option<(String, String)>,
}

/// Format 1's decoding target (format 2 without the origin).
#[derive(Deserialize)]
struct EnvelopeV1 {
    format: u8,
    position: u64,
    stream: String,
    version: u64,
    event_id: [u8; 16],
    event_type: String,
    schema_version: u16,
    timestamp_ms: i64,
    payload: ByteBuf,
}

/// Fields of an event to encode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EnvelopeFields<'a> {
    pub position: u64,
    pub stream: &'a str,
    pub version: u64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub timestamp_ms: i64,
    pub payload: &'a [u8],
    pub origin: Option<&'a Origin>,
}

/// Encodes one event into its stored bytes (format 2).
pub(crate) fn encode(fields: EnvelopeFields<'_>) -> Vec<u8> {
    let envelope = EnvelopeRefV2 {
        format: FORMAT_V2,
        position: fields.position,
        stream: fields.stream,
        version: fields.version,
        event_id: *fields.event_id.as_bytes(),
        event_type: fields.event_type,
        schema_version: fields.schema_version,
        timestamp_ms: fields.timestamp_ms,
        payload: BytesRef(fields.payload),
        origin: fields
            .origin
            .map(|origin| (origin.kind.as_str(), origin.name.as_str())),
    };
    // Invariant: serializing into a Vec cannot fail for this struct (no maps or unknown-length
    // sequences, no floats); an error here is a programming error.
    postcard::to_stdvec(&envelope).expect("envelope encoding into a Vec is infallible")
}

/// Why an envelope could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    Empty,
    UnknownFormat(u8),
    Postcard(String),
    LeftoverBytes(usize),
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeError::Empty => f.write_str("empty envelope"),
            EnvelopeError::UnknownFormat(format) => write!(f, "unknown envelope format {format}"),
            EnvelopeError::Postcard(error) => write!(f, "undecodable envelope: {error}"),
            EnvelopeError::LeftoverBytes(n) => write!(f, "{n} leftover bytes after the envelope"),
        }
    }
}

/// Decodes stored bytes strictly into a recorded event (format 1: no origin).
pub fn decode(bytes: &[u8]) -> Result<RecordedEvent, EnvelopeError> {
    // postcard encodes a u8 as the raw byte, so the format is the first byte.
    match bytes.first() {
        None => Err(EnvelopeError::Empty),
        Some(&FORMAT_V1) => {
            let envelope = strictly::<EnvelopeV1>(bytes)?;
            debug_assert_eq!(envelope.format, FORMAT_V1);
            Ok(RecordedEvent {
                position: envelope.position,
                // The writer validated the stream id before encoding it.
                stream: StreamId::from_trusted(envelope.stream),
                version: envelope.version,
                event_id: Uuid::from_bytes(envelope.event_id),
                event_type: envelope.event_type,
                schema_version: envelope.schema_version,
                timestamp_ms: envelope.timestamp_ms,
                payload: envelope.payload.0,
                origin: None,
            })
        }
        Some(&FORMAT_V2) => {
            let envelope = strictly::<EnvelopeV2>(bytes)?;
            debug_assert_eq!(envelope.format, FORMAT_V2);
            Ok(RecordedEvent {
                position: envelope.position,
                stream: StreamId::from_trusted(envelope.stream),
                version: envelope.version,
                event_id: Uuid::from_bytes(envelope.event_id),
                event_type: envelope.event_type,
                schema_version: envelope.schema_version,
                timestamp_ms: envelope.timestamp_ms,
                payload: envelope.payload.0,
                origin: envelope.origin.map(|(kind, name)| Origin { kind, name }),
            })
        }
        Some(&other) => Err(EnvelopeError::UnknownFormat(other)),
    }
}

/// Decodes `T` from the whole of `bytes`: leftover bytes are an error.
fn strictly<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, EnvelopeError> {
    let (envelope, rest) = postcard::take_from_bytes::<T>(bytes)
        .map_err(|e| EnvelopeError::Postcard(e.to_string()))?;
    if !rest.is_empty() {
        return Err(EnvelopeError::LeftoverBytes(rest.len()));
    }
    Ok(envelope)
}

/// Serializes a byte slice with `serialize_bytes` (postcard: varint length + raw bytes, the same
/// wire format as a `Vec<u8>` sequence, but written in one copy).
struct BytesRef<'a>(&'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Owned bytes decoded in one copy instead of one `u8` visit per byte.
pub(crate) struct ByteBuf(pub Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte array")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

impl Serialize for ByteBuf {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin {
            kind: "operator".into(),
            name: "alice".into(),
        }
    }

    fn sample_with(origin: Option<&Origin>) -> Vec<u8> {
        encode(EnvelopeFields {
            position: 7,
            stream: "contact:+41790000001",
            version: 3,
            event_id: Uuid::from_u128(0x0190_b5a2_7c1e_7000_8000_0000_0000_0001),
            event_type: "OptedIn",
            schema_version: 1,
            timestamp_ms: 1_700_000_000_000,
            payload: &[1, 2, 3, 250],
            origin,
        })
    }

    fn sample() -> Vec<u8> {
        sample_with(Some(&origin()))
    }

    /// The exact bytes format 1 wrote (databases written before origins existed hold these).
    fn v1_bytes() -> Vec<u8> {
        [
            vec![1, 7, 20],
            b"contact:+41790000001".to_vec(),
            vec![3],
            Uuid::from_u128(0x0190_b5a2_7c1e_7000_8000_0000_0000_0001)
                .as_bytes()
                .to_vec(),
            vec![7],
            b"OptedIn".to_vec(),
            vec![1],
            // zigzag varint of 1_700_000_000_000
            {
                let mut out = Vec::new();
                let mut v: u64 = 1_700_000_000_000u64 << 1;
                loop {
                    let byte = (v & 0x7f) as u8;
                    v >>= 7;
                    if v == 0 {
                        out.push(byte);
                        break;
                    }
                    out.push(byte | 0x80);
                }
                out
            },
            vec![4, 1, 2, 3, 250],
        ]
        .concat()
    }

    #[test]
    fn round_trips() {
        let event = decode(&sample()).expect("decodes");
        assert_eq!(event.position, 7);
        assert_eq!(event.stream.as_str(), "contact:+41790000001");
        assert_eq!(event.version, 3);
        assert_eq!(event.event_type, "OptedIn");
        assert_eq!(event.schema_version, 1);
        assert_eq!(event.timestamp_ms, 1_700_000_000_000);
        assert_eq!(event.payload, vec![1, 2, 3, 250]);
        assert_eq!(event.origin, Some(origin()));
        assert_eq!(decode(&sample_with(None)).expect("decodes").origin, None);
    }

    #[test]
    fn byte_payload_has_the_same_wire_format_as_a_vec() {
        let as_bytes = postcard::to_stdvec(&BytesRef(&[9, 8, 7])).expect("encodes");
        let as_vec = postcard::to_stdvec(&vec![9u8, 8, 7]).expect("encodes");
        assert_eq!(as_bytes, as_vec);
    }

    #[test]
    fn is_strict() {
        for bytes in [sample(), v1_bytes()] {
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(decode(&longer), Err(EnvelopeError::LeftoverBytes(1)));
            assert!(matches!(
                decode(&bytes[..bytes.len() - 1]),
                Err(EnvelopeError::Postcard(_))
            ));
        }
        let mut bytes = sample();
        bytes[0] = 3;
        assert_eq!(decode(&bytes), Err(EnvelopeError::UnknownFormat(3)));
        assert_eq!(decode(&[]), Err(EnvelopeError::Empty));
    }

    #[test]
    fn format_1_still_decodes_with_no_origin() {
        let event = decode(&v1_bytes()).expect("format 1 decodes");
        assert_eq!(event.position, 7);
        assert_eq!(event.event_type, "OptedIn");
        assert_eq!(event.payload, vec![1, 2, 3, 250]);
        assert_eq!(event.origin, None);
    }

    #[test]
    fn layout_is_frozen() {
        // The exact bytes of format 2: format 1's fields after a 2, then the origin as a postcard
        // Option of two strings. A change here breaks every existing database.
        let mut expected = v1_bytes();
        expected[0] = FORMAT_V2;
        expected.extend([1, 8]);
        expected.extend(b"operator");
        expected.extend([5]);
        expected.extend(b"alice");
        assert_eq!(sample(), expected);
        let mut without = v1_bytes();
        without[0] = FORMAT_V2;
        without.push(0);
        assert_eq!(sample_with(None), without);
    }
}
