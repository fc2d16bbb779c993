//! Rate limits with explicit time: a GCRA token bucket (the "virtual scheduling" form of a
//! token bucket) that never reads a clock, so a fake clock measures it exactly.

use chrono::TimeDelta;
use wagate_domain::{sender, ProviderKind, Timestamp};

/// At most `messages` per `interval` on average, with up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub messages: u32,
    pub interval: TimeDelta,
    /// How many may go back to back after an idle spell (at least 1). A small burst absorbs a
    /// driver that wakes late without letting the long-run rate exceed `messages / interval`
    /// by more than `burst` messages in total.
    pub burst: u32,
}

impl RateLimit {
    /// Twilio's default WhatsApp sender throughput.
    pub const TWILIO_SENDER: Self = Self::per_second(sender::TWILIO_SENDER_PER_SECOND);
    /// Cloud API business numbers: 80 msg/s per registered number by default (Meta's
    /// throughput page, docs/providers.md "The window, limits and throughput").
    pub const CLOUD_API_SENDER: Self = Self::per_second(sender::CLOUD_API_SENDER_PER_SECOND);
    /// A Cloud API number Meta upgraded (automatically, for eligible numbers): 1,000 msg/s.
    pub const CLOUD_API_UPGRADED: Self = Self::per_second(sender::CLOUD_API_UPGRADED_PER_SECOND);
    /// Meta's pair rate limit: about one message per 6 s from one business number to one user.
    pub const PAIR: Self = Self {
        messages: 1,
        interval: TimeDelta::seconds(6),
        burst: 1,
    };

    /// `messages` per second with a burst of 1/20 s worth (at least 1).
    pub const fn per_second(messages: u32) -> Self {
        let burst = messages / 20;
        Self {
            messages,
            interval: TimeDelta::seconds(1),
            burst: if burst == 0 { 1 } else { burst },
        }
    }

    /// The default sender limit for a provider, before any upgrade.
    pub fn for_provider(provider: ProviderKind) -> Self {
        match provider {
            ProviderKind::Twilio | ProviderKind::Sandbox => Self::TWILIO_SENDER,
            ProviderKind::Meta => Self::CLOUD_API_SENDER,
        }
    }

    /// The limit of a sender by provider and tier: only Cloud API numbers have an upgraded
    /// tier (1,000 msg/s); Twilio's 80 msg/s does not change with it.
    pub fn for_tier(provider: ProviderKind, upgraded: bool) -> Self {
        match (provider, upgraded) {
            (ProviderKind::Meta, true) => Self::CLOUD_API_UPGRADED,
            (provider, _) => Self::for_provider(provider),
        }
    }

    pub fn with_burst(self, burst: u32) -> Self {
        Self { burst, ..self }
    }

    /// The spacing between messages at the steady rate, rounded up to the nanosecond so the
    /// limit is never exceeded by rounding.
    fn emission_interval(&self) -> TimeDelta {
        let messages = i64::from(self.messages.max(1));
        let nanos = self.interval.num_nanoseconds().unwrap_or(i64::MAX).max(0);
        TimeDelta::nanoseconds((nanos + messages - 1) / messages)
    }

    fn tolerance(&self) -> TimeDelta {
        self.emission_interval() * (self.burst.max(1) as i32 - 1)
    }
}

/// One bucket's state: the theoretical arrival time of the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Bucket {
    tat: Option<Timestamp>,
}

impl Bucket {
    /// The first instant at which one more message conforms.
    pub(crate) fn ready_at(&self, limit: &RateLimit) -> Option<Timestamp> {
        self.tat.map(|tat| tat - limit.tolerance())
    }

    pub(crate) fn allows(&self, limit: &RateLimit, now: Timestamp) -> bool {
        self.ready_at(limit).is_none_or(|ready| ready <= now)
    }

    /// Takes one token; the caller checked `allows`.
    pub(crate) fn take(&mut self, limit: &RateLimit, now: Timestamp) {
        let base = self.tat.map_or(now, |tat| tat.max(now));
        self.tat = Some(base + limit.emission_interval());
    }

    /// A bucket whose next message would conform at `now` with a full burst is the same as a
    /// fresh one and can be forgotten.
    pub(crate) fn is_idle(&self, now: Timestamp) -> bool {
        self.tat.is_none_or(|tat| tat <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn at(ms: i64) -> Timestamp {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("valid time")
    }

    #[test]
    fn emission_interval_rounds_up() {
        assert_eq!(
            RateLimit::per_second(80).emission_interval(),
            TimeDelta::microseconds(12_500)
        );
        assert_eq!(
            RateLimit::per_second(3).emission_interval(),
            TimeDelta::nanoseconds(333_333_334)
        );
        assert_eq!(RateLimit::PAIR.emission_interval(), TimeDelta::seconds(6));
    }

    #[test]
    fn burst_then_steady_spacing() {
        let limit = RateLimit::per_second(10).with_burst(3);
        let mut bucket = Bucket::default();
        let mut sent = Vec::new();
        let mut now = at(0);
        while sent.len() < 6 {
            if bucket.allows(&limit, now) {
                bucket.take(&limit, now);
                sent.push((now - at(0)).num_milliseconds());
            } else {
                now = bucket
                    .ready_at(&limit)
                    .expect("a used bucket has a ready time");
            }
        }
        assert_eq!(sent, [0, 0, 0, 100, 200, 300]);
        // Full again (a fresh bucket) once the burst has refilled.
        assert!(!bucket.is_idle(at(599)));
        assert!(bucket.is_idle(at(600)));
    }
}
