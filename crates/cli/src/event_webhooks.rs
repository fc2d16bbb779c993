//! The outgoing event webhooks' transport, composed into the app's deliveries
//! (`wagate_app::run_deliveries`): one signed JSON POST per event. docs/webhooks.md is the
//! receiver's side.
//!
//! Body: `{"id", "position", "type", "event_type", "stream", "at", "data", ["item"]}` where `id` is
//! the log event's id, `type` the outgoing kind (`opted_out`, …), `event_type` the log's
//! (`OptedOut`), `data` the event's payload exactly as the export has it, and `item` (for
//! `review_item_raised`) the review item as `GET /v1/review` shows it. Header
//! `Wagate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` keyed with the
//! endpoint's secret. Any 2xx acknowledges; a 429's or 503's `Retry-After` is waited for;
//! anything else is retried (the app decides when). What is answered (the status, or the
//! transport error without the URL) goes to the endpoint's delivery log; the response body is
//! never read into it.

use serde_json::{json, Value};
use std::time::Duration;

use wagate_app::{Answer, Delivery, Endpoint, EndpointTransport, Reply};

use crate::alerts::{client, timestamped_hmac};

/// The signature header of every delivery.
pub const SIGNATURE_HEADER: &str = "Wagate-Signature";

/// The `Wagate-Signature` value for `body` signed at `timestamp`.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        timestamped_hmac(secret.as_bytes(), timestamp, body)
    )
}

/// The JSON body of `delivery`.
pub fn body(delivery: &Delivery<'_>) -> Value {
    let event = delivery.event;
    let mut body = json!({
        "id": event.event_id.to_string(),
        "position": event.position,
        "type": delivery.kind.as_str(),
        "event_type": event.event.type_name(),
        "stream": event.stream,
        "at": wagate_export::time(event.event.at()),
        "data": Value::Object(wagate_export::payload(&event.event)),
    });
    if let Some(item) = &delivery.item {
        body["item"] = json!(wagate_http::review::item_view(item));
    }
    body
}

/// Delivers over HTTP.
#[derive(Debug)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    pub fn new() -> Self {
        HttpTransport { client: client() }
    }
}

impl EndpointTransport for HttpTransport {
    async fn deliver(&self, endpoint: &Endpoint, secret: &str, delivery: &Delivery<'_>) -> Reply {
        let body = match serde_json::to_vec(&body(delivery)) {
            Ok(body) => body,
            Err(error) => return Answer::Transport(format!("cannot encode: {error}")).into(),
        };
        let timestamp = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(&endpoint.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature_header(secret, timestamp, &body))
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => Reply {
                retry_after: retry_after(&response),
                answer: Answer::Status(response.status().as_u16()),
            },
            // Without the URL: a receiver's may carry a token in its query.
            Err(error) => {
                Answer::Transport(format!("request failed: {}", error.without_url())).into()
            }
        }
    }
}

/// A `Retry-After` in seconds (an HTTP date is not honoured: the backoff applies).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed vector, so the documented verification (docs/webhooks.md) and this code agree:
    /// HMAC-SHA256 with key "whsec_test" over "1764000000.{\"id\":\"x\"}".
    #[test]
    fn the_signature_matches_a_known_vector() {
        let header = signature_header("whsec_test", 1_764_000_000, br#"{"id":"x"}"#);
        assert_eq!(
            header,
            "t=1764000000,v1=ff23f839b780db8f64e5f00ba478bad2333ecc4143214f57d98c400e13dfba39"
        );
    }
}
