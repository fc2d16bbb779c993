//! Twilio status callbacks as the sandbox sends them: the form (fields, order and encoding of
//! Twilio's own callbacks, see `fixtures/providers/twilio_status_*.form`), its
//! `X-Twilio-Signature`, and delivery to the hub with bounded retries.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tracing::Instrument as _;
use wagate_domain::{MessageId, MessageStatus, PhoneNumber, TwilioSid};

use crate::twilio::signature::{compute_signature, SigningAlgorithm, SortedParams};
use crate::twilio::webhook::CALLBACK_MESSAGE_ID_PARAM;
use crate::Secret;

/// Twilio's REST API version, sent as `ApiVersion`.
const API_VERSION: &str = "2010-04-01";

/// One status callback, as Twilio would POST it for a WhatsApp message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    /// `MessageSid` and `SmsSid`.
    pub message_sid: TwilioSid,
    /// `AccountSid`.
    pub account_sid: TwilioSid,
    /// `MessagingServiceSid`, when the message was sent through a Messaging Service.
    pub messaging_service_sid: Option<TwilioSid>,
    /// `ChannelInstallSid` (`XE…`), sent on every status after `queued`.
    pub channel_install_sid: String,
    /// The business number (`From=whatsapp:+E164`).
    pub from: PhoneNumber,
    /// The recipient (`To=whatsapp:+E164`; `ChannelToAddress` carries it masked).
    pub to: PhoneNumber,
    /// `MessageStatus` and `SmsStatus`.
    pub status: MessageStatus,
    /// `ErrorCode`, on `failed` / `undelivered`.
    pub error_code: Option<u32>,
    /// `ChannelStatusMessage`, the channel's explanation of a failure.
    pub channel_status_message: Option<String>,
}

impl StatusCallback {
    /// The `application/x-www-form-urlencoded` body, with Twilio's field order and encoding
    /// (`+` for spaces, `%3A`/`%2B` in addresses). `queued` carries the minimal field set;
    /// later statuses add the channel fields, `delivered`/`read` an `EventType`, `sent`
    /// `StructuredMessage=false`.
    pub fn form_body(&self) -> String {
        let minimal = self.status == MessageStatus::Queued;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        if let Some(service) = &self.messaging_service_sid {
            form.append_pair("MessagingServiceSid", service.as_str());
        }
        match self.status {
            MessageStatus::Delivered => {
                form.append_pair("EventType", "DELIVERED");
            }
            MessageStatus::Read => {
                form.append_pair("EventType", "READ");
            }
            _ => {}
        }
        if let Some(code) = self.error_code {
            form.append_pair("ErrorCode", &code.to_string());
        }
        if !minimal {
            form.append_pair("ChannelPrefix", "whatsapp");
        }
        form.append_pair("ApiVersion", API_VERSION);
        form.append_pair("MessageStatus", self.status.as_str());
        form.append_pair("SmsSid", self.message_sid.as_str());
        form.append_pair("SmsStatus", self.status.as_str());
        if !minimal {
            form.append_pair("ChannelInstallSid", &self.channel_install_sid);
        }
        form.append_pair("To", &format!("whatsapp:{}", self.to));
        form.append_pair("From", &format!("whatsapp:{}", self.from));
        form.append_pair("MessageSid", self.message_sid.as_str());
        form.append_pair("AccountSid", self.account_sid.as_str());
        if !minimal {
            form.append_pair("ChannelToAddress", &masked(&self.to));
        }
        if self.status == MessageStatus::Sent {
            form.append_pair("StructuredMessage", "false");
        }
        if let Some(message) = &self.channel_status_message {
            form.append_pair("ChannelStatusMessage", message);
        }
        form.finish()
    }

    /// The `X-Twilio-Signature` of `body` (this callback's [`StatusCallback::form_body`]) POSTed
    /// to `url`: HMAC-SHA1 with the Auth Token, as Twilio signs by default.
    pub fn signature(auth_token: &Secret, url: &str, body: &str) -> String {
        compute_signature(
            auth_token,
            SigningAlgorithm::HmacSha1,
            url,
            &SortedParams::from_form(body.as_bytes()),
        )
    }

    /// `I-Twilio-Idempotency-Token`: the same on every retry of this callback, different for
    /// every other callback. Derived, not random, so seeded runs stay reproducible.
    fn idempotency_token(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.message_sid.as_str());
        hash.update(b"/");
        hash.update(self.status.as_str());
        hash.update(b"/");
        hash.update(self.error_code.unwrap_or_default().to_be_bytes());
        let digest = hex::encode(hash.finalize());
        format!(
            "{}-{}-{}-{}-{}",
            &digest[0..8],
            &digest[8..12],
            &digest[12..16],
            &digest[16..20],
            &digest[20..32]
        )
    }
}

/// `+41790000001` → `+4179000XXXX`: Twilio masks the last four digits in `ChannelToAddress`.
fn masked(number: &PhoneNumber) -> String {
    let text = number.as_str();
    let keep = text.len().saturating_sub(4);
    format!("{}XXXX", &text[..keep])
}

/// Where callbacks go and how they are signed and retried.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) http: reqwest::Client,
    /// `{hub_base_url}/webhooks/twilio/status`: where the POST goes.
    pub(crate) post_url: String,
    /// `{public_url}/webhooks/twilio/status`: what the signature covers.
    pub(crate) signing_url: String,
    pub(crate) auth_token: Secret,
    pub(crate) timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) retry_backoff: Duration,
}

/// How one callback's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The hub answered 2xx.
    Delivered,
    /// The hub answered 4xx (bad signature, unknown route): retrying would not help.
    Refused,
    /// Connection errors or 5xx on every attempt.
    GaveUp,
}

impl Delivery {
    /// POSTs one callback, retrying connection errors, timeouts and 5xx answers
    /// `retries` times with doubling backoff. Never fails: the outcome is logged.
    pub(crate) async fn post(&self, message_id: MessageId, callback: &StatusCallback) -> Outcome {
        let span = tracing::info_span!(
            "sandbox.callback",
            message_id = %message_id,
            provider_message_id = %callback.message_sid,
            status = %callback.status,
            error_code = callback.error_code,
            attempts = tracing::field::Empty,
            http_status = tracing::field::Empty,
        );
        self.post_inner(message_id, callback).instrument(span).await
    }

    async fn post_inner(&self, message_id: MessageId, callback: &StatusCallback) -> Outcome {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(CALLBACK_MESSAGE_ID_PARAM, &message_id.to_string())
            .finish();
        let post_url = format!("{}?{query}", self.post_url);
        let body = callback.form_body();
        let signature = StatusCallback::signature(
            &self.auth_token,
            &format!("{}?{query}", self.signing_url),
            &body,
        );
        let token = callback.idempotency_token();
        let span = tracing::Span::current();
        let mut backoff = self.retry_backoff;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
            span.record("attempts", attempt + 1);
            let result = self
                .http
                .post(&post_url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header(reqwest::header::USER_AGENT, "TwilioProxy/1.1")
                .header(crate::twilio::signature::SIGNATURE_HEADER, &signature)
                .header("I-Twilio-Idempotency-Token", &token)
                .timeout(self.timeout)
                .body(body.clone())
                .send()
                .await;
            match result {
                Ok(response) => {
                    let status = response.status();
                    span.record("http_status", status.as_u16());
                    if status.is_success() {
                        tracing::debug!("hub accepted the status callback");
                        return Outcome::Delivered;
                    }
                    if !status.is_server_error() {
                        tracing::warn!(
                            http_status = status.as_u16(),
                            "hub refused the status callback; not retrying"
                        );
                        return Outcome::Refused;
                    }
                    tracing::debug!(
                        http_status = status.as_u16(),
                        attempt = attempt + 1,
                        "hub answered with a server error"
                    );
                }
                Err(error) => {
                    tracing::debug!(
                        error = %error.without_url(),
                        attempt = attempt + 1,
                        "status callback did not reach the hub"
                    );
                }
            }
        }
        tracing::warn!(
            attempts = self.retries + 1,
            "giving up on the status callback"
        );
        Outcome::GaveUp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_last_four_digits() {
        let number = PhoneNumber::parse("+41790000001").expect("number");
        assert_eq!(masked(&number), "+4179000XXXX");
    }
}
