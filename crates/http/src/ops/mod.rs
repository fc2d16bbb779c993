//! The ops page (`/ops`): a server-rendered, read-mostly page for operators and auditors.
//!
//! - `GET /ops`: the dashboard for a signed-in session, else a redirect (303) to the sign-in
//!   page: never data without a session.
//! - `GET /ops/sign-in`, `POST /ops/sign-in`: an operator or auditor API token is exchanged for a
//!   session cookie (see [`sessions`]); other roles and unknown tokens are refused.
//! - `POST /ops/sign-out`.
//! - `POST /ops/review/{id}/resolve`: operators only; the queue is reached through [`review`].
//!
//! Every POST carries a CSRF token (the session's, or the sign-in cookie's double-submit value).
//! These routes are HTML for people, authenticated by cookie, so they are not part of the bearer
//! API's route table ([`ROUTES`](crate::ROUTES)) or its OpenAPI document. The numbers come from
//! the hub's counts projection ([`wagate_app::Hub::ops_counts`]), the same source as `/metrics`.

pub(crate) mod campaigns;
mod costs;
mod page;
pub mod review;
pub mod sessions;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::Markup;
use serde::Deserialize;
use wagate_domain::{Actor, Role};

use crate::convert;
use crate::routes::known_token;
use crate::state::AppState;
use sessions::{cookie, random_token, same_secret, Session, SESSION_COOKIE, SIGN_IN_COOKIE};

/// The ops routes, merged into the hub's router.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/ops", get(dashboard))
        .route("/ops/sign-in", get(sign_in_form).post(sign_in))
        .route("/ops/sign-out", post(sign_out))
        .route("/ops/review/{id}/resolve", post(resolve))
}

/// An HTML answer that is never cached, never framed, and may load nothing from anywhere.
fn html(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `Secure` when the page is reached at an https public URL (a browser would not send a Secure
/// cookie back over plain http, which is how the hub is reached on loopback).
fn cookie_attributes(state: &AppState, headers: &HeaderMap) -> &'static str {
    let public = &state.keys().public_url;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let https_here = public
        .strip_prefix("https://")
        .is_some_and(|rest| rest.split('/').next() == Some(host));
    if https_here {
        "HttpOnly; SameSite=Strict; Path=/ops; Secure"
    } else {
        "HttpOnly; SameSite=Strict; Path=/ops"
    }
}

fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn session_of(state: &AppState, headers: &HeaderMap) -> Option<(String, Session)> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let id = cookie(cookies, SESSION_COOKIE)?;
    let session = state.ops_sessions().get(id)?;
    Some((id.to_owned(), session))
}

fn to_sign_in() -> Response {
    Redirect::to("/ops/sign-in").into_response()
}

async fn dashboard_data(state: &AppState, mut notice: Option<String>) -> page::Dashboard {
    let hub = state.hub();
    let (review, review_older_resolved) = match review::review_items(hub).await {
        Ok(items) => review::for_page(items),
        Err(error) => {
            tracing::warn!(%error, "the ops page could not read the review queue");
            notice.get_or_insert_with(|| format!("The review queue cannot be read now: {error}"));
            (Vec::new(), 0)
        }
    };
    let templates = hub
        .templates()
        .iter()
        .filter_map(|id| {
            hub.template(id)
                .ok()
                .map(|loaded| convert::template_view(id.as_str(), &loaded.state))
        })
        .collect();
    let senders = hub
        .senders()
        .iter()
        .filter_map(|address| {
            hub.sender(address)
                .ok()
                .map(|loaded| convert::sender_view(address, &loaded.state))
        })
        .collect();
    let campaigns = campaigns::panel(hub).unwrap_or_else(|error| {
        tracing::warn!(%error, "the ops page could not read the campaigns");
        notice.get_or_insert_with(|| format!("The campaigns cannot be read now: {error}"));
        campaigns::CampaignsPanel::default()
    });
    page::Dashboard {
        counts: hub.ops_counts(),
        campaigns,
        costs: hub.costs(wagate_app::CostDimension::Month),
        review,
        review_older_resolved,
        templates,
        senders,
        store: hub.log_stats(),
        notice,
    }
}

/// `GET /ops`
async fn dashboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session_of(&state, &headers) {
        Some((_, session)) => html(
            StatusCode::OK,
            page::dashboard(&dashboard_data(&state, None).await, &session),
        ),
        None => to_sign_in(),
    }
}

/// `GET /ops/sign-in`: the form, with a fresh double-submit CSRF value in a cookie.
async fn sign_in_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if session_of(&state, &headers).is_some() {
        return Redirect::to("/ops").into_response();
    }
    sign_in_page(&state, &headers, StatusCode::OK, None)
}

fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let csrf = random_token();
    let mut response = html(status, page::sign_in(&csrf, error));
    let attributes = cookie_attributes(state, headers);
    set_cookie(
        &mut response,
        format!("{SIGN_IN_COOKIE}={csrf}; {attributes}; Max-Age=3600"),
    );
    response
}

#[derive(Debug, Deserialize)]
struct SignIn {
    csrf: String,
    token: String,
}

/// `POST /ops/sign-in`
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let expected = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| cookie(c, SIGN_IN_COOKIE));
    if !expected.is_some_and(|expected| same_secret(expected, &form.csrf)) {
        return sign_in_page(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired or came from elsewhere: please sign in again."),
        );
    }
    let Some(token) = known_token(state.tokens(), form.token.trim()) else {
        tracing::info!("ops sign-in with an unknown token");
        return sign_in_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("Unknown token: it is not one of the hub's API tokens."),
        );
    };
    if !matches!(token.role, Role::Operator | Role::Auditor) {
        tracing::info!(token = %token.name, role = %token.role, "ops sign-in refused for role");
        let message = format!(
            "The {} token {:?} may not sign in here: the ops page is for operator and auditor tokens.",
            token.role, token.name
        );
        return sign_in_page(&state, &headers, StatusCode::FORBIDDEN, Some(&message));
    }
    let id = state.ops_sessions().start(token.name.clone(), token.role);
    tracing::info!(token = %token.name, role = %token.role, "ops sign-in");
    let attributes = cookie_attributes(&state, &headers);
    let mut response = Redirect::to("/ops").into_response();
    set_cookie(
        &mut response,
        format!(
            "{SESSION_COOKIE}={id}; {attributes}; Max-Age={}",
            sessions::SESSION_TTL.as_secs()
        ),
    );
    set_cookie(
        &mut response,
        format!("{SIGN_IN_COOKIE}=; {attributes}; Max-Age=0"),
    );
    response
}

#[derive(Debug, Deserialize)]
struct SignOut {
    csrf: String,
}

/// `POST /ops/sign-out`
async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    let Some((id, session)) = session_of(&state, &headers) else {
        return to_sign_in();
    };
    if !same_secret(&session.csrf, &form.csrf) {
        return StatusCode::FORBIDDEN.into_response();
    }
    state.ops_sessions().end(&id);
    let attributes = cookie_attributes(&state, &headers);
    let mut response = to_sign_in();
    set_cookie(
        &mut response,
        format!("{SESSION_COOKIE}=; {attributes}; Max-Age=0"),
    );
    response
}

#[derive(Debug, Deserialize)]
struct Resolve {
    csrf: String,
    decision: String,
    #[serde(default)]
    note: String,
}

/// `POST /ops/review/{id}/resolve`: operators only, recorded as asked by the operator's token.
async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Resolve>,
) -> Response {
    let Some((_, session)) = session_of(&state, &headers) else {
        return to_sign_in();
    };
    let refuse = async |status: StatusCode, notice: String| {
        html(
            status,
            page::dashboard(&dashboard_data(&state, Some(notice)).await, &session),
        )
    };
    if !same_secret(&session.csrf, &form.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            "That form expired or came from elsewhere: nothing was resolved.".into(),
        )
        .await;
    }
    if !session.is_operator() {
        return refuse(
            StatusCode::FORBIDDEN,
            "Only an operator may resolve review items.".into(),
        )
        .await;
    }
    let hub = state
        .hub()
        .acting(Actor::token(session.role, session.name.clone()));
    match review::resolve(&hub, &id, &form.decision, &form.note).await {
        Ok(item) => {
            tracing::info!(item = item.id, token = %session.name, "review item resolved on the ops page");
            // Back to the item, now shown resolved.
            Redirect::to(&format!("/ops#review-{}", item.id)).into_response()
        }
        Err(error) => refuse(error.status(), error.to_string()).await,
    }
}
