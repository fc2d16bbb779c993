//! The routes a dispatcher running as its own process uses (`wagate dispatch --hub URL`): the
//! open messages, claims (every gate re-checked by the hub), outcomes and in-doubt expiry.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use chrono::TimeDelta;
use wagate_app::{AppError, DispatchUpdate};
use wagate_domain::decide::{DispatchOutcome, RecordOutcome};
use wagate_domain::{
    ContactId, MessageId, MessageStatus, ProviderError, ProviderKind, ProviderMessageRef,
};

use crate::api::{self, DispatchRecorded, OutcomeRequest, PendingResponse};
use crate::body::json;
use crate::commands::message_id;
use crate::convert;
use crate::error::ApiError;
use crate::metrics::Source;
use crate::state::{Acting, AppState};

/// Largest jitter accepted: the backoff itself is seconds.
const JITTER_MS_MAX: u64 = 60_000;

fn phase_of(state: &AppState, id: MessageId) -> Result<api::Phase, ApiError> {
    Ok(convert::phase(&state.hub().dispatch_phase(id)?))
}

/// `GET /v1/dispatch/pending`
pub async fn pending(Acting(hub): Acting) -> Result<Json<PendingResponse>, ApiError> {
    let open = hub.open_intents()?;
    Ok(Json(PendingResponse {
        messages: open.intents.iter().map(convert::pending).collect(),
        head: open.head,
    }))
}

/// `POST /v1/messages/{message_id}/claim`: 200 with the provider call's inputs, 422 when a
/// gate refuses now (the message is canceled), 409 when there is nothing to claim.
pub async fn claim(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = message_id(&raw)?;
    match hub.claim(id).await {
        Ok(claimed) => {
            state.metrics().appended(Source::Command, 1);
            Ok(Json(convert::claimed(&claimed)).into_response())
        }
        Err(error @ AppError::NotClaimable { .. }) => Err(ApiError::NotClaimable {
            message: error.to_string(),
            phase: phase_of(&state, id).ok(),
        }),
        Err(error) => Err(error.into()),
    }
}

fn provider(field: &str, raw: &str) -> Result<ProviderKind, ApiError> {
    ProviderKind::parse(raw).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("{raw:?} is not one of twilio, meta, sandbox"),
        )
    })
}

fn dispatch_outcome(request: OutcomeRequest) -> Result<DispatchOutcome, ApiError> {
    match (request.accepted, request.rejected, request.transport) {
        (Some(accepted), None, None) => Ok(DispatchOutcome::Accepted {
            provider_ref: ProviderMessageRef::parse(&accepted.provider_ref)
                .map_err(|e| ApiError::invalid("accepted.provider_ref", e.to_string()))?,
            provider_status: MessageStatus::parse(&accepted.provider_status),
            recipient: accepted
                .recipient
                .as_deref()
                .map(ContactId::parse)
                .transpose()
                .map_err(|e| ApiError::invalid("accepted.recipient", e.to_string()))?,
        }),
        (None, Some(rejected), None) => Ok(DispatchOutcome::Rejected {
            error: ProviderError {
                provider: provider("rejected.provider", &rejected.provider)?,
                code: rejected.code,
                http_status: rejected.http_status,
                message: rejected.message,
            },
        }),
        (None, None, Some(transport)) => Ok(DispatchOutcome::Transport {
            provider: provider("transport.provider", &transport.provider)?,
            message: transport.message,
        }),
        _ => Err(ApiError::invalid(
            "accepted",
            "give exactly one of accepted, rejected, transport",
        )),
    }
}

/// `POST /v1/messages/{message_id}/outcome`
pub async fn outcome(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<DispatchRecorded>, ApiError> {
    let id = message_id(&raw)?;
    let request: OutcomeRequest = json(&body)?;
    if request.jitter_ms > JITTER_MS_MAX {
        return Err(ApiError::invalid(
            "jitter_ms",
            format!("at most {JITTER_MS_MAX}"),
        ));
    }
    let attempt = request.attempt;
    // Bounded by JITTER_MS_MAX above, so the conversion cannot fail.
    let jitter = TimeDelta::milliseconds(i64::try_from(request.jitter_ms).unwrap_or(0));
    let update = hub
        .record_outcome(RecordOutcome {
            message_id: id,
            attempt,
            outcome: dispatch_outcome(request)?,
            jitter,
        })
        .await?;
    Ok(recorded(&state, update))
}

/// `POST /v1/messages/{message_id}/expire-in-doubt`
pub async fn expire_in_doubt(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
) -> Result<Json<DispatchRecorded>, ApiError> {
    let id = message_id(&raw)?;
    let update = hub.expire_in_doubt(id).await?;
    Ok(recorded(&state, update))
}

/// The answer to a dispatch write: what it appended and the phase it left the message in.
fn recorded(state: &AppState, update: DispatchUpdate) -> Json<DispatchRecorded> {
    state
        .metrics()
        .appended(Source::Command, update.positions.len());
    Json(DispatchRecorded {
        positions: update.positions,
        phase: convert::phase(&update.phase),
    })
}
