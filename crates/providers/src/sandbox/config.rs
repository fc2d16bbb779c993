//! Sandbox settings.

use std::time::Duration;

use wagate_domain::{PhoneNumber, TwilioSid};

use crate::Secret;

/// The account SID the sandbox reports in callbacks (`AccountSid`): format-correct, fake.
pub const SANDBOX_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";
/// The WhatsApp channel the sandbox reports (`ChannelInstallSid`).
pub const SANDBOX_CHANNEL_INSTALL_SID: &str = "XE00000000000000000000000000000000";
/// The number the sandbox "picks" for messages sent through a Messaging Service (`MG…`).
pub const SANDBOX_POOL_NUMBER: &str = "+15550100000";

/// How long the sandbox waits before each status callback of a message, each counted from
/// the previous one (the first from the moment `send` accepted the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxDelays {
    /// Before `queued`.
    pub queued: Duration,
    /// Before `sent` (and before `failed`, for messages that fail at the channel).
    pub sent: Duration,
    /// Before `delivered` (and before `undelivered`).
    pub delivered: Duration,
    /// Before `read`.
    pub read: Duration,
}

impl SandboxDelays {
    /// Realistic: 50 ms, 200 ms, 500 ms, 1.5 s.
    pub const REALISTIC: Self = Self {
        queued: Duration::from_millis(50),
        sent: Duration::from_millis(200),
        delivered: Duration::from_millis(500),
        read: Duration::from_millis(1_500),
    };

    /// No waiting at all (tests): callbacks follow each other as fast as the hub answers.
    pub const ZERO: Self = Self {
        queued: Duration::ZERO,
        sent: Duration::ZERO,
        delivered: Duration::ZERO,
        read: Duration::ZERO,
    };
}

impl Default for SandboxDelays {
    fn default() -> Self {
        Self::REALISTIC
    }
}

/// Sandbox settings. Build with [`SandboxConfig::new`], adjust fields, then validate with
/// [`crate::sandbox::SandboxProvider::new`].
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where callbacks are POSTed: the hub's listening address, e.g. `http://127.0.0.1:8080`.
    pub hub_base_url: String,
    /// The URL prefix the signatures cover: what the hub has as `WAGATE_PUBLIC_URL` (it checks
    /// signatures against `{public_url}/webhooks/twilio/status?message_id=…`).
    pub public_url: String,
    /// Signs the callbacks; the hub must verify Twilio signatures with the same token.
    pub auth_token: Secret,
    /// Delays between callbacks.
    pub delays: SandboxDelays,
    /// Seed for message SIDs: the same seed gives the same SIDs in the same send order.
    /// `None`: seeded from the OS.
    pub seed: Option<u64>,
    /// Timeout of each callback POST (connect and whole request); also the timeout reported
    /// by a "lost" send ([`crate::SendError::Timeout`]).
    pub http_timeout: Duration,
    /// Messages whose callbacks are still pending, at most. When reached, `send` answers
    /// HTTP 429 / 20429 (retryable) instead of queueing more work.
    pub max_outstanding: usize,
    /// Retries of one callback after a connection error, a timeout or a 5xx answer.
    pub callback_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
    /// `AccountSid` in callbacks.
    pub account_sid: TwilioSid,
    /// `From` in callbacks of messages sent through a Messaging Service.
    pub pool_number: PhoneNumber,
}

impl SandboxConfig {
    /// Realistic delays, OS-seeded SIDs, 5 s timeout, 10,000 outstanding messages, 3 retries
    /// from 100 ms.
    pub fn new(
        hub_base_url: impl Into<String>,
        public_url: impl Into<String>,
        auth_token: Secret,
    ) -> Self {
        Self {
            hub_base_url: hub_base_url.into(),
            public_url: public_url.into(),
            auth_token,
            delays: SandboxDelays::REALISTIC,
            seed: None,
            http_timeout: Duration::from_secs(5),
            max_outstanding: 10_000,
            callback_retries: 3,
            retry_backoff: Duration::from_millis(100),
            account_sid: sandbox_account_sid(),
            pool_number: sandbox_pool_number(),
        }
    }
}

fn sandbox_account_sid() -> TwilioSid {
    // Invariant: the constant is "AC" and 32 hex digits.
    #[allow(clippy::unwrap_used)]
    TwilioSid::parse(SANDBOX_ACCOUNT_SID).unwrap()
}

fn sandbox_pool_number() -> PhoneNumber {
    // Invariant: the constant is a valid E.164 number.
    #[allow(clippy::unwrap_used)]
    PhoneNumber::parse(SANDBOX_POOL_NUMBER).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_valid() {
        assert_eq!(sandbox_account_sid().as_str(), SANDBOX_ACCOUNT_SID);
        assert_eq!(sandbox_pool_number().as_str(), SANDBOX_POOL_NUMBER);
        assert_eq!(SANDBOX_CHANNEL_INSTALL_SID.len(), 34);
    }
}
