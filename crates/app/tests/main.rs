//! wagate-app integration tests: the command service against a real (temporary) store.

mod reopen;
mod support;

mod actors;
mod aggregate_cache;
mod campaigns;
mod concurrency;
mod consent_confirmation;
mod costs_snapshots;
mod counts;
mod counts_snapshots;
mod flow;
mod idempotency;
mod identities;
mod overdue;
mod provider_ref_horizon;
mod snapshots;
mod webhooks;
