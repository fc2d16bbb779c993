//! wagate-http: the hub's HTTP face.
//!
//! - Provider webhooks (`/webhooks/twilio/inbound`, `/webhooks/twilio/status`,
//!   `/webhooks/meta`): signatures checked on the raw bytes before parsing, de-duplicated,
//!   appended through the hub, rejects written to the webhook rejection log.
//! - The command API (`/v1/…`, bearer token): consent, sends (with `Idempotency-Key` and dry
//!   runs), message state, templates, senders, the dispatcher's claim/outcome routes, and the
//!   NDJSON event feed.
//! - `/healthz` and `/metrics` (Prometheus text).
//! - The ops page (`/ops`, [`ops`]): server-rendered HTML for operators and auditors, signed in
//!   with their API token for a session cookie.
//!
//! [`Server`] / [`serve`] run it all for a [`Hub`](wagate_app::Hub) the caller opened, from
//! ready-made [`HttpSettings`] (the binary resolves them); [`router`] builds the router alone
//! (tests, embedding). The JSON shapes are in [`wagate_api`] (re-exported as [`api`]), the
//! OpenAPI document built from them and the route table in [`openapi`]; the auditors' event
//! format in
//! [`export_json`]. docs/api.md documents every route.

mod account_notices;
pub mod audit;
mod body;
mod campaigns;
mod commands;
mod consent;
mod consent_page;
mod convert;
mod costs;
pub mod crm;
mod dispatch;
pub mod endpoints;
mod error;
pub mod export_json;
mod feed;
mod metrics;
pub mod openapi;
mod ops;
#[cfg(test)]
mod readyz_tests;
pub mod review;
mod routes;
mod server;
mod settings;
mod state;
pub mod templates;
#[cfg(test)]
mod tests;
mod webhooks;

pub use body::WEBHOOK_BODY_LIMIT;
pub use routes::{router, router_with_limits, Access, REQUEST_ID_HEADER, ROUTES};
pub use server::{serve, ServeError, Server};
pub use settings::{
    parse_messaging_limit, ApiToken, HttpSettings, Limits, RejectionLimits, WebhookSecrets,
    MIN_HEADER_BYTES,
};
pub use state::{AppState, WebhookKeys};
/// The JSON shapes, re-exported so `wagate_http::api::…` paths keep working; clients depend on
/// `wagate-api` directly.
pub use wagate_api as api;
pub use wagate_domain::Role;
pub use webhooks::EMPTY_TWIML;

/// The command API's JSON body parser exactly as the handlers run it, for the fuzz targets in
/// `fuzz/` (not a stable API). The error is the field it names and the message, as the 400
/// carries them.
#[doc(hidden)]
pub fn parse_json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, (String, String)> {
    body::json(body).map_err(invalid_parts)
}

/// [`parse_json_body`] for the bodies that may be empty (opt-out, authorize a sender).
#[doc(hidden)]
pub fn parse_optional_json_body<T: serde::de::DeserializeOwned + Default>(
    body: &[u8],
) -> Result<T, (String, String)> {
    body::json_or_default(body).map_err(invalid_parts)
}

fn invalid_parts(error: error::ApiError) -> (String, String) {
    match error {
        error::ApiError::Invalid { field, message } => (field, message),
        // The body parser only answers Invalid; anything else is a change the fuzzer should see.
        other => ("<not a 400>".to_owned(), format!("{other:?}")),
    }
}
