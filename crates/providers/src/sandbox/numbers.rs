//! The sandbox's test numbers: recipients (and one sender) in `+1 555 0100 xx` that fail with
//! Twilio's real codes. `555-01xx` numbers are reserved for fiction in the North American
//! numbering plan, so no real person is ever behind one.

use wagate_domain::PhoneNumber;

/// Recipient: not a WhatsApp user. Accepted (201), then `sent` and `undelivered` with 63024.
pub const NOT_ON_WHATSAPP: &str = "+15550100001";
/// Recipient: outside the 24-hour window / not opted in at Meta. Freeform text is accepted,
/// then `failed` with 63016; templates deliver normally.
pub const WINDOW_CLOSED: &str = "+15550100002";
/// Recipient: the first two send attempts of each message are refused with HTTP 429, code
/// 20429 (retryable); the third succeeds.
pub const RATE_LIMITED: &str = "+15550100003";
/// Recipient: every send is refused with HTTP 500, code 20500 (retryable, never succeeds).
pub const INTERNAL_ERROR: &str = "+15550100004";
/// Recipient: blocked the business. Accepted, then `failed` with 63014.
pub const BLOCKED_BUSINESS: &str = "+15550100005";
/// Recipient: accepted, but the HTTP answer is "lost": `send` returns
/// [`crate::SendError::Timeout`] while the status callbacks still arrive.
pub const LOST_RESPONSE: &str = "+15550100006";
/// Recipient: Twilio refuses the `To` number at once: HTTP 400, code 21211 (permanent).
pub const INVALID_NUMBER: &str = "+15550100007";
/// Sender (`From`): Twilio has no WhatsApp channel for it: HTTP 400, code 63007 (the sender is
/// misconfigured; suspend the sender, not the contact).
pub const MISCONFIGURED_SENDER: &str = "+15550100090";

/// How many 429s [`RATE_LIMITED`] answers per message before accepting it.
pub const RATE_LIMITED_ATTEMPTS: u32 = 2;

/// What the sandbox does for a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// queued → sent → delivered → read.
    Normal,
    /// See [`NOT_ON_WHATSAPP`].
    NotOnWhatsapp,
    /// See [`WINDOW_CLOSED`].
    WindowClosed,
    /// See [`RATE_LIMITED`].
    RateLimited,
    /// See [`INTERNAL_ERROR`].
    InternalError,
    /// See [`BLOCKED_BUSINESS`].
    BlockedBusiness,
    /// See [`LOST_RESPONSE`].
    LostResponse,
    /// See [`INVALID_NUMBER`].
    InvalidNumber,
}

impl Scenario {
    /// The scenario of a recipient; every number outside the table is [`Scenario::Normal`].
    pub fn for_recipient(to: &PhoneNumber) -> Self {
        match to.as_str() {
            NOT_ON_WHATSAPP => Self::NotOnWhatsapp,
            WINDOW_CLOSED => Self::WindowClosed,
            RATE_LIMITED => Self::RateLimited,
            INTERNAL_ERROR => Self::InternalError,
            BLOCKED_BUSINESS => Self::BlockedBusiness,
            LOST_RESPONSE => Self::LostResponse,
            INVALID_NUMBER => Self::InvalidNumber,
            _ => Self::Normal,
        }
    }

    /// A name for logs (never the number itself).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::NotOnWhatsapp => "not_on_whatsapp",
            Self::WindowClosed => "window_closed",
            Self::RateLimited => "rate_limited",
            Self::InternalError => "internal_error",
            Self::BlockedBusiness => "blocked_business",
            Self::LostResponse => "lost_response",
            Self::InvalidNumber => "invalid_number",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_number_is_valid_e164_and_maps_to_its_scenario() {
        let table = [
            (NOT_ON_WHATSAPP, Scenario::NotOnWhatsapp),
            (WINDOW_CLOSED, Scenario::WindowClosed),
            (RATE_LIMITED, Scenario::RateLimited),
            (INTERNAL_ERROR, Scenario::InternalError),
            (BLOCKED_BUSINESS, Scenario::BlockedBusiness),
            (LOST_RESPONSE, Scenario::LostResponse),
            (INVALID_NUMBER, Scenario::InvalidNumber),
            ("+15550100008", Scenario::Normal),
            ("+41790000001", Scenario::Normal),
        ];
        for (number, scenario) in table {
            let parsed = PhoneNumber::parse(number).expect("valid E.164");
            assert_eq!(Scenario::for_recipient(&parsed), scenario, "{number}");
        }
        assert!(PhoneNumber::parse(MISCONFIGURED_SENDER).is_ok());
    }
}
