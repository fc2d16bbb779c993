//! Each webhook endpoint's delivery log: its recent attempts and its health (failing since,
//! last success), kept in a store slot beside the log (`webhook-deliveries:<endpoint id>`),
//! not in the log.
//!
//! Why a slot and not events: a failing receiver is retried for days; one event per attempt
//! would grow the log (which is kept forever and exported) with every retry. The slot is
//! bounded: each attempt is one index entry keyed by its number, and writing attempt `n`
//! removes attempt `n - keep` in the same atomic save, so at most [`DELIVERY_LOG_KEEP`]
//! attempts per endpoint are kept. It survives restarts (a save is durable once answered) but
//! is not exported: what matters for audit (an endpoint disabled, re-enabled) is in the log.
//! An attempt holds the event's position, id and kind, the time, the answer (an HTTP status or
//! the transport error: never a body, a header or a secret), the attempt number and whether
//! it was acknowledged.

use wagate_domain::{EndpointId, OutgoingEventKind, Timestamp};
use wagate_store::snapshot_forms::{
    decode_delivery_attempt, decode_delivery_log, encode_delivery_attempt, encode_delivery_log,
    DeliveryAttemptV1, DeliveryLogV1,
};
use wagate_store::SnapshotSave;

use crate::error::{AppError, Result};
use crate::hub::Hub;

/// Attempts kept per endpoint (older ones are removed as new ones are recorded).
pub const DELIVERY_LOG_KEEP: u64 = 1_000;

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status (any 2xx acknowledges).
    Status(u16),
    /// No answer: the connection failed, timed out, …
    Transport(String),
}

impl Answer {
    pub fn acknowledged(&self) -> bool {
        matches!(self, Answer::Status(code) if (200..300).contains(code))
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Status(code) => write!(f, "answered {code}"),
            Answer::Transport(error) => f.write_str(error),
        }
    }
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub position: u64,
    pub event_id: String,
    pub kind: OutgoingEventKind,
    pub at: Timestamp,
    pub answer: Answer,
    /// 1 for the event's first attempt, counting on while it fails.
    pub attempt: u32,
}

impl DeliveryAttempt {
    pub fn acknowledged(&self) -> bool {
        self.answer.acknowledged()
    }
}

/// An endpoint's health, as its attempts left it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryHealth {
    /// The first failure since the last acknowledged attempt (`None`: not failing).
    pub failing_since: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
}

fn slot(endpoint: &EndpointId) -> String {
    format!("webhook-deliveries:{endpoint}")
}

fn entry_key(number: u64) -> Vec<u8> {
    number.to_be_bytes().to_vec()
}

/// The attempt number a save of attempt `next` removes to keep at most `keep`.
fn evicted(next: u64, keep: u64) -> Option<u64> {
    next.checked_sub(keep)
}

fn time(at: Timestamp) -> (i64, u32) {
    (at.timestamp(), at.timestamp_subsec_nanos())
}

fn time_of((secs, nanos): (i64, u32)) -> Option<Timestamp> {
    chrono::DateTime::from_timestamp(secs, nanos)
}

/// The health `state` says, with `attempt` recorded.
fn health_after(state: &DeliveryLogV1, attempt: &DeliveryAttempt) -> DeliveryLogV1 {
    let mut next = state.clone();
    next.next = state.next + 1;
    if attempt.acknowledged() {
        next.failing_since = None;
        next.last_success = Some(time(attempt.at));
    } else if state.failing_since.is_none() {
        next.failing_since = Some(time(attempt.at));
    }
    next
}

fn health_of(state: &DeliveryLogV1) -> DeliveryHealth {
    DeliveryHealth {
        failing_since: state.failing_since.and_then(time_of),
        last_success: state.last_success.and_then(time_of),
    }
}

fn attempt_form(attempt: &DeliveryAttempt) -> DeliveryAttemptV1 {
    let (status, error) = match &attempt.answer {
        Answer::Status(code) => (Some(*code), None),
        Answer::Transport(error) => (None, Some(error.clone())),
    };
    DeliveryAttemptV1 {
        position: attempt.position,
        event_id: attempt.event_id.clone(),
        kind: attempt.kind.as_str().to_owned(),
        at: time(attempt.at),
        status,
        error,
        attempt: attempt.attempt,
        acknowledged: attempt.acknowledged(),
    }
}

fn attempt_of(form: DeliveryAttemptV1) -> Option<DeliveryAttempt> {
    Some(DeliveryAttempt {
        position: form.position,
        event_id: form.event_id,
        kind: OutgoingEventKind::parse(&form.kind)?,
        at: time_of(form.at)?,
        answer: match (form.status, form.error) {
            (Some(code), _) => Answer::Status(code),
            (None, error) => Answer::Transport(error.unwrap_or_default()),
        },
        attempt: form.attempt,
    })
}

impl Hub {
    fn delivery_state(&self, endpoint: &EndpointId) -> Result<DeliveryLogV1> {
        let Some(saved) = self.inner.log.snapshot(&slot(endpoint))? else {
            return Ok(DeliveryLogV1::default());
        };
        decode_delivery_log(&saved.bytes).map_err(|error| AppError::Corrupt {
            position: saved.position,
            reason: format!("the delivery log of webhook endpoint {endpoint}: {error}"),
        })
    }

    /// Records `attempt` of a delivery to `endpoint` (keeping the newest `keep`), and answers
    /// the endpoint's health after it.
    pub(crate) async fn record_attempt(
        &self,
        endpoint: &EndpointId,
        attempt: &DeliveryAttempt,
        keep: u64,
    ) -> Result<DeliveryHealth> {
        let _guard = self.inner.delivery_log.lock().await;
        let state = self.delivery_state(endpoint)?;
        let next = health_after(&state, attempt);
        let mut entries = vec![(
            entry_key(state.next),
            Some(encode_delivery_attempt(&attempt_form(attempt))),
        )];
        if let Some(old) = evicted(state.next, keep.max(1)) {
            entries.push((entry_key(old), None));
        }
        self.inner
            .log
            .save_snapshot(
                &slot(endpoint),
                SnapshotSave {
                    position: attempt.position,
                    bytes: encode_delivery_log(&next),
                    entries,
                    replace_entries: false,
                },
            )
            .await?;
        Ok(health_of(&next))
    }

    /// Forgets that `endpoint` is failing (a re-enable: the threshold counts anew).
    pub(crate) async fn reset_failing(&self, endpoint: &EndpointId) -> Result<()> {
        let _guard = self.inner.delivery_log.lock().await;
        let mut state = self.delivery_state(endpoint)?;
        if state.failing_since.take().is_none() {
            return Ok(());
        }
        let position = self
            .inner
            .log
            .snapshot(&slot(endpoint))?
            .map_or(0, |saved| saved.position);
        self.inner
            .log
            .save_snapshot(
                &slot(endpoint),
                SnapshotSave {
                    position,
                    bytes: encode_delivery_log(&state),
                    entries: Vec::new(),
                    replace_entries: false,
                },
            )
            .await?;
        Ok(())
    }

    /// `endpoint`'s health (nothing recorded yet: not failing, never succeeded).
    pub fn delivery_health(&self, endpoint: &EndpointId) -> Result<DeliveryHealth> {
        Ok(health_of(&self.delivery_state(endpoint)?))
    }

    /// `endpoint`'s newest attempts, newest first, at most `limit` (and at most what is kept).
    pub fn deliveries(&self, endpoint: &EndpointId, limit: usize) -> Result<Vec<DeliveryAttempt>> {
        let state = self.delivery_state(endpoint)?;
        let name = slot(endpoint);
        let mut attempts = Vec::new();
        let mut number = state.next;
        while number > 0 && attempts.len() < limit {
            number -= 1;
            let Some(bytes) = self.inner.log.snapshot_entry(&name, &entry_key(number))? else {
                // Removed by the bound (or by a smaller bound earlier): nothing older is kept.
                break;
            };
            match decode_delivery_attempt(&bytes).ok().and_then(attempt_of) {
                Some(attempt) => attempts.push(attempt),
                None => {
                    tracing::warn!(endpoint = %endpoint, number, "an unreadable delivery attempt is skipped")
                }
            }
        }
        Ok(attempts)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use wagate_domain::Policy;

    use super::*;
    use crate::clock::FixedClock;

    fn at(seconds: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_764_000_000 + seconds, 0).expect("time")
    }

    fn attempt(position: u64, seconds: i64, answer: Answer) -> DeliveryAttempt {
        DeliveryAttempt {
            position,
            event_id: format!("id-{position}"),
            kind: OutgoingEventKind::OptedOut,
            at: at(seconds),
            answer,
            attempt: 1,
        }
    }

    #[test]
    fn only_2xx_acknowledges() {
        assert!(Answer::Status(200).acknowledged());
        assert!(Answer::Status(204).acknowledged());
        assert!(!Answer::Status(301).acknowledged());
        assert!(!Answer::Status(503).acknowledged());
        assert!(!Answer::Transport("connection refused".into()).acknowledged());
    }

    #[test]
    fn failing_since_is_the_first_failure_after_the_last_success() {
        let empty = DeliveryLogV1::default();
        let failed = health_after(&empty, &attempt(1, 0, Answer::Status(503)));
        let again = health_after(&failed, &attempt(1, 10, Answer::Status(500)));
        assert_eq!(health_of(&again).failing_since, Some(at(0)));
        assert_eq!(again.next, 2);
        let ok = health_after(&again, &attempt(1, 20, Answer::Status(204)));
        assert_eq!(
            health_of(&ok),
            DeliveryHealth {
                failing_since: None,
                last_success: Some(at(20))
            }
        );
        let failed = health_after(&ok, &attempt(2, 30, Answer::Transport("timeout".into())));
        assert_eq!(health_of(&failed).failing_since, Some(at(30)));
        assert_eq!(health_of(&failed).last_success, Some(at(20)));
    }

    #[test]
    fn the_bound_removes_the_attempt_that_falls_out() {
        assert_eq!(evicted(0, 3), None);
        assert_eq!(evicted(2, 3), None);
        assert_eq!(evicted(3, 3), Some(0));
        assert_eq!(evicted(1_000, DELIVERY_LOG_KEEP), Some(0));
    }

    #[tokio::test]
    async fn the_log_keeps_the_newest_attempts_newest_first_and_survives_a_reread() {
        let hub =
            Hub::open_temporary(Arc::new(FixedClock::new(at(0))), Policy::default()).expect("hub");
        let endpoint = EndpointId::from_bytes([7; 16]);
        for n in 0..8u64 {
            let answer = if n == 7 {
                Answer::Status(204)
            } else {
                Answer::Status(503)
            };
            hub.record_attempt(&endpoint, &attempt(n + 1, n as i64, answer), 5)
                .await
                .expect("recorded");
        }
        let all = hub.deliveries(&endpoint, 100).expect("read");
        let positions: Vec<u64> = all.iter().map(|a| a.position).collect();
        assert_eq!(positions, [8, 7, 6, 5, 4], "bounded to 5, newest first");
        assert!(all[0].acknowledged() && !all[1].acknowledged());
        assert_eq!(all[1].answer, Answer::Status(503));
        assert_eq!(hub.deliveries(&endpoint, 2).expect("read").len(), 2);
        assert_eq!(
            hub.delivery_health(&endpoint).expect("health"),
            DeliveryHealth {
                failing_since: None,
                last_success: Some(at(7))
            }
        );
        // Removed entries are really gone from the slot.
        for gone in 0..3u64 {
            assert_eq!(
                hub.inner
                    .log
                    .snapshot_entry(&slot(&endpoint), &entry_key(gone))
                    .expect("read"),
                None
            );
        }
        let other = EndpointId::from_bytes([8; 16]);
        assert!(hub.deliveries(&other, 10).expect("read").is_empty());
    }
}
