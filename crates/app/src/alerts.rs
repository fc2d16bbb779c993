//! The alert outbox: review items raised and resolved, told to people through a sink (Discord,
//! a signed HTTPS endpoint), by a durable [`Follower`] per sink.
//!
//! - Once: the follower's checkpoint moves past an alert only after the sink took it, and a
//!   failure part-way through a batch saves the progress before it, so a restart neither floods
//!   nor repeats what was acknowledged. A sink with no checkpoint yet (first start, or newly
//!   configured) starts at the head: the queue shows the older items.
//! - Polite: a sink's `retry_after` (Discord's 429) is waited for before the same alert is sent
//!   again.
//! - Grouped: a batch that raises more than [`OutboxSettings::group_above`] alerts is sent as one
//!   summary (after downtime, a burst of failures), not hundreds of posts.
//! - Bounded: an alert the sink keeps refusing (or a permanent refusal: a deleted webhook, a bad
//!   token) raises an `alert_delivery_failed` review item and the sink is disabled until the
//!   process restarts, instead of being retried forever. That item is not sent to the failing
//!   sink itself.
//! - Counted: `wagate_alerts_sent_total` (requests a sink took: one alert or one summary) and
//!   `wagate_alerts_failed_total` (requests that failed or were refused; a 429 is waited out,
//!   not counted) through the `metrics` facade, which `/metrics` renders.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use wagate_domain::{ReviewReason, ReviewSubject};

use crate::error::AppError;
use crate::follower::{Follower, FollowerError, FollowerSettings, Handler, HandlerFailure};
use crate::hub::Hub;
use crate::reads::LoggedEvent;
use crate::review::{ReviewChange, ReviewItem};

/// The facade's counters (no labels: the `alert_delivery_failed` item names the sink).
const SENT: &str = "wagate_alerts_sent_total";
const FAILED: &str = "wagate_alerts_failed_total";

/// One thing to tell people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// A new item; `item.id` is its id in the queue.
    Raised(ReviewItem),
    /// An item was resolved (`item.resolution` says how, by whom; the item's subject is not
    /// repeated).
    Resolved(ReviewItem),
    /// Many alerts at once, counted by reason (new items; resolutions under `resolved`).
    Summary {
        raised: BTreeMap<ReviewReason, usize>,
        resolved: usize,
        /// The first and last item ids the summary covers.
        first_id: u64,
        last_id: u64,
    },
}

/// Why a sink did not take an alert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Rate-limited: send it again after this long.
    #[error("rate limited; retry after {0:?}")]
    RetryAfter(Duration),
    /// May work later (a 5xx, a timeout, a refused connection).
    #[error("{0}")]
    Transient(String),
    /// Will not work without a person (a deleted webhook, a bad token, a 4xx).
    #[error("{0}")]
    Permanent(String),
}

/// Where alerts go.
pub trait AlertSink: Send + Sync {
    /// The sink's name, in its follower's checkpoint (`alerts:<name>`) and in logs.
    fn name(&self) -> &str;

    /// Delivers one alert (one request).
    fn send(&self, alert: &Alert) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// How the outbox groups and gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSettings {
    /// More alerts than this in one batch are sent as one summary.
    pub group_above: usize,
    /// Consecutive transient failures of one alert after which it is given up (and an item
    /// raised).
    pub give_up_after: u32,
    pub follower: FollowerSettings,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            group_above: 5,
            give_up_after: 5,
            follower: FollowerSettings {
                // The outbox gives up on an alert itself; the follower's own bound is for the
                // log failing, and well above the outbox's.
                max_attempts: 1_000,
                ..FollowerSettings::default()
            },
        }
    }
}

/// The follower's handler: turns events into alerts and sends them.
#[derive(Debug)]
struct Outbox<S> {
    sink: S,
    settings: OutboxSettings,
    failures: u32,
    /// Set once the sink was given up on: alerts are then only logged.
    disabled: bool,
}

impl<S: AlertSink> Outbox<S> {
    /// Whether `item` is about this very sink failing (not sent to it: it would fail again).
    fn about_itself(&self, item: &ReviewItem) -> bool {
        item.reason == ReviewReason::AlertDeliveryFailed
            && item.detail.starts_with(&format!("{}:", self.sink.name()))
    }

    /// The alerts among `events`, each with the position of the event it came from.
    fn alerts(&self, hub: &Hub, events: &[LoggedEvent]) -> Result<Vec<(u64, Alert)>, AppError> {
        let mut alerts = Vec::new();
        for event in events {
            match ReviewChange::of(hub, event)? {
                Some(ReviewChange::Raised(item)) if !self.about_itself(&item) => {
                    alerts.push((event.position, Alert::Raised(item)));
                }
                Some(ReviewChange::Resolved(item)) => {
                    alerts.push((event.position, Alert::Resolved(item)))
                }
                _ => {}
            }
        }
        Ok(alerts)
    }

    /// Gives up on the sink: raises an item saying so, then disables it.
    async fn give_up(&mut self, hub: &Hub, cause: &str) -> Result<(), HandlerFailure> {
        let detail = format!("{}: {cause}", self.sink.name());
        tracing::error!(sink = self.sink.name(), %cause, "alert sink given up until restart; raising a review item");
        hub.raise_review(
            ReviewReason::AlertDeliveryFailed,
            ReviewSubject::default(),
            &detail,
        )
        .await
        .map_err(|error| HandlerFailure::new(error.to_string()))?;
        self.disabled = true;
        self.failures = 0;
        Ok(())
    }
}

fn summary(alerts: &[(u64, Alert)]) -> Alert {
    let mut raised = BTreeMap::new();
    let mut resolved = 0;
    for (_, alert) in alerts {
        match alert {
            Alert::Raised(item) => *raised.entry(item.reason).or_insert(0) += 1,
            Alert::Resolved(_) => resolved += 1,
            Alert::Summary { .. } => {}
        }
    }
    let id = |alert: &Alert| match alert {
        Alert::Raised(item) | Alert::Resolved(item) => item.id,
        Alert::Summary { first_id, .. } => *first_id,
    };
    Alert::Summary {
        raised,
        resolved,
        first_id: alerts.first().map_or(0, |(_, alert)| id(alert)),
        last_id: alerts.last().map_or(0, |(_, alert)| id(alert)),
    }
}

impl<S: AlertSink> Handler for Outbox<S> {
    async fn handle(&mut self, hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        let alerts = self
            .alerts(hub, events)
            .map_err(|error| HandlerFailure::new(error.to_string()))?;
        if alerts.is_empty() {
            return Ok(());
        }
        if self.disabled {
            tracing::warn!(
                sink = self.sink.name(),
                alerts = alerts.len(),
                "alert sink disabled; alerts not sent (see the review queue)"
            );
            return Ok(());
        }
        // (first event position, alert) to send: one summary, or each alert.
        let sends: Vec<(u64, Alert)> = if alerts.len() > self.settings.group_above {
            vec![(alerts[0].0, summary(&alerts))]
        } else {
            alerts
        };
        for (position, alert) in &sends {
            match self.sink.send(alert).await {
                Ok(()) => {
                    metrics::counter!(SENT).increment(1);
                    self.failures = 0;
                }
                Err(error) => {
                    if !matches!(error, SinkError::RetryAfter(_)) {
                        metrics::counter!(FAILED).increment(1);
                    }
                    let done_before = position.checked_sub(1);
                    let mut failure = HandlerFailure {
                        handled_through: done_before,
                        retry_after: None,
                        cause: format!("{}: {error}", self.sink.name()),
                    };
                    match error {
                        SinkError::RetryAfter(after) => {
                            failure.retry_after = Some(after);
                            return Err(failure);
                        }
                        SinkError::Transient(cause) => {
                            self.failures += 1;
                            if self.failures < self.settings.give_up_after {
                                return Err(failure);
                            }
                            self.give_up(
                                hub,
                                &format!("{} failures, the last: {cause}", self.failures),
                            )
                            .await?;
                            return Ok(());
                        }
                        SinkError::Permanent(cause) => {
                            self.give_up(hub, &cause).await?;
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs the outbox of `sink` until `shutdown` turns true. Its checkpoint is `alerts:<name>`;
/// with none yet, it starts at the current head.
pub async fn run_outbox<S: AlertSink + 'static>(
    hub: Hub,
    sink: S,
    settings: OutboxSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), OutboxError> {
    let name = format!("alerts:{}", sink.name());
    if hub.checkpoint(&name)?.is_none() {
        hub.save_checkpoint(&name, hub.head_position()).await?;
    }
    let follower = Follower::durable(&hub, &name, settings.follower)?;
    let outbox = Outbox {
        sink,
        settings,
        failures: 0,
        disabled: false,
    };
    follower.run(hub, outbox, shutdown).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot start the alert outbox: {0}")]
    Start(#[from] AppError),
    #[error(transparent)]
    Stopped(#[from] FollowerError),
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;
