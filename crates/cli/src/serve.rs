//! `wagate serve`: the hub (webhooks, command API, event feed, health, metrics) on one address.
//!
//! Prints, once, on stdout: the bound address, the public URL, the mode, and any secret it
//! generated (sandbox mode). Runs until Ctrl-C or SIGTERM, then shuts down gracefully: the
//! dispatcher drains, the server stops accepting and lets open requests finish (for at most
//! WAGATE_SHUTDOWN_GRACE_SECONDS, then their connections are cut), the store closes.
//!
//! The same happens, without a signal, when the event log fails (an I/O error while making a
//! batch durable, e.g. ENOSPC): the log refuses every write from then on, so `serve` drains and
//! exits with [`EXIT_STORE_FAILED`] for a supervisor to restart it; the reopen re-checks what is
//! durable (docs/operations.md, "When the store fails").

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use wagate_http::Server;

use crate::settings::{Providers, ServeConfig, ServeFlags, StoreSetting};
use crate::{compose, outbound, signals};

/// Exit code of `serve` when it stopped because the event log failed (docs/cli.md).
pub const EXIT_STORE_FAILED: u8 = 5;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Environment: WAGATE_PUBLIC_URL (base URL providers call; default \
http://<listen>), the command API's tokens by role: WAGATE_AGENT_TOKEN, WAGATE_OPERATOR_TOKEN \
(WAGATE_API_TOKEN is an operator token too), WAGATE_DISPATCHER_TOKEN, WAGATE_AUDITOR_TOKEN (several \
named tokens per role: [[tokens]] name/role/token tables in the --config file), \
WAGATE_TWILIO_ACCOUNT_SID, WAGATE_TWILIO_AUTH_TOKEN, \
WAGATE_META_APP_SECRET, WAGATE_META_VERIFY_TOKEN, WAGATE_META_ACCESS_TOKEN (each secret may be an \
op://vault/item/field reference, read with the 1Password CLI), WAGATE_WORKFLOWS (comma list), \
WAGATE_WINDOW_MARGIN_SECONDS, WAGATE_MESSAGING_LIMIT (a number or `unlimited`). Connection limits (docs/operations.md): WAGATE_HEADER_READ_TIMEOUT_SECONDS (10), WAGATE_BODY_READ_TIMEOUT_SECONDS (10, between two body chunks), WAGATE_REQUEST_TIMEOUT_SECONDS (30, answered 408), WAGATE_MAX_CONNECTIONS (512; more wait), WAGATE_MAX_HEADER_BYTES (65536; more is answered 431), WAGATE_SHUTDOWN_GRACE_SECONDS (10; open requests are then cut off). With no provider \
secret, serve runs in sandbox mode and prints a generated token per role once. Blank secrets are \
refused, and so are Twilio credentials without WAGATE_PUBLIC_URL and a Meta access token without \
WAGATE_META_APP_SECRET (no webhook could be verified) unless --allow-unverifiable-webhooks."
)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "WAGATE_LISTEN", value_name = "ADDR:PORT")]
    listen: Option<String>,

    /// Directory of the event log, sled's alone (created if missing). The webhook rejection
    /// log is beside it, in `<DIR>.rejected` unless `WAGATE_REJECTED_DIR` says otherwise.
    #[arg(long, env = "WAGATE_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    /// The event log in PostgreSQL instead of sled: a postgres:// URL (also WAGATE_STORE_URL;
    /// the password may be an op:// reference, or come from WAGATE_STORE_PASSWORD). Several
    /// hubs may share one database (docs/operations.md, "Running on PostgreSQL").
    #[arg(long, value_name = "URL")]
    store: Option<String>,

    /// Optional TOML file with the same settings (lower-case names: listen, data, public_url,
    /// api_token, twilio_auth_token, meta_app_secret, workflows, messaging_limit, …).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Do not run the dispatcher inside the hub (run `wagate dispatch --hub URL` instead, which
    /// then holds the provider credentials).
    #[arg(long, env = "WAGATE_NO_DISPATCH")]
    no_dispatch: bool,

    /// Start even when a provider's webhooks cannot be verified (Twilio credentials without
    /// WAGATE_PUBLIC_URL, a Meta access token without WAGATE_META_APP_SECRET). For local testing
    /// only: genuine webhooks, STOPs included, are then refused with 403.
    #[arg(long)]
    allow_unverifiable_webhooks: bool,

    /// The Meta app whose Resumable Upload API takes the sample of a Meta template's media
    /// header (also WAGATE_META_APP_ID, meta_app_id in the file); without it a Meta template
    /// with an image, video or document header is refused.
    #[arg(long, value_name = "APP_ID")]
    meta_app_id: Option<String>,
    /// The cost ledger's price table, a TOML file of `[[prices]]` entries (docs/costs.md;
    /// also WAGATE_PRICE_TABLE, or `price_table` in the --config file). Without one every cost
    /// is reported unpriced.
    #[arg(long, value_name = "FILE")]
    price_table: Option<PathBuf>,
    /// Disable an outgoing webhook endpoint (and raise a review item) after it failed
    /// continuously this many days (also WAGATE_WEBHOOK_DISABLE_AFTER_DAYS; default 3;
    /// fractions accepted).
    #[arg(long, value_name = "DAYS")]
    webhook_disable_after_days: Option<String>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let flags = ServeFlags {
        listen: args.listen,
        data: args.data,
        store: args.store,
        config: args.config,
        allow_unverifiable_webhooks: args.allow_unverifiable_webhooks,
        meta_app_id: args.meta_app_id,
        price_table: args.price_table,
        webhook_disable_after_days: args.webhook_disable_after_days,
    };
    let config = ServeConfig::load(&flags)?;
    for warning in &config.unverifiable {
        // Loud on purpose: this hub refuses genuine webhooks, STOPs included.
        tracing::warn!("UNSAFE, allowed by --allow-unverifiable-webhooks: {warning}");
        eprintln!("WARNING (--allow-unverifiable-webhooks): {warning}");
    }
    crate::rejected::tighten_legacy_log(&config.data_dir);
    let compose::Opened { store, hub } =
        compose::open(&config.data_dir, &config.store, config.policy.clone())
            .await
            .context("cannot start the hub")?;
    let hub = hub.with_price_table(config.prices.clone());
    let mut http_settings = config.http_settings();
    http_settings.templates = templates_for(&config)?;
    // The dispatcher stops first (no new claims, in-flight calls recorded), then the server
    // stops accepting, then the store closes: outcomes are never written to a closed log.
    let (stop_dispatch, dispatch_stopped) = tokio::sync::watch::channel(false);
    // The HubSpot timeline, made before the server so that its backfill route can reach it.
    let crm = match config.crm.as_ref() {
        Some(settings) => {
            match crate::crm::live(hub.clone(), settings, stop_dispatch.subscribe()) {
                Ok(live) => Some(live),
                Err(error) => {
                    // As before the backfill route: serving goes on without the timeline.
                    tracing::error!(%error, "the HubSpot mirror cannot start");
                    None
                }
            }
        }
        None => None,
    };
    http_settings.crm = crm.clone().map(|live| live as wagate_http::crm::CrmHandle);
    let server = match Server::bind(&http_settings, hub).await {
        Ok(server) => server,
        Err(error) => {
            // The mirror holds the hub too: let go of it before the log closes.
            drop((crm, http_settings));
            compose::close(store).await?;
            return Err(error).context("cannot start the hub");
        }
    };

    let mut banner = format!(
        "wagate listening on http://{}\npublic url: {}\n{}\nmode: {}\n",
        server.local_addr(),
        server.public_url(),
        store.describe(&config.data_dir),
        if config.providers.is_sandbox() {
            "sandbox (no provider credentials configured)"
        } else {
            "providers"
        }
    );
    // Generated secrets are printed here, once, and never written anywhere else.
    for generated in &config.generated {
        banner.push_str(&format!(
            "{}: {}\n",
            generated.label,
            generated.value.expose()
        ));
    }
    // Not `println!`, which panics when whoever started the hub stopped reading its stdout (a
    // closed pipe): the hub then died with every connection reset. The banner is for people;
    // serving goes on without it.
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(banner.as_bytes())
        .and_then(|()| stdout.flush())
    {
        tracing::warn!(%error, "cannot write the start-up banner to stdout; serving anyway");
    }
    drop(stdout);

    let dispatcher = if args.no_dispatch {
        None
    } else {
        let providers = providers_for(&config, &server)?;
        // The in-process dispatcher needs no token; what it appends records it as the actor.
        let hub = Arc::new(
            server
                .hub()
                .acting(wagate_domain::Actor::InProcessDispatcher),
        );
        let dispatch_config =
            wagate_dispatch::Config::from_policy(server.hub().policy(), outbound::jitter_seed());
        let mut stopped = dispatch_stopped;
        Some(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            wagate_dispatch::run(
                hub,
                providers,
                dispatch_config,
                wagate_dispatch::DriverOptions::default(),
                Arc::new(wagate_app::SystemClock),
                shutdown,
            )
            .await
        }))
    };
    // The alert outboxes: stopped with the dispatcher, before the log closes.
    let alerts = compose::spawn_alerts(server.hub(), &config.alerts, server.public_url());
    // The outgoing event webhooks: stopped with the alerts, before the log closes.
    let event_webhooks = compose::spawn_event_webhooks(server.hub(), config.webhook_disable_after);
    let template_sync = crate::template_sync::spawn(&server, stop_dispatch.subscribe())?;
    // The campaign runner: stopped with the dispatcher, before the log closes (a row being
    // sent finishes first; the rest resume at the next start).
    let campaigns = tokio::spawn(wagate_app::run_campaigns(
        server.hub().clone(),
        wagate_app::RunnerSettings::default(),
        stop_dispatch.subscribe(),
    ));
    // The consent confirmation templates (a durable follower of form submissions): stopped
    // with the dispatcher, before the log closes; what it had not handled resumes next start.
    let confirmations = tokio::spawn(wagate_app::run_consent_confirmations(
        server.hub().clone(),
        wagate_app::FollowerSettings::default(),
        stop_dispatch.subscribe(),
    ));
    // Several hubs may share a PostgreSQL log: the projection follows what the others append.
    let shared_log = matches!(config.store, StoreSetting::Postgres { .. }).then(|| {
        let hub = server.hub().clone();
        let stop = stop_dispatch.subscribe();
        tokio::spawn(async move { hub.follow_shared_log(stop).await })
    });
    // The HubSpot timeline: stopped with the dispatcher, before the log closes.
    let crm = crm.map(|live| tokio::spawn(crate::crm::run(live)));
    // Twilio's price of each final message: stopped with the dispatcher, before the log closes.
    let twilio_prices = twilio_price_client(&config, &server)?
        .map(|client| crate::twilio_prices::spawn(server.hub(), client, stop_dispatch.subscribe()));
    // Stop on a signal, or once the log has failed: a failed log refuses every write until it is
    // reopened, so staying up would only answer 503 (and /readyz says so meanwhile).
    let mut log_failure = server.hub().log_failure();
    let store_failed = Arc::new(AtomicBool::new(false));
    let store_failed_seen = Arc::clone(&store_failed);
    let shutdown = async move {
        tokio::select! {
            () = signals::shutdown() => {}
            // The cause is copied out at once: the watch's guard must not live across an await.
            failed = async {
                log_failure
                    .wait_for(Option::is_some)
                    .await
                    .map(|cause| cause.as_ref().map(ToString::to_string).unwrap_or_default())
            } => {
                // Err: the log's sender is gone, which only happens once it is closed; then
                // there is nothing to wait for and only a signal stops the hub.
                match failed {
                    Ok(cause) => {
                        tracing::error!(%cause, "the event log failed; draining and exiting for a restart");
                        store_failed_seen.store(true, Ordering::Release);
                    }
                    Err(_) => signals::shutdown().await,
                }
            }
        }
        let _ = stop_dispatch.send(true);
        alerts.stop().await;
        if let Some(follower) = shared_log {
            let _ = follower.await;
        }
        if let Some(crm) = crm {
            match crm.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(%error, "the HubSpot mirror stopped with an error")
                }
                Err(error) => tracing::error!(%error, "the HubSpot mirror task failed"),
            }
        }
        if let Some(prices) = twilio_prices {
            match prices.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "the Twilio price follower stopped"),
                Err(error) => tracing::error!(%error, "the Twilio price follower task failed"),
            }
        }
        event_webhooks.stop().await;
        if let Err(error) = campaigns.await {
            tracing::error!(%error, "the campaign runner task failed");
        }
        match confirmations.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "the consent confirmations stopped with an error")
            }
            Err(error) => tracing::error!(%error, "the consent confirmations task failed"),
        }
        if let Some(sync) = template_sync {
            let _ = sync.await;
        }
        if let Some(dispatcher) = dispatcher {
            match dispatcher.await {
                Ok(Ok(report)) => tracing::info!(?report, "dispatcher stopped"),
                Ok(Err(error)) => tracing::error!(%error, "dispatcher stopped with an error"),
                Err(error) => tracing::error!(%error, "dispatcher task failed"),
            }
        }
    };

    let snapshot_hub = server.hub().clone();
    let served = server.run(shutdown).await;
    // Every user of the hub has stopped (the dispatcher drained, the server's requests ended):
    // save the projection's snapshot so the next start replays nothing (not after a failed
    // log, which refuses it; the next start then replays the tail after the last one).
    if !store_failed.load(Ordering::Acquire) {
        if let Err(error) = snapshot_hub.save_snapshot().await {
            tracing::warn!(%error, "the projection snapshot was not saved at shutdown");
        }
    }
    drop(snapshot_hub);
    let closed = compose::close(store).await;
    served.context("the hub stopped with an error")?;
    if store_failed.load(Ordering::Acquire) {
        // `close` reports the same failure; the distinct code tells the supervisor why.
        if let Err(error) = closed {
            tracing::error!(error = %format!("{error:#}"), "the event log closed failed");
        }
        eprintln!(
            "wagate serve: the event log failed; exiting with code {EXIT_STORE_FAILED} for a restart"
        );
        return Ok(ExitCode::from(EXIT_STORE_FAILED));
    }
    closed?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The template APIs of the configured providers (none in sandbox mode).
fn templates_for(
    config: &ServeConfig,
) -> anyhow::Result<wagate_providers::templates::TemplateClients> {
    match &config.providers {
        Providers::Sandbox { .. } => Ok(Default::default()),
        Providers::Live { twilio, meta } => {
            outbound::template_clients(&outbound::LiveCredentials {
                twilio_account_sid: twilio.as_ref().and_then(|t| t.account_sid.clone()),
                twilio_auth_token: twilio.as_ref().map(|t| t.auth_token.clone()),
                meta_access_token: meta.access_token.clone(),
                meta_app_id: meta.app_id.clone(),
            })
        }
    }
}

/// The providers of the in-process dispatcher: the sandbox in sandbox mode (calling back this very
/// hub), otherwise the real clients the credentials allow.
/// The Twilio price client when live Twilio credentials are configured (never for the sandbox).
fn twilio_price_client(
    config: &ServeConfig,
    server: &Server,
) -> anyhow::Result<Option<wagate_providers::twilio::TwilioPriceClient>> {
    match &config.providers {
        Providers::Live {
            twilio: Some(twilio),
            meta,
        } => outbound::twilio_prices(
            &outbound::LiveCredentials {
                twilio_account_sid: twilio.account_sid.clone(),
                twilio_auth_token: Some(twilio.auth_token.clone()),
                meta_access_token: meta.access_token.clone(),
                meta_app_id: None,
            },
            server.public_url(),
        ),
        _ => Ok(None),
    }
}

fn providers_for(
    config: &ServeConfig,
    server: &Server,
) -> anyhow::Result<wagate_dispatch::Providers> {
    match &config.providers {
        Providers::Sandbox { twilio_auth_token } => {
            let sandbox = outbound::sandbox(
                &outbound::loopback_url(server.local_addr()),
                server.public_url(),
                twilio_auth_token.clone(),
            )?;
            Ok(wagate_dispatch::Providers::new()
                .with(wagate_domain::ProviderKind::Sandbox, sandbox))
        }
        Providers::Live { twilio, meta } => outbound::live(
            &outbound::LiveCredentials {
                twilio_account_sid: twilio.as_ref().and_then(|t| t.account_sid.clone()),
                twilio_auth_token: twilio.as_ref().map(|t| t.auth_token.clone()),
                meta_access_token: meta.access_token.clone(),
                meta_app_id: None,
            },
            server.public_url(),
        ),
    }
}
