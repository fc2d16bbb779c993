//! The one mechanism behind every side effect: a named, checkpointed reader of the log.
//!
//! A [`Follower`] reads the decoded events after its checkpoint in bounded batches, hands each
//! batch to a [`Handler`], and moves its checkpoint past the batch only once the handler
//! succeeded (durably, for a [`Follower::durable`] one: saved in the log's checkpoints, so a
//! restart resumes after the last handled event and repeats nothing that was acknowledged).
//! A failing handler is retried on the same events (never skipped) after a backoff that doubles
//! up to a bound, or waits as long as the handler asks (a 429's `retry_after`); after a bounded
//! number of consecutive failures the follower stops with [`FollowerError::GaveUp`]. Idle, it
//! sleeps until the durable head moves or it is told to stop.
//!
//! A handler that wants only some event types says so ([`Handler::accepts`]): the others are
//! skipped by their type name without being decoded, and the checkpoint still moves past them.
//!
//! Used by the review queue (an in-memory follower, rebuilt from the log at every start), the
//! alert outbox, the outgoing webhooks, the CRM mirror and the Twilio price follower (durable
//! ones; the last drives `step` itself to try its retries as they fall due), and the in-process
//! dispatcher's discovery of new intents (an in-memory one that starts after the head of the
//! open-message list it read first: wagate-dispatch, `in_process.rs`).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::AppError;
use crate::hub::Hub;
use crate::reads::LoggedEvent;

/// How a follower reads and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerSettings {
    /// Events handed to the handler at most at once.
    pub batch: usize,
    /// The first backoff after a failure; doubled per consecutive failure.
    pub min_delay: Duration,
    /// The longest backoff (a handler's own `retry_after` may ask for longer, up to
    /// [`FollowerSettings::max_retry_after`]).
    pub max_delay: Duration,
    /// The longest wait a handler may ask for (a provider's absurd `retry_after` is cut here).
    pub max_retry_after: Duration,
    /// Consecutive failures after which the follower stops instead of retrying.
    pub max_attempts: u32,
}

impl Default for FollowerSettings {
    fn default() -> Self {
        FollowerSettings {
            batch: 256,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(600),
            max_attempts: 30,
        }
    }
}

impl FollowerSettings {
    /// The wait after the `failures`-th consecutive failure (1-based), before the handler's
    /// own request is considered.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.min_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

/// Why a handler did not finish a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerFailure {
    /// The position up to which the batch's effects did happen (they are not repeated).
    pub handled_through: Option<u64>,
    /// How long the other side asked us to wait (Discord's `retry_after`).
    pub retry_after: Option<Duration>,
    /// For the logs: what failed (no secrets, no personal data).
    pub cause: String,
}

impl HandlerFailure {
    pub fn new(cause: impl Into<String>) -> Self {
        HandlerFailure {
            handled_through: None,
            retry_after: None,
            cause: cause.into(),
        }
    }
}

/// What a follower does with its events.
pub trait Handler: Send {
    /// Whether events of this type (`Event::type_name`) are handed to [`Handler::handle`];
    /// the others are not decoded and count as handled. Every type by default.
    fn accepts(&self, _event_type: &str) -> bool {
        true
    }

    /// Acts on `events` (in log order, never empty). `Ok` means every one of them is done.
    fn handle(
        &mut self,
        hub: &Hub,
        events: &[LoggedEvent],
    ) -> impl Future<Output = Result<(), HandlerFailure>> + Send;
}

/// Why one step did not advance.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("reading the log failed: {0}")]
    Read(#[source] AppError),
    #[error("saving the checkpoint failed: {0}")]
    Save(#[source] AppError),
    #[error("the handler failed: {}", .0.cause)]
    Handler(HandlerFailure),
}

impl StepError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            StepError::Handler(failure) => failure.retry_after,
            _ => None,
        }
    }
}

/// Why a follower stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum FollowerError {
    #[error("follower {name} gave up after {attempts} consecutive failures at position {position}: {last}")]
    GaveUp {
        name: String,
        attempts: u32,
        position: u64,
        #[source]
        last: StepError,
    },
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing after the checkpoint yet.
    Idle,
    /// A batch was handled; `more` when it was full (more may be waiting).
    Advanced { to: u64, more: bool },
}

/// A named reader of the log with a checkpoint.
#[derive(Debug)]
pub struct Follower {
    name: String,
    settings: FollowerSettings,
    position: u64,
    durable: bool,
    /// The shortest time between two reads after waking on a new head (zero: none).
    read_gap: Duration,
}

impl Follower {
    /// A follower whose checkpoint is saved in the log under `name`: it resumes after the last
    /// batch it handled, across restarts.
    pub fn durable(hub: &Hub, name: &str, settings: FollowerSettings) -> Result<Self, AppError> {
        Ok(Follower {
            name: name.to_owned(),
            settings,
            position: hub.checkpoint(name)?.unwrap_or(0),
            durable: true,
            read_gap: Duration::ZERO,
        })
    }

    /// A follower that starts at the beginning of the log and keeps its checkpoint in memory:
    /// for projections rebuilt at every start.
    pub fn in_memory(name: &str, settings: FollowerSettings) -> Self {
        Follower {
            name: name.to_owned(),
            settings,
            position: 0,
            durable: false,
            read_gap: Duration::ZERO,
        }
    }

    /// Reads at most once per `gap` when woken by a new head: on a busy log the head moves
    /// with every append (the dispatcher's own claims and outcomes, for its follower), and one
    /// read per gap takes whatever landed meanwhile in one batch. A full batch is followed at
    /// once regardless.
    pub fn with_read_gap(mut self, gap: Duration) -> Self {
        self.read_gap = gap;
        self
    }

    /// A follower that keeps its checkpoint in memory and starts after position `after`: for a
    /// reader that learned everything up to `after` another way (a list read first).
    pub fn in_memory_after(name: &str, after: u64, settings: FollowerSettings) -> Self {
        Follower {
            position: after,
            ..Self::in_memory(name, settings)
        }
    }

    /// The last position handled (0: nothing yet).
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one batch after the checkpoint and hands it to `handler`; on success (or partial
    /// success, as the failure says) moves the checkpoint.
    pub async fn step<H: Handler>(
        &mut self,
        hub: &Hub,
        handler: &mut H,
    ) -> Result<Step, StepError> {
        let batch = self.settings.batch.max(1);
        let read = hub
            .events_after_where(self.position, batch, |event_type| {
                handler.accepts(event_type)
            })
            .map_err(StepError::Read)?;
        let Some(last) = read.last_position else {
            return Ok(Step::Idle);
        };
        let more = read.records_read >= batch && read.complete;
        if read.events.is_empty() {
            // Nothing this handler wants: the skipped events count as handled.
            self.advance(hub, last).await?;
            return Ok(Step::Advanced { to: last, more });
        }
        match handler.handle(hub, &read.events).await {
            Ok(()) => {
                self.advance(hub, last).await?;
                Ok(Step::Advanced { to: last, more })
            }
            Err(failure) => {
                if let Some(through) = failure.handled_through {
                    if through > self.position && through <= last {
                        self.advance(hub, through).await?;
                    }
                }
                Err(StepError::Handler(failure))
            }
        }
    }

    async fn advance(&mut self, hub: &Hub, to: u64) -> Result<(), StepError> {
        if self.durable {
            hub.save_checkpoint(&self.name, to)
                .await
                .map_err(StepError::Save)?;
        }
        self.position = to;
        Ok(())
    }

    /// Follows the log until `shutdown` turns true (then `Ok`), or until `max_attempts`
    /// consecutive steps failed.
    pub async fn run<H: Handler>(
        mut self,
        hub: Hub,
        mut handler: H,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), FollowerError> {
        let mut heads = hub.subscribe();
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let read_at = tokio::time::Instant::now();
            match self.step(&hub, &mut handler).await {
                Ok(Step::Advanced { more: true, .. }) => failures = 0,
                Ok(Step::Advanced { more: false, .. } | Step::Idle) => {
                    failures = 0;
                    // A head announced after our read is already marked changed: no lost wake-up.
                    if *heads.borrow_and_update() <= self.position {
                        tokio::select! {
                            changed = heads.changed() => if changed.is_err() { return Ok(()) },
                            _ = shutdown.changed() => {}
                        }
                    }
                    if !self.read_gap.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep_until(read_at + self.read_gap) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                }
                Err(error) => {
                    failures += 1;
                    if failures >= self.settings.max_attempts {
                        return Err(FollowerError::GaveUp {
                            name: self.name,
                            attempts: failures,
                            position: self.position,
                            last: error,
                        });
                    }
                    let asked = error.retry_after().map_or(Duration::ZERO, |after| {
                        after.min(self.settings.max_retry_after)
                    });
                    let delay = self.settings.backoff(failures).max(asked);
                    tracing::warn!(follower = %self.name, position = self.position, failures, ?delay, %error, "follower step failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "follower_tests.rs"]
mod tests;
