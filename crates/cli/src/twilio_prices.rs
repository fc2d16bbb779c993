//! The Twilio price follower: for each Twilio message that reaches a final status (delivered,
//! read, failed, undelivered) it reads the Message resource's `price` and records it as
//! `ProviderPriceReported`, which the cost ledger prices the message by (docs/costs.md).
//!
//! A durable follower (checkpoint [`CHECKPOINT`], started at the head the first time, like the
//! CRM mirror) over `StatusChanged`. Twilio fills `price` a while after the final status, so a
//! null price (or a failed fetch) does not hold the follower: the message goes to a bounded
//! retry list ([`MAX_PENDING`]) tried again after [`RETRY_DELAYS`] (about an hour in all), then
//! given up with a log line. The list is in memory: a restart forgets it (those messages keep
//! the table's price).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use wagate_app::{Follower, FollowerSettings, Handler, HandlerFailure, Hub, LoggedEvent, Step};
use wagate_domain::{
    Event, MessageEvent, MessageId, MessageStatus, ProviderKind, ProviderMessageRef,
};
use wagate_providers::twilio::{MessagePrice, TwilioPriceClient};

/// The follower's durable checkpoint name.
pub const CHECKPOINT: &str = "twilio-prices";

/// The waits before each retry of a message whose price is not known yet (5 tries in all over
/// about 66 minutes).
pub const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(20 * 60),
    Duration::from_secs(40 * 60),
];

/// Messages waiting for a retry at most; beyond, the oldest is given up.
pub const MAX_PENDING: usize = 10_000;

/// Where prices come from: Twilio, or a fake in tests.
pub trait PriceSource: Send + Sync + 'static {
    fn price<'a>(
        &'a self,
        sid: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Option<MessagePrice>, String>> + Send + 'a>>;
}

impl PriceSource for TwilioPriceClient {
    fn price<'a>(
        &'a self,
        sid: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Option<MessagePrice>, String>> + Send + 'a>> {
        Box::pin(async move { self.message_price(sid).await.map_err(|e| e.to_string()) })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    message: MessageId,
    sid: String,
    /// Tries made so far.
    tries: u32,
    due: Instant,
}

/// The handler: fetches, records, and keeps what is not priced yet for later.
pub struct PriceFollower<S> {
    source: Arc<S>,
    pending: VecDeque<Pending>,
}

impl<S: PriceSource> PriceFollower<S> {
    pub fn new(source: Arc<S>) -> Self {
        Self {
            source,
            pending: VecDeque::new(),
        }
    }

    /// Messages waiting for a retry.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When the next retry is due, if any.
    fn next_due(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.due).min()
    }

    /// One try; a price not known yet (or a failed fetch) is scheduled again or given up.
    /// `Err` only when recording the price failed (the log refused it).
    async fn attempt(&mut self, hub: &Hub, mut item: Pending) -> Result<(), String> {
        item.tries += 1;
        let cause = match self.source.price(&item.sid).await {
            Ok(Some(price)) => {
                hub.record_provider_price(
                    item.message,
                    ProviderKind::Twilio,
                    price.amount_micros,
                    &price.currency,
                )
                .await
                .map_err(|e| e.to_string())?;
                return Ok(());
            }
            Ok(None) => "price not known yet".to_owned(),
            Err(error) => error,
        };
        match RETRY_DELAYS.get(item.tries as usize - 1) {
            Some(delay) => {
                item.due = Instant::now() + *delay;
                if self.pending.len() >= MAX_PENDING {
                    if let Some(dropped) = self.pending.pop_front() {
                        tracing::warn!(message_id = %dropped.message, "Twilio price retry list full: giving up its oldest message (it keeps the table's price)");
                    }
                }
                self.pending.push_back(item);
            }
            None => tracing::warn!(
                message_id = %item.message,
                tries = item.tries,
                %cause,
                "no Twilio price for the message after every retry: it keeps the table's price"
            ),
        }
        Ok(())
    }

    /// Tries again every message whose retry is due. A price the log refused to record is
    /// logged and given up (the message keeps the table's price).
    pub async fn retry_due(&mut self, hub: &Hub) {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|p| p.due <= now);
        self.pending = waiting.into();
        for item in due {
            let message = item.message;
            if let Err(error) = self.attempt(hub, item).await {
                tracing::warn!(message_id = %message, %error, "recording a Twilio price failed: it keeps the table's price");
            }
        }
    }
}

/// The Twilio message id of a final status, when the event is one.
fn final_twilio_status(event: &Event) -> Option<(MessageId, String)> {
    let Event::Message(MessageEvent::StatusChanged {
        message_id,
        provider_ref: Some(ProviderMessageRef::Twilio(sid)),
        status,
        ..
    }) = event
    else {
        return None;
    };
    matches!(
        status,
        MessageStatus::Delivered
            | MessageStatus::Read
            | MessageStatus::Failed
            | MessageStatus::Undelivered
    )
    .then(|| (*message_id, sid.to_string()))
}

impl<S: PriceSource> Handler for PriceFollower<S> {
    fn accepts(&self, event_type: &str) -> bool {
        event_type == "StatusChanged"
    }

    async fn handle(&mut self, hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        let mut handled_through = None;
        for logged in events {
            if let Some((message, sid)) = final_twilio_status(&logged.event) {
                // Delivered then read: one price is enough.
                if self.pending.iter().any(|p| p.message == message) {
                    continue;
                }
                let item = Pending {
                    message,
                    sid,
                    tries: 0,
                    due: Instant::now(),
                };
                if let Err(cause) = self.attempt(hub, item).await {
                    let mut failure = HandlerFailure::new(cause);
                    failure.handled_through = handled_through;
                    return Err(failure);
                }
            }
            handled_through = Some(logged.position);
        }
        Ok(())
    }
}

fn follower_settings() -> FollowerSettings {
    FollowerSettings {
        batch: 64,
        max_attempts: 1_000,
        ..FollowerSettings::default()
    }
}

/// Runs the follower until `shutdown`; retries are tried as they fall due, between batches.
pub async fn run<S: PriceSource>(
    hub: Hub,
    source: Arc<S>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if hub.checkpoint(CHECKPOINT)?.is_none() {
        hub.save_checkpoint(CHECKPOINT, hub.head_position()).await?;
    }
    let settings = follower_settings();
    let mut follower = Follower::durable(&hub, CHECKPOINT, settings)?;
    let mut handler = PriceFollower::new(source);
    let mut heads = hub.subscribe();
    let mut failures = 0u32;
    tracing::info!(from = follower.position(), "Twilio price follower started");
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        match follower.step(&hub, &mut handler).await {
            Ok(Step::Advanced { more: true, .. }) => {
                failures = 0;
                continue;
            }
            Ok(_) => failures = 0,
            Err(error) => {
                failures += 1;
                if failures >= settings.max_attempts {
                    anyhow::bail!("the Twilio price follower gave up: {error}");
                }
                tracing::warn!(failures, %error, "Twilio price follower step failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(settings.backoff(failures)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        }
        handler.retry_due(&hub).await;
        let wake = handler
            .next_due()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        if *heads.borrow_and_update() <= follower.position() {
            tokio::select! {
                changed = heads.changed() => if changed.is_err() { return Ok(()) },
                _ = tokio::time::sleep_until(wake) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// The follower for `wagate serve`, when Twilio credentials are configured.
pub fn spawn(
    hub: &Hub,
    client: TwilioPriceClient,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(run(hub.clone(), Arc::new(client), shutdown))
}

#[cfg(test)]
#[path = "twilio_prices_tests.rs"]
mod tests;
