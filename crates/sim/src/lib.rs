//! wagate-sim: a seeded, single-threaded simulated world for the dispatcher. The real
//! `wagate_dispatch::Dispatcher` runs against an in-memory hub built directly on
//! `wagate_domain::decide` (what `wagate-app` does against sled), a scripted provider, and a
//! webhook queue that duplicates, reorders, delays and drops status callbacks. The property
//! tests in `tests/` crash the dispatcher between any two effects, lose provider and hub
//! answers, jump the clock across the 24 h window and the backoff boundaries, and check the
//! invariants of `check` after every action.
//!
//! Nothing here reads a clock or a random source: a run is a list of `world::Action`s.

pub mod check;
pub mod hub;
pub mod provider;
pub mod world;

pub use check::Violation;
pub use hub::{Recorded, SimHub, SimRequest};
pub use provider::{Callback, LastStatus, ProviderBehaviour, ProviderCall, SimProvider};
pub use world::{Action, HubFault, InboundText, World};
