//! Request bodies: bounded raw reads (webhooks) and JSON that names the field it rejects.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest webhook body accepted (Meta batches are at most ~3 MB of JSON only for 1000 updates;
/// a single hub instance answers larger ones 413 and Meta splits them).
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// Why a raw body could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Larger than the limit: the bytes read so far (at most the limit).
    TooLarge(Bytes),
    /// The connection failed mid-body.
    Broken(String),
}

/// Reads at most `limit` bytes; more is [`ReadError::TooLarge`].
pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, ReadError> {
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReadError::Broken(e.to_string()))?;
        if buffer.len() + chunk.len() > limit {
            let room = limit - buffer.len();
            buffer.extend_from_slice(&chunk[..room]);
            return Err(ReadError::TooLarge(buffer.freeze()));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// Parses a JSON body; an error names the field (`template.content_sid`, `to`, or `body` when
/// the JSON itself is broken).
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::invalid("body", format!("not valid JSON: {message}"));
        }
        // serde names missing and unknown fields in its message.
        let named = backticked(&message);
        let field = match (path.as_str(), named) {
            (".", Some(name)) => name.to_owned(),
            (".", None) => "body".to_owned(),
            // A missing field is reported at its parent's path; an unknown one at its own.
            (parent, Some(name)) if message.starts_with("missing field") => {
                format!("{parent}.{name}")
            }
            // An unknown field may be named "" (`{"": 1}`); a 400 must still name something.
            ("", _) => "body".to_owned(),
            (path, _) => path.to_owned(),
        };
        ApiError::invalid(field, message)
    })?;
    deserializer.end().map_err(|e| {
        ApiError::invalid("body", format!("trailing characters after the JSON: {e}"))
    })?;
    Ok(value)
}

/// A JSON body that may be empty (then `T::default()`).
pub fn json_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        json(body)
    }
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(&message[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SendMessageRequest;

    fn field_of(body: &str) -> String {
        match json::<SendMessageRequest>(body.as_bytes()) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"workflow":"x"}"#), "to");
        assert_eq!(field_of(r#"{"to":5}"#), "to");
        assert_eq!(field_of(r#"{"to":"+1","tx":"hi"}"#), "tx");
        assert_eq!(
            field_of(r#"{"to":"+1","template":{"id":5,"variables":{}}}"#),
            "template.id"
        );
        assert_eq!(
            field_of(r#"{"to":"+1","template":{"content_sid":"HX","variables":{"1":2}}}"#),
            "template.variables.1"
        );
        assert_eq!(field_of("{"), "body");
        assert_eq!(field_of("[]"), "body");
        assert_eq!(field_of(r#"{"to":"+1"} x"#), "body");
    }

    /// Found by the `api_json` fuzz target: an unknown field with an empty name gave a 400 whose
    /// `field` was empty.
    #[test]
    fn an_unknown_empty_field_name_still_names_a_field() {
        assert_eq!(field_of(r#"{"to":"+1","":"x"}"#), "body");
        match json::<crate::api::OptOutRequest>(br#"{"source":"keyword","":"STOP"}"#) {
            Err(ApiError::Invalid { field, message }) => {
                assert_eq!(field, "body");
                assert!(message.contains("unknown field"), "{message}");
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn raw_reads_stop_at_the_limit() {
        let body = Body::from(vec![b'a'; 10]);
        assert_eq!(read_limited(body, 10).await.expect("fits").len(), 10);
        let body = Body::from(vec![b'a'; 11]);
        match read_limited(body, 10).await {
            Err(ReadError::TooLarge(bytes)) => assert_eq!(bytes.len(), 10),
            other => panic!("{other:?}"),
        }
    }
}
