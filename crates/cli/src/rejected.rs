//! `wagate webhooks retry`: asks the running hub to verify again, with its current keys and
//! public URL, the webhooks its rejection log kept, and to ingest the genuine ones
//! (`POST /v1/webhooks/retry-rejected`). The hub does the work so that a retried webhook takes
//! exactly the path a new one takes (signature, parse, de-duplicated append) and the running
//! hub stays the store's only writer.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
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

/// The file earlier versions wrote rejected webhooks to, inside the data directory.
const LEGACY_LOG: &str = "webhook-audit.jsonl";

/// An earlier version's rejection log in the data directory is neither moved nor deleted (it may
/// be evidence someone wants), but it is made private (it was 0644) and named, once per start,
/// so the operator can move it out of sled's folder; its lines are not retried.
pub fn tighten_legacy_log(data: &Path) {
    let path = data.join(LEGACY_LOG);
    if !path.exists() {
        return;
    }
    if let Err(error) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(path = %path.display(), %error, "cannot make the old webhook audit log private");
    }
    tracing::warn!(
        path = %path.display(),
        "an earlier wagate's webhook audit log is in the data directory: move it out or delete it \
         (rejected webhooks now go to the rejection log beside the data directory; this file is \
         not retried)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_audit_log_in_the_data_directory_is_made_private_and_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(LEGACY_LOG);
        std::fs::write(&path, "{}\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        tighten_legacy_log(dir.path());
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}\n");
        // Nothing to do, and no file created, when there is none.
        let empty = tempfile::tempdir().expect("dir");
        tighten_legacy_log(empty.path());
        assert!(!empty.path().join(LEGACY_LOG).exists());
    }
}
