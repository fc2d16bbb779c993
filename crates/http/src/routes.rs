//! The route table, the router built from it, and the middleware every request goes through
//! (metrics + tracing span; bearer auth on the command API).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use subtle::ConstantTimeEq;
use tracing::{field, info_span, Instrument};

use crate::error::{ApiError, RefusedRule, Verdict};
use crate::state::AppState;
use crate::{commands, dispatch, feed, webhooks};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (webhooks check their own signatures; health and metrics are open).
    Open,
    /// `Authorization: Bearer <WAGATE_API_TOKEN>`.
    Bearer,
}

/// Every route: method, path (axum syntax, `{param}`), access.
pub const ROUTES: &[(Method, &str, Access)] = &[
    (Method::POST, "/webhooks/twilio/inbound", Access::Open),
    (Method::POST, "/webhooks/twilio/status", Access::Open),
    (Method::GET, "/webhooks/meta", Access::Open),
    (Method::POST, "/webhooks/meta", Access::Open),
    (Method::GET, "/healthz", Access::Open),
    (Method::GET, "/metrics", Access::Open),
    (Method::GET, "/v1/contacts/{contact}", Access::Bearer),
    (
        Method::POST,
        "/v1/contacts/{contact}/opt-in",
        Access::Bearer,
    ),
    (
        Method::POST,
        "/v1/contacts/{contact}/opt-out",
        Access::Bearer,
    ),
    (Method::POST, "/v1/messages", Access::Bearer),
    (Method::GET, "/v1/messages/{message_id}", Access::Bearer),
    (
        Method::GET,
        "/v1/messages/{message_id}/explain",
        Access::Bearer,
    ),
    (
        Method::POST,
        "/v1/messages/{message_id}/claim",
        Access::Bearer,
    ),
    (
        Method::POST,
        "/v1/messages/{message_id}/outcome",
        Access::Bearer,
    ),
    (
        Method::POST,
        "/v1/messages/{message_id}/expire-in-doubt",
        Access::Bearer,
    ),
    (Method::GET, "/v1/dispatch/pending", Access::Bearer),
    (Method::GET, "/v1/templates", Access::Bearer),
    (Method::POST, "/v1/templates", Access::Bearer),
    (
        Method::POST,
        "/v1/templates/{content_sid}/status",
        Access::Bearer,
    ),
    (Method::GET, "/v1/senders", Access::Bearer),
    (Method::POST, "/v1/senders", Access::Bearer),
    (
        Method::POST,
        "/v1/senders/{address}/authorize",
        Access::Bearer,
    ),
    (
        Method::POST,
        "/v1/senders/{address}/suspend",
        Access::Bearer,
    ),
    (
        Method::POST,
        "/v1/portfolios/{portfolio}/messaging-limit",
        Access::Bearer,
    ),
    (Method::GET, "/v1/events", Access::Bearer),
];

fn handler(method: &Method, path: &str) -> Option<MethodRouter<AppState>> {
    let route = match (method.as_str(), path) {
        ("POST", "/webhooks/twilio/inbound") => post(webhooks::twilio_inbound),
        ("POST", "/webhooks/twilio/status") => post(webhooks::twilio_status),
        ("GET", "/webhooks/meta") => get(webhooks::meta_verify),
        ("POST", "/webhooks/meta") => post(webhooks::meta_events),
        ("GET", "/healthz") => get(feed::healthz),
        ("GET", "/metrics") => get(feed::metrics),
        ("GET", "/v1/contacts/{contact}") => get(commands::contact),
        ("POST", "/v1/contacts/{contact}/opt-in") => post(commands::opt_in),
        ("POST", "/v1/contacts/{contact}/opt-out") => post(commands::opt_out),
        ("POST", "/v1/messages") => post(commands::send),
        ("GET", "/v1/messages/{message_id}") => get(commands::message),
        ("GET", "/v1/messages/{message_id}/explain") => get(commands::explain),
        ("POST", "/v1/messages/{message_id}/claim") => post(dispatch::claim),
        ("POST", "/v1/messages/{message_id}/outcome") => post(dispatch::outcome),
        ("POST", "/v1/messages/{message_id}/expire-in-doubt") => post(dispatch::expire_in_doubt),
        ("GET", "/v1/dispatch/pending") => get(dispatch::pending),
        ("GET", "/v1/templates") => get(commands::templates),
        ("POST", "/v1/templates") => post(commands::register_template),
        ("POST", "/v1/templates/{content_sid}/status") => post(commands::template_status),
        ("GET", "/v1/senders") => get(commands::senders),
        ("POST", "/v1/senders") => post(commands::register_sender),
        ("POST", "/v1/senders/{address}/authorize") => post(commands::authorize_sender),
        ("POST", "/v1/senders/{address}/suspend") => post(commands::suspend_sender),
        ("POST", "/v1/portfolios/{portfolio}/messaging-limit") => post(commands::messaging_limit),
        ("GET", "/v1/events") => get(feed::events),
        _ => return None,
    };
    Some(route)
}

/// The hub's HTTP router: webhooks, the command API, health and metrics.
pub fn router(state: AppState) -> Router {
    let mut router: Router<AppState> = Router::new();
    for (method, path, access) in ROUTES {
        // Every ROUTES entry has a handler (a unit test checks it too): a route listed without
        // one is a programming error, never a route silently left out.
        let route = handler(method, path)
            .unwrap_or_else(|| panic!("ROUTES lists {method} {path} without a handler"));
        let route = match access {
            Access::Open => route,
            Access::Bearer => route.route_layer(middleware::from_fn_with_state(
                state.clone(),
                require_bearer,
            )),
        };
        router = router.route(path, route);
    }
    router
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found() -> Response {
    ApiError::NotFound("no such route".into()).into_response()
}

/// `Authorization: Bearer <token>`, compared in constant time.
async fn require_bearer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim);
    let expected = state.api_token().expose().as_bytes();
    let ok = presented.is_some_and(|token| bool::from(token.as_bytes().ct_eq(expected)));
    if ok {
        return next.run(request).await;
    }
    let mut response = ApiError::Unauthorized.into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn verdict_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "ok",
        400 => "invalid",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "too_large",
        422 => "refused",
        503 => "unavailable",
        300..=499 => "client_error",
        _ => "error",
    }
}

/// One span per request (method, route, status, latency), and the request metrics. Never logs
/// headers or bodies.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |path| path.as_str())
        .to_owned();
    let span = info_span!(
        "request",
        method = %request.method(),
        route = %route,
        status = field::Empty,
        latency_us = field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    let latency = started.elapsed();
    let status = response.status();
    let verdict = response
        .extensions()
        .get::<Verdict>()
        .map_or_else(|| verdict_of(status), |v| v.0);
    if let Some(rule) = response.extensions().get::<RefusedRule>() {
        state.metrics().refusal(rule.0);
    }
    state.metrics().request(&route, verdict, latency);
    span.record("status", status.as_u16());
    span.record("latency_us", latency.as_micros() as u64);
    if status.is_server_error() {
        tracing::warn!(parent: &span, verdict, "request failed");
    } else {
        tracing::debug!(parent: &span, verdict, "request answered");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_handler() {
        for (method, path, _) in ROUTES {
            assert!(handler(method, path).is_some(), "{method} {path}");
        }
    }
}
