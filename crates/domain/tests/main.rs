//! Integration tests of the compliance core, one binary (ripgrep style).
//!
//! Status transitions and classified error codes are unit-tested next to their tables in
//! `src/status.rs` and `src/classify.rs`; these tests drive the domain through its commands.

mod campaign;
mod consent;
mod consent_confirmation;
mod dispatch;
mod identities;
mod keywords;
mod open_intent;
mod portfolio_pruning;
mod provider_facts;
mod rules;
mod support;
mod tier;
mod trust;
mod window;
