//! wagate's event log on PostgreSQL: the [`EventLog`] contract of `wagate-store`, kept by the
//! database instead of one process, so several hubs can share one log.
//!
//! - appends: what is queued committed as one transaction (group commit), serialized across hubs
//!   by a lock on the head row (see `append.rs` for why that gives readers a gap-free order),
//!   guarded by a unique (stream, version) constraint;
//! - the durable head: `NOTIFY` at commit, `LISTEN`ed by every open log, with polling as the
//!   fallback when a notification is lost (a dropped listener connection);
//! - the schema: numbered migrations at open (`schema.rs`).
//!
//! [`EventLog`]: wagate_store::EventLog

mod append;
mod bridge;
mod error;
mod head;
mod log;
mod pool;
mod schema;
pub mod test_server;

pub use log::{url_password, Password, PgLog, PgOptions};
pub use schema::SCHEMA_VERSION;

/// Whether `location` names a PostgreSQL database (a `postgres://` or `postgresql://` URL)
/// rather than a sled folder.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}
