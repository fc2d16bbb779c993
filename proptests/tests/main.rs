//! Property tests of wagate's compliance core: random interleavings of consent changes,
//! inbound messages, template approvals, sends, claims, outcomes, callbacks and clock jumps,
//! run through the domain's decide functions against an in-memory event log.
//!
//! `PROPTEST_CASES=10000 cargo test -p wagate-proptests --release` for a deep run.

mod props;
mod reference;
mod strategy;
mod world;
