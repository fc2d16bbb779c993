//! End-to-end tests of `wagate serve`: each starts the real binary on 127.0.0.1 (port 0, the
//! bound address read from its stdout) with a temporary data directory and the keys the signed
//! fixtures in `fixtures/providers/` were made with, and drives it over HTTP. The child is
//! killed when its guard drops, so a failing test never leaves a hub behind.

mod browser;
mod support;
mod templates;
mod templates_media;

mod commands;
mod consent;
mod consent_browser;
mod consent_close;
mod consent_confirm_template;
mod costs;
mod crm_backfill;
mod crm_hubspot;
mod event_webhooks;
mod explain;
mod full_disk;
mod idempotency;
mod identities;
mod lifecycle;
mod limits;
mod on_postgres;
mod ops_browser;
mod packing;
mod postgres;
mod provider_values;
mod rejected;
mod review_alerts;
mod review_sources;
mod roles;
mod rules;
mod snapshot;
mod twilio_prices;
mod webhook_endpoint_disable;
mod webhooks;
