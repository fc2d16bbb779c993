//! The alert sinks `serve` composes into the app's outbox (`wagate_app::run_outbox`): a Discord
//! webhook (execute-webhook JSON: `content` and `embeds`, no pings) and a generic endpoint whose
//! requests are signed with HMAC-SHA256 over `"{timestamp}.{body}"`. One POST per alert; the
//! outbox decides what is sent when (once, grouped, retried politely, given up on).
//!
//! Discord's facts (docs/providers.md, "Discord"): 2xx is taken; 429 carries `retry_after`
//! (seconds, a float) in the body and `Retry-After` as a header; 404 (unknown webhook) and the
//! other 4xx will not work without a person; 5xx and transport failures may work later.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use wagate_app::{Alert, AlertSink, ReviewItem, SinkError};
use wagate_providers::Secret;

/// How long one alert request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Discord's limits (docs/providers.md): content 2000, embed description 4096, field value 1024.
const CONTENT_MAX: usize = 2000;
const DESCRIPTION_MAX: usize = 4096;
const FIELD_MAX: usize = 1024;

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// `text` cut to `max` characters (with an ellipsis when cut).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The ops page's link to the queue.
fn ops_link(public_url: &str, item: Option<u64>) -> String {
    match item {
        Some(id) => format!("{public_url}/ops#review-{id}"),
        None => format!("{public_url}/ops"),
    }
}

/// Who or what an item is about, for people.
fn about(item: &ReviewItem) -> Vec<(&'static str, String)> {
    let subject = &item.subject;
    let mut parts = Vec::new();
    if let Some(contact) = &subject.contact {
        parts.push(("Contact", contact.to_string()));
    }
    if let Some(message) = &subject.message_id {
        parts.push(("Message", message.to_string()));
    }
    if let Some(sender) = &subject.sender {
        parts.push(("Sender", sender.to_string()));
    }
    if let Some(template) = &subject.template {
        parts.push(("Template", template.as_str().to_owned()));
    }
    parts
}

/// Discord's execute-webhook body for `alert`.
pub fn discord_body(alert: &Alert, public_url: &str) -> Value {
    const RED: u32 = 0xE7_4C_3C;
    const GREEN: u32 = 0x2E_CC_71;
    const ORANGE: u32 = 0xE6_7E_22;
    let (content, embed) = match alert {
        Alert::Raised(item) => {
            let who = about(item)
                .first()
                .map(|(_, value)| format!(" — {value}"))
                .unwrap_or_default();
            let mut fields: Vec<Value> = about(item)
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": cut(&value, FIELD_MAX), "inline": true}))
                .collect();
            fields.push(json!({"name": "What to do", "value": cut(item.resolving(), FIELD_MAX)}));
            fields.push(json!({"name": "Review", "value": ops_link(public_url, Some(item.id))}));
            (
                format!(
                    "Needs a person: {}{who} (item {})",
                    item.reason.title(),
                    item.id
                ),
                json!({
                    "title": cut(item.reason.title(), 256),
                    "description": cut(if item.detail.is_empty() { item.reason.as_str() } else { &item.detail }, DESCRIPTION_MAX),
                    "color": RED,
                    "timestamp": item.raised_at.to_rfc3339(),
                    "fields": fields,
                    "footer": {"text": format!("wagate review item {} · {}", item.id, item.reason.as_str())},
                }),
            )
        }
        Alert::Resolved(item) => {
            let resolution = item.resolution.as_ref();
            let by = resolution
                .and_then(|r| r.by.as_ref())
                .map_or_else(|| "someone".to_owned(), |actor| actor.name().to_owned());
            let decision = resolution.map_or("resolved", |r| r.decision.as_str());
            let note = resolution.map(|r| r.note.clone()).unwrap_or_default();
            (
                format!(
                    "Resolved: item {} ({}) by {by}: {decision}",
                    item.id,
                    item.reason.title()
                ),
                json!({
                    "title": cut(&format!("Resolved: {}", item.reason.title()), 256),
                    "description": cut(if note.is_empty() { "(no note)" } else { &note }, DESCRIPTION_MAX),
                    "color": GREEN,
                    "fields": [{"name": "Review", "value": ops_link(public_url, Some(item.id))}],
                }),
            )
        }
        Alert::Summary {
            raised, resolved, ..
        } => {
            let total: usize = raised.values().sum();
            let lines: Vec<String> = raised
                .iter()
                .map(|(reason, count)| format!("{count} × {}", reason.title()))
                .chain((*resolved > 0).then(|| format!("{resolved} resolved")))
                .collect();
            (
                format!("{total} new review items at once: see the queue"),
                json!({
                    "title": "Many review items",
                    "description": cut(&lines.join("\n"), DESCRIPTION_MAX),
                    "color": ORANGE,
                    "fields": [{"name": "Review", "value": ops_link(public_url, None)}],
                }),
            )
        }
    };
    json!({
        "username": "wagate",
        "content": cut(&content, CONTENT_MAX),
        "embeds": [embed],
        // No @everyone or role pings from text wagate did not write.
        "allowed_mentions": {"parse": []},
    })
}

/// What an answer means for the outbox.
fn classify(
    status: reqwest::StatusCode,
    retry_after_header: Option<&str>,
    body: &str,
) -> Result<(), SinkError> {
    if status.is_success() {
        return Ok(());
    }
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        let from_body = serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|value| value.get("retry_after").and_then(Value::as_f64));
        let from_header = retry_after_header.and_then(|value| value.trim().parse::<f64>().ok());
        let seconds = from_body.or(from_header).unwrap_or(1.0);
        let seconds = if seconds.is_finite() && seconds > 0.0 {
            seconds
        } else {
            1.0
        };
        return Err(SinkError::RetryAfter(Duration::from_secs_f64(seconds)));
    }
    // The body may echo the request; only the status is reported.
    let cause = format!("answered {status}");
    if status.is_server_error() || status == reqwest::StatusCode::REQUEST_TIMEOUT {
        Err(SinkError::Transient(cause))
    } else {
        Err(SinkError::Permanent(cause))
    }
}

pub(crate) async fn post(request: reqwest::RequestBuilder) -> Result<(), SinkError> {
    let response = request.send().await.map_err(|error| {
        // Without the URL: Discord's holds its token.
        SinkError::Transient(format!("request failed: {}", error.without_url()))
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(ToOwned::to_owned);
    let body = response.text().await.unwrap_or_default();
    classify(status, retry_after.as_deref(), &body)
}

/// Alerts to a Discord webhook.
#[derive(Debug)]
pub struct DiscordSink {
    client: reqwest::Client,
    url: Secret,
    public_url: String,
}

impl DiscordSink {
    pub fn new(url: Secret, public_url: &str) -> Self {
        DiscordSink {
            client: client(),
            url,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }
}

impl AlertSink for DiscordSink {
    fn name(&self) -> &str {
        "discord"
    }

    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        post(
            self.client
                .post(self.url.expose())
                .json(&discord_body(alert, &self.public_url)),
        )
        .await
    }
}

/// The generic endpoint's JSON for `alert`.
pub fn generic_body(alert: &Alert, public_url: &str) -> Value {
    match alert {
        Alert::Raised(item) => json!({
            "type": "review_item_raised",
            "item": wagate_http::review::item_view(item),
            "ops_url": ops_link(public_url, Some(item.id)),
        }),
        Alert::Resolved(item) => json!({
            "type": "review_item_resolved",
            "item": wagate_http::review::item_view(item),
            "ops_url": ops_link(public_url, Some(item.id)),
        }),
        Alert::Summary {
            raised,
            resolved,
            first_id,
            last_id,
        } => json!({
            "type": "review_summary",
            "raised": raised.iter().map(|(reason, count)| (reason.as_str().to_owned(), json!(count))).collect::<serde_json::Map<_, _>>(),
            "resolved": resolved,
            "first_id": first_id,
            "last_id": last_id,
            "ops_url": ops_link(public_url, None),
        }),
    }
}

/// The hex HMAC-SHA256 with `secret` over `"{timestamp}.{body}"`: what both the alert endpoint
/// and the outgoing event webhooks (`event_webhooks`) sign.
pub fn timestamped_hmac(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // Invariant: HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `sha256=<hex>` of [`timestamped_hmac`].
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("sha256={}", timestamped_hmac(secret, timestamp, body))
}

/// The header with the signing time (Unix seconds); the receiver refuses old ones.
pub const TIMESTAMP_HEADER: &str = "X-Wagate-Timestamp";
/// The header with [`signature`].
pub const SIGNATURE_HEADER: &str = "X-Wagate-Signature";

/// Alerts to a generic endpoint, signed.
#[derive(Debug)]
pub struct SignedWebhookSink {
    client: reqwest::Client,
    url: String,
    secret: Secret,
    public_url: String,
}

impl SignedWebhookSink {
    pub fn new(url: String, secret: Secret, public_url: &str) -> Self {
        SignedWebhookSink {
            client: client(),
            url,
            secret,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }
}

impl AlertSink for SignedWebhookSink {
    fn name(&self) -> &str {
        "webhook"
    }

    async fn send(&self, alert: &Alert) -> Result<(), SinkError> {
        let body = serde_json::to_vec(&generic_body(alert, &self.public_url))
            .map_err(|error| SinkError::Permanent(error.to_string()))?;
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature(self.secret.expose().as_bytes(), timestamp, &body);
        post(
            self.client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, signature)
                .body(body),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_waits_for_the_bodys_retry_after_else_the_header() {
        let limited = reqwest::StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(
            classify(
                limited,
                Some("9"),
                r#"{"message":"You are being rate limited.","retry_after":0.25,"global":false}"#
            ),
            Err(SinkError::RetryAfter(Duration::from_millis(250)))
        );
        assert_eq!(
            classify(limited, Some("2"), "not json"),
            Err(SinkError::RetryAfter(Duration::from_secs(2)))
        );
    }

    #[test]
    fn answers_are_sorted_by_what_retrying_can_do() {
        assert_eq!(classify(reqwest::StatusCode::NO_CONTENT, None, ""), Ok(()));
        assert!(matches!(
            classify(reqwest::StatusCode::BAD_GATEWAY, None, ""),
            Err(SinkError::Transient(_))
        ));
        assert!(matches!(
            classify(
                reqwest::StatusCode::NOT_FOUND,
                None,
                r#"{"code":10015,"message":"Unknown Webhook"}"#
            ),
            Err(SinkError::Permanent(_))
        ));
    }

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let a = signature(b"k", 1_764_000_000, b"{}");
        assert!(a.starts_with("sha256=") && a.len() == 7 + 64);
        assert_ne!(a, signature(b"k", 1_764_000_001, b"{}"));
        assert_ne!(a, signature(b"k", 1_764_000_000, b"{ }"));
    }

    #[test]
    fn long_text_is_cut_to_discords_limits() {
        let cut_text = cut(&"x".repeat(5000), CONTENT_MAX);
        assert_eq!(cut_text.chars().count(), CONTENT_MAX);
        assert!(cut_text.ends_with('…'));
    }
}
