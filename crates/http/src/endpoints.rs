//! The outgoing webhook endpoints' routes (operators): `POST /v1/webhook-endpoints` (answers
//! the secret, once), `GET /v1/webhook-endpoints`, `DELETE /v1/webhook-endpoints/{id}`. The
//! endpoints are the hub's (`Hub::register_endpoint`, …); the binary delivers to them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use wagate_app::{checkpoint_name, Endpoint, Hub};
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
