//! `wagate dispatch --hub URL`: the dispatcher as its own process. It holds the provider
//! credentials (the hub then needs none), reads open messages from the hub's API, claims each
//! through it (the hub re-checks every rule on its newest state), calls the provider, and reports
//! the outcome back. Stops on Ctrl-C or SIGTERM after finishing what is in flight.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wagate_dispatch::{Config, DriverOptions, Providers, RemoteHub};
use wagate_domain::{Policy, ProviderKind};

use crate::settings::{DispatchConfig, DispatchFlags, DispatchProviders};
use crate::{outbound, signals};

/// How long one call to the hub's API may take.
const HUB_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Provider credentials come from the environment or the --config file, as for \
`serve`: the hub's dispatcher token WAGATE_DISPATCHER_TOKEN (WAGATE_API_TOKEN is read too, for \
compatibility: the hub must know its value as a dispatcher token), WAGATE_TWILIO_ACCOUNT_SID + WAGATE_TWILIO_AUTH_TOKEN, WAGATE_META_ACCESS_TOKEN (base URLs: \
WAGATE_TWILIO_API_BASE, WAGATE_META_API_BASE). The token and every secret may be an \
op://vault/item/field reference, read with the 1Password CLI. With --sandbox, the loopback sandbox \
sends instead and posts its signed callbacks to the hub, signed with WAGATE_TWILIO_AUTH_TOKEN (the \
hub must check Twilio webhooks with the same token)."
)]
pub struct DispatchArgs {
    /// The hub's base URL [default: http://127.0.0.1:8080].
    #[arg(long, env = "WAGATE_HUB")]
    hub: Option<String>,

    /// The hub's dispatcher token (else WAGATE_DISPATCHER_TOKEN, else WAGATE_API_TOKEN, else
    /// dispatcher_token or api_token in the --config file).
    #[arg(long)]
    token: Option<String>,

    /// The URL providers reach the hub at (Twilio's StatusCallback; what signatures cover).
    /// Defaults to --hub.
    #[arg(long, env = "WAGATE_PUBLIC_URL")]
    public_url: Option<String>,

    /// Optional TOML file with the same settings as `serve`'s (lower-case names: hub, api_token,
    /// public_url, twilio_account_sid, twilio_auth_token, meta_access_token, …).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Send through the loopback sandbox instead of real providers.
    #[arg(long)]
    sandbox: bool,

    /// Messages per second for a sender the hub reports no rate for (a hub before per-sender
    /// rates). Every registered sender is otherwise held to its own rate: its provider's and
    /// tier's (Twilio 80, Cloud API 80, upgraded 1,000) or the figure it was registered with.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    sender_rate: Option<u32>,
}

pub async fn run(args: DispatchArgs) -> anyhow::Result<ExitCode> {
    let settings = DispatchConfig::load(&DispatchFlags {
        hub: args.hub,
        token: args.token,
        public_url: args.public_url,
        sandbox: args.sandbox,
        config: args.config,
    })?;
    let providers = providers(&settings)?;
    let hub = RemoteHub::new(&settings.hub, settings.api_token.clone(), HUB_TIMEOUT)
        .with_context(|| format!("hub at {}", settings.hub))?;
    let mut config = Config::from_policy(&Policy::default(), outbound::jitter_seed());
    if let Some(rate) = args.sender_rate {
        config.sender_limit_default = Some(wagate_dispatch::RateLimit::per_second(rate));
    }
    println!("wagate dispatch: hub {}, {providers:?}", settings.hub);
    let report = wagate_dispatch::run(
        Arc::new(hub),
        providers,
        config,
        DriverOptions::default(),
        Arc::new(wagate_app::SystemClock),
        signals::shutdown(),
    )
    .await
    .context("the dispatcher stopped with an error")?;
    println!("wagate dispatch stopped: {report:?}");
    Ok(ExitCode::SUCCESS)
}

fn providers(settings: &DispatchConfig) -> anyhow::Result<Providers> {
    match &settings.providers {
        DispatchProviders::Sandbox { twilio_auth_token } => {
            let sandbox = outbound::sandbox(
                &settings.hub,
                &settings.public_url,
                twilio_auth_token.clone(),
            )?;
            Ok(Providers::new().with(ProviderKind::Sandbox, sandbox))
        }
        DispatchProviders::Live(credentials) => outbound::live(credentials, &settings.public_url),
    }
}
