//! The mirror `serve` runs, and the backfills an operator asks of it while it runs
//! (`POST /v1/crm/backfill`, `wagate crm backfill --hub URL`).
//!
//! One handler ([`Mirror`], with its links file and HubSpot client) is shared by two readers of
//! the log: the live follower (durable checkpoint `crm:hubspot`, never moved backwards) and at
//! most one backfill follower (in memory, from the asked position to the head as it was when
//! asked). Each batch is handled under the handler's lock, so the links file has one writer and
//! a record the backfill finds linked is patched, never created again; what the backfill
//! re-reads is mirrored from the message's and the contact's current state, so reading old
//! events after newer ones rolls nothing back. The backfill's progress is not saved: a restart
//! ends it, and asking again repeats only idempotent patches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use wagate_api::CrmBackfillScheduled;
use wagate_app::{Follower, FollowerSettings, Handler, HandlerFailure, Hub, LoggedEvent};
use wagate_http::crm::{BackfillRefusal, CrmBackfills};

use super::backfill::{catch_up, CatchUp};
use super::mirror::Mirror;

/// The backfill follower's name (for the logs; its checkpoint is kept in memory).
const BACKFILL: &str = "crm:hubspot:live-backfill";

/// Smaller batches than the live follower's: the live mirror waits for the lock at most one
/// batch of the backfill.
const BACKFILL_BATCH: usize = 16;

/// The handler shared by the live follower and a backfill.
#[derive(Debug, Clone)]
pub struct Shared(Arc<tokio::sync::Mutex<Mirror>>);

impl Handler for Shared {
    async fn handle(&mut self, hub: &Hub, events: &[LoggedEvent]) -> Result<(), HandlerFailure> {
        self.0.lock().await.handle(hub, events).await
    }
}

/// The backfill running now.
#[derive(Debug)]
struct Running {
    scheduled: CrmBackfillScheduled,
    /// The last position it handled.
    at: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

/// The running mirror, as the HTTP face's [`CrmBackfills`].
#[derive(Debug)]
pub struct LiveMirror {
    hub: Hub,
    handler: Shared,
    settings: FollowerSettings,
    shutdown: watch::Receiver<bool>,
    /// False once the live follower stopped (gave up, or `serve` is stopping).
    alive: AtomicBool,
    running: Mutex<Option<Running>>,
}

impl LiveMirror {
    pub fn new(
        hub: Hub,
        handler: Mirror,
        settings: FollowerSettings,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        LiveMirror {
            hub,
            handler: Shared(Arc::new(tokio::sync::Mutex::new(handler))),
            settings,
            shutdown,
            alive: AtomicBool::new(true),
            running: Mutex::new(None),
        }
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn handler(&self) -> Shared {
        self.handler.clone()
    }

    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    fn running(&self) -> MutexGuard<'_, Option<Running>> {
        // Nothing panics while holding it; a poisoned slot is still a consistent one.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live follower stopped: no new backfill, and the running one is awaited.
    pub async fn stopped(&self) {
        self.alive.store(false, Ordering::Release);
        let running = self.running().take();
        if let Some(running) = running {
            let _ = running.task.await;
        }
    }
}

impl CrmBackfills for LiveMirror {
    fn start_backfill(&self, from: u64) -> Result<CrmBackfillScheduled, BackfillRefusal> {
        if !self.alive.load(Ordering::Acquire) || *self.shutdown.borrow() {
            return Err(BackfillRefusal::Stopped(
                "the HubSpot mirror is not running (it stopped on HubSpot failures, or the hub is stopping); restart serve".into(),
            ));
        }
        let head = self.hub.head_position();
        if from == 0 {
            return Err(BackfillRefusal::Position(
                "from must be a log position, 1 or more".into(),
            ));
        }
        if from > head.saturating_add(1) {
            return Err(BackfillRefusal::Position(format!(
                "from {from} is past the log's head ({head})"
            )));
        }
        let mut slot = self.running();
        if let Some(running) = slot.as_ref().filter(|r| !r.task.is_finished()) {
            return Err(BackfillRefusal::Running {
                running: running.scheduled.clone(),
                at: running.at.load(Ordering::Acquire),
            });
        }
        let scheduled = CrmBackfillScheduled { from, to: head };
        let at = Arc::new(AtomicU64::new(from - 1));
        let task = tokio::spawn(backfill(
            self.hub.clone(),
            self.handler.clone(),
            FollowerSettings {
                batch: BACKFILL_BATCH,
                ..self.settings
            },
            scheduled.clone(),
            Arc::clone(&at),
            self.shutdown.clone(),
        ));
        tracing::info!(from, to = head, "CRM backfill scheduled");
        *slot = Some(Running {
            scheduled: scheduled.clone(),
            at,
            task,
        });
        Ok(scheduled)
    }
}

async fn backfill(
    hub: Hub,
    mut handler: Shared,
    settings: FollowerSettings,
    scheduled: CrmBackfillScheduled,
    at: Arc<AtomicU64>,
    shutdown: watch::Receiver<bool>,
) {
    let mut follower = Follower::in_memory_after(BACKFILL, scheduled.from - 1, settings);
    let reached = catch_up(
        &hub,
        &mut follower,
        &mut handler,
        CatchUp {
            to: scheduled.to,
            settings,
            progress: &|position| at.store(position, Ordering::Release),
        },
        shutdown,
    )
    .await;
    match reached {
        Ok(Some(position)) => {
            tracing::info!(
                from = scheduled.from,
                to = position,
                "CRM backfill finished"
            )
        }
        Ok(None) => tracing::info!(
            from = scheduled.from,
            at = follower.position(),
            "CRM backfill stopped with the hub; ask again after the restart"
        ),
        Err(error) => tracing::error!(%error, "CRM backfill stopped"),
    }
}
