//! The campaign runner: one task over every running campaign (`run_campaigns`), spawned by the
//! binary's composition and stopped by its shutdown watch.
//!
//! Progress is the campaign stream itself (each row's outcome is appended with its send), so
//! the runner holds no state worth saving: after a restart it reads the index, finds the running
//! campaigns and goes on at their next unprocessed row; two hubs running the same campaign
//! conflict on the stream's version and process each row once. Rows are paced at the sender's
//! rate (its registration's `SenderRate`, as the dispatcher holds it); a row the messaging limit
//! holds (`on_limit: wait`) waits until the earliest reach of the rolling 24 h expires, in
//! bounded sleeps that a pause, a cancel or the shutdown cut short.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info};
use wagate_domain::{Actor, CampaignId, SenderState, StreamKey};

use crate::campaigns::RowStep;
use crate::hub::Hub;

/// How the runner paces and bounds itself.
#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    /// The longest sleep: the runner looks at the campaigns at least this often (a pause, a
    /// cancel or a new start is noticed within it; the head subscription wakes it sooner).
    pub max_sleep: Duration,
    /// Rows processed for one campaign before the runner looks at the others.
    pub batch: u32,
    /// The wait after an error (the log unavailable, busy): doubled up to `max_sleep`.
    pub error_backoff: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            max_sleep: Duration::from_secs(1),
            batch: 100,
            error_backoff: Duration::from_millis(200),
        }
    }
}

/// What the runner keeps per running campaign (derived; rebuilt after a restart).
#[derive(Debug)]
struct Pace {
    /// When its next row may be sent (the sender's rate).
    next_at: tokio::time::Instant,
    /// The time between two rows.
    interval: Duration,
    /// Who its rows are recorded as asked by: the operator who started it.
    actor: Option<Actor>,
}

/// Runs every running campaign until `shutdown` turns true.
pub async fn run_campaigns(
    hub: Hub,
    settings: RunnerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut head = hub.subscribe();
    let mut paces: HashMap<CampaignId, Pace> = HashMap::new();
    let mut backoff = settings.error_backoff;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let sleep = match step(&hub, &settings, &mut paces).await {
            Ok(sleep) => {
                backoff = settings.error_backoff;
                sleep
            }
            Err(error) => {
                error!(%error, "campaign runner: a step failed; trying again");
                backoff = (backoff * 2).min(settings.max_sleep);
                backoff
            }
        };
        if sleep.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep.min(settings.max_sleep)) => {}
            _ = head.changed() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Processes the rows that are due; answers how long to sleep before the next is.
async fn step(
    hub: &Hub,
    settings: &RunnerSettings,
    paces: &mut HashMap<CampaignId, Pace>,
) -> crate::Result<Duration> {
    let running = hub.running_campaigns()?;
    paces.retain(|id, _| {
        running
            .iter()
            .any(|state| state.definition.as_ref().is_some_and(|d| d.id == *id))
    });
    let mut sleep = settings.max_sleep;
    for state in running {
        let Some(definition) = state.definition.clone() else {
            continue;
        };
        let id = definition.id;
        let pace = match paces.entry(id) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let rate = hub
                    .load::<SenderState>(&StreamKey::Sender(definition.sender.clone()))?
                    .state
                    .registration
                    .map_or(1, |registration| registration.rate_per_second().max(1));
                entry.insert(Pace {
                    next_at: tokio::time::Instant::now(),
                    interval: Duration::from_secs(1) / rate,
                    actor: hub.campaign_starter(id)?,
                })
            }
        };
        let acting = match &pace.actor {
            Some(actor) => hub.acting(actor.clone()),
            None => hub.clone(),
        };
        for _ in 0..settings.batch {
            let now = tokio::time::Instant::now();
            if pace.next_at > now {
                break;
            }
            match acting.process_campaign_row(id).await? {
                RowStep::Sent | RowStep::Refused => {
                    pace.next_at = pace.next_at.max(now - pace.interval) + pace.interval;
                }
                RowStep::Held(until) => {
                    let wait = until
                        .and_then(|until| (until - hub.now()).to_std().ok())
                        .unwrap_or(settings.max_sleep)
                        .min(settings.max_sleep);
                    pace.next_at = now + wait;
                    break;
                }
                RowStep::Withdrawn => break,
                RowStep::Finished => {
                    info!(campaign = %id, "campaign completed");
                    break;
                }
            }
        }
        sleep = sleep.min(
            pace.next_at
                .saturating_duration_since(tokio::time::Instant::now()),
        );
    }
    Ok(sleep)
}
