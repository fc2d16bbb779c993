//! wagate-app: the command service, the only crate that knows both the domain and the store.
//!
//! For each command it loads the aggregates the decision reads (through a cache that is never
//! trusted for correctness), calls the domain's pure `decide`, and appends the events with the
//! expected version of every stream it read, so a concurrent change (a STOP landing between a
//! send's decision and its claim) forces a fresh decision. Conflicts are retried a bounded number
//! of times. Time comes from a [`Clock`].

mod aggregates;
mod clock;
mod codec;
mod error;
mod hub;
mod locks;
mod projection;
mod views;

pub use aggregates::Loaded;
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{AppError, Result};
pub use hub::{Hub, SendOptions, SendRequest, StatusCallback, COMMAND_KEY_TTL, WEBHOOK_DEDUP_TTL};
pub use views::{
    ClaimedMessage, ContactView, HistoryEntry, Ingested, MessageView, PendingMessage, SendAccepted,
};
