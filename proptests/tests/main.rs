//! Property tests of wagate's compliance core: random interleavings of consent changes,
//! inbound messages, template approvals, sends, claims, outcomes, callbacks and clock jumps,
//! run through the domain's decide functions against an in-memory event log.
//! `campaign_run.rs`: a bulk campaign run row by row over generated consent and a cancel.
//! `store_packing.rs`: the sled store's packed history read against an in-memory log.
//!
//! `PROPTEST_CASES=10000 cargo test -p wagate-proptests --release` for a deep run.

mod campaign_run;
mod props;
mod reference;
mod store_packing;
mod strategy;
mod world;
