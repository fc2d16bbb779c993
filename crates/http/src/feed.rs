//! The event feed (`GET /v1/events`, NDJSON), health and metrics.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::json;
use tokio::sync::watch;
use wagate_app::Hub;

use crate::api::{Health, Readiness};
use crate::commands::flag;
use crate::error::ApiError;
use crate::state::AppState;

/// Events read from the store per chunk of the response.
const CHUNK_EVENTS: usize = 1000;

/// `GET /healthz`
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        head: state.hub().head_position(),
        mode: state.mode().into(),
    })
}

/// `GET /readyz`: 200 only while the hub can make writes durable; 503 with the reason when the
/// store has failed or the server is draining. (Start-up: the server is bound only once the hub
/// has opened and replayed its log, so until then a probe is not answered at all.)
pub async fn readyz(State(state): State<AppState>) -> Response {
    let head = state.hub().head_position();
    let failure = state
        .hub()
        .log_failure()
        .borrow()
        .as_ref()
        .map(|e| e.to_string());
    let reason = match failure {
        Some(cause) => Some(format!("store failed: {cause}")),
        None if *state.shutdown().borrow() => Some("draining".to_owned()),
        None => None,
    };
    let (code, status) = match reason {
        None => (StatusCode::OK, "ready"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let body = Readiness {
        status: status.into(),
        reason,
        head,
    };
    (code, Json(body)).into_response()
}

/// `GET /metrics` (Prometheus text format).
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics().render(&state.hub().log_stats());
    // A queue that cannot be read now leaves its series out rather than reporting zeros.
    let review = match crate::ops::review::review_items(state.hub()).await {
        Ok(items) => Some(items),
        Err(error) => {
            tracing::warn!(%error, "/metrics could not read the review queue");
            None
        }
    };
    crate::metrics::render_counts(&mut text, &state.hub().ops_counts(), review.as_deref());
    crate::metrics::render_costs(
        &mut text,
        &state.hub().costs(wagate_app::CostDimension::Month),
    );
    text.push_str(&crate::metrics::facade().render());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

struct Feed {
    hub: Hub,
    /// The next position to read.
    next: u64,
    /// Events still to send (`limit`), `None`: unbounded.
    remaining: Option<u64>,
    follow: bool,
    head: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

impl Feed {
    /// The next chunk of NDJSON, or `None` at the end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.done || self.remaining == Some(0) || *self.shutdown.borrow() {
                return None;
            }
            // Mark the current head seen before reading: an append after the read wakes us.
            self.head.borrow_and_update();
            let limit = match self.remaining {
                Some(n) => usize::try_from(n).unwrap_or(CHUNK_EVENTS).min(CHUNK_EVENTS),
                None => CHUNK_EVENTS,
            };
            // An unreadable event ends the feed: the events before it come first, then the error.
            let events = match self.hub.events_after(self.next - 1, limit) {
                Ok(events) => events,
                Err(error) => return Some(self.fail(&error.to_string())),
            };
            if events.is_empty() {
                if !self.follow {
                    return None;
                }
                tokio::select! {
                    changed = self.head.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                    _ = self.shutdown.changed() => return None,
                }
                continue;
            }
            let mut out = Vec::with_capacity(events.len() * 256);
            for logged in &events {
                let line = crate::export_json::logged_line(logged);
                // Serializing a Value cannot fail.
                // Written from the struct, not a `Value`, so the fields keep the export's order.
                if serde_json::to_writer(&mut out, &line).is_ok() {
                    out.push(b'\n');
                }
                self.next = logged.position + 1;
                if let Some(remaining) = &mut self.remaining {
                    *remaining = remaining.saturating_sub(1);
                }
            }
            return Some(Bytes::from(out));
        }
    }

    /// A last line saying why the feed stops.
    fn fail(&mut self, message: &str) -> Bytes {
        self.done = true;
        let mut line = json!({"error": {"code": "internal", "message": message}}).to_string();
        line.push('\n');
        Bytes::from(line)
    }
}

/// `GET /v1/events?after=N[&follow=true][&limit=M]`: every event after position `N` as NDJSON
/// (one `wagate_export::ExportedEvent` per line), up to the durable head; with `follow=true` the
/// response stays open and streams new events as they become durable.
pub async fn events(
    State(state): State<AppState>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        query
            .get(name)
            .map(|raw| {
                raw.parse::<u64>().map_err(|_| {
                    ApiError::invalid(name, format!("{raw:?} is not a non-negative integer"))
                })
            })
            .transpose()
    };
    let after = number("after")?.unwrap_or(0);
    let remaining = number("limit")?;
    let follow = flag(&query, "follow")?;
    let hub = state.hub().clone();
    let feed = Feed {
        head: hub.subscribe(),
        hub,
        next: after.saturating_add(1),
        remaining,
        follow,
        shutdown: state.shutdown(),
        done: false,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        feed.next_chunk()
            .await
            .map(|chunk| (Ok::<Bytes, Infallible>(chunk), feed))
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}
