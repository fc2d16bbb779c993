//! The outgoing webhook endpoints' routes (operators): `POST /v1/webhook-endpoints` (answers
//! the secret, once), `GET /v1/webhook-endpoints`, `DELETE /v1/webhook-endpoints/{id}`,
//! `GET /v1/webhook-endpoints/{id}/deliveries` (its delivery log; auditors too) and
//! `POST /v1/webhook-endpoints/{id}/retry`. The endpoints are the hub's
//! (`Hub::register_endpoint`, …); the binary delivers to them.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use wagate_app::{checkpoint_name, Answer, DeliveryAttempt, Endpoint, Hub, DELIVERY_LOG_KEEP};
use wagate_domain::EndpointId;

use crate::api;
use crate::body::json;
use crate::convert::timestamp;
use crate::error::ApiError;
use crate::metrics::Source;
use crate::state::{Acting, AppState};

/// The API's shape of an endpoint (with its secret only when given one), with how far its
/// deliveries got (its follower's checkpoint; its registration before the first).
pub fn endpoint_view(
    hub: &Hub,
    endpoint: &Endpoint,
    secret: Option<String>,
) -> Result<api::EndpointView, ApiError> {
    let health = hub.delivery_health(&endpoint.id)?;
    let delivered_through = hub
        .checkpoint(&checkpoint_name(endpoint))?
        .unwrap_or(endpoint.registered_position);
    Ok(api::EndpointView {
        id: endpoint.id.to_string(),
        url: endpoint.url.clone(),
        events: endpoint
            .events
            .iter()
            .map(|kind| kind.as_str().to_owned())
            .collect(),
        created_at: timestamp(endpoint.registered_at),
        created_by: endpoint
            .registered_by
            .as_ref()
            .map(|actor| actor.name().to_owned()),
        position: endpoint.registered_position,
        delivered_through,
        // `active`, `disabled` (failed too long; `POST …/retry` re-enables it) or `deleted`.
        state: endpoint.state().to_owned(),
        deleted_at: endpoint.deleted_at.map(timestamp),
        failing_since: health.failing_since.map(timestamp),
        last_success_at: health.last_success.map(timestamp),
        disabled_at: endpoint.disabled_at.map(timestamp),
        disabled_reason: endpoint.disabled_reason.clone(),
        secret,
    })
}

fn endpoint_id(raw: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(raw).map_err(|error| ApiError::invalid("id", error.to_string()))
}

/// `POST /v1/webhook-endpoints` with `{"url", "events"}` → 201 with the secret.
pub(crate) async fn register(
    State(state): State<AppState>,
    Acting(hub): Acting,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: api::RegisterEndpointRequest = json(&body)?;
    let (endpoint, secret) = hub.register_endpoint(&request.url, &request.events).await?;
    state.metrics().appended(Source::Command, 1);
    Ok((
        StatusCode::CREATED,
        Json(endpoint_view(&hub, &endpoint, Some(secret))?),
    )
        .into_response())
}

/// `GET /v1/webhook-endpoints`
pub(crate) async fn list(Acting(hub): Acting) -> Result<Json<api::EndpointList>, ApiError> {
    let endpoints = hub.endpoints()?;
    Ok(Json(api::EndpointList {
        endpoints: endpoints
            .iter()
            .map(|endpoint| endpoint_view(&hub, endpoint, None))
            .collect::<Result<_, _>>()?,
    }))
}

/// `DELETE /v1/webhook-endpoints/{id}` → the deleted endpoint.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
) -> Result<Json<api::EndpointView>, ApiError> {
    let id = endpoint_id(&raw)?;
    let endpoint = hub.delete_endpoint(&id).await?;
    state.metrics().appended(Source::Command, 1);
    Ok(Json(endpoint_view(&hub, &endpoint, None)?))
}

fn attempt_view(attempt: &DeliveryAttempt) -> api::DeliveryAttemptView {
    let (status, error) = match &attempt.answer {
        Answer::Status(code) => (Some(*code), None),
        Answer::Transport(error) => (None, Some(error.clone())),
    };
    api::DeliveryAttemptView {
        position: attempt.position,
        event_id: attempt.event_id.clone(),
        kind: attempt.kind.as_str().to_owned(),
        at: timestamp(attempt.at),
        attempt: attempt.attempt,
        status,
        error,
        acknowledged: attempt.acknowledged(),
    }
}

/// The `limit` query parameter: 1 to [`DELIVERY_LOG_KEEP`] (larger asks are capped: no more is
/// kept), 50 when absent.
fn deliveries_limit(query: &BTreeMap<String, String>) -> Result<usize, ApiError> {
    const DEFAULT: u64 = 50;
    for name in query.keys() {
        if name != "limit" {
            return Err(ApiError::invalid(
                name,
                "unknown query parameter (use limit)",
            ));
        }
    }
    let limit = match query.get("limit") {
        None => DEFAULT,
        Some(raw) => match raw.parse::<u64>() {
            Ok(limit) if limit > 0 => limit,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    format!("{raw:?} is not a positive whole number"),
                ))
            }
        },
    };
    Ok(usize::try_from(limit.min(DELIVERY_LOG_KEEP)).unwrap_or(usize::MAX))
}

/// `GET /v1/webhook-endpoints/{id}/deliveries?limit=` → the endpoint and its newest attempts.
pub(crate) async fn deliveries(
    Acting(hub): Acting,
    Path(raw): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<api::DeliveryList>, ApiError> {
    let id = endpoint_id(&raw)?;
    let limit = deliveries_limit(&query)?;
    let endpoint = hub.endpoint(&id)?;
    let attempts = hub.deliveries(&id, limit)?;
    Ok(Json(api::DeliveryList {
        endpoint: endpoint_view(&hub, &endpoint, None)?,
        deliveries: attempts.iter().map(attempt_view).collect(),
    }))
}

/// `POST /v1/webhook-endpoints/{id}/retry` → the endpoint: a disabled one is re-enabled (recorded
/// with who), a live one's backoff is cut short.
pub(crate) async fn retry(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
) -> Result<Json<api::EndpointView>, ApiError> {
    let id = endpoint_id(&raw)?;
    let was_disabled = hub.endpoint(&id)?.disabled_at.is_some();
    let endpoint = hub.retry_endpoint(&id).await?;
    if was_disabled && endpoint.disabled_at.is_none() {
        state.metrics().appended(Source::Command, 1);
    }
    Ok(Json(endpoint_view(&hub, &endpoint, None)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn the_limit_defaults_is_capped_and_must_be_positive() {
        assert_eq!(deliveries_limit(&query(&[])).expect("valid"), 50);
        assert_eq!(
            deliveries_limit(&query(&[("limit", "3")])).expect("valid"),
            3
        );
        assert_eq!(
            deliveries_limit(&query(&[("limit", "999999")])).expect("valid"),
            DELIVERY_LOG_KEEP as usize
        );
        assert!(deliveries_limit(&query(&[("limit", "0")])).is_err());
        assert!(deliveries_limit(&query(&[("limit", "-1")])).is_err());
        assert!(deliveries_limit(&query(&[("limit", "x")])).is_err());
        assert!(deliveries_limit(&query(&[("after", "1")])).is_err());
    }
}
