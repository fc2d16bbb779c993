//! The ops page's view of the review queue, and the one place it is wired to the queue.
//!
//! The queue itself (its projection, `GET /v1/review`, `POST /v1/review/{id}/resolve`) is built
//! elsewhere; the page and `/metrics` read it only through [`review_items`] and resolve through
//! [`resolve`]. Until the queue is part of the build these answer an empty queue and "no such
//! item", which is what the page shows.

use wagate_app::Hub;

/// One item of the review queue as the page shows it (the fields of `GET /v1/review`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItemView {
    pub id: String,
    pub reason: String,
    pub state: String,
    pub contact: Option<String>,
    pub message_id: Option<String>,
    pub raised_at: String,
}

/// The review items, open ones first (the page lists them all; `/metrics` counts them by reason
/// and state).
pub fn review_items(_hub: &Hub) -> Vec<ReviewItemView> {
    Vec::new()
}

/// Why a resolution was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no review item {0}")]
    NotFound(String),
}

/// Resolves item `id` with `decision` and `note`, recorded as asked by `hub`'s actor.
pub async fn resolve(
    _hub: &Hub,
    id: &str,
    _decision: &str,
    _note: &str,
) -> Result<(), ResolveError> {
    Err(ResolveError::NotFound(id.to_owned()))
}

/// The decisions the page offers for an item of `reason`, one button each.
pub fn decisions_for(reason: &str) -> &'static [&'static str] {
    match reason {
        "opt_out_request" => &["confirm_opt_out", "dismiss"],
        _ => &["handled"],
    }
}
