//! The schema, as numbered migrations applied at open.
//!
//! Each migration runs once, in order, inside one transaction that holds an advisory lock, so
//! several hubs starting together migrate once and a half-applied migration never stays. A
//! database whose schema is newer than this binary knows is refused: an old binary writing into a
//! newer layout could break rules it does not know about.

use std::path::PathBuf;

use tokio_postgres::Client;
use wagate_store::{Result, StoreError};

use crate::error::migration_error;

/// Key of the advisory lock migrations hold (any constant; "wagate" in ASCII).
const MIGRATION_LOCK: i64 = 0x7761_6761_7465;

/// Migration `n` is `MIGRATIONS[n - 1]`. Append only; never edit a released one.
const MIGRATIONS: &[&str] = &[
    // 1: the log, its indexes, idempotency keys, checkpoints, snapshots.
    "
    CREATE TABLE wagate_head (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        position bigint NOT NULL
    );
    INSERT INTO wagate_head (id, position) VALUES (true, 0);
    CREATE TABLE wagate_events (
        position bigint PRIMARY KEY,
        stream text NOT NULL,
        version bigint NOT NULL,
        event_id uuid NOT NULL UNIQUE,
        event_type text NOT NULL,
        schema_version integer NOT NULL,
        timestamp_ms bigint NOT NULL,
        payload bytea NOT NULL,
        origin_kind text,
        origin_name text,
        CONSTRAINT wagate_events_stream_version UNIQUE (stream, version)
    );
    CREATE TABLE wagate_idempotency (
        key bytea PRIMARY KEY,
        first_position bigint,
        expires_at_ms bigint NOT NULL,
        result bytea NOT NULL
    );
    CREATE INDEX wagate_idempotency_expiry ON wagate_idempotency (expires_at_ms);
    CREATE TABLE wagate_checkpoints (
        name text PRIMARY KEY,
        position bigint NOT NULL
    );
    CREATE TABLE wagate_snapshots (
        name text PRIMARY KEY,
        position bigint NOT NULL,
        state bytea NOT NULL
    );
    CREATE TABLE wagate_snapshot_entries (
        name text NOT NULL,
        key bytea NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (name, key)
    );
    ",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the database at `target` up to [`SCHEMA_VERSION`]; answers the version it found.
pub(crate) async fn migrate(client: &mut Client, target: &str) -> Result<i32> {
    let fail = |error| migration_error(target, error);
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS wagate_schema_migrations (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(fail)?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM wagate_schema_migrations",
            &[],
        )
        .await
        .map_err(fail)?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::Foreign {
            path: PathBuf::from(target),
            detail: format!(
                "the database's wagate schema is version {found}, newer than this binary's \
                 {SCHEMA_VERSION}: run a wagate at least as new as the one that migrated it"
            ),
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i32 + 1;
        tx.batch_execute(migration).await.map_err(fail)?;
        tx.execute(
            "INSERT INTO wagate_schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(fail)?;
        tracing::info!(version, "applied a PostgreSQL schema migration");
    }
    tx.commit().await.map_err(fail)?;
    Ok(found)
}
