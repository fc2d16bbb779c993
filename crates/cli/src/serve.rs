//! `wagate serve`: the hub (webhooks, command API, event feed, health, metrics) on one address.
//!
//! Prints, once, on stdout: the bound address, the public URL, the mode, and any secret it
//! generated (sandbox mode). Runs until Ctrl-C or SIGTERM, then shuts down gracefully: stops
//! accepting, lets open requests finish, closes the store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use wagate_http::{Flags, ServeConfig, Server};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Environment: WAGATE_PUBLIC_URL (base URL providers call; default \
http://<listen>), WAGATE_API_TOKEN, WAGATE_TWILIO_ACCOUNT_SID, WAGATE_TWILIO_AUTH_TOKEN, \
WAGATE_META_APP_SECRET, WAGATE_META_VERIFY_TOKEN, WAGATE_META_ACCESS_TOKEN (each secret may be an \
op://vault/item/field reference, read with the 1Password CLI), WAGATE_WORKFLOWS (comma list), \
WAGATE_WINDOW_MARGIN_SECONDS, WAGATE_MESSAGING_LIMIT (a number or `unlimited`). With no provider \
secret, serve runs in sandbox mode and prints a generated API token once."
)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "WAGATE_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<String>,

    /// Directory of the event log and the webhook audit log (created if missing).
    #[arg(long, env = "WAGATE_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    /// Optional TOML file with the same settings (lower-case names: listen, data, public_url,
    /// api_token, twilio_auth_token, meta_app_secret, workflows, messaging_limit, …).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let flags = Flags {
        listen: args.listen,
        data: args.data,
        config: args.config,
    };
    let config = ServeConfig::load(&flags)?;
    let server = Server::bind(&config)
        .await
        .context("cannot start the hub")?;

    println!("wagate listening on http://{}", server.local_addr());
    println!("public url: {}", server.public_url());
    println!("data: {}", config.data_dir.display());
    println!(
        "mode: {}",
        if config.providers.is_sandbox() {
            "sandbox (no provider credentials configured)"
        } else {
            "providers"
        }
    );
    // Generated secrets are printed here, once, and never written anywhere else.
    for generated in &config.generated {
        println!("{}: {}", generated.label, generated.value.expose());
    }
    use std::io::Write as _;
    std::io::stdout()
        .flush()
        .context("cannot write to stdout")?;

    // Dispatcher hook: the in-process dispatcher (wagate-dispatch's driver, fed with
    // `server.hub()` and `config.providers`) is spawned here once that crate provides it.
    // Until then, run `wagate dispatch --hub URL` beside the hub.

    server
        .run(shutdown_signal())
        .await
        .context("the hub stopped with an error")?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
