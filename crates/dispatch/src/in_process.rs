//! [`HubPort`] for a hub in the same process (`wagate serve`): `wagate_app::Hub` directly.
//! Failures of the command service's storage become `Unavailable` (the machine asks again);
//! refusals of the domain come back as the message's phase.

use wagate_app::{AppError, Hub};
use wagate_domain::decide::RecordOutcome;
use wagate_domain::{DispatchPhase, Event, MessageContent, MessageEvent, MessageId};

use crate::driver::{BoxFuture, ClaimedIntent, HubError, HubPort, Snapshot};
use crate::machine::{ClaimAnswer, HubAnswer, PendingIntent};

/// The store checkpoint the in-process dispatcher saves under.
pub const CHECKPOINT_NAME: &str = "dispatcher";

/// The hub's view of the message's dispatch phase; `None` when it cannot be read now.
fn phase_of(hub: &Hub, message_id: MessageId) -> Option<DispatchPhase> {
    match hub.message(message_id) {
        Ok(view) => Some(view.state.phase()),
        Err(AppError::NotFound { .. }) => Some(DispatchPhase::NotAllowed),
        Err(_) => None,
    }
}

/// After a write: the phase, unless the write failed for a reason other than the domain's.
fn answer(hub: &Hub, message_id: MessageId, result: Result<Vec<u64>, AppError>) -> HubAnswer {
    let decided = match result {
        Ok(_) => true,
        Err(
            AppError::NotClaimable { .. } | AppError::NotFound { .. } | AppError::Invalid { .. },
        ) => true,
        Err(_) => false,
    };
    match (decided, phase_of(hub, message_id)) {
        (true, Some(phase)) => HubAnswer::Phase(phase),
        _ => HubAnswer::Unavailable,
    }
}

fn snapshot(hub: &Hub) -> Result<Snapshot, HubError> {
    // The head first: every intent at or below it is then in the list.
    let head = hub.store().head_position();
    let unavailable = |error: AppError| HubError::Unavailable(error.to_string());
    let mut intents = Vec::new();
    for open in hub.open_messages().map_err(unavailable)? {
        let view = match hub.message(open.message_id) {
            Ok(view) => view,
            Err(AppError::NotFound { .. }) => continue,
            Err(error) => return Err(unavailable(error)),
        };
        let Some(intent) = &view.state.intent else {
            continue;
        };
        let position = view
            .history
            .iter()
            .find(|entry| {
                matches!(
                    entry.event,
                    Event::Message(
                        MessageEvent::TemplateSent { .. } | MessageEvent::ReplySent { .. }
                    )
                )
            })
            .map_or(0, |entry| entry.position);
        intents.push(PendingIntent {
            message_id: open.message_id,
            sender: intent.sender.clone(),
            recipient: intent.contact.clone(),
            phase: view.state.phase(),
            position,
        });
    }
    Ok(Snapshot {
        intents,
        read_up_to: head + 1,
        more: false,
    })
}

/// Events read per incremental poll.
const READ_LIMIT: usize = 4096;

/// The intents among the events from `from` on: only their event type is looked at until one
/// is an intent, which is then decoded.
fn intents_since(hub: &Hub, from: u64) -> Result<Snapshot, HubError> {
    let from = from.max(1);
    let records = hub
        .store()
        .read_from(from, READ_LIMIT)
        .map_err(|error| HubError::Unavailable(error.to_string()))?;
    let mut intents = Vec::new();
    for record in &records {
        if !matches!(record.event_type.as_str(), "TemplateSent" | "ReplySent") {
            continue;
        }
        let event = wagate_store::persisted::decode(record)
            .map_err(|error| HubError::Protocol(error.to_string()))?;
        let (message_id, contact, sender) = match &event {
            Event::Message(
                MessageEvent::TemplateSent {
                    message_id,
                    contact,
                    sender,
                    ..
                }
                | MessageEvent::ReplySent {
                    message_id,
                    contact,
                    sender,
                    ..
                },
            ) => (*message_id, contact.clone(), sender.clone()),
            _ => continue,
        };
        intents.push(PendingIntent {
            message_id,
            sender,
            recipient: contact,
            phase: DispatchPhase::Pending {
                next_attempt: 1,
                not_before: None,
            },
            position: record.position,
        });
    }
    let read_up_to = records.last().map_or(from, |record| record.position + 1);
    Ok(Snapshot {
        intents,
        read_up_to,
        more: records.len() == READ_LIMIT,
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
                        MessageContent::Freeform { .. } => None,
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
            self.store()
                .checkpoint(CHECKPOINT_NAME)
                .map(|processed| processed.map_or(0, |position| position + 1))
                .map_err(|error| HubError::Unavailable(error.to_string()))
        })
    }

    fn save_checkpoint(&self, resume_from: u64) -> BoxFuture<'_, Result<(), HubError>> {
        Box::pin(async move {
            let Some(processed) = resume_from.checked_sub(1) else {
                return Ok(());
            };
            self.store()
                .save_checkpoint(CHECKPOINT_NAME, processed)
                .await
                .map_err(|error| HubError::Unavailable(error.to_string()))
        })
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.store().subscribe())
    }
}
