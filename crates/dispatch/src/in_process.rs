//! [`HubPort`] for a hub in the same process (`wagate serve`): `wagate_app::Hub` directly.
//! Failures of the command service's storage become `Unavailable` (the machine asks again);
//! refusals of the domain come back as the message's phase.

use wagate_app::{AppError, DispatchUpdate, Hub};
use wagate_domain::decide::RecordOutcome;
use wagate_domain::{DispatchPhase, MessageContent, MessageId};

use crate::driver::{BoxFuture, ClaimedIntent, HubError, HubPort, Snapshot};
use crate::machine::{ClaimAnswer, HubAnswer, PendingIntent};

/// The store checkpoint the in-process dispatcher saves under.
pub const CHECKPOINT_NAME: &str = "dispatcher";

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
}
