//! Twilio's price of a message: `GET {base}/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`
//! (Basic auth, like the Messages API). The Message resource's `price` is a decimal string,
//! negative for a charge (`"-0.00500"`), and `price_unit` an ISO 4217 code; both are null until
//! Twilio knows the price, which may be a while after the final status.

use std::time::Duration;

use serde::Deserialize;
use wagate_domain::{ProviderKind, TwilioSid, TwilioSidKind};

use crate::http::{base_url, build_client, exchange};
use crate::send::{ConfigError, SendError};
use crate::Secret;

use super::client::TwilioConfig;

const PROVIDER: ProviderKind = ProviderKind::Twilio;

/// What Twilio billed for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePrice {
    /// The charge in millionths of `currency`, positive (Twilio's `-0.005` is `5000`).
    pub amount_micros: i64,
    /// `price_unit`, upper case.
    pub currency: String,
}

/// Why a price could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// The request failed or Twilio answered with an error.
    #[error(transparent)]
    Call(#[from] SendError),
    /// Twilio answered 2xx with something that is not a Message resource with a readable price.
    #[error("twilio Message resource: {0}")]
    Unreadable(String),
}

/// Reads the price of messages sent through Twilio.
#[derive(Debug, Clone)]
pub struct TwilioPriceClient {
    http: reqwest::Client,
    messages_url: String,
    account_sid: TwilioSid,
    auth_token: Secret,
    timeout: Duration,
}

impl TwilioPriceClient {
    /// The same settings as the Messages client (its `public_url` is not used).
    pub fn new(config: &TwilioConfig) -> Result<Self, ConfigError> {
        if config.account_sid.kind() != TwilioSidKind::Account {
            return Err(ConfigError::Invalid {
                name: "account_sid",
                reason: "must be an account SID (AC…)",
            });
        }
        let api_base = base_url(&config.api_base, "api_base")?;
        Ok(Self {
            http: build_client(config.timeout)?,
            messages_url: format!(
                "{api_base}/2010-04-01/Accounts/{}/Messages",
                config.account_sid
            ),
            account_sid: config.account_sid.clone(),
            auth_token: config.auth_token.clone(),
            timeout: config.timeout,
        })
    }

    /// The message's price, or `None` while Twilio has none yet (`price` null).
    pub async fn message_price(&self, sid: &str) -> Result<Option<MessagePrice>, PriceError> {
        // A SID is letters and digits; anything else would change the path.
        if sid.is_empty() || !sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(PriceError::Unreadable(format!(
                "{sid:?} is not a message SID"
            )));
        }
        let request = self
            .http
            .get(format!("{}/{sid}.json", self.messages_url))
            .basic_auth(self.account_sid.as_str(), Some(self.auth_token.expose()))
            .header(reqwest::header::ACCEPT, "application/json");
        let (http_status, body) = exchange(PROVIDER, self.timeout, request).await?;
        if !(200..300).contains(&http_status) {
            return Err(PriceError::Call(SendError::UnexpectedResponse {
                provider: PROVIDER,
                http_status,
                reason: crate::http::excerpt(&body),
            }));
        }
        parse_message_price(&body)
    }
}

#[derive(Deserialize)]
struct Resource {
    price: Option<String>,
    price_unit: Option<String>,
}

/// Reads `price`/`price_unit` of a Message resource: `None` while either is null.
pub fn parse_message_price(body: &[u8]) -> Result<Option<MessagePrice>, PriceError> {
    let resource: Resource = serde_json::from_slice(body)
        .map_err(|e| PriceError::Unreadable(format!("not a Message resource: {e}")))?;
    let (Some(price), Some(unit)) = (resource.price, resource.price_unit) else {
        return Ok(None);
    };
    let currency = unit.trim().to_ascii_uppercase();
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(PriceError::Unreadable(format!(
            "price_unit {unit:?} is not an ISO 4217 code"
        )));
    }
    let micros = decimal_micros(&price).ok_or_else(|| {
        PriceError::Unreadable(format!(
            "price {price:?} is not a decimal with at most 6 decimals"
        ))
    })?;
    // Twilio reports a charge as a negative price; the ledger sums charges as positive.
    Ok(Some(MessagePrice {
        amount_micros: micros
            .checked_neg()
            .ok_or_else(|| PriceError::Unreadable(format!("price {price:?} is out of range")))?,
        currency,
    }))
}

/// `"-0.00500"` → `-5000`: exact, refusing more than six significant decimals rather than
/// rounding money.
fn decimal_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > 6 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = format!("{fraction:0<6}").parse().ok()?;
    let micros = whole.checked_mul(1_000_000)?.checked_add(fraction)?;
    Some(if negative { -micros } else { micros })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_exactly() {
        assert_eq!(decimal_micros("-0.00500"), Some(-5_000));
        assert_eq!(decimal_micros("-0.0075"), Some(-7_500));
        assert_eq!(decimal_micros("1.25"), Some(1_250_000));
        assert_eq!(decimal_micros("0"), Some(0));
        assert_eq!(decimal_micros("-0.0000001"), None);
        assert_eq!(decimal_micros("abc"), None);
        assert_eq!(decimal_micros("-.5"), None);
    }
}
