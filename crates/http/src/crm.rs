//! `POST /v1/crm/backfill` (operators): asks the hub's CRM mirror to mirror the log again from
//! a position while the hub runs. The mirror lives in the binary; this crate knows it only as a
//! [`CrmBackfills`] handle passed in [`HttpSettings::crm`](crate::HttpSettings::crm).

use std::fmt::Debug;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;

use crate::api;
use crate::body::json;
use crate::error::ApiError;
use crate::state::AppState;

/// Why a backfill was not scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackfillRefusal {
    /// One backfill at a time: this one is still running (409).
    #[error("a CRM backfill from position {} to {} is already running (at position {at}); wait for it to finish", .running.from, .running.to)]
    Running {
        running: api::CrmBackfillScheduled,
        at: u64,
    },
    /// The position is not one the log has (400).
    #[error("{0}")]
    Position(String),
    /// The mirror is not running (it stopped, or the hub is stopping) (503).
    #[error("{0}")]
    Stopped(String),
}

/// The hub's CRM mirror, as the HTTP face sees it.
pub trait CrmBackfills: Send + Sync + Debug {
    /// Schedules a backfill from `from` (inclusive) to the log's head, beside the live mirror;
    /// answers at once with what was scheduled.
    fn start_backfill(&self, from: u64) -> Result<api::CrmBackfillScheduled, BackfillRefusal>;
}

/// A shared handle (what [`HttpSettings::crm`](crate::HttpSettings::crm) holds).
pub type CrmHandle = Arc<dyn CrmBackfills>;

/// `POST /v1/crm/backfill` with `{"from": POSITION}` → 202 with what was scheduled.
pub(crate) async fn backfill(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: api::CrmBackfillRequest = json(&body)?;
    let Some(crm) = state.crm() else {
        return Err(ApiError::Conflict(
            "this hub runs no CRM mirror: set WAGATE_HUBSPOT_TOKEN and restart serve (or use \
             `wagate crm backfill --data DIR` on a stopped hub)"
                .into(),
        ));
    };
    match crm.start_backfill(request.from) {
        Ok(scheduled) => Ok((StatusCode::ACCEPTED, Json(scheduled)).into_response()),
        Err(refusal @ BackfillRefusal::Running { .. }) => {
            Err(ApiError::Conflict(refusal.to_string()))
        }
        Err(BackfillRefusal::Position(message)) => Err(ApiError::invalid("from", message)),
        Err(BackfillRefusal::Stopped(message)) => Err(ApiError::Unavailable(message)),
    }
}

#[cfg(test)]
#[path = "crm_tests.rs"]
mod tests;
