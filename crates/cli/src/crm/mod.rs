//! The HubSpot timeline: a durable follower of the log (`wagate_app::Follower`, checkpoint
//! `crm:hubspot`) whose handler mirrors each contact's WhatsApp conversation into HubSpot
//! ([`mirror`]), with its own durable record of what became which HubSpot object ([`links`]).
//!
//! `serve` runs it when `WAGATE_HUBSPOT_TOKEN` is set, starting at the head the first time (the
//! history is a backfill's). A backfill mirrors the log again from a position with the same
//! handler and the same links, so nothing already mirrored is created twice: on a running hub
//! (`POST /v1/crm/backfill`, `wagate crm backfill --hub URL`) its mirror does it beside the
//! live follower ([`live`]); `wagate crm backfill --data DIR` does it on a stopped database.

mod backfill;
pub mod links;
pub mod live;
pub mod mirror;
mod render;

use std::time::Duration;

use std::sync::Arc;

use tokio::sync::watch;
use wagate_app::{Follower, FollowerError, FollowerSettings, Hub};
use wagate_providers::hubspot::HubSpotClient;

pub use backfill::{run as backfill, CrmArgs};

use crate::settings::CrmSettings;
use live::LiveMirror;
use mirror::{Mirror, MirrorOptions};

/// The follower's checkpoint name.
pub const CHECKPOINT: &str = "crm:hubspot";

/// How long one HubSpot request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// The follower's retry bounds: HubSpot outages and rate limits are waited out (a 429's wait
/// up to ten minutes: the daily limit), never skipped; after this many consecutive failures the
/// mirror stops and says so.
fn follower_settings() -> FollowerSettings {
    FollowerSettings {
        batch: 64,
        max_attempts: 1_000,
        ..FollowerSettings::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    #[error("cannot start the HubSpot mirror: {0}")]
    Start(String),
    #[error(transparent)]
    Stopped(#[from] FollowerError),
}

/// The handler for `settings`.
pub fn mirror(settings: &CrmSettings) -> Result<Mirror, CrmError> {
    let client = HubSpotClient::new(&settings.api_base, settings.token.clone(), REQUEST_TIMEOUT)
        .map_err(|error| CrmError::Start(error.to_string()))?;
    let links = links::Links::open(&settings.state_file)
        .map_err(|error| CrmError::Start(error.to_string()))?;
    Ok(Mirror::new(
        client,
        MirrorOptions::from_settings(settings),
        links,
    ))
}

/// The mirror `serve` runs (not yet following: [`run`] does), as the HTTP face's backfill
/// handle too.
pub fn live(
    hub: Hub,
    settings: &CrmSettings,
    shutdown: watch::Receiver<bool>,
) -> Result<Arc<LiveMirror>, CrmError> {
    let handler = mirror(settings)?;
    Ok(Arc::new(LiveMirror::new(
        hub,
        handler,
        follower_settings(),
        shutdown,
    )))
}

/// Runs the mirror until its shutdown turns true. With no checkpoint yet it starts at the head.
/// A backfill still running is awaited (it stops at the same shutdown).
pub async fn run(live: Arc<LiveMirror>) -> Result<(), CrmError> {
    let result = follow(&live).await;
    live.stopped().await;
    result
}

async fn follow(live: &LiveMirror) -> Result<(), CrmError> {
    let hub = live.hub().clone();
    let start = |error: wagate_app::AppError| CrmError::Start(error.to_string());
    if hub.checkpoint(CHECKPOINT).map_err(start)?.is_none() {
        hub.save_checkpoint(CHECKPOINT, hub.head_position())
            .await
            .map_err(start)?;
    }
    let follower = Follower::durable(&hub, CHECKPOINT, follower_settings()).map_err(start)?;
    tracing::info!(from = follower.position(), "HubSpot mirror started");
    if let Err(error) = follower.run(hub, live.handler(), live.shutdown()).await {
        // Said at once, not only when `serve` stops: the timeline is no longer updated.
        tracing::error!(%error, "the HubSpot mirror stopped; restart serve once HubSpot answers");
        return Err(error.into());
    }
    Ok(())
}
