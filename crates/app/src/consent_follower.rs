//! The confirmation template of a double opt-in, sent by a durable [`Follower`] of
//! `OptInRequested` (checkpoint [`CONFIRMATIONS_CHECKPOINT`]).
//!
//! A follower rather than the page handler: the form submission is recorded first and the send
//! happens after, so a crash between the two would otherwise lose the confirmation. The
//! follower resumes after the last request it handled, and each send carries an idempotency
//! key derived from the request's log position, so a request handled again after a crash (its
//! send done, its checkpoint not yet saved) replays the stored answer and sends nothing twice.
//!
//! Each send is an ordinary one through every gate, under the workflow `consent_confirmation`:
//! the gates let it through only as the one message the pending opt-in permits
//! (`wagate_domain::consent_confirmation`). A refusal is recorded (`SendRefused`) and is final
//! for that request; only a failure to reach the log is retried.

use tokio::sync::watch;
use tracing::{info, warn};
use wagate_domain::consent::{self, ConsentEvent};
use wagate_domain::consent_confirmation::CONFIRMATION_WORKFLOW;
use wagate_domain::{ConsentState, Event, SendContent, StreamKey};

use crate::error::AppError;
use crate::follower::{Follower, FollowerError, FollowerSettings, Handler, HandlerFailure};
use crate::hub::{Hub, SendOptions, SendRequest};
use crate::reads::LoggedEvent;

/// The follower's checkpoint name.
pub const CONFIRMATIONS_CHECKPOINT: &str = "consent:confirmations";

/// The idempotency key of the confirmation for the request at `position`.
pub fn confirmation_key(position: u64) -> String {
    format!("consent-confirmation:{position}")
}

/// Sends each campaign's confirmation template after a form submission.
#[derive(Debug, Default)]
pub struct ConsentConfirmations;

impl Handler for ConsentConfirmations {
    fn accepts(&self, event_type: &str) -> bool {
        event_type == "OptInRequested"
    }

    async fn handle(&mut self, hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        let mut handled = None;
        for logged in events {
            if let Err(error) = confirm_one(hub, logged).await {
                return Err(HandlerFailure {
                    handled_through: handled,
                    retry_after: None,
                    cause: format!("sending a consent confirmation failed: {error}"),
                });
            }
            handled = Some(logged.position);
        }
        Ok(())
    }
}

async fn confirm_one(hub: &Hub, logged: &LoggedEvent) -> Result<(), AppError> {
    let Event::Consent(ConsentEvent::OptInRequested {
        contact, campaign, ..
    }) = &logged.event
    else {
        return Ok(());
    };
    let found = hub
        .load::<ConsentState>(&StreamKey::Consent(consent::campaign_stream(campaign)))?
        .state
        .campaign;
    let Some(found) = found else {
        return Ok(());
    };
    let Some(template) = found.confirmation_template.clone() else {
        return Ok(());
    };
    let request = SendRequest {
        to: contact.to_string(),
        sender: Some(found.sender.clone()),
        workflow: Some(CONFIRMATION_WORKFLOW.to_owned()),
        content: SendContent::Template {
            template,
            variables: Default::default(),
            media: Vec::new(),
        },
    };
    let options = SendOptions {
        idempotency_key: Some(confirmation_key(logged.position)),
        dry_run: false,
    };
    // Recorded as asked for by whoever made the request (the hosted page): the send is its
    // consequence, not an operator's.
    let acting = match &logged.actor {
        Some(actor) => hub.acting(actor.clone()),
        None => hub.clone(),
    };
    match acting.send(request, options).await {
        Ok(accepted) => {
            info!(campaign = %campaign, message_id = %accepted.message_id, "consent confirmation template sent");
            Ok(())
        }
        // Recorded as `SendRefused`; final for this request (a late or opted-out one).
        Err(AppError::Refused(refusal)) => {
            warn!(campaign = %campaign, rule = %refusal.rule, "consent confirmation refused");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Runs the confirmations until `shutdown` turns true. With no checkpoint yet it starts at the
/// current head: requests recorded before the hub sent confirmations keep the click-to-chat
/// confirmation only.
pub async fn run_consent_confirmations(
    hub: Hub,
    settings: FollowerSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ConfirmationsError> {
    if hub.checkpoint(CONFIRMATIONS_CHECKPOINT)?.is_none() {
        hub.save_checkpoint(CONFIRMATIONS_CHECKPOINT, hub.head_position())
            .await?;
    }
    let follower = Follower::durable(&hub, CONFIRMATIONS_CHECKPOINT, settings)?;
    follower.run(hub, ConsentConfirmations, shutdown).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfirmationsError {
    #[error("cannot start the consent confirmations: {0}")]
    Start(#[from] AppError),
    #[error(transparent)]
    Stopped(#[from] FollowerError),
}
