//! The composition root of `wagate serve`: opens the event log, builds the hub on it, and closes
//! the log once nothing uses it any more. The libraries take what is built here; only the binary
//! knows which log implementation backs the hub.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wagate_app::{AppError, Hub, SystemClock};
use wagate_domain::Policy;
use wagate_store::{EventLog, Options, Store, StoreError};
use wagate_store_postgres::{Password, PgLog, PgOptions};

use crate::settings::StoreSetting;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the event log: {0}")]
    Store(#[from] StoreError),
    #[error("cannot load the event log: {0}")]
    App(#[from] AppError),
    #[error("a background task failed: {0}")]
    Task(String),
}

/// The open log, whichever backend holds it.
#[derive(Debug)]
pub enum OpenLog {
    Sled(Store),
    Postgres(Arc<PgLog>),
}

impl OpenLog {
    fn shared(&self) -> Arc<dyn EventLog> {
        match self {
            OpenLog::Sled(store) => Arc::new(store.clone()),
            OpenLog::Postgres(log) => Arc::clone(log) as Arc<dyn EventLog>,
        }
    }

    /// The banner's line saying where the log is (never the database password).
    pub fn describe(&self, data_dir: &Path) -> String {
        match self {
            OpenLog::Sled(_) => format!("data: {}", data_dir.display()),
            OpenLog::Postgres(log) => format!("store: PostgreSQL at {}", log.target()),
        }
    }
}

/// The open log and the hub on it.
#[derive(Debug)]
pub struct Opened {
    pub store: OpenLog,
    pub hub: Hub,
}

/// Opens the log `store` names (sled: creating `data_dir` if missing; PostgreSQL: migrating its
/// schema) and rebuilds the hub's indexes from it (blocking work, off the async threads).
pub async fn open(
    data_dir: &Path,
    store: &StoreSetting,
    policy: Policy,
) -> Result<Opened, StartError> {
    if matches!(store, StoreSetting::Sled { .. }) {
        std::fs::create_dir_all(data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
    }
    let data_dir = data_dir.to_path_buf();
    let store = store.clone();
    tokio::task::spawn_blocking(move || -> Result<Opened, StartError> {
        let store = match store {
            StoreSetting::Sled {
                unpacked_tail_events,
                cache_mib,
            } => {
                let options = Options {
                    unpacked_tail_events,
                    cache_capacity_bytes: cache_mib * 1024 * 1024,
                    // A clean stop pays sled's log scan so that the next start does not.
                    refresh_sled_snapshot_on_close: true,
                    ..Options::default()
                };
                OpenLog::Sled(Store::open(&data_dir, options)?)
            }
            StoreSetting::Postgres { url, password } => {
                let options = PgOptions {
                    password: password.map(|secret| Password(secret.expose().to_owned())),
                    ..PgOptions::default()
                };
                OpenLog::Postgres(Arc::new(PgLog::open(url.expose(), options)?))
            }
        };
        match Hub::open(store.shared(), Arc::new(SystemClock), policy) {
            Ok(hub) => Ok(Opened { store, hub }),
            Err(error) => {
                // The log is open but unusable: release sled's lock before reporting.
                if let OpenLog::Sled(store) = store {
                    if let Err(close) = store.close() {
                        tracing::warn!(error = %close, "cannot close the event log");
                    }
                }
                Err(error.into())
            }
        }
    })
    .await
    .map_err(|e| StartError::Task(e.to_string()))?
}

/// Closes the log (sled: flushes and releases its file lock; PostgreSQL: every append was
/// committed when answered, so only the connections go). Call it after every user of the hub
/// has stopped: a write to a closed sled log fails as `Closed`.
pub async fn close(store: OpenLog) -> anyhow::Result<()> {
    match store {
        OpenLog::Sled(store) => tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(|e| anyhow::anyhow!("a background task failed: {e}"))?
            .map_err(|e| anyhow::anyhow!("cannot close the event log: {e}")),
        OpenLog::Postgres(log) => {
            drop(log);
            Ok(())
        }
    }
}

/// The alert outboxes `serve` runs (one per configured sink), and how to stop them.
#[derive(Debug)]
pub struct AlertTasks {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), wagate_app::OutboxError>>>,
    watcher: tokio::task::JoinHandle<()>,
}

/// How often the review watcher looks for messages with no settled status.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts an outbox for each sink `settings` configures; `public_url` is the base of the ops
/// page's links.
pub fn spawn_alerts(
    hub: &Hub,
    settings: &crate::settings::AlertSettings,
    public_url: &str,
) -> AlertTasks {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let outbox = wagate_app::OutboxSettings::default();
    if let Some(url) = &settings.discord_url {
        let sink = crate::alerts::DiscordSink::new(url.clone(), public_url);
        tasks.push(tokio::spawn(wagate_app::run_outbox(
            hub.clone(),
            sink,
            outbox,
            shutdown.clone(),
        )));
    }
    if let Some(webhook) = &settings.webhook {
        let sink = crate::alerts::SignedWebhookSink::new(
            webhook.url.clone(),
            webhook.secret.clone(),
            public_url,
        );
        tasks.push(tokio::spawn(wagate_app::run_outbox(
            hub.clone(),
            sink,
            outbox,
            shutdown,
        )));
    }
    let watcher = tokio::spawn(watch_overdue(
        hub.clone(),
        Watched {
            no_terminal_status_after: settings.no_terminal_status_after,
            webhook_silence_after: settings.webhook_silence_after,
        },
        stop.subscribe(),
    ));
    AlertTasks {
        stop,
        tasks,
        watcher,
    }
}

/// The review watcher's delays.
#[derive(Debug, Clone, Copy)]
struct Watched {
    no_terminal_status_after: chrono::TimeDelta,
    webhook_silence_after: chrono::TimeDelta,
}

/// Raises `no_terminal_status` and `webhook_silence` items every [`WATCH_EVERY`] until told to
/// stop; a failed sweep is logged and tried again at the next tick.
async fn watch_overdue(
    hub: Hub,
    watched: Watched,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(WATCH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        match hub
            .raise_webhook_silence(watched.webhook_silence_after)
            .await
        {
            Ok(Some(item)) => {
                tracing::warn!(
                    item,
                    "no status callbacks while messages wait: raised for review"
                )
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "the webhook-silence sweep failed"),
        }
        match hub.raise_overdue(watched.no_terminal_status_after).await {
            Ok(raised) if !raised.is_empty() => {
                tracing::warn!(
                    items = raised.len(),
                    "messages with no final status raised for review"
                )
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "the no-terminal-status sweep failed"),
        }
    }
}

impl AlertTasks {
    /// Stops the outboxes (an alert being sent finishes first) and reports how each ended.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.watcher.await {
            tracing::error!(%error, "review watcher task failed");
        }
        for task in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "alert outbox stopped with an error"),
                Err(error) => tracing::error!(%error, "alert outbox task failed"),
            }
        }
    }
}

/// The outgoing event webhooks' deliveries (`wagate_app::run_deliveries`, one follower per
/// registered endpoint), and how to stop them.
#[derive(Debug)]
pub struct EventWebhookTasks {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts delivering to the registered endpoints (new ones are picked up as they are
/// registered); an endpoint failing continuously for `disable_after` is disabled.
pub fn spawn_event_webhooks(hub: &Hub, disable_after: chrono::TimeDelta) -> EventWebhookTasks {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(wagate_app::run_deliveries(
        hub.clone(),
        Arc::new(crate::event_webhooks::HttpTransport::new()),
        wagate_app::DeliverySettings {
            disable_after,
            ..wagate_app::DeliverySettings::default()
        },
        shutdown,
    ));
    EventWebhookTasks { stop, task }
}

impl EventWebhookTasks {
    /// Stops the deliveries (a request in flight finishes first).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "event webhook task failed");
        }
    }
}
