//! Outgoing event webhooks: every registered endpoint gets the events of the kinds it asked for,
//! in log order, through its own durable [`Follower`] (checkpoint `webhook:<endpoint id>`,
//! starting at its registration).
//!
//! - Never lost: the checkpoint moves past an event only once the endpoint acknowledged it (any
//!   2xx), and a failure part-way through a batch saves the progress before it.
//! - Duplicated only across a crash: an event delivered but not yet checkpointed when the
//!   process died is delivered again (receivers de-duplicate by the event `id`).
//! - In order: one event at a time per endpoint; a failing one is retried (bounded exponential
//!   backoff, or the receiver's `Retry-After`) before anything after it.
//! - Watched: an endpoint failing [`DeliverySettings::raise_after`] times in a row raises one
//!   `alert_delivery_failed` review item and is still retried, resuming where it stopped.
//! - Recorded: every attempt goes to the endpoint's bounded delivery log (`delivery_log.rs`).
//! - Disabled: once it has failed continuously for [`DeliverySettings::disable_after`]
//!   ([`failed_long_enough`], with the hub's clock), a `WebhookEndpointDisabled` is appended
//!   (it raises a `webhook_endpoint_disabled` item) and its follower stops, its checkpoint
//!   kept. A manual retry (`Hub::retry_endpoint`) re-enables it, or cuts a live one's backoff.
//!
//! How a delivery is sent (its body, the `Wagate-Signature` header) is the binary's
//! [`EndpointTransport`]: this module decides what is delivered when.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use wagate_domain::{
    failed_long_enough, ContactEvent, EndpointId, Event, MessageEvent, OutgoingEventKind,
    ReviewReason, ReviewSubject,
};

use crate::delivery_log::{Answer, DeliveryAttempt, DELIVERY_LOG_KEEP};
use crate::endpoints::Endpoint;
use crate::error::AppError;
use crate::follower::{Follower, FollowerError, FollowerSettings, Handler, HandlerFailure};
use crate::hub::Hub;
use crate::reads::LoggedEvent;
use crate::review::{ReviewChange, ReviewItem};

/// One event to deliver.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub kind: OutgoingEventKind,
    pub event: &'a LoggedEvent,
    /// For `review_item_raised`: the item, as the queue shows it.
    pub item: Option<ReviewItem>,
}

/// What one delivery request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub answer: Answer,
    /// How long the receiver asked us to wait (a 429's or 503's `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl From<Answer> for Reply {
    fn from(answer: Answer) -> Self {
        Reply {
            answer,
            retry_after: None,
        }
    }
}

/// Sends deliveries (one HTTP request each).
pub trait EndpointTransport: Send + Sync + 'static {
    fn deliver(
        &self,
        endpoint: &Endpoint,
        secret: &str,
        delivery: &Delivery<'_>,
    ) -> impl Future<Output = Reply> + Send;
}

/// What kinds of outgoing event `event` is, if any (and the review item it raises, looked up only
/// when `items` asks for it: it may load the message the item is about).
pub fn kind_of(
    hub: &Hub,
    event: &LoggedEvent,
    items: bool,
) -> Result<Vec<(OutgoingEventKind, Option<ReviewItem>)>, AppError> {
    let mut kinds = Vec::new();
    match &event.event {
        Event::Contact(ContactEvent::InboundReceived { .. }) => {
            kinds.push((OutgoingEventKind::InboundMessage, None))
        }
        Event::Contact(ContactEvent::OptedOut { .. }) => {
            kinds.push((OutgoingEventKind::OptedOut, None))
        }
        Event::Contact(ContactEvent::OptedIn { .. }) => {
            kinds.push((OutgoingEventKind::OptedIn, None))
        }
        Event::Message(MessageEvent::StatusChanged { .. }) => {
            kinds.push((OutgoingEventKind::StatusChanged, None))
        }
        Event::Message(MessageEvent::SendRefused { .. }) => {
            kinds.push((OutgoingEventKind::SendRefused, None))
        }
        _ => {}
    }
    // An event can both be one of the above and raise an item (a failed status).
    if !items {
        return Ok(kinds);
    }
    if let Some(ReviewChange::Raised(item)) = ReviewChange::of(hub, event)? {
        kinds.push((OutgoingEventKind::ReviewItemRaised, Some(item)));
    }
    Ok(kinds)
}

/// How deliveries are retried and watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Consecutive failures of one endpoint after which a review item is raised (once per
    /// outage).
    pub raise_after: u32,
    /// How often the list of endpoints is read for new and deleted ones.
    pub watch_every: Duration,
    /// How long an endpoint fails continuously before it is disabled
    /// (`WAGATE_WEBHOOK_DISABLE_AFTER_DAYS`).
    pub disable_after: chrono::TimeDelta,
    /// Attempts kept in each endpoint's delivery log.
    pub keep_attempts: u64,
    pub follower: FollowerSettings,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            // With the follower's backoff (0.2 s doubling to 60 s), about 5 minutes.
            raise_after: 12,
            watch_every: Duration::from_secs(1),
            disable_after: chrono::TimeDelta::days(3),
            keep_attempts: DELIVERY_LOG_KEEP,
            follower: FollowerSettings {
                // The checkpoint moves after each batch: a crash repeats at most one batch.
                batch: 16,
                max_delay: Duration::from_secs(60),
                // Never given up: a receiver back after days gets everything, in order.
                max_attempts: u32::MAX,
                ..FollowerSettings::default()
            },
        }
    }
}

/// One endpoint's follower handler.
struct Deliverer<T> {
    endpoint: Endpoint,
    secret: String,
    transport: Arc<T>,
    settings: DeliverySettings,
    failures: u32,
    raised: bool,
    /// Turned true once the endpoint is disabled: the follower stops.
    stop: Arc<watch::Sender<bool>>,
}

impl<T: EndpointTransport> Deliverer<T> {
    async fn failed(&mut self, hub: &Hub, position: u64, reply: Reply) -> HandlerFailure {
        let error = &reply.answer;
        let cause = format!("endpoint {}: {error}", self.endpoint.id);
        if self.failures >= self.settings.raise_after && !self.raised {
            tracing::error!(endpoint = %self.endpoint.id, failures = self.failures, "webhook endpoint keeps failing; raising a review item");
            let detail = format!(
                "webhook endpoint {}: {} failures in a row at position {position}, the last: {error}; deliveries resume where they stopped once it answers 2xx",
                self.endpoint.id, self.failures
            );
            match hub
                .raise_review(
                    ReviewReason::AlertDeliveryFailed,
                    ReviewSubject::default(),
                    &detail,
                )
                .await
            {
                Ok(_) => self.raised = true,
                Err(error) => tracing::warn!(%error, "cannot raise the failing-endpoint item"),
            }
        }
        HandlerFailure {
            handled_through: position.checked_sub(1),
            retry_after: reply.retry_after,
            cause,
        }
    }

    /// Records the attempt; disables the endpoint when it has failed long enough.
    async fn record(&mut self, hub: &Hub, attempt: &DeliveryAttempt) -> Result<(), HandlerFailure> {
        let health = hub
            .record_attempt(&self.endpoint.id, attempt, self.settings.keep_attempts)
            .await
            .map_err(|error| HandlerFailure {
                handled_through: attempt.position.checked_sub(1),
                retry_after: None,
                cause: format!("cannot record the delivery attempt: {error}"),
            })?;
        let Some(since) = health.failing_since else {
            return Ok(());
        };
        if !failed_long_enough(Some(since), hub.now(), self.settings.disable_after) {
            return Ok(());
        }
        tracing::error!(endpoint = %self.endpoint.id, %since, "webhook endpoint failed too long; disabling it");
        let reason = format!(
            "failed continuously for longer than {}; the last attempt {}",
            describe(self.settings.disable_after),
            attempt.answer
        );
        match hub
            .disable_endpoint(&self.endpoint.id, &reason, since)
            .await
        {
            Ok(_) => {
                let _ = self.stop.send(true);
            }
            Err(error) => tracing::warn!(%error, "cannot disable the failing endpoint"),
        }
        Ok(())
    }
}

/// A threshold for people: whole days, else seconds.
fn describe(threshold: chrono::TimeDelta) -> String {
    let seconds = threshold.num_seconds();
    if seconds > 0 && seconds % 86_400 == 0 {
        format!("{} days", seconds / 86_400)
    } else {
        format!("{seconds} seconds")
    }
}

impl<T: EndpointTransport> Handler for Deliverer<T> {
    async fn handle(&mut self, hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        for event in events {
            let items = self
                .endpoint
                .events
                .contains(&OutgoingEventKind::ReviewItemRaised);
            let kinds = kind_of(hub, event, items).map_err(|error| HandlerFailure {
                handled_through: event.position.checked_sub(1),
                retry_after: None,
                cause: error.to_string(),
            })?;
            for (kind, item) in kinds {
                if !self.endpoint.events.contains(&kind) {
                    continue;
                }
                let delivery = Delivery { kind, event, item };
                let reply = self
                    .transport
                    .deliver(&self.endpoint, &self.secret, &delivery)
                    .await;
                let attempt = DeliveryAttempt {
                    position: event.position,
                    event_id: event.event_id.to_string(),
                    kind,
                    at: hub.now(),
                    answer: reply.answer.clone(),
                    attempt: self.failures.saturating_add(1),
                };
                if reply.answer.acknowledged() {
                    if self.raised {
                        tracing::info!(endpoint = %self.endpoint.id, "webhook endpoint answers again");
                    }
                    self.failures = 0;
                    self.raised = false;
                    // Delivered: a failure to record it must not deliver it again.
                    if let Err(failure) = self.record(hub, &attempt).await {
                        tracing::warn!(endpoint = %self.endpoint.id, cause = %failure.cause, "delivery not recorded");
                    }
                } else {
                    self.failures = self.failures.saturating_add(1);
                    self.record(hub, &attempt).await?;
                    // An event of two kinds is retried whole: the receiver de-duplicates by
                    // id and type.
                    return Err(self.failed(hub, event.position, reply).await);
                }
            }
        }
        Ok(())
    }
}

/// The checkpoint name of `endpoint`'s follower.
pub fn checkpoint_name(endpoint: &Endpoint) -> String {
    format!("webhook:{}", endpoint.id)
}

/// Delivers to one endpoint until `shutdown` turns true or the endpoint is disabled; a manual
/// retry (`Hub::retry_endpoint`) restarts its follower at once, cutting the backoff.
pub async fn run_endpoint<T: EndpointTransport>(
    hub: Hub,
    endpoint: Endpoint,
    transport: Arc<T>,
    settings: DeliverySettings,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DeliveryError> {
    let name = checkpoint_name(&endpoint);
    if hub.checkpoint(&name)?.is_none() {
        hub.save_checkpoint(&name, endpoint.registered_position)
            .await?;
    }
    let secret = hub.endpoint_secret(&endpoint.id).await?;
    let mut retries = hub.inner.endpoint_retries.subscribe();
    // Where the attempt count stopped, so a restart goes on counting.
    let mut failures = match hub.deliveries(&endpoint.id, 1)?.first() {
        Some(last) if !last.acknowledged() => last.attempt,
        _ => 0,
    };
    loop {
        let (stop, stopped) = watch::channel(false);
        let stop = Arc::new(stop);
        let follower = Follower::durable(&hub, &name, settings.follower)?;
        let mut deliverer = Deliverer {
            endpoint: endpoint.clone(),
            secret: secret.clone(),
            transport: Arc::clone(&transport),
            settings,
            failures,
            raised: false,
            stop: Arc::clone(&stop),
        };
        let retried = {
            // The handler is lent, so its failure count is still ours after a retry.
            let run = follower_run(&hub, follower, &mut deliverer, stopped);
            tokio::pin!(run);
            loop {
                tokio::select! {
                    result = &mut run => {
                        result?;
                        break false;
                    }
                    _ = shutdown.changed() => {
                        if *shutdown.borrow() {
                            let _ = stop.send(true);
                        }
                    }
                    retry = retries.recv() => match retry {
                        Ok(id) if id != endpoint.id => {}
                        // A retry of this endpoint (or retries missed: perhaps of it).
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            let _ = stop.send(true);
                            (&mut run).await?;
                            break true;
                        }
                        Err(broadcast::error::RecvError::Closed) => {}
                    },
                }
            }
        };
        if !retried || *shutdown.borrow() {
            return Ok(());
        }
        failures = deliverer.failures;
        tracing::info!(endpoint = %endpoint.id, "webhook endpoint retried now");
    }
}

async fn follower_run<T: EndpointTransport>(
    hub: &Hub,
    follower: Follower,
    deliverer: &mut Deliverer<T>,
    stopped: watch::Receiver<bool>,
) -> Result<(), FollowerError> {
    follower
        .run(hub.clone(), Borrowed(deliverer), stopped)
        .await
}

/// A handler lent to a follower.
struct Borrowed<'a, H>(&'a mut H);

impl<H: Handler> Handler for Borrowed<'_, H> {
    async fn handle(&mut self, hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        self.0.handle(hub, events).await
    }
}

/// Runs a delivery follower per live endpoint, starting new ones and stopping deleted ones,
/// until `shutdown` turns true.
pub async fn run_deliveries<T: EndpointTransport>(
    hub: Hub,
    transport: Arc<T>,
    settings: DeliverySettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut running: BTreeMap<_, (watch::Sender<bool>, tokio::task::JoinHandle<_>)> =
        BTreeMap::new();
    let mut ticks = tokio::time::interval(settings.watch_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        let endpoints = match hub.endpoints() {
            Ok(list) => list,
            Err(error) => {
                tracing::error!(%error, "cannot read the webhook endpoints");
                continue;
            }
        };
        for endpoint in endpoints {
            let live = endpoint.is_live();
            // A follower that ended (its endpoint disabled, then re-enabled) starts again.
            if let Some((_, task)) = running.get(&endpoint.id) {
                if live && task.is_finished() {
                    if let Some((_, task)) = running.remove(&endpoint.id) {
                        finish(&endpoint.id, task).await;
                    }
                }
            }
            if live && !running.contains_key(&endpoint.id) {
                let (stop, stopped) = watch::channel(false);
                let id = endpoint.id.clone();
                let task = tokio::spawn(run_endpoint(
                    hub.clone(),
                    endpoint,
                    Arc::clone(&transport),
                    settings,
                    stopped,
                ));
                running.insert(id, (stop, task));
            } else if !live {
                if let Some((stop, task)) = running.remove(&endpoint.id) {
                    let _ = stop.send(true);
                    finish(&endpoint.id, task).await;
                }
            }
        }
    }
    for (id, (stop, task)) in std::mem::take(&mut running) {
        let _ = stop.send(true);
        finish(&id, task).await;
    }
}

async fn finish(id: &EndpointId, task: tokio::task::JoinHandle<Result<(), DeliveryError>>) {
    match task.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::error!(endpoint = %id, %error, "webhook deliveries stopped with an error")
        }
        Err(error) => tracing::error!(endpoint = %id, %error, "webhook delivery task failed"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot start webhook deliveries: {0}")]
    Start(#[from] AppError),
    #[error(transparent)]
    Stopped(#[from] FollowerError),
}

#[cfg(test)]
#[path = "deliveries_tests.rs"]
mod tests;
