//! The hosted consent page, `/consent/{campaign}`: public (no token), plain HTML forms, no
//! JavaScript.
//!
//! - `GET /consent/{campaign}`: names the business, shows the exact wording, asks for the number
//!   (a `tel` input), an unticked checkbox, a submit button; says how to opt out and offers it.
//! - `POST /consent/{campaign}`: records a pending opt-in (`OptInRequested`) with its evidence and
//!   shows the click-to-chat link that confirms it (double opt-in).
//! - `POST /consent/{campaign}/opt-out`: records an opt-out for the number.
//!
//! Protection: a single-use CSRF token per rendered form (a replayed or missing one is refused),
//! a honeypot field people never see (filled: refused, nothing recorded), and rate limits per
//! client IP and per number ([`guard`]). The IP and user agent are evidence in the log; they are
//! never written to logs.

pub mod guard;
mod page;

use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use maud::Markup;
use serde::Deserialize;
use wagate_domain::consent::{Campaign, RequestOptIn, Wording};
use wagate_domain::decide::RecordOptOut;
use wagate_domain::{Actor, ContactId, OptOutSource};

use crate::consent::wa_me_link;
use crate::convert::timestamp;
use crate::state::AppState;
use guard::Limited;

/// The public page's routes, merged into the hub's router (outside the bearer API).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/consent/{campaign}", get(show).post(submit))
        .route("/consent/{campaign}/opt-out", post(opt_out))
}

/// An HTML answer that is never cached or framed and may load nothing from anywhere.
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

fn campaign_of(state: &AppState, code: &str) -> Option<(Campaign, Wording)> {
    state.hub().campaign(code).ok().flatten()
}

fn unknown_campaign() -> Response {
    html(StatusCode::NOT_FOUND, page::unknown())
}

/// A closed campaign's page: 410 Gone, saying so; it records nothing. (Opting out still works
/// through its opt-out form, and STOP on WhatsApp always does.)
fn closed_campaign(campaign: &Campaign, wording: &Wording) -> Response {
    html(StatusCode::GONE, page::closed(campaign, wording))
}

/// The form, with a fresh single-use CSRF token.
fn form_page(
    state: &AppState,
    campaign: &Campaign,
    wording: &Wording,
    status: StatusCode,
    error: Option<&str>,
    number: &str,
) -> Response {
    let csrf = state.consent_guard().issue(&campaign.code);
    html(
        status,
        page::form(&page::Form {
            campaign,
            wording,
            csrf: &csrf,
            error,
            number,
        }),
    )
}

/// `GET /consent/{campaign}`
async fn show(State(state): State<AppState>, Path(code): Path<String>) -> Response {
    match campaign_of(&state, &code) {
        Some((campaign, wording)) if campaign.is_closed() => closed_campaign(&campaign, &wording),
        Some((campaign, wording)) => {
            form_page(&state, &campaign, &wording, StatusCode::OK, None, "")
        }
        None => unknown_campaign(),
    }
}

#[derive(Debug, Deserialize)]
struct Submission {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    number: String,
    /// The checkbox: present only when ticked.
    #[serde(default)]
    agree: Option<String>,
    /// The honeypot: hidden from people, filled by bots.
    #[serde(default)]
    website: String,
}

fn client_ip(connect: Option<&ConnectInfo<SocketAddr>>) -> String {
    connect.map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .chars()
        .take(512)
        .collect()
}

/// A number as the person typed it, normalised to E.164, or a sentence saying what is wrong.
pub(crate) fn normalise(raw: &str) -> Result<ContactId, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("Please enter your WhatsApp number.".into());
    }
    if !trimmed.starts_with('+') && !trimmed.starts_with("00") {
        return Err(format!(
            "\u{201c}{trimmed}\u{201d} has no country code: write it in international form, \
             starting with + and the country code (for example +41 79 123 45 67)."
        ));
    }
    let international = match trimmed.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => trimmed.to_owned(),
    };
    let parsed = phonenumber::parse(None, &international).map_err(|e| {
        format!("\u{201c}{trimmed}\u{201d} is not a phone number we can read ({e}).")
    })?;
    if !phonenumber::is_valid(&parsed) {
        return Err(format!(
            "\u{201c}{trimmed}\u{201d} is not a valid number for its country: please check \
             the digits."
        ));
    }
    let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
    ContactId::parse(&e164).map_err(|e| format!("\u{201c}{trimmed}\u{201d}: {e}"))
}

/// `POST /consent/{campaign}`
async fn submit(
    State(state): State<AppState>,
    Path(code): Path<String>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<Submission>,
) -> Response {
    let Some((campaign, wording)) = campaign_of(&state, &code) else {
        return unknown_campaign();
    };
    if campaign.is_closed() {
        tracing::info!(campaign = %code, "consent page: campaign closed, nothing recorded");
        return closed_campaign(&campaign, &wording);
    }
    let ip = client_ip(connect.as_ref().map(|c| &c.0));
    let guard = state.consent_guard();
    let refuse = |status: StatusCode, message: &str| {
        form_page(
            &state,
            &campaign,
            &wording,
            status,
            Some(message),
            &form.number,
        )
    };
    if let Err(Limited) = guard.allow_ip(&ip) {
        tracing::info!(campaign = %code, "consent page: too many submissions from one address");
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many submissions from your network: please wait a few minutes and try again.",
        );
    }
    if !guard.redeem(&code, &form.csrf) {
        tracing::info!(campaign = %code, "consent page: missing, expired or replayed form token");
        return refuse(
            StatusCode::FORBIDDEN,
            "This form expired or was already sent: nothing was recorded. Please fill it in again.",
        );
    }
    if !form.website.is_empty() {
        tracing::info!(campaign = %code, "consent page: honeypot filled, nothing recorded");
        return refuse(
            StatusCode::BAD_REQUEST,
            "This submission looked automated: nothing was recorded.",
        );
    }
    if form.agree.is_none() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Please tick the box to agree: without it nothing is recorded.",
        );
    }
    let contact = match normalise(&form.number) {
        Ok(contact) => contact,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message),
    };
    if let Err(Limited) = guard.allow_number(&contact.to_string()) {
        tracing::info!(campaign = %code, "consent page: too many submissions for one number");
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "This number was submitted several times recently: please wait an hour, or send \
             the WhatsApp message from the last confirmation page.",
        );
    }
    let hub = state.hub().acting(Actor::webhook("consent_page"));
    let evidence = format!(
        "form submitted at {} from IP {ip}, user agent {:?}",
        timestamp(hub.now()),
        user_agent(&headers)
    );
    match hub
        .request_opt_in(&code, RequestOptIn { contact, evidence })
        .await
    {
        Ok(_) => {
            tracing::info!(campaign = %code, "consent page: opt-in requested, waiting for confirmation");
            html(
                StatusCode::OK,
                page::confirm(&campaign, &wording, &wa_me_link(&campaign, &wording)),
            )
        }
        // Closed between the page's check and the decision: the domain refused it.
        Err(wagate_app::AppError::Conflict { .. }) => closed_campaign(&campaign, &wording),
        Err(error) => {
            tracing::warn!(campaign = %code, %error, "consent page: could not record the request");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "We could not record this right now: nothing was recorded. Please try again later.",
            )
        }
    }
}

/// `POST /consent/{campaign}/opt-out`
async fn opt_out(
    State(state): State<AppState>,
    Path(code): Path<String>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(form): Form<Submission>,
) -> Response {
    let Some((campaign, wording)) = campaign_of(&state, &code) else {
        return unknown_campaign();
    };
    let ip = client_ip(connect.as_ref().map(|c| &c.0));
    let guard = state.consent_guard();
    let refuse = |status: StatusCode, message: &str| {
        form_page(
            &state,
            &campaign,
            &wording,
            status,
            Some(message),
            &form.number,
        )
    };
    if guard.allow_ip(&ip).is_err() {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many submissions from your network: please wait a few minutes and try again.",
        );
    }
    if !guard.redeem(&code, &form.csrf) {
        return refuse(
            StatusCode::FORBIDDEN,
            "This form expired or was already sent: nothing was recorded. Please fill it in again.",
        );
    }
    if !form.website.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "This submission looked automated: nothing was recorded.",
        );
    }
    let contact = match normalise(&form.number) {
        Ok(contact) => contact,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, &message),
    };
    let hub = state.hub().acting(Actor::webhook("consent_page"));
    match hub
        .opt_out(RecordOptOut {
            contact,
            source: OptOutSource::Api,
            detail: format!("opt-out on the consent page of campaign {code}"),
        })
        .await
    {
        Ok(_) => html(StatusCode::OK, page::opted_out(&wording)),
        Err(error) => {
            tracing::warn!(campaign = %code, %error, "consent page: could not record the opt-out");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "We could not record this right now. Please try again later, or send STOP on WhatsApp.",
            )
        }
    }
}
