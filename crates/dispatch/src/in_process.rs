//! [`HubPort`] for a hub in the same process (`wagate serve`): `wagate_app::Hub` directly.
//! Failures of the command service's storage become `Unavailable` (the machine asks again);
//! refusals of the domain come back as the message's phase.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use wagate_app::{
    AppError, DispatchUpdate, Follower, FollowerSettings, Handler, HandlerFailure, Hub, LoggedEvent,
};
use wagate_domain::decide::RecordOutcome;
use wagate_domain::open_intent::INTENT_EVENT_TYPES;
use wagate_domain::{DispatchPhase, MessageContent, MessageId};

use crate::driver::{BoxFuture, ClaimedIntent, HubError, HubPort, Snapshot};
use crate::machine::{ClaimAnswer, HubAnswer, PendingIntent};

/// The store checkpoint the in-process dispatcher saves under.
pub const CHECKPOINT_NAME: &str = "dispatcher";

/// The name of the in-process dispatcher's follower of new intents (for its log lines: it keeps
/// its position in memory, see [`follow_intents`]).
pub const FOLLOWER_NAME: &str = "dispatcher.intents";

/// How the follower of new intents reads: the incremental reads' batch, a short backoff (the
/// dispatcher's latency), and no giving up (a dispatcher that stopped discovering would be
/// silent; the driver's full list on its interval covers the gap meanwhile).
fn follower_settings() -> FollowerSettings {
    FollowerSettings {
        batch: READ_LIMIT,
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(5),
        max_attempts: u32::MAX,
        ..FollowerSettings::default()
    }
}

/// Hands the intent events a follower reads to the driver, as the intents they announced.
struct IntentFeed {
    sink: mpsc::UnboundedSender<Snapshot>,
}

impl Handler for IntentFeed {
    fn accepts(&self, event_type: &str) -> bool {
        INTENT_EVENT_TYPES.contains(&event_type)
    }

    async fn handle(&mut self, hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        let intents = hub
            .announced_intents(events)
            .map_err(|error| HandlerFailure::new(error.to_string()))?;
        let last = events.last().map_or(0, |event| event.position);
        // A closed sink: the driver is stopping, and stops this follower next.
        let _ = self.sink.send(Snapshot {
            intents: intents.into_iter().map(PendingIntent::from).collect(),
            read_up_to: last + 1,
            more: false,
        });
        Ok(())
    }
}

/// The in-process discovery of new intents: an in-memory [`Follower`] that starts after the
/// open-message list the driver read first (so nothing is skipped and its position need not be
/// saved: a restart lists the open messages again) and reads only the intent events.
fn follow_intents(
    hub: Hub,
    after: u64,
    sink: mpsc::UnboundedSender<Snapshot>,
    stop: watch::Receiver<bool>,
) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        // At most one read per 200 ms, as the driver's own reads: most heads a busy hub
        // announces are the dispatcher's own claims and outcomes.
        let follower = Follower::in_memory_after(FOLLOWER_NAME, after, follower_settings())
            .with_read_gap(READ_GAP);
        if let Err(error) = follower.run(hub, IntentFeed { sink }, stop).await {
            tracing::error!(%error, "the dispatcher's intent follower stopped");
        }
    })
}

/// The hub's view of the message's dispatch phase; `None` when it cannot be read now.
fn phase_of(hub: &Hub, message_id: MessageId) -> Option<DispatchPhase> {
    match hub.dispatch_phase(message_id) {
        Ok(phase) => Some(phase),
        Err(AppError::NotFound { .. }) => Some(DispatchPhase::NotAllowed),
        Err(_) => None,
    }
}

/// After a write: the phase it answered; after a refusal by the domain, the phase now; after a
/// failure of the log, unavailable.
fn answer(hub: &Hub, message_id: MessageId, result: Result<DispatchUpdate, AppError>) -> HubAnswer {
    let phase = match result {
        Ok(update) => Some(update.phase),
        Err(
            AppError::NotClaimable { .. } | AppError::NotFound { .. } | AppError::Invalid { .. },
        ) => phase_of(hub, message_id),
        Err(_) => None,
    };
    phase.map_or(HubAnswer::Unavailable, HubAnswer::Phase)
}

fn unavailable(error: AppError) -> HubError {
    HubError::Unavailable(error.to_string())
}

fn snapshot(hub: &Hub) -> Result<Snapshot, HubError> {
    let open = hub.open_intents().map_err(unavailable)?;
    Ok(Snapshot {
        intents: open.intents.into_iter().map(PendingIntent::from).collect(),
        read_up_to: open.head + 1,
        more: false,
    })
}

/// The shortest time between two reads of the follower of new intents.
const READ_GAP: Duration = Duration::from_millis(200);

/// Events read per incremental poll.
const READ_LIMIT: usize = 4096;

/// The intents among the events from `from` on.
fn intents_since(hub: &Hub, from: u64) -> Result<Snapshot, HubError> {
    let from = from.max(1);
    let new = hub
        .intents_after(from - 1, READ_LIMIT)
        .map_err(|error| match error {
            AppError::Corrupt { .. } => HubError::Protocol(error.to_string()),
            other => unavailable(other),
        })?;
    Ok(Snapshot {
        intents: new.intents.into_iter().map(PendingIntent::from).collect(),
        read_up_to: new.last_position.map_or(from, |position| position + 1),
        more: new.events_read == READ_LIMIT,
    })
}

impl HubPort for Hub {
    fn pending(&self) -> BoxFuture<'_, Result<Snapshot, HubError>> {
        Box::pin(async move { snapshot(self) })
    }

    fn intents_since(&self, from: u64) -> BoxFuture<'_, Result<Snapshot, HubError>> {
        Box::pin(async move { intents_since(self, from) })
    }

    fn claim(&self, message_id: MessageId) -> BoxFuture<'_, ClaimAnswer<ClaimedIntent>> {
        Box::pin(async move {
            match Hub::claim(self, message_id).await {
                Ok(claimed) => {
                    let registration = claimed.sender.registration.as_ref();
                    let template_language = match &claimed.intent.content {
                        MessageContent::Template { .. } => {
                            claimed.template.as_ref().map(|t| t.language.clone())
                        }
                        MessageContent::Freeform { .. } | MessageContent::Rich(_) => None,
                    };
                    ClaimAnswer::Claimed {
                        attempt: claimed.attempt,
                        request: ClaimedIntent {
                            attempt: claimed.attempt,
                            sender: claimed.intent.sender.clone(),
                            recipient: claimed.intent.contact.clone(),
                            content: claimed.intent.content.clone(),
                            provider: registration.map(|r| r.provider),
                            meta_phone_number_id: registration
                                .and_then(|r| r.meta_phone_number_id.clone()),
                            template_language,
                        },
                    }
                }
                Err(AppError::Refused(refusal)) => ClaimAnswer::Refused { rule: refusal.rule },
                Err(AppError::NotClaimable { .. } | AppError::NotFound { .. }) => {
                    match phase_of(self, message_id) {
                        Some(phase) => ClaimAnswer::NotClaimable { phase },
                        None => ClaimAnswer::Unavailable,
                    }
                }
                Err(_) => ClaimAnswer::Unavailable,
            }
        })
    }

    fn record_outcome(&self, command: RecordOutcome) -> BoxFuture<'_, HubAnswer> {
        Box::pin(async move {
            let message_id = command.message_id;
            let result = Hub::record_outcome(self, command).await;
            answer(self, message_id, result)
        })
    }

    fn expire_in_doubt(&self, message_id: MessageId) -> BoxFuture<'_, HubAnswer> {
        Box::pin(async move {
            let result = Hub::expire_in_doubt(self, message_id).await;
            answer(self, message_id, result)
        })
    }

    // The store keeps the last position a consumer has processed; the machine speaks of the
    // position to resume from, one past it.
    fn checkpoint(&self) -> BoxFuture<'_, Result<u64, HubError>> {
        Box::pin(async move {
            Hub::checkpoint(self, CHECKPOINT_NAME)
                .map(|processed| processed.map_or(0, |position| position + 1))
                .map_err(unavailable)
        })
    }

    fn save_checkpoint(&self, resume_from: u64) -> BoxFuture<'_, Result<(), HubError>> {
        Box::pin(async move {
            let Some(processed) = resume_from.checked_sub(1) else {
                return Ok(());
            };
            Hub::save_checkpoint(self, CHECKPOINT_NAME, processed)
                .await
                .map_err(unavailable)
        })
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(Hub::subscribe(self))
    }

    fn follow_intents(
        &self,
        after: u64,
        sink: mpsc::UnboundedSender<Snapshot>,
        stop: watch::Receiver<bool>,
    ) -> Option<BoxFuture<'static, ()>> {
        Some(follow_intents(self.clone(), after, sink, stop))
    }
}
