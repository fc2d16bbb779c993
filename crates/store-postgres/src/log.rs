//! [`PgLog`]: the [`EventLog`] on PostgreSQL.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_postgres::{Config, Row};
use wagate_store::{
    AppendOutcome, AppendRequest, Clock, EventLog, IdempotencyRecord, LogFuture, Origin,
    RecordedEvent, Result, Snapshot, SnapshotSave, StoreError, StoreStats, StreamId,
    MAX_CHECKPOINT_NAME_BYTES,
};

use crate::append::Queued;
use crate::bridge::Bridge;
use crate::error::from_pg;
use crate::head::{follow, raise};
use crate::pool::{describe, Pool};
use crate::schema::migrate;

/// How a [`PgLog`] runs.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// The clock idempotency keys expire by.
    pub clock: Clock,
    /// The largest event payload accepted (the sled store's default).
    pub max_payload_bytes: usize,
    /// Connections for appends and reads (the head follower has one more of its own).
    pub connections: usize,
    /// How often the head is polled in case a notification was missed.
    pub poll_interval: Duration,
    /// The password, instead of the connection string's (e.g. read from 1Password).
    pub password: Option<Password>,
}

/// A database password; `Debug` does not show it.
#[derive(Clone)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            clock: Clock::system(),
            max_payload_bytes: 64 * 1024,
            connections: 4,
            poll_interval: Duration::from_millis(500),
            password: None,
        }
    }
}

/// What the log's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) pool: Pool,
    pub(crate) options: PgOptions,
    pub(crate) head: watch::Sender<u64>,
    pub(crate) closed: Notify,
    commits: AtomicU64,
    requests: AtomicU64,
}

/// The event log in a PostgreSQL database. Several `PgLog`s (in one process or many) may share
/// a database: the database orders and checks their appends.
#[derive(Debug)]
pub struct PgLog {
    shared: Arc<Shared>,
    /// The queue of the log's writer (group commit); closing it stops the writer.
    writer: mpsc::UnboundedSender<Pending>,
    failure: watch::Sender<Option<StoreError>>,
    // Last: the runtime goes after the handles that use it.
    bridge: Bridge,
}

impl PgLog {
    /// Connects to the database `url` names (a `postgres://` URL or a `key=value` string),
    /// migrates its schema and follows its head. Blocks the calling thread (any thread, also
    /// one of a runtime's workers) until the log is open.
    pub fn open(url: &str, options: PgOptions) -> Result<PgLog> {
        let mut config = parse(url)?;
        if let Some(Password(password)) = &options.password {
            config.password(password);
        }
        let bridge = Bridge::new()?;
        let target = describe(&config);
        let pool = Pool::new(config.clone(), target.clone(), options.connections);
        let (head, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            config,
            pool,
            options,
            head,
            closed: Notify::new(),
            commits: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let opening = Arc::clone(&shared);
        bridge.wait(async move {
            let mut client = opening.pool.connect().await?;
            migrate(&mut client, &target).await?;
            let head: i64 = client
                .query_one("SELECT position FROM wagate_head", &[])
                .await
                .map_err(|error| crate::error::migration_error(&target, error))?
                .get(0);
            raise(&opening.head, head as u64);
            Ok(())
        })?;
        bridge.handle().spawn(follow(Arc::clone(&shared)));
        let (writer, queue) = mpsc::unbounded_channel();
        bridge.handle().spawn(write(Arc::clone(&shared), queue));
        let (failure, _) = watch::channel(None);
        tracing::info!(database = %shared.pool.target(), "opened the PostgreSQL log");
        Ok(PgLog {
            shared,
            writer,
            failure,
            bridge,
        })
    }

    /// The database this log is in, without the password.
    pub fn target(&self) -> &str {
        self.shared.pool.target()
    }
}

impl Drop for PgLog {
    fn drop(&mut self) {
        self.shared.closed.notify_waiters();
    }
}

/// An append waiting for the writer, and where its answer goes.
struct Pending {
    queued: Queued,
    reply: oneshot::Sender<Result<AppendOutcome>>,
}

/// The most appends committed in one transaction.
const MAX_BATCH: usize = 256;

/// The log's writer: takes what is queued (up to [`MAX_BATCH`]) and commits it as one
/// transaction, so concurrent appends share a commit — and its WAL flush — instead of waiting
/// for the head lock one by one. Ends when the log is dropped (its queue closes).
async fn write(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (queued, replies): (Vec<Queued>, Vec<_>) = batch
            .drain(..)
            .map(|pending| (pending.queued, pending.reply))
            .unzip();
        let committed = async {
            let mut conn = shared.pool.get().await?;
            crate::append::append_batch(conn.client(), &queued).await
        }
        .await;
        match committed {
            Ok((outcomes, head)) => {
                shared.commits.fetch_add(1, Ordering::Relaxed);
                shared
                    .requests
                    .fetch_add(queued.len() as u64, Ordering::Relaxed);
                raise(&shared.head, head);
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The caller may have gone (a cancelled request): its append stands.
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

fn parse(url: &str) -> Result<Config> {
    // tokio-postgres's error does not quote the string, which may hold a password.
    Config::from_str(url).map_err(|error| {
        StoreError::InvalidRequest(format!("not a PostgreSQL connection string: {error}"))
    })
}

/// The password the connection string `url` carries (percent-decoded), if any: the binary
/// resolves it when it is an `op://` reference.
pub fn url_password(url: &str) -> Result<Option<String>> {
    Ok(parse(url)?
        .get_password()
        .map(|password| String::from_utf8_lossy(password).into_owned()))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_CHECKPOINT_NAME_BYTES || name.contains('\0') {
        return Err(StoreError::InvalidRequest(format!(
            "{what} name must be 1 to {MAX_CHECKPOINT_NAME_BYTES} bytes without NUL"
        )));
    }
    Ok(())
}

/// A `bigint` for a `u64` bound or limit (larger values mean "no bound").
fn bigint(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

const EVENT_COLUMNS: &str = "position, stream, version, event_id, event_type, schema_version, \
                             timestamp_ms, payload, origin_kind, origin_name";

fn recorded(row: &Row) -> Result<RecordedEvent> {
    let position: i64 = row.get(0);
    let version: i64 = row.get(2);
    let schema_version: i32 = row.get(5);
    let kind: Option<String> = row.get(8);
    let name: Option<String> = row.get(9);
    Ok(RecordedEvent {
        position: position as u64,
        stream: StreamId::new(row.get::<_, String>(1))?,
        version: version as u64,
        event_id: row.get(3),
        event_type: row.get(4),
        schema_version: u16::try_from(schema_version).map_err(|_| StoreError::Io {
            kind: std::io::ErrorKind::InvalidData,
            detail: format!("schema version {schema_version} at position {position}"),
        })?,
        timestamp_ms: row.get(6),
        payload: row.get(7),
        origin: match (kind, name) {
            (Some(kind), Some(name)) => Some(Origin { kind, name }),
            _ => None,
        },
    })
}

impl PgLog {
    /// Runs `sql` with parameters (`stream`?, `first`, `limit`, `upto`?) and decodes the rows.
    fn query_events(
        &self,
        sql: String,
        first: i64,
        bound: Bound,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let shared = Arc::clone(&self.shared);
        let limit = bigint(limit as u64);
        self.bridge.wait(async move {
            let mut conn = shared.pool.get().await?;
            let rows = match &bound {
                Bound::Stream(stream) => conn.client().query(&sql, &[stream, &first, &limit]).await,
                Bound::Head(head) => conn.client().query(&sql, &[&first, &limit, head]).await,
            }
            .map_err(from_pg)?;
            rows.iter().map(recorded).collect()
        })
    }
}

/// What bounds a read besides its start.
enum Bound {
    /// One stream's events (all committed ones: an expected-version check must see another
    /// hub's latest event at once).
    Stream(String),
    /// The log up to this position: the head this log has announced when the read began.
    Head(i64),
}

impl EventLog for PgLog {
    fn append(&self, request: AppendRequest) -> LogFuture<'_, AppendOutcome> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            crate::append::validate(&request, shared.options.max_payload_bytes)?;
            let (reply, answer) = oneshot::channel();
            let queued = Queued {
                request,
                now_ms: shared.options.clock.now_ms(),
            };
            self.writer
                .send(Pending { queued, reply })
                .map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        self.query_events(
            format!(
                "SELECT {EVENT_COLUMNS} FROM wagate_events WHERE stream = $1 AND version >= $2
                 ORDER BY version LIMIT $3"
            ),
            bigint(from_version),
            Bound::Stream(stream.as_str().to_owned()),
            limit,
        )
    }

    // Never past the head announced to subscribers when the read began: a consumer woken for
    // head h that read beyond h would be woken again for a head it has already read past.
    // Another hub's commits become readable here once their NOTIFY (or the poll) announces them.
    fn read_from(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let head = self.head_position();
        if from_position.max(1) > head {
            return Ok(Vec::new());
        }
        self.query_events(
            format!(
                "SELECT {EVENT_COLUMNS} FROM wagate_events WHERE position >= $1 AND position <= $3
                 ORDER BY position LIMIT $2"
            ),
            bigint(from_position),
            Bound::Head(bigint(head)),
            limit,
        )
    }

    fn idempotency_key(&self, key: &[u8]) -> Result<Option<IdempotencyRecord>> {
        let shared = Arc::clone(&self.shared);
        let key = key.to_vec();
        self.bridge.wait(async move {
            let now = shared.options.clock.now_ms();
            let mut conn = shared.pool.get().await?;
            let row = conn
                .client()
                .query_opt(
                    "SELECT first_position, expires_at_ms, result FROM wagate_idempotency
                     WHERE key = $1 AND expires_at_ms > $2",
                    &[&key, &now],
                )
                .await
                .map_err(from_pg)?;
            Ok(row.map(|row| IdempotencyRecord {
                first_position: row.get::<_, Option<i64>>(0).map(|p| p as u64),
                expires_at_ms: row.get(1),
                result: row.get(2),
            }))
        })
    }

    fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        check_name("checkpoint", name)?;
        let shared = Arc::clone(&self.shared);
        let name = name.to_owned();
        self.bridge.wait(async move {
            let mut conn = shared.pool.get().await?;
            let row = conn
                .client()
                .query_opt(
                    "SELECT position FROM wagate_checkpoints WHERE name = $1",
                    &[&name],
                )
                .await
                .map_err(from_pg)?;
            Ok(row.map(|row| row.get::<_, i64>(0) as u64))
        })
    }

    fn save_checkpoint(&self, name: &str, position: u64) -> LogFuture<'_, ()> {
        let shared = Arc::clone(&self.shared);
        let name = name.to_owned();
        Box::pin(async move {
            check_name("checkpoint", &name)?;
            let at = bigint(position);
            self.bridge
                .run(async move {
                    let mut conn = shared.pool.get().await?;
                    // Checked against the database's head, which other hubs move too.
                    let saved = conn
                        .client()
                        .execute(
                            "INSERT INTO wagate_checkpoints (name, position)
                             SELECT $1, $2 FROM wagate_head WHERE position >= $2
                             ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                            &[&name, &at],
                        )
                        .await
                        .map_err(from_pg)?;
                    if saved == 0 {
                        return Err(StoreError::InvalidRequest(format!(
                            "checkpoint position {position} is past the head"
                        )));
                    }
                    shared.requests.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                })
                .await
        })
    }

    fn snapshot(&self, name: &str) -> Result<Option<Snapshot>> {
        check_name("snapshot", name)?;
        let shared = Arc::clone(&self.shared);
        let name = name.to_owned();
        self.bridge.wait(async move {
            let mut conn = shared.pool.get().await?;
            let row = conn
                .client()
                .query_opt(
                    "SELECT position, state FROM wagate_snapshots WHERE name = $1",
                    &[&name],
                )
                .await
                .map_err(from_pg)?;
            Ok(row.map(|row| Snapshot {
                position: row.get::<_, i64>(0) as u64,
                bytes: row.get(1),
            }))
        })
    }

    fn snapshot_entry(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        check_name("snapshot", name)?;
        let shared = Arc::clone(&self.shared);
        let (name, key) = (name.to_owned(), key.to_vec());
        self.bridge.wait(async move {
            let mut conn = shared.pool.get().await?;
            let row = conn
                .client()
                .query_opt(
                    "SELECT value FROM wagate_snapshot_entries WHERE name = $1 AND key = $2",
                    &[&name, &key],
                )
                .await
                .map_err(from_pg)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn save_snapshot(&self, name: &str, save: SnapshotSave) -> LogFuture<'_, ()> {
        let shared = Arc::clone(&self.shared);
        let name = name.to_owned();
        Box::pin(async move {
            check_name("snapshot", &name)?;
            self.bridge
                .run(async move {
                    let mut conn = shared.pool.get().await?;
                    let tx = conn.client().transaction().await.map_err(from_pg)?;
                    if save.replace_entries {
                        tx.execute(
                            "DELETE FROM wagate_snapshot_entries WHERE name = $1",
                            &[&name],
                        )
                        .await
                        .map_err(from_pg)?;
                    }
                    for (key, value) in &save.entries {
                        let done = match value {
                            Some(value) => {
                                tx.execute(
                                    "INSERT INTO wagate_snapshot_entries (name, key, value)
                                     VALUES ($1, $2, $3)
                                     ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
                                    &[&name, key, value],
                                )
                                .await
                            }
                            None => {
                                tx.execute(
                                    "DELETE FROM wagate_snapshot_entries
                                     WHERE name = $1 AND key = $2",
                                    &[&name, key],
                                )
                                .await
                            }
                        };
                        done.map_err(from_pg)?;
                    }
                    tx.execute(
                        "INSERT INTO wagate_snapshots (name, position, state) VALUES ($1, $2, $3)
                         ON CONFLICT (name) DO UPDATE
                             SET position = excluded.position, state = excluded.state",
                        &[&name, &bigint(save.position), &save.bytes],
                    )
                    .await
                    .map_err(from_pg)?;
                    tx.commit().await.map_err(from_pg)
                })
                .await
        })
    }

    fn head_position(&self) -> u64 {
        *self.shared.head.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.head.subscribe()
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            committed_requests: self.shared.requests.load(Ordering::Relaxed),
            head_position: self.head_position(),
            // PostgreSQL keeps one row per event; its open does not grow with them.
            packed_position: 0,
            keys_packed: 0,
            prepare_us: 0,
            apply_us: 0,
            flush_us: 0,
            sync_us: 0,
            failed: false,
        }
    }

    // The database keeps writes durable and reports a failed one to its caller; a lost
    // connection is reconnected on next use, so the log never enters sled's failed state.
    fn failure(&self) -> watch::Receiver<Option<StoreError>> {
        self.failure.subscribe()
    }
}
