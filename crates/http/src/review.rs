//! The review queue's routes: `GET /v1/review` (every role that reads) and
//! `POST /v1/review/{id}/resolve` (operators). The queue itself is the hub's projection
//! (`Hub::review_items`); this module only parses and shapes.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use bytes::Bytes;
use wagate_app::{ReviewFilter, ReviewItem, ReviewItemState};
use wagate_domain::{ReviewDecision, ReviewReason};

use crate::api;
use crate::body::json;
use crate::convert::timestamp;
use crate::error::ApiError;
use crate::metrics::Source;
use crate::state::{Acting, AppState};

/// The API's shape of an item.
pub fn item_view(item: &ReviewItem) -> api::ReviewItemView {
    api::ReviewItemView {
        id: item.id,
        reason: item.reason.as_str().to_owned(),
        state: item.state().as_str().to_owned(),
        title: item.reason.title().to_owned(),
        contact: item.subject.contact.as_ref().map(ToString::to_string),
        message_id: item.subject.message_id.as_ref().map(ToString::to_string),
        sender: item.subject.sender.as_ref().map(ToString::to_string),
        template: item
            .subject
            .template
            .as_ref()
            .map(|t| t.as_str().to_owned()),
        detail: item.detail.clone(),
        raised_at: timestamp(item.raised_at),
        resolving: item.resolving().to_owned(),
        decisions: item
            .reason
            .decisions()
            .iter()
            .map(|decision| decision.as_str().to_owned())
            .collect(),
        resolution: item
            .resolution
            .as_ref()
            .map(|resolution| api::ReviewResolutionView {
                decision: resolution.decision.as_str().to_owned(),
                note: resolution.note.clone(),
                by: resolution.by.as_ref().map(|actor| actor.name().to_owned()),
                at: timestamp(resolution.at),
            }),
    }
}

/// `GET /v1/review?state=open&reason=opt_out_request`
pub(crate) async fn list(
    Acting(hub): Acting,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<api::ReviewList>, ApiError> {
    let mut filter = ReviewFilter::default();
    for (name, value) in &query {
        match name.as_str() {
            "state" => {
                filter.state = Some(ReviewItemState::parse(value).ok_or_else(|| {
                    ApiError::invalid("state", format!("{value:?} is not one of open, resolved"))
                })?);
            }
            "reason" => {
                filter.reason = Some(ReviewReason::parse(value).ok_or_else(|| {
                    let known: Vec<_> = ReviewReason::ALL.iter().map(|r| r.as_str()).collect();
                    ApiError::invalid(
                        "reason",
                        format!("{value:?} is not one of {}", known.join(", ")),
                    )
                })?);
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown query parameter (use state, reason)",
                ))
            }
        }
    }
    let items = hub.review_items(filter).await?;
    Ok(Json(api::ReviewList {
        items: items.iter().map(item_view).collect(),
    }))
}

/// `POST /v1/review/{id}/resolve` with `{"decision", "note"}` → the resolved item.
pub(crate) async fn resolve(
    State(state): State<AppState>,
    Acting(hub): Acting,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<api::ReviewItemView>, ApiError> {
    let id: u64 = raw
        .parse()
        .map_err(|_| ApiError::invalid("id", format!("{raw:?} is not a review item id")))?;
    let request: api::ResolveReviewRequest = json(&body)?;
    let decision = ReviewDecision::parse(&request.decision).ok_or_else(|| {
        ApiError::invalid(
            "decision",
            format!(
                "{:?} is not one of confirm_opt_out, dismiss, handled",
                request.decision
            ),
        )
    })?;
    let item = hub.resolve_review(id, decision, &request.note).await?;
    state.metrics().appended(Source::Command, 1);
    Ok(Json(item_view(&item)))
}
