//! `wagate healthcheck`: GET a URL (the hub's `/readyz` by default) and exit 0 on 200, else 1
//! with the reason. It exists so that a container image needs no curl or wget for its
//! `HEALTHCHECK` (deploy/container/Containerfile), and so a systemd host can wait for readiness
//! with the binary it already has.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

/// How much of a non-200 body is echoed: enough for `/readyz`'s reason, never a flood.
const BODY_ECHO_LIMIT: usize = 512;

#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// The URL to GET; healthy means it answers 200.
    #[arg(
        long,
        env = "WAGATE_HEALTHCHECK_URL",
        default_value = "http://127.0.0.1:8080/readyz"
    )]
    url: String,

    /// Give up (unhealthy) after this many seconds without a complete answer.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout_seconds: u64,
}

pub async fn run(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let url = reqwest::Url::parse(&args.url)
        .with_context(|| format!("--url {:?} is not a URL", args.url))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_seconds))
        // A health check follows nothing: a redirect would report on some other service.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client")?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("unhealthy: GET {url} failed"))?;
    let status = response.status();
    if status == reqwest::StatusCode::OK {
        println!("healthy: {url} answered {status}");
        return Ok(ExitCode::SUCCESS);
    }
    // The body carries the reason (`/readyz`: "store failed: …" or "draining").
    let body = response.text().await.unwrap_or_default();
    let body = match body.char_indices().nth(BODY_ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body,
    };
    anyhow::bail!("unhealthy: {url} answered {status}: {}", body.trim())
}
