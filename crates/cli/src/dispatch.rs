//! `wagate dispatch --hub URL`: the dispatcher as its own process. It holds the provider
//! credentials (the hub then needs none), reads open messages from the hub's API, claims each
//! through it (the hub re-checks every rule on its newest state), calls the provider, and reports
//! the outcome back. Stops on Ctrl-C or SIGTERM after finishing what is in flight.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wagate_dispatch::{Config, DriverOptions, Providers, RemoteHub};
use wagate_domain::{Policy, ProviderKind};
use wagate_providers::Secret;

use crate::{outbound, signals};

/// How long one call to the hub's API may take.
const HUB_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Provider credentials come from the environment, as for `serve`: \
WAGATE_TWILIO_ACCOUNT_SID + WAGATE_TWILIO_AUTH_TOKEN, WAGATE_META_ACCESS_TOKEN (base URLs: \
WAGATE_TWILIO_API_BASE, WAGATE_META_API_BASE). With --sandbox, the loopback sandbox sends instead \
and posts its signed callbacks to the hub, signed with WAGATE_TWILIO_AUTH_TOKEN (the hub must check \
Twilio webhooks with the same token)."
)]
pub struct DispatchArgs {
    /// The hub's base URL.
    #[arg(long, env = "WAGATE_HUB", default_value = "http://127.0.0.1:8080")]
    hub: String,

    /// The hub's API token.
    #[arg(long, env = "WAGATE_API_TOKEN", hide_env_values = true)]
    token: String,

    /// The URL providers reach the hub at (Twilio's StatusCallback; what signatures cover).
    /// Defaults to --hub.
    #[arg(long, env = "WAGATE_PUBLIC_URL")]
    public_url: Option<String>,

    /// Send through the loopback sandbox instead of real providers.
    #[arg(long)]
    sandbox: bool,

    /// Messages per second per sender (Twilio's default is 80; Cloud API numbers allow more).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    sender_rate: Option<u32>,
}

pub async fn run(args: DispatchArgs) -> anyhow::Result<ExitCode> {
    let public_url = args.public_url.clone().unwrap_or_else(|| args.hub.clone());
    let providers = providers(&args, &public_url)?;
    let hub = RemoteHub::new(&args.hub, Secret::new(args.token.clone()), HUB_TIMEOUT)
        .with_context(|| format!("hub at {}", args.hub))?;
    let mut config = Config::from_policy(&Policy::default(), outbound::jitter_seed());
    if let Some(rate) = args.sender_rate {
        config.sender_limit_default = Some(wagate_dispatch::RateLimit::per_second(rate));
    }
    println!("wagate dispatch: hub {}, {providers:?}", args.hub);
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

fn providers(args: &DispatchArgs, public_url: &str) -> anyhow::Result<Providers> {
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let twilio_auth_token = env("WAGATE_TWILIO_AUTH_TOKEN").map(Secret::new);
    if args.sandbox {
        let token = twilio_auth_token
            .context("--sandbox needs WAGATE_TWILIO_AUTH_TOKEN: the token the hub checks Twilio webhooks with")?;
        let sandbox = outbound::sandbox(&args.hub, public_url, token)?;
        return Ok(Providers::new().with(ProviderKind::Sandbox, sandbox));
    }
    let credentials = outbound::LiveCredentials {
        twilio_account_sid: env("WAGATE_TWILIO_ACCOUNT_SID"),
        twilio_auth_token,
        meta_access_token: env("WAGATE_META_ACCESS_TOKEN").map(Secret::new),
    };
    if credentials.twilio_account_sid.is_none() && credentials.meta_access_token.is_none() {
        anyhow::bail!(
            "no provider credentials: set WAGATE_TWILIO_ACCOUNT_SID and WAGATE_TWILIO_AUTH_TOKEN, \
             or WAGATE_META_ACCESS_TOKEN, or pass --sandbox"
        );
    }
    outbound::live(&credentials, public_url)
}
