//! `wagate webhooks retry`: asks the running hub to verify again, with its current keys and
//! public URL, the webhooks its rejection log kept, and to ingest the genuine ones
//! (`POST /v1/webhooks/retry-rejected`). The hub does the work so that a retried webhook takes
//! exactly the path a new one takes (signature, parse, de-duplicated append) and the running
//! hub stays the store's only writer.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use wagate_api as api;

use crate::client::{Answer, HubClient};
use crate::ops::Common;

#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCommand {
    /// Verify again the webhooks the hub rejected (for example after fixing WAGATE_PUBLIC_URL)
    /// and ingest the genuine ones, each once.
    #[command(
        after_help = "Needs an operator token. A request already ingested is counted as a duplicate; what was ingested or found a duplicate is not retried again; what is still refused stays in the rejection log for a later retry.\n\nExample:\n  wagate webhooks retry --hub http://127.0.0.1:8080"
    )]
    Retry(RetryArgs),
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    #[command(flatten)]
    common: Common,
}

pub async fn run(command: WebhooksCommand) -> anyhow::Result<ExitCode> {
    let WebhooksCommand::Retry(args) = command;
    let client = HubClient::from_args(&args.common.hub)?;
    let what = "POST /v1/webhooks/retry-rejected";
    let body = match client
        .post(&["v1", "webhooks", "retry-rejected"], &[], &[], &(), what)
        .await?
    {
        Answer::Ok(body) => body,
        Answer::Refused(refusal) => bail!("{what} was refused: {}", refusal.message),
    };
    if args.common.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let summary: api::RetryRejectedSummary = serde_json::from_value(body)
        .with_context(|| format!("the hub's answer to {what} is not what this wagate expects"))?;
    println!(
        "retried {}: {} ingested, {} duplicates, {} still rejected",
        summary.retried, summary.ingested, summary.duplicates, summary.still_rejected
    );
    Ok(ExitCode::SUCCESS)
}
