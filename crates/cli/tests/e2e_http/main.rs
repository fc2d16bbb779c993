//! End-to-end tests of `wagate serve`: each starts the real binary on 127.0.0.1 (port 0, the
//! bound address read from its stdout) with a temporary data directory and the keys the signed
//! fixtures in `fixtures/providers/` were made with, and drives it over HTTP. The child is
//! killed when its guard drops, so a failing test never leaves a hub behind.

mod support;
mod templates;

mod commands;
mod event_webhooks;
mod explain;
mod idempotency;
mod identities;
mod lifecycle;
mod limits;
mod ops_browser;
mod provider_values;
mod rejected;
mod review_alerts;
mod roles;
mod rules;
mod snapshot;
mod webhooks;
