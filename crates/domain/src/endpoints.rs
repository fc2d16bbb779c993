//! Outgoing event webhooks: the endpoints operators register, and which of the log's events
//! each one is told about. The secret that signs deliveries is not here (nor in the log): it is
//! derived by the app from a key kept beside the log (docs/webhooks.md).

use crate::ids::IdError;

/// An endpoint's id (`ep_` and 32 lowercase hex digits, made by the app).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointId(String);

impl EndpointId {
    pub fn parse(input: &str) -> Result<Self, IdError> {
        let hex = input.strip_prefix("ep_").unwrap_or("");
        if hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(EndpointId(input.to_owned()))
        } else {
            Err(IdError::Name {
                what: "endpoint id",
                input: input.to_owned(),
                reason: "expected ep_ and 32 lowercase hex digits".into(),
            })
        }
    }

    /// The id for 16 random bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        EndpointId(format!("ep_{hex}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EndpointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of event an endpoint can ask for, named as in a delivery's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutgoingEventKind {
    /// Every signed inbound message (`InboundReceived`), STOP and START included.
    InboundMessage,
    OptedOut,
    OptedIn,
    /// A provider status of a message (`StatusChanged`).
    StatusChanged,
    /// A send the gates refused (`SendRefused`).
    SendRefused,
    /// A new item in the review queue.
    ReviewItemRaised,
}

impl OutgoingEventKind {
    pub const ALL: [Self; 6] = [
        Self::InboundMessage,
        Self::OptedOut,
        Self::OptedIn,
        Self::StatusChanged,
        Self::SendRefused,
        Self::ReviewItemRaised,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InboundMessage => "inbound_message",
            Self::OptedOut => "opted_out",
            Self::OptedIn => "opted_in",
            Self::StatusChanged => "status_changed",
            Self::SendRefused => "send_refused",
            Self::ReviewItemRaised => "review_item_raised",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == input)
    }
}

/// The facts about endpoints (one stream, `webhook:endpoints`, so the list is one read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// An operator registered an endpoint (who: the event's actor). Events after this one's
    /// position are delivered to it.
    Registered {
        endpoint: EndpointId,
        url: String,
        events: Vec<OutgoingEventKind>,
        at: crate::Timestamp,
    },
    /// An operator deleted it: nothing more is delivered.
    Deleted {
        endpoint: EndpointId,
        at: crate::Timestamp,
    },
    /// It failed continuously since `failing_since` for longer than the hub's threshold
    /// ([`failed_long_enough`]): its deliveries stop (its checkpoint stays) and a review item
    /// is raised. `reason` says why, for people (the last answer, never a body or secret).
    Disabled {
        endpoint: EndpointId,
        reason: String,
        failing_since: crate::Timestamp,
        at: crate::Timestamp,
    },
    /// An operator re-enabled it (a manual retry; who: the event's actor): deliveries resume
    /// from its checkpoint, so the receiver still gets every event in log order.
    Enabled {
        endpoint: EndpointId,
        at: crate::Timestamp,
    },
}

/// Whether an endpoint failing continuously since `failing_since` (`None`: it is not failing)
/// has, at `now`, failed for at least `threshold`: then it is disabled.
pub fn failed_long_enough(
    failing_since: Option<crate::Timestamp>,
    now: crate::Timestamp,
    threshold: chrono::TimeDelta,
) -> bool {
    failing_since.is_some_and(|since| now.signed_duration_since(since) >= threshold)
}

impl EndpointEvent {
    pub fn at(&self) -> crate::Timestamp {
        match self {
            Self::Registered { at, .. }
            | Self::Deleted { at, .. }
            | Self::Disabled { at, .. }
            | Self::Enabled { at, .. } => *at,
        }
    }

    pub fn endpoint(&self) -> &EndpointId {
        match self {
            Self::Registered { endpoint, .. }
            | Self::Deleted { endpoint, .. }
            | Self::Disabled { endpoint, .. }
            | Self::Enabled { endpoint, .. } => endpoint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name_and_unknown_names_are_refused() {
        for kind in OutgoingEventKind::ALL {
            assert_eq!(OutgoingEventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(OutgoingEventKind::parse("delivered"), None);
    }

    #[test]
    fn an_endpoint_is_disabled_only_once_it_failed_for_the_whole_threshold() {
        let since = chrono::DateTime::from_timestamp(1_764_000_000, 0).expect("time");
        let days = chrono::TimeDelta::days(3);
        assert!(!failed_long_enough(None, since + days * 2, days));
        assert!(!failed_long_enough(
            Some(since),
            since + days - chrono::TimeDelta::seconds(1),
            days
        ));
        assert!(failed_long_enough(Some(since), since + days, days));
        assert!(failed_long_enough(Some(since), since + days * 2, days));
        // A clock that went back never disables.
        assert!(!failed_long_enough(
            Some(since),
            since - chrono::TimeDelta::hours(1),
            days
        ));
    }

    #[test]
    fn endpoint_ids_are_checked() {
        let id = EndpointId::from_bytes([0xab; 16]);
        assert_eq!(EndpointId::parse(id.as_str()), Ok(id));
        assert!(EndpointId::parse("ep_123").is_err());
        assert!(EndpointId::parse("../etc").is_err());
    }
}
