//! Appends, several queued ones in one transaction (group commit, as the sled store's writer
//! batches what is queued into one flush).
//!
//! Positions: the transaction first locks the single row of `wagate_head` (an `UPDATE` of it)
//! and holds that lock until it commits, so appends from every hub commit one after another in
//! position order. A reader therefore never sees position n+1 without n: there is no window in
//! which a later position is committed while an earlier one is still in flight, which a sequence
//! (allocated before commit, committed in any order) would open. The price is that appends are
//! serialized by the database — one commit at a time, as sled's single writer — which is what a
//! log with a gap-free global order costs; reads are not blocked by it.
//!
//! Under the lock every check (idempotency key, event ids, expected versions) reads what the
//! previous append committed, so the checks and the write are one atomic step; the unique
//! (stream, version) constraint is the database's own guard behind them.

use std::collections::{HashMap, HashSet};

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;
use uuid::Uuid;
use wagate_store::{
    AppendOutcome, AppendRequest, Committed, ExpectedVersion, Result, StoreError,
    MAX_EVENT_TYPE_BYTES, MAX_IDEMPOTENCY_KEY_BYTES, MAX_IDEMPOTENCY_RESULT_BYTES,
};

use crate::error::from_pg;

/// The channel `NOTIFY` announces new heads on.
pub(crate) const HEAD_CHANNEL: &str = "wagate_head";

/// Refuses what the sled store refuses, with the same errors.
pub(crate) fn validate(request: &AppendRequest, max_payload_bytes: usize) -> Result<()> {
    let invalid = |message: String| Err(StoreError::InvalidRequest(message));
    if request.streams.is_empty() && request.idempotency_key.is_none() {
        return invalid("an append needs streams or an idempotency key".into());
    }
    let mut streams = HashSet::with_capacity(request.streams.len());
    let mut ids = HashSet::with_capacity(request.event_count());
    for append in &request.streams {
        if !streams.insert(append.stream.as_str()) {
            return invalid(format!(
                "stream {} appears twice in one request",
                append.stream
            ));
        }
        if let ExpectedVersion::Exact(v) = append.expected {
            if v >= i64::MAX as u64 {
                return invalid("expected version overflow".into());
            }
        }
        for event in &append.events {
            if !ids.insert(event.event_id) {
                return invalid(format!(
                    "event id {} appears twice in one request",
                    event.event_id
                ));
            }
            if event.event_type.is_empty() || event.event_type.len() > MAX_EVENT_TYPE_BYTES {
                return invalid(format!(
                    "event type must be 1 to {MAX_EVENT_TYPE_BYTES} bytes"
                ));
            }
            if event.payload.len() > max_payload_bytes {
                return invalid(format!(
                    "payload of {} bytes exceeds the limit of {max_payload_bytes}",
                    event.payload.len()
                ));
            }
            // PostgreSQL's text cannot hold NUL.
            if event.event_type.contains('\0')
                || event
                    .origin
                    .as_ref()
                    .is_some_and(|origin| origin.kind.contains('\0') || origin.name.contains('\0'))
            {
                return invalid("event type and origin may not contain NUL".into());
            }
        }
    }
    if let Some(key) = &request.idempotency_key {
        if key.key.is_empty() || key.key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            return invalid(format!(
                "idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes"
            ));
        }
        if key.result.len() > MAX_IDEMPOTENCY_RESULT_BYTES {
            return invalid(format!(
                "idempotency result exceeds {MAX_IDEMPOTENCY_RESULT_BYTES} bytes"
            ));
        }
    }
    Ok(())
}

/// One queued append: the request (already validated) and the time its keys expire by.
pub(crate) struct Queued {
    pub(crate) request: AppendRequest,
    pub(crate) now_ms: i64,
}

/// Appends `batch` in one transaction (group commit): the head row is locked once, each request
/// runs under a savepoint of its own — so one that fails (a conflict, a bad request) writes
/// nothing and the others commit — and the head is moved and announced once, at the end.
/// Answers each request's outcome and the head after the commit; an error is the transaction's
/// (nothing of the batch is written).
pub(crate) async fn append_batch(
    client: &mut Client,
    batch: &[Queued],
) -> Result<(Vec<Result<AppendOutcome>>, u64)> {
    let mut tx = client.transaction().await.map_err(from_pg)?;
    let locked: i64 = tx
        .query_one(
            "UPDATE wagate_head SET position = position WHERE id RETURNING position",
            &[],
        )
        .await
        .map_err(from_pg)?
        .get(0);
    let locked = locked as u64;
    let mut head = locked;
    let mut outcomes = Vec::with_capacity(batch.len());
    for queued in batch {
        let savepoint = tx.savepoint("wagate_append").await.map_err(from_pg)?;
        match append_one(&savepoint, &queued.request, queued.now_ms, head).await {
            Ok((outcome, after)) => {
                savepoint.commit().await.map_err(from_pg)?;
                head = after;
                outcomes.push(Ok(outcome));
            }
            Err(error) => {
                savepoint.rollback().await.map_err(from_pg)?;
                outcomes.push(Err(error));
            }
        }
    }
    if head > locked {
        let head_i = head as i64;
        tx.execute("UPDATE wagate_head SET position = $1", &[&head_i])
            .await
            .map_err(from_pg)?;
        // Delivered to listeners only at commit, so a woken reader finds the rows.
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&HEAD_CHANNEL, &head.to_string()],
        )
        .await
        .map_err(from_pg)?;
    }
    tx.commit().await.map_err(from_pg)?;
    Ok((outcomes, head))
}

/// One request inside the batch's transaction, after the appends before it (`head`); answers
/// its outcome and the head after it.
async fn append_one(
    tx: &tokio_postgres::Transaction<'_>,
    request: &AppendRequest,
    now_ms: i64,
    head: u64,
) -> Result<(AppendOutcome, u64)> {
    if let Some(key) = &request.idempotency_key {
        let row = tx
            .query_opt(
                "SELECT first_position, expires_at_ms, result FROM wagate_idempotency
                 WHERE key = $1 AND expires_at_ms > $2",
                &[&key.key, &now_ms],
            )
            .await
            .map_err(from_pg)?;
        if let Some(row) = row {
            let first: Option<i64> = row.get(0);
            return Ok((
                AppendOutcome::Duplicate {
                    first_position: first.map(|p| p as u64),
                    expires_at_ms: row.get(1),
                    result: row.get(2),
                },
                head,
            ));
        }
    }

    // Idempotent retry by event ids: all present → the original positions; some → an error.
    let ids: Vec<Uuid> = request
        .streams
        .iter()
        .flat_map(|append| append.events.iter().map(|event| event.event_id))
        .collect();
    let found: HashMap<Uuid, (u64, u64)> = if ids.is_empty() {
        HashMap::new()
    } else {
        tx.query(
            "SELECT event_id, position, version FROM wagate_events WHERE event_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(from_pg)?
        .into_iter()
        .map(|row| {
            let position: i64 = row.get(1);
            let version: i64 = row.get(2);
            (row.get(0), (position as u64, version as u64))
        })
        .collect()
    };

    let names: Vec<&str> = request.streams.iter().map(|a| a.stream.as_str()).collect();
    let current: HashMap<String, u64> = tx
        .query(
            "SELECT s, coalesce((SELECT max(version) FROM wagate_events WHERE stream = s), 0)
             FROM unnest($1::text[]) AS s",
            &[&names],
        )
        .await
        .map_err(from_pg)?
        .into_iter()
        .map(|row| {
            let version: i64 = row.get(1);
            (row.get(0), version as u64)
        })
        .collect();
    let version_of = |stream: &str| current.get(stream).copied().unwrap_or(0);

    let outcome = if !found.is_empty() {
        if found.len() < ids.len() {
            return Err(StoreError::EventIdsMismatch {
                already_written: ids
                    .iter()
                    .filter(|id| found.contains_key(id))
                    .copied()
                    .collect(),
                new: ids.len() - found.len(),
            });
        }
        let positions = ids.iter().map(|id| found[id].0).collect();
        let stream_versions = request
            .streams
            .iter()
            .map(|append| match append.events.last() {
                Some(last) => found[&last.event_id].1,
                None => version_of(append.stream.as_str()),
            })
            .collect();
        AppendOutcome::AlreadyAppended(Committed {
            positions,
            stream_versions,
        })
    } else {
        for append in &request.streams {
            let actual = version_of(append.stream.as_str());
            if !append.expected.matches(actual) {
                return Err(StoreError::Conflict {
                    stream: append.stream.clone(),
                    expected: append.expected,
                    actual,
                });
            }
        }
        let committed = insert_events(tx, request, head, &current).await?;
        AppendOutcome::Appended(committed)
    };

    let committed = outcome.committed().cloned().unwrap_or(Committed {
        positions: Vec::new(),
        stream_versions: Vec::new(),
    });
    if let Some(key) = &request.idempotency_key {
        let first = committed.first_position().map(|p| p as i64);
        tx.execute(
            "INSERT INTO wagate_idempotency (key, first_position, expires_at_ms, result)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO UPDATE SET first_position = excluded.first_position,
                 expires_at_ms = excluded.expires_at_ms, result = excluded.result",
            &[&key.key, &first, &key.expires_at_ms, &key.result],
        )
        .await
        .map_err(from_pg)?;
    }
    let new_head = match (&outcome, committed.last_position()) {
        (AppendOutcome::Appended(_), Some(last)) => last,
        _ => head,
    };
    Ok((outcome, new_head))
}

async fn insert_events(
    tx: &tokio_postgres::Transaction<'_>,
    request: &AppendRequest,
    head: u64,
    current: &HashMap<String, u64>,
) -> Result<Committed> {
    let total = request.event_count();
    let mut positions = Vec::with_capacity(total);
    let mut stream_versions = Vec::with_capacity(request.streams.len());
    let (mut streams, mut versions, mut ids, mut types) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    let (mut schemas, mut stamps, mut payloads, mut kinds, mut origin_names) = (
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
        Vec::with_capacity(total),
    );
    let mut next = head;
    for append in &request.streams {
        let mut version = current.get(append.stream.as_str()).copied().unwrap_or(0);
        for event in &append.events {
            next += 1;
            version += 1;
            positions.push(next);
            streams.push(append.stream.as_str());
            versions.push(version as i64);
            ids.push(event.event_id);
            types.push(event.event_type.as_str());
            schemas.push(i32::from(event.schema_version));
            stamps.push(event.timestamp_ms);
            payloads.push(event.payload.as_slice());
            kinds.push(event.origin.as_ref().map(|o| o.kind.as_str()));
            origin_names.push(event.origin.as_ref().map(|o| o.name.as_str()));
        }
        stream_versions.push(version);
    }
    if total > 0 {
        let positions_i: Vec<i64> = positions.iter().map(|p| *p as i64).collect();
        tx.execute(
            "INSERT INTO wagate_events (position, stream, version, event_id, event_type,
                 schema_version, timestamp_ms, payload, origin_kind, origin_name)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::uuid[], $5::text[],
                 $6::int4[], $7::int8[], $8::bytea[], $9::text[], $10::text[])",
            &[
                &positions_i,
                &streams,
                &versions,
                &ids,
                &types,
                &schemas,
                &stamps,
                &payloads,
                &kinds,
                &origin_names,
            ],
        )
        .await
        .map_err(|error| {
            // Only reachable if something wrote without taking the head lock.
            if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
                StoreError::Io {
                    kind: std::io::ErrorKind::Other,
                    detail: format!("PostgreSQL refused a duplicate (stream, version): {error}"),
                }
            } else {
                from_pg(error)
            }
        })?;
    }
    Ok(Committed {
        positions,
        stream_versions,
    })
}
