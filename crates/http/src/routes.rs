//! The route table, the router built from it, and the middleware every request goes through
//! (request id, request timeout, metrics + tracing span; bearer tokens and their roles on the
//! command API).

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;
use subtle::ConstantTimeEq;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tracing::{field, info_span, Instrument};

use wagate_domain::{Actor, Role};

use crate::error::{ApiError, RefusedRule, Verdict, REQUEST_ID};
use crate::settings::{ApiToken, Limits};
use crate::state::AppState;
use crate::{
    campaigns, commands, consent, costs, crm, dispatch, endpoints, feed, review, webhooks,
};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (webhooks check their own signatures; health and metrics are open).
    Open,
    /// `Authorization: Bearer <token>` of one of these roles; a known token of another role is
    /// 403 `forbidden`.
    Roles(&'static [Role]),
}

impl Access {
    /// The roles that may call the route (none for an open route: no token is needed).
    pub fn roles(self) -> &'static [Role] {
        match self {
            Access::Open => &[],
            Access::Roles(roles) => roles,
        }
    }

    /// Whether `role` may call the route.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Open => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }

    /// The least privileged role that may call the route (what a 403 names).
    pub fn required_role(self) -> Option<Role> {
        self.roles().iter().copied().min()
    }
}

/// Reads of contacts and messages: every role.
const READERS: Access =
    Access::Roles(&[Role::Auditor, Role::Agent, Role::Dispatcher, Role::Operator]);
/// Reads of the configuration (templates, senders) and the event feed: everyone but the agent,
/// whose token is for sending.
const OBSERVERS: Access = Access::Roles(&[Role::Auditor, Role::Dispatcher, Role::Operator]);
/// Sends and dry runs.
const SENDERS: Access = Access::Roles(&[Role::Agent, Role::Operator]);
/// Why a message was allowed or refused: the agent that asked, the operator, the auditor.
const EXPLAINERS: Access = Access::Roles(&[Role::Auditor, Role::Agent, Role::Operator]);
/// The dispatcher's work: pending, claim, outcome, expire-in-doubt.
const DISPATCHER: Access = Access::Roles(&[Role::Dispatcher]);
/// The review queue: the people who look at it (the agent and the dispatcher are programs).
const REVIEWERS: Access = Access::Roles(&[Role::Auditor, Role::Operator]);
/// What messages cost: the people who pay and check (the cost ledger).
const COSTS: Access = Access::Roles(&[Role::Auditor, Role::Operator]);
/// Facts only a person may record: consent, templates, senders, limits.
const OPERATOR: Access = Access::Roles(&[Role::Operator]);

/// Every route: method, path (axum syntax, `{param}`), access.
pub const ROUTES: &[(Method, &str, Access)] = &[
    (Method::POST, "/webhooks/twilio/inbound", Access::Open),
    (Method::POST, "/webhooks/twilio/status", Access::Open),
    (Method::GET, "/webhooks/meta", Access::Open),
    (Method::POST, "/webhooks/meta", Access::Open),
    (Method::GET, "/healthz", Access::Open),
    (Method::GET, "/readyz", Access::Open),
    (Method::GET, "/metrics", Access::Open),
    (Method::GET, "/v1/contacts/{contact}", READERS),
    (Method::POST, "/v1/contacts/{contact}/opt-in", OPERATOR),
    (Method::POST, "/v1/contacts/{contact}/opt-out", OPERATOR),
    (Method::POST, "/v1/messages", SENDERS),
    (Method::GET, "/v1/messages/{message_id}", READERS),
    (Method::GET, "/v1/messages/{message_id}/explain", EXPLAINERS),
    (Method::POST, "/v1/messages/{message_id}/claim", DISPATCHER),
    (
        Method::POST,
        "/v1/messages/{message_id}/outcome",
        DISPATCHER,
    ),
    (
        Method::POST,
        "/v1/messages/{message_id}/expire-in-doubt",
        DISPATCHER,
    ),
    (Method::GET, "/v1/dispatch/pending", DISPATCHER),
    (Method::GET, "/v1/templates", OBSERVERS),
    (Method::POST, "/v1/templates", OPERATOR),
    (Method::POST, "/v1/templates/sync", OPERATOR),
    (Method::POST, "/v1/templates/{content_sid}/status", OPERATOR),
    (Method::GET, "/v1/senders", OBSERVERS),
    (Method::POST, "/v1/senders", OPERATOR),
    (Method::POST, "/v1/senders/{address}/authorize", OPERATOR),
    (Method::POST, "/v1/senders/{address}/suspend", OPERATOR),
    (
        Method::POST,
        "/v1/portfolios/{portfolio}/messaging-limit",
        OPERATOR,
    ),
    (Method::GET, "/v1/events", OBSERVERS),
    (Method::POST, "/v1/webhooks/retry-rejected", OPERATOR),
    (Method::GET, "/v1/review", REVIEWERS),
    (Method::POST, "/v1/review/{id}/resolve", OPERATOR),
    (Method::POST, "/v1/consent/wordings", OPERATOR),
    (Method::GET, "/v1/consent/wordings/{version}", OBSERVERS),
    (Method::POST, "/v1/consent/campaigns", OPERATOR),
    (Method::GET, "/v1/consent/campaigns/{id}", OBSERVERS),
    (Method::POST, "/v1/consent/campaigns/{id}/close", OPERATOR),
    (Method::GET, "/v1/consent/campaigns/{id}/qr.svg", OBSERVERS),
    (Method::GET, "/v1/consent/campaigns/{id}/qr.png", OBSERVERS),
    (Method::GET, "/v1/contacts/{contact}/consent", REVIEWERS),
    (Method::POST, "/v1/webhook-endpoints", OPERATOR),
    (Method::GET, "/v1/webhook-endpoints", OPERATOR),
    (Method::DELETE, "/v1/webhook-endpoints/{id}", OPERATOR),
    (Method::GET, "/v1/costs", COSTS),
    (Method::POST, "/v1/crm/backfill", OPERATOR),
    (Method::POST, "/v1/campaigns", OPERATOR),
    (Method::GET, "/v1/campaigns", REVIEWERS),
    (Method::GET, "/v1/campaigns/{id}", REVIEWERS),
    (Method::GET, "/v1/campaigns/{id}/preview", REVIEWERS),
    (Method::POST, "/v1/campaigns/{id}/start", OPERATOR),
    (Method::POST, "/v1/campaigns/{id}/pause", OPERATOR),
    (Method::POST, "/v1/campaigns/{id}/resume", OPERATOR),
    (Method::POST, "/v1/campaigns/{id}/cancel", OPERATOR),
    (
        Method::GET,
        "/v1/webhook-endpoints/{id}/deliveries",
        REVIEWERS,
    ),
    (Method::POST, "/v1/webhook-endpoints/{id}/retry", OPERATOR),
];

fn handler(method: &Method, path: &str) -> Option<MethodRouter<AppState>> {
    let route = match (method.as_str(), path) {
        ("POST", "/webhooks/twilio/inbound") => post(webhooks::twilio_inbound),
        ("POST", "/webhooks/twilio/status") => post(webhooks::twilio_status),
        ("GET", "/webhooks/meta") => get(webhooks::meta_verify),
        ("POST", "/webhooks/meta") => post(webhooks::meta_events),
        ("GET", "/healthz") => get(feed::healthz),
        ("GET", "/readyz") => get(feed::readyz),
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
        ("POST", "/v1/templates/sync") => post(commands::sync_templates),
        ("POST", "/v1/templates/{content_sid}/status") => post(commands::template_status),
        ("GET", "/v1/senders") => get(commands::senders),
        ("POST", "/v1/senders") => post(commands::register_sender),
        ("POST", "/v1/senders/{address}/authorize") => post(commands::authorize_sender),
        ("POST", "/v1/senders/{address}/suspend") => post(commands::suspend_sender),
        ("POST", "/v1/portfolios/{portfolio}/messaging-limit") => post(commands::messaging_limit),
        ("GET", "/v1/events") => get(feed::events),
        ("POST", "/v1/webhooks/retry-rejected") => post(webhooks::retry_rejected),
        ("GET", "/v1/review") => get(review::list),
        ("POST", "/v1/review/{id}/resolve") => post(review::resolve),
        ("POST", "/v1/consent/wordings") => post(consent::publish_wording),
        ("GET", "/v1/consent/wordings/{version}") => get(consent::wording),
        ("POST", "/v1/consent/campaigns") => post(consent::create_campaign),
        ("GET", "/v1/consent/campaigns/{id}") => get(consent::campaign),
        ("POST", "/v1/consent/campaigns/{id}/close") => post(consent::close_campaign),
        ("GET", "/v1/consent/campaigns/{id}/qr.svg") => get(consent::qr_svg),
        ("GET", "/v1/consent/campaigns/{id}/qr.png") => get(consent::qr_png),
        ("GET", "/v1/contacts/{contact}/consent") => get(consent::receipts),
        ("POST", "/v1/webhook-endpoints") => post(endpoints::register),
        ("GET", "/v1/webhook-endpoints") => get(endpoints::list),
        ("DELETE", "/v1/webhook-endpoints/{id}") => delete(endpoints::delete),
        ("GET", "/v1/costs") => get(costs::report),
        ("POST", "/v1/crm/backfill") => post(crm::backfill),
        ("POST", "/v1/campaigns") => post(campaigns::create),
        ("GET", "/v1/campaigns") => get(campaigns::list),
        ("GET", "/v1/campaigns/{id}") => get(campaigns::show),
        ("GET", "/v1/campaigns/{id}/preview") => get(campaigns::preview),
        ("POST", "/v1/campaigns/{id}/start") => post(campaigns::start),
        ("POST", "/v1/campaigns/{id}/pause") => post(campaigns::pause),
        ("POST", "/v1/campaigns/{id}/resume") => post(campaigns::resume),
        ("POST", "/v1/campaigns/{id}/cancel") => post(campaigns::cancel),
        ("GET", "/v1/webhook-endpoints/{id}/deliveries") => get(endpoints::deliveries),
        ("POST", "/v1/webhook-endpoints/{id}/retry") => post(endpoints::retry),
        _ => return None,
    };
    Some(route)
}

/// The header that carries a request's id: echoed when the client sent a valid one, else
/// generated (a UUID).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest client-chosen request id echoed; a longer one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The hub's HTTP router: webhooks, the command API, health and metrics, without a request
/// timeout (tests, embedding); [`Server`](crate::Server) uses [`router_with_limits`].
pub fn router(state: AppState) -> Router {
    build(state, None)
}

/// [`router`] with `limits.request_timeout` on every request (408 past it).
pub fn router_with_limits(state: AppState, limits: &Limits) -> Router {
    build(state, Some(limits.request_timeout))
}

fn build(state: AppState, request_timeout: Option<Duration>) -> Router {
    let mut router: Router<AppState> = Router::new();
    for (method, path, access) in ROUTES {
        // Every ROUTES entry has a handler (a unit test checks it too): a route listed without
        // one is a programming error, never a route silently left out.
        let route = handler(method, path)
            .unwrap_or_else(|| panic!("ROUTES lists {method} {path} without a handler"));
        let route = match *access {
            Access::Open => route,
            Access::Roles(_) => {
                let access = *access;
                route.route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    move |state, request, next| require_role(access, state, request, next),
                ))
            }
        };
        router = router.route(path, route);
    }
    // The ops page: HTML for people, signed in by cookie (see `ops`), outside the bearer API.
    let mut router = router
        .merge(crate::ops::router())
        .merge(crate::consent_page::router())
        .fallback(not_found);
    if let Some(timeout) = request_timeout {
        // Inside `observe`, so a timed-out request is counted, logged and given a JSON body.
        router = router.layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    }
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    // Layers run outermost last-added: an invalid incoming id is dropped, a missing one
    // generated, the id copied to the response, then observed.
    router
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(middleware::map_request(drop_invalid_request_id))
        .with_state(state)
}

/// Whether a client's `x-request-id` is echoed as is: 1 to 128 characters of letters, digits
/// and `-_.:` (what log search and a response header can carry without escaping; anything else
/// could forge log lines or be a secret pasted by mistake).
fn valid_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Removes an invalid `x-request-id`, so that one is generated in its place.
async fn drop_invalid_request_id(mut request: Request) -> Request {
    let invalid = request
        .headers()
        .get_all(REQUEST_ID_HEADER)
        .iter()
        .enumerate()
        .any(|(index, value)| index > 0 || !valid_request_id(value));
    if invalid {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    request
}

async fn not_found() -> Response {
    ApiError::NotFound("no such route".into()).into_response()
}

/// The token of `Authorization: Bearer <token>`, or why the request carries none where it
/// should: a token in the wrong place gets an answer naming the right one.
fn presented_token(request: &Request) -> Result<&str, String> {
    const HOW: &str = "send it as `Authorization: Bearer <token>`";
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        let in_query = request.uri().query().is_some_and(|query| {
            query.split('&').any(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                matches!(name, "token" | "access_token" | "api_token")
            })
        });
        return Err(if in_query {
            format!("a token in the query string is not accepted (it would end up in logs): {HOW}")
        } else {
            format!("no Authorization header: {HOW}")
        });
    };
    let value = value
        .to_str()
        .map_err(|_| format!("the Authorization header is not plain text: {HOW}"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| format!("the Authorization header does not use the Bearer scheme: {HOW}"))?;
    if token.is_empty() {
        return Err(format!("the bearer token is empty: {HOW}"));
    }
    Ok(token)
}

/// `Authorization: Bearer <token>`: a token of a role `access` allows goes on, with its actor in
/// the request for the handler; an unknown token is 401; a known token of another role is 403
/// `forbidden` naming the least privileged role that may (the handler never runs, so nothing is
/// appended).
async fn require_role(
    access: Access,
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = match presented_token(&request) {
        Ok(presented) => known_token(state.tokens(), presented)
            .ok_or_else(|| "unknown bearer token: it is not one of the hub's tokens".to_owned()),
        Err(reason) => Err(reason),
    };
    let token = match token {
        Ok(token) => token,
        Err(reason) => {
            let mut response = ApiError::Unauthorized(reason).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    if !access.allows(token.role) {
        let required = access.required_role().unwrap_or(Role::Operator);
        tracing::info!(token = %token.name, role = %token.role, required = %required, "forbidden");
        return ApiError::WrongRole {
            required_role: required,
            message: format!(
                "the {} token {:?} may not use this route: it needs the {} role{}",
                token.role,
                token.name,
                required,
                others(access, required),
            ),
        }
        .into_response();
    }
    request
        .extensions_mut()
        .insert(Actor::token(token.role, token.name.clone()));
    next.run(request).await
}

/// ` (or operator)`: the other roles that may use a route besides the one named.
fn others(access: Access, named: Role) -> String {
    let rest: Vec<&str> = access
        .roles()
        .iter()
        .filter(|role| **role != named)
        .map(|role| role.as_str())
        .collect();
    if rest.is_empty() {
        String::new()
    } else {
        format!(" (or {})", rest.join(", "))
    }
}

/// The configured token equal to `presented`, compared in constant time against every token
/// (no early exit, so the time taken does not tell which token or how much of it matched).
pub(crate) fn known_token<'a>(tokens: &'a [ApiToken], presented: &str) -> Option<&'a ApiToken> {
    let mut found = None;
    for token in tokens {
        let equal = bool::from(presented.as_bytes().ct_eq(token.secret.expose().as_bytes()));
        if equal && found.is_none() {
            found = Some(token);
        }
    }
    found
}

fn verdict_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200..=299 => "ok",
        400 => "invalid",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "conflict",
        413 => "too_large",
        422 => "refused",
        503 => "unavailable",
        300..=499 => "client_error",
        _ => "error",
    }
}

/// One span per request (method, route, request id, status, latency), and the request metrics.
/// Never logs headers or bodies. The request id is made known to error bodies
/// ([`REQUEST_ID`]), and the request timeout's empty 408 gets the usual JSON error body.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    REQUEST_ID
        .scope(
            request_id.clone(),
            observed(state, request_id, request, next),
        )
        .await
}

async fn observed(state: AppState, request_id: String, request: Request, next: Next) -> Response {
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
        request_id = %request_id,
        status = field::Empty,
        latency_us = field::Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    if response.status() == StatusCode::REQUEST_TIMEOUT
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        response = ApiError::Timeout(
            "the request was not complete within the hub's request timeout".into(),
        )
        .into_response();
    }
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
    fn only_plain_request_ids_are_echoed() {
        for ok in [
            "a",
            "req-42",
            "0193b0c2-7c1e-7d4e-9d7a-1f2e3d4c5b6a",
            "trace:1.2_3",
        ] {
            assert!(valid_request_id(&HeaderValue::from_static(ok)), "{ok}");
        }
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        for bad in ["", "two words", "a\"b", "line\tbreak", long.as_str()] {
            let value = HeaderValue::from_str(bad).expect("header value");
            assert!(!valid_request_id(&value), "{bad:?}");
        }
    }

    #[test]
    fn every_route_has_a_handler() {
        for (method, path, _) in ROUTES {
            assert!(handler(method, path).is_some(), "{method} {path}");
        }
    }
}
