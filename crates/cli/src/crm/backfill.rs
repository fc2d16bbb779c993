//! `wagate crm backfill --from POSITION`: mirrors the log into HubSpot again from a position.
//!
//! - `--hub URL`: asks the running hub (`POST /v1/crm/backfill`, an operator token): its mirror
//!   re-reads from the position beside the live one ([`super::live`]).
//! - `--data DIR`: on a stopped database, from the position to its head, then exits. The same
//!   handler and the same links file as `serve`'s mirror: what is already in HubSpot is patched,
//!   never created again. Its progress is checkpointed (`crm:hubspot:backfill`), so an
//!   interrupted backfill run again with the same `--from` repeats only idempotent patches.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio::sync::watch;
use wagate_app::{Follower, FollowerSettings, Handler, Hub, Step, StepError};

use super::{follower_settings, mirror, CrmError};
use crate::client::{Answer, HubClient};

/// The offline backfill's own checkpoint: `serve`'s mirror's is left alone.
const BACKFILL_CHECKPOINT: &str = "crm:hubspot:backfill";

/// Consecutive failed steps after which a backfill stops (the live mirror keeps going).
const MAX_FAILURES: u32 = 10;

#[derive(Debug, clap::Subcommand)]
pub enum CrmArgs {
    /// Mirror the log into HubSpot again from POSITION (inclusive) to the head: on a running
    /// hub (--hub, an operator token), or on a database no hub holds (--data; stop `serve`
    /// first; needs WAGATE_HUBSPOT_TOKEN).
    #[command(
        after_help = "Examples:\n  wagate crm backfill --from 1 --hub http://127.0.0.1:8080 --token $OPERATOR_TOKEN\n  WAGATE_HUBSPOT_TOKEN=op://ops/hubspot/token wagate crm backfill --from 1 --data ./wagate-data"
    )]
    #[command(group(clap::ArgGroup::new("target").required(true).args(["hub", "data"])))]
    Backfill {
        /// The first log position to mirror (1 is the beginning).
        #[arg(long = "from", value_name = "POSITION")]
        from: u64,
        /// The running hub's base URL: its mirror does the backfill.
        #[arg(long, value_name = "URL")]
        hub: Option<String>,
        /// The hub's operator token (with --hub).
        #[arg(
            long,
            env = "WAGATE_API_TOKEN",
            value_name = "TOKEN",
            hide_env_values = true,
            requires = "hub"
        )]
        token: Option<String>,
        /// The stopped hub's database directory.
        #[arg(long, value_name = "DIR", conflicts_with = "hub")]
        data: Option<PathBuf>,
        /// A TOML config file (as `serve --config`; with --data).
        #[arg(long, value_name = "FILE", conflicts_with = "hub")]
        config: Option<PathBuf>,
    },
}

/// How far a [`catch_up`] goes and how it retries.
pub(super) struct CatchUp<'a> {
    /// Stop once this position is handled (`u64::MAX`: at the head).
    pub to: u64,
    pub settings: FollowerSettings,
    /// Told each position reached.
    pub progress: &'a (dyn Fn(u64) + Sync),
}

/// Steps `follower` until it reaches `to` or the head: `Some(position reached)`, or `None`
/// when `shutdown` turned true first. Failures are retried with the follower's backoff (or
/// HubSpot's asked wait); after [`MAX_FAILURES`] in a row it gives up.
pub(super) async fn catch_up<H: Handler>(
    hub: &Hub,
    follower: &mut Follower,
    handler: &mut H,
    until: CatchUp<'_>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<u64>> {
    let mut failures = 0u32;
    while follower.position() < until.to {
        if *shutdown.borrow() {
            return Ok(None);
        }
        match follower.step(hub, handler).await {
            Ok(Step::Idle) => break,
            Ok(Step::Advanced { to, .. }) => {
                failures = 0;
                (until.progress)(to);
            }
            Err(error) => {
                failures += 1;
                if failures >= MAX_FAILURES {
                    anyhow::bail!(
                        "backfill stopped at position {} after {failures} failures: {error}",
                        follower.position()
                    );
                }
                let asked = match &error {
                    StepError::Handler(failure) => failure.retry_after,
                    _ => None,
                };
                let delay = until.settings.backoff(failures).max(
                    asked
                        .unwrap_or_default()
                        .min(until.settings.max_retry_after),
                );
                tracing::warn!(position = follower.position(), ?delay, %error, "backfill step failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    Ok(Some(follower.position()))
}

pub async fn run(args: CrmArgs) -> anyhow::Result<ExitCode> {
    let CrmArgs::Backfill {
        from,
        hub,
        token,
        data,
        config,
    } = args;
    if from == 0 {
        anyhow::bail!("--from must be a log position, 1 or more");
    }
    match (hub, data) {
        (Some(hub), _) => online(from, &hub, token).await,
        (None, Some(data)) => offline(from, data, config).await,
        // clap's group requires one of them.
        (None, None) => {
            anyhow::bail!("give --hub URL (a running hub) or --data DIR (a stopped one)")
        }
    }
}

/// Asks the running hub's mirror.
async fn online(from: u64, hub: &str, token: Option<String>) -> anyhow::Result<ExitCode> {
    let client = HubClient::new(hub, token)?;
    let what = "a CRM backfill (POST /v1/crm/backfill)";
    let body = wagate_api::CrmBackfillRequest { from };
    let Answer::Ok(answer) = client
        .post(&["v1", "crm", "backfill"], &[], &[], &body, what)
        .await?
    else {
        anyhow::bail!("the hub refused {what} with 422");
    };
    let scheduled: wagate_api::CrmBackfillScheduled =
        serde_json::from_value(answer).map_err(|error| {
            anyhow::anyhow!("the hub's answer to {what} is not what this wagate expects: {error}")
        })?;
    println!(
        "backfill scheduled on {}: positions {}..={} are mirrored again by the running hub (its log says when it is done)",
        client.base(),
        scheduled.from,
        scheduled.to
    );
    Ok(ExitCode::SUCCESS)
}

/// Mirrors a stopped database's log itself.
async fn offline(from: u64, data: PathBuf, config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    if !data.is_dir() {
        anyhow::bail!("--data {}: no such database directory", data.display());
    }
    let settings = crate::settings::crm_settings(config.as_deref(), &data)?
        .ok_or_else(|| anyhow::anyhow!("WAGATE_HUBSPOT_TOKEN is not set: nothing to mirror to"))?;
    let crate::compose::Opened { store, hub } = crate::compose::open(
        &data,
        &crate::settings::StoreSetting::default(),
        wagate_domain::Policy::default(),
    )
    .await?;
    let result = async {
        let head = hub.head_position();
        if from > head.saturating_add(1) {
            anyhow::bail!("--from {from} is past the log's head ({head})");
        }
        hub.save_checkpoint(BACKFILL_CHECKPOINT, from - 1).await?;
        let mut handler = mirror(&settings).map_err(|e: CrmError| anyhow::anyhow!(e))?;
        let settings = follower_settings();
        let mut follower = Follower::durable(&hub, BACKFILL_CHECKPOINT, settings)?;
        // Never told to stop: the backfill ends at the head.
        let (_never, shutdown) = watch::channel(false);
        let progress = |position: u64| tracing::info!(position, "backfill progress");
        let reached = catch_up(
            &hub,
            &mut follower,
            &mut handler,
            CatchUp {
                to: u64::MAX,
                settings,
                progress: &progress,
            },
            shutdown,
        )
        .await?
        .unwrap_or(follower.position());
        let counts = handler.counts;
        println!(
            "backfill: positions {from}..={reached} mirrored; {} HubSpot records created, {} updated, {} refused (see `wagate review`)",
            counts.created,
            counts.updated,
            counts.refused
        );
        Ok(ExitCode::SUCCESS)
    }
    .await;
    crate::compose::close(store).await?;
    result
}
