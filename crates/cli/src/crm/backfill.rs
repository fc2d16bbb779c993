//! `wagate crm backfill --from POSITION --data DIR`: mirrors a stopped database's log into
//! HubSpot from a position to its head, then exits. The same handler and the same links file
//! as `serve`'s mirror: what is already in HubSpot is patched, never created again. Its progress
//! is checkpointed (`crm:hubspot:backfill`), so an interrupted backfill run again with the same
//! `--from` repeats only idempotent patches.

use std::path::PathBuf;
use std::process::ExitCode;

use wagate_app::{Follower, Step, StepError};

use super::{follower_settings, mirror, CrmError};

/// The backfill's own checkpoint: `serve`'s mirror's is left alone.
const BACKFILL_CHECKPOINT: &str = "crm:hubspot:backfill";

#[derive(Debug, clap::Subcommand)]
pub enum CrmArgs {
    /// Mirror the log into HubSpot from POSITION (inclusive) to the head, on a database no hub
    /// holds (stop `serve` first), then exit. Needs WAGATE_HUBSPOT_TOKEN.
    #[command(
        after_help = "Example:\n  WAGATE_HUBSPOT_TOKEN=op://ops/hubspot/token wagate crm backfill --from 1 --data ./wagate-data"
    )]
    Backfill {
        /// The first log position to mirror (1 is the beginning).
        #[arg(long = "from", value_name = "POSITION")]
        from: u64,
        /// The stopped hub's database directory.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// A TOML config file (as `serve --config`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

pub async fn run(args: CrmArgs) -> anyhow::Result<ExitCode> {
    let CrmArgs::Backfill { from, data, config } = args;
    if from == 0 {
        anyhow::bail!("--from must be a log position, 1 or more");
    }
    if !data.is_dir() {
        anyhow::bail!("--data {}: no such database directory", data.display());
    }
    let settings = crate::settings::crm_settings(config.as_deref(), &data)?
        .ok_or_else(|| anyhow::anyhow!("WAGATE_HUBSPOT_TOKEN is not set: nothing to mirror to"))?;
    let crate::compose::Opened { store, hub } = crate::compose::open(
        &data,
        &crate::settings::StoreSetting::Sled,
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
        let mut failures = 0u32;
        loop {
            match follower.step(&hub, &mut handler).await {
                Ok(Step::Idle) => break,
                Ok(Step::Advanced { to, .. }) => {
                    failures = 0;
                    tracing::info!(position = to, "backfill progress");
                }
                Err(error) => {
                    failures += 1;
                    if failures >= 10 {
                        anyhow::bail!(
                            "backfill stopped at position {} after {failures} failures: {error}",
                            follower.position()
                        );
                    }
                    let asked = match &error {
                        StepError::Handler(failure) => failure.retry_after,
                        _ => None,
                    };
                    let delay = settings
                        .backoff(failures)
                        .max(asked.unwrap_or_default().min(settings.max_retry_after));
                    tracing::warn!(position = follower.position(), ?delay, %error, "backfill step failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
        let counts = handler.counts;
        println!(
            "backfill: positions {from}..={} mirrored; {} HubSpot records created, {} updated, {} refused (see `wagate review`)",
            follower.position(),
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
