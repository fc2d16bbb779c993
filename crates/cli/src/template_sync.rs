//! The template status poller: every `WAGATE_TEMPLATE_SYNC_SECONDS` (default 300; 0 turns it
//! off) it reads every template's status from the configured providers and records what changed
//! (`wagate_http::templates::sync`). Twilio sends no callback for approvals, so this is how a
//! Twilio template becomes approved (or paused) in wagate; for Meta it backs up the
//! `message_template_status_update` webhook. A 429, a 5xx or no answer doubles the wait (up to
//! an hour, at least the provider's `Retry-After`).

use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use wagate_http::Server;
use wagate_providers::templates::TemplateClients;

pub const DEFAULT_SECONDS: u64 = 300;
/// The longest wait after repeated throttling.
const BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// The interval from `WAGATE_TEMPLATE_SYNC_SECONDS`; `None` when it is 0.
pub fn interval() -> anyhow::Result<Option<Duration>> {
    let seconds = match std::env::var("WAGATE_TEMPLATE_SYNC_SECONDS") {
        Ok(raw) if !raw.trim().is_empty() => raw.trim().parse::<u64>().context(
            "WAGATE_TEMPLATE_SYNC_SECONDS: expected whole seconds (0 turns the poll off)",
        )?,
        _ => DEFAULT_SECONDS,
    };
    Ok((seconds > 0).then(|| Duration::from_secs(seconds)))
}

/// The wait before the next poll: the interval after a success; after `failures` throttled
/// polls in a row, the interval doubled per failure, at least `retry_after`, at most an hour.
pub fn next_delay(every: Duration, failures: u32, retry_after: Option<Duration>) -> Duration {
    if failures == 0 {
        return every;
    }
    let doubled = every.saturating_mul(2_u32.saturating_pow(failures.min(16)));
    doubled
        .max(retry_after.unwrap_or_default())
        .min(BACKOFF_MAX.max(every))
}

/// Starts the poller when a template API is configured and the interval is not 0; it stops
/// when `stop` turns true.
pub fn spawn(
    server: &Server,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let clients = server.templates().clone();
    let Some(every) = interval()? else {
        return Ok(None);
    };
    if clients.is_empty() {
        return Ok(None);
    }
    let hub = server.hub().clone();
    Ok(Some(tokio::spawn(run(hub, clients, every, stop))))
}

async fn run(
    hub: wagate_app::Hub,
    clients: TemplateClients,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0_u32;
    loop {
        let mut retry_after = None;
        match wagate_http::templates::sync(&hub, &clients).await {
            Ok(summary) => {
                failures = 0;
                if summary.changed > 0 || summary.imported > 0 {
                    tracing::info!(
                        listed = summary.listed,
                        imported = summary.imported,
                        changed = summary.changed,
                        "template statuses synced"
                    );
                }
            }
            Err(wagate_http::templates::SyncError::Provider(error)) if error.is_throttled() => {
                failures = failures.saturating_add(1);
                retry_after = error.retry_after();
                tracing::warn!(%error, failures, "template sync throttled; backing off");
            }
            Err(error) => {
                // A refusal (bad credentials, a wrong WABA id) will not heal by polling faster;
                // it is retried at the normal interval and logged each time.
                failures = 0;
                tracing::warn!(%error, "template sync failed");
            }
        }
        let delay = next_delay(every, failures, retry_after);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_honours_retry_after_and_is_capped() {
        let every = Duration::from_secs(60);
        assert_eq!(next_delay(every, 0, None), every);
        assert_eq!(next_delay(every, 1, None), Duration::from_secs(120));
        assert_eq!(next_delay(every, 3, None), Duration::from_secs(480));
        assert_eq!(
            next_delay(every, 1, Some(Duration::from_secs(900))),
            Duration::from_secs(900)
        );
        assert_eq!(next_delay(every, 30, None), BACKOFF_MAX);
        // An interval above the cap is never shortened by a failure.
        let long = Duration::from_secs(7200);
        assert_eq!(next_delay(long, 2, None), long);
    }
}
