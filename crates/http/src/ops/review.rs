//! The ops page's view of the review queue, and the one place it is wired to the queue.
//!
//! The queue itself is the hub's projection ([`Hub::review_items`]), the same one
//! `GET /v1/review` lists; resolving goes through [`Hub::resolve_review`] with the domain's
//! decision names, recorded as asked by the signed-in operator. The page and `/metrics` read the
//! queue only through [`review_items`], so they cannot disagree with the API.

use axum::http::StatusCode;
use wagate_app::{AppError, Hub, ReviewFilter, ReviewItem, ReviewItemState};
use wagate_domain::{ReviewDecision, ReviewReason};

use crate::convert::timestamp;

/// One item of the review queue as the page shows it (the fields of `GET /v1/review`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItemView {
    pub id: String,
    pub reason: String,
    pub state: String,
    /// For people: what happened.
    pub title: String,
    /// For people: the free text, the error, the reason given.
    pub detail: String,
    pub contact: Option<String>,
    pub message_id: Option<String>,
    pub raised_at: String,
}

impl From<&ReviewItem> for ReviewItemView {
    fn from(item: &ReviewItem) -> Self {
        ReviewItemView {
            id: item.id.to_string(),
            reason: item.reason.as_str().to_owned(),
            state: item.state().as_str().to_owned(),
            title: item.reason.title().to_owned(),
            detail: item.detail.clone(),
            contact: item.subject.contact.as_ref().map(ToString::to_string),
            message_id: item.subject.message_id.as_ref().map(ToString::to_string),
            raised_at: timestamp(item.raised_at),
        }
    }
}

/// The review items, open ones first, each group oldest first (the page lists them all;
/// `/metrics` counts them by reason and state).
pub async fn review_items(hub: &Hub) -> Result<Vec<ReviewItemView>, AppError> {
    let mut items = hub.review_items(ReviewFilter::default()).await?;
    // Stable: within a state the projection's order (by id, the raising event's position) stays.
    items.sort_by_key(|item| item.state() != ReviewItemState::Open);
    Ok(items.iter().map(ReviewItemView::from).collect())
}

/// Resolved items the page lists (the most recent); the rest are counted, not listed, so the
/// page stays the same size after years of resolutions.
pub const RECENT_RESOLVED: usize = 20;

/// The items the page lists, from [`review_items`]' order (open first): every open item and the
/// [`RECENT_RESOLVED`] most recently raised resolved ones; answers them and how many resolved
/// ones were left out.
pub fn for_page(mut items: Vec<ReviewItemView>) -> (Vec<ReviewItemView>, usize) {
    let open = items.iter().filter(|item| item.state == "open").count();
    let resolved = items.len() - open;
    let older = resolved.saturating_sub(RECENT_RESOLVED);
    // Resolved items are in raising order after the open ones: the oldest come first.
    items.drain(open..open + older);
    (items, older)
}

/// Why a resolution was not recorded (said on the page).
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no review item {0}")]
    NotFound(String),
    #[error("{0:?} is not a decision (use one of: confirm_opt_out, dismiss, handled)")]
    UnknownDecision(String),
    #[error("{0}")]
    Refused(#[source] AppError),
}

impl ResolveError {
    /// The page's status for it.
    pub fn status(&self) -> StatusCode {
        match self {
            ResolveError::NotFound(_) | ResolveError::Refused(AppError::NotFound { .. }) => {
                StatusCode::NOT_FOUND
            }
            ResolveError::UnknownDecision(_) | ResolveError::Refused(AppError::Invalid { .. }) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ResolveError::Refused(AppError::Conflict { .. }) => StatusCode::CONFLICT,
            ResolveError::Refused(
                AppError::Unavailable(_) | AppError::Contended { .. } | AppError::Busy { .. },
            ) => StatusCode::SERVICE_UNAVAILABLE,
            ResolveError::Refused(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Resolves item `id` with `decision` and `note`, recorded as asked by `hub`'s actor.
pub async fn resolve(
    hub: &Hub,
    id: &str,
    decision: &str,
    note: &str,
) -> Result<ReviewItem, ResolveError> {
    let item: u64 = id
        .parse()
        .map_err(|_| ResolveError::NotFound(id.to_owned()))?;
    let decision = ReviewDecision::parse(decision)
        .ok_or_else(|| ResolveError::UnknownDecision(decision.to_owned()))?;
    hub.resolve_review(item, decision, note)
        .await
        .map_err(|error| match error {
            AppError::NotFound { .. } => ResolveError::NotFound(id.to_owned()),
            other => ResolveError::Refused(other),
        })
}

/// The decisions the page offers for an item of `reason`, one button each: the domain's.
pub fn decisions_for(reason: &str) -> Vec<&'static str> {
    ReviewReason::parse(reason)
        .map(|reason| {
            reason
                .decisions()
                .iter()
                .map(|decision| decision.as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_offers_the_domains_decisions() {
        assert_eq!(
            decisions_for("opt_out_request"),
            ["confirm_opt_out", "dismiss"]
        );
        assert_eq!(decisions_for("permanent_failure"), ["handled", "dismiss"]);
        assert!(decisions_for("no_such_reason").is_empty());
    }

    #[test]
    fn the_page_lists_every_open_item_and_only_the_recent_resolved_ones() {
        let item = |id: usize, state: &str| ReviewItemView {
            id: id.to_string(),
            reason: "permanent_failure".into(),
            state: state.into(),
            title: String::new(),
            detail: String::new(),
            contact: None,
            message_id: None,
            raised_at: String::new(),
        };
        let mut items: Vec<_> = (0..3).map(|id| item(id, "open")).collect();
        items.extend((3..3 + RECENT_RESOLVED + 5).map(|id| item(id, "resolved")));
        let (listed, older) = for_page(items);
        assert_eq!(older, 5);
        assert_eq!(listed.len(), 3 + RECENT_RESOLVED);
        assert_eq!(listed[2].id, "2", "every open item");
        assert_eq!(listed[3].id, "8", "the oldest resolved left out");
        assert_eq!(listed.last().map(|i| i.id.as_str()), Some("27"));
        let (few, none) = for_page(vec![item(1, "resolved")]);
        assert_eq!((few.len(), none), (1, 0));
    }
}
