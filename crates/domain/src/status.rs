//! The message status machine.
//!
//! Providers report statuses duplicated and out of order (Twilio says so explicitly), so a status
//! only moves forward: queued → sending → sent → delivered → read, with failed, undelivered and
//! canceled terminal. A late `sent` after `delivered` is recorded as seen and changes nothing;
//! `read` implies delivered. Statuses wagate does not know (`played`, `partially_delivered`, …)
//! are kept verbatim and never move the status.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageStatus {
    /// Twilio: accepted by a Messaging Service, before sender selection.
    Accepted,
    /// Twilio: scheduled for later (`SendAt`).
    Scheduled,
    /// Waiting to be sent: wagate's own status for an allowed message, and Twilio's first status.
    Queued,
    /// Claimed by the dispatcher and on its way to the provider.
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Undelivered,
    Canceled,
    /// Anything else a provider reports, stored as received (lower-case).
    Other(String),
}

impl MessageStatus {
    /// Parses a provider's status word (Twilio's `MessageStatus`, Meta's `status`), never failing.
    pub fn parse(input: &str) -> Self {
        match input.trim().to_ascii_lowercase().as_str() {
            "accepted" => Self::Accepted,
            "scheduled" => Self::Scheduled,
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" => Self::Failed,
            "undelivered" => Self::Undelivered,
            "canceled" | "cancelled" => Self::Canceled,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Accepted => "accepted",
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Undelivered => "undelivered",
            Self::Canceled => "canceled",
            Self::Other(other) => other,
        }
    }

    /// Position on the success path; `None` for terminal failures and unknown statuses.
    pub fn rank(&self) -> Option<u8> {
        match self {
            Self::Accepted | Self::Scheduled => Some(0),
            Self::Queued => Some(1),
            Self::Sending => Some(2),
            Self::Sent => Some(3),
            Self::Delivered => Some(4),
            Self::Read => Some(5),
            Self::Failed | Self::Undelivered | Self::Canceled | Self::Other(_) => None,
        }
    }

    /// Failed, undelivered or canceled: nothing moves the message afterwards.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed | Self::Undelivered | Self::Canceled)
    }

    /// No later status can change this one.
    pub fn is_terminal(&self) -> bool {
        self.is_failure() || *self == Self::Read
    }

    /// The status after observing `observed` in state `self`, or `None` when the observation
    /// changes nothing (a duplicate, a regression, an unknown status, anything after a terminal).
    pub fn advance(&self, observed: &MessageStatus) -> Option<MessageStatus> {
        if self.is_terminal() {
            return None;
        }
        let current_rank = self.rank()?;
        if observed.is_failure() {
            // A message already delivered cannot fail any more; a late failure is only recorded.
            return (current_rank < Self::Delivered.rank()?).then(|| observed.clone());
        }
        let observed_rank = observed.rank()?;
        (observed_rank > current_rank).then(|| observed.clone())
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus::*;

    const KNOWN: [MessageStatus; 10] = [
        Accepted,
        Scheduled,
        Queued,
        Sending,
        Sent,
        Delivered,
        Read,
        Failed,
        Undelivered,
        Canceled,
    ];

    #[test]
    fn every_transition_is_forward_only() {
        // The whole table: from every known status, observing every status.
        for from in KNOWN {
            for observed in KNOWN.iter().cloned().chain([Other("played".into())]) {
                let next = from.advance(&observed);
                let expected = match (&from, &observed) {
                    (f, _) if f.is_terminal() => None,
                    (_, Other(_)) => None,
                    (f, o) if o.is_failure() => (f.rank() < Delivered.rank()).then(|| o.clone()),
                    (f, o) => (o.rank() > f.rank()).then(|| o.clone()),
                };
                assert_eq!(next, expected, "{from} + {observed}");
                if let Some(next) = next {
                    assert!(
                        next.is_failure() || next.rank() > from.rank(),
                        "{from} → {next}"
                    );
                }
            }
        }
    }

    #[test]
    fn examples_from_the_providers() {
        assert_eq!(Queued.advance(&Sent), Some(Sent));
        assert_eq!(Delivered.advance(&Sent), None, "late sent after delivered");
        assert_eq!(Sent.advance(&Read), Some(Read), "read may skip delivered");
        assert_eq!(Read.advance(&Failed), None);
        assert_eq!(Sent.advance(&Undelivered), Some(Undelivered));
        assert_eq!(Delivered.advance(&Failed), None);
        assert_eq!(Failed.advance(&Delivered), None);
        assert_eq!(
            Sending.advance(&Queued),
            None,
            "provider's queued after our sending"
        );
        assert_eq!(Sent.advance(&Sent), None, "duplicates are no-ops");
    }

    #[test]
    fn parsing_keeps_unknown_statuses() {
        for status in KNOWN {
            assert_eq!(MessageStatus::parse(status.as_str()), status);
        }
        assert_eq!(MessageStatus::parse("READ"), Read);
        assert_eq!(MessageStatus::parse("played"), Other("played".into()));
        assert_eq!(
            MessageStatus::parse("partially_delivered").as_str(),
            "partially_delivered"
        );
    }
}
