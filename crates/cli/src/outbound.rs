//! Building the providers the dispatcher sends through, for `serve` (in-process dispatcher) and
//! `dispatch` (its own process). Base URLs are configuration so tests and staging point them at
//! local fakes: `WAGATE_TWILIO_API_BASE`, `WAGATE_META_API_BASE`, `WAGATE_META_API_VERSION`,
//! `WAGATE_TWILIO_CONTENT_API_BASE`. The template APIs are built here too.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use wagate_dispatch::Providers;
use wagate_domain::{ProviderKind, TwilioSid, TwilioSidKind};
use wagate_providers::meta::{MetaClient, MetaConfig};
use wagate_providers::sandbox::{SandboxConfig, SandboxProvider};
use wagate_providers::templates::{
    MetaTemplateConfig, MetaTemplates, TemplateClients, TwilioContentConfig, TwilioTemplates,
};
use wagate_providers::twilio::{TwilioClient, TwilioConfig, TwilioPriceClient};
use wagate_providers::Secret;

/// How long one provider call may take before it counts as a transport failure (in doubt).
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Credentials for real providers, each optional.
#[derive(Debug, Default)]
pub struct LiveCredentials {
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<Secret>,
    pub meta_access_token: Option<Secret>,
    /// The Meta app for template media header uploads (templates only).
    pub meta_app_id: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// The sandbox: Twilio on loopback, posting signed callbacks to the hub at `hub_base_url`,
/// signed over `public_url` with `auth_token` (the hub checks them with the same token).
pub fn sandbox(
    hub_base_url: &str,
    public_url: &str,
    auth_token: Secret,
) -> anyhow::Result<Arc<SandboxProvider>> {
    let config = SandboxConfig::new(hub_base_url, public_url, auth_token);
    Ok(Arc::new(
        SandboxProvider::new(config).context("sandbox provider")?,
    ))
}

/// The Twilio client settings: `WAGATE_TWILIO_API_BASE` overrides the API's base URL.
fn twilio_config(
    account_sid: &str,
    auth_token: &Secret,
    public_url: &str,
) -> anyhow::Result<TwilioConfig> {
    let account_sid = TwilioSid::parse_kind(account_sid, &[TwilioSidKind::Account])
        .context("WAGATE_TWILIO_ACCOUNT_SID")?;
    let mut config = TwilioConfig::new(account_sid, auth_token.clone(), public_url);
    if let Some(base) = env("WAGATE_TWILIO_API_BASE") {
        config.api_base = base;
    }
    config.timeout = PROVIDER_TIMEOUT;
    Ok(config)
}

/// The client reading Twilio's price of sent messages (the Message resource), when both Twilio
/// credentials are present.
pub fn twilio_prices(
    credentials: &LiveCredentials,
    public_url: &str,
) -> anyhow::Result<Option<TwilioPriceClient>> {
    let (Some(account_sid), Some(auth_token)) = (
        &credentials.twilio_account_sid,
        &credentials.twilio_auth_token,
    ) else {
        return Ok(None);
    };
    let config = twilio_config(account_sid, auth_token, public_url)?;
    Ok(Some(
        TwilioPriceClient::new(&config).context("Twilio price client")?,
    ))
}

/// Twilio and/or Cloud API clients for whichever credentials are present. `public_url` is where
/// providers reach the hub (Twilio's `StatusCallback`).
pub fn live(credentials: &LiveCredentials, public_url: &str) -> anyhow::Result<Providers> {
    let mut providers = Providers::new();
    match (
        &credentials.twilio_account_sid,
        &credentials.twilio_auth_token,
    ) {
        (Some(account_sid), Some(auth_token)) => {
            let config = twilio_config(account_sid, auth_token, public_url)?;
            let client = TwilioClient::new(config).context("Twilio client")?;
            providers = providers.with(ProviderKind::Twilio, Arc::new(client));
        }
        (None, Some(_)) => tracing::warn!(
            "WAGATE_TWILIO_AUTH_TOKEN is set without WAGATE_TWILIO_ACCOUNT_SID: Twilio webhooks \
             are verified, but messages from Twilio senders cannot be sent (they fail as \
             provider not configured)"
        ),
        _ => {}
    }
    if let Some(access_token) = &credentials.meta_access_token {
        let mut config = MetaConfig::new(access_token.clone());
        if let Some(base) = env("WAGATE_META_API_BASE") {
            config.api_base = base;
        }
        if let Some(version) = env("WAGATE_META_API_VERSION") {
            config.api_version = version;
        }
        config.timeout = PROVIDER_TIMEOUT;
        let client = MetaClient::new(config).context("Cloud API client")?;
        providers = providers.with(ProviderKind::Meta, Arc::new(client));
    }
    Ok(providers)
}

/// The providers' template APIs the credentials allow: Twilio's Content API
/// (`WAGATE_TWILIO_CONTENT_API_BASE`, default `https://content.twilio.com`) with the account SID
/// and auth token; Meta's (`WAGATE_META_API_BASE`, `WAGATE_META_API_VERSION`) with the access
/// token and `WAGATE_META_WABA_ID` (and `WAGATE_META_APP_ID` for media header samples).
pub fn template_clients(credentials: &LiveCredentials) -> anyhow::Result<TemplateClients> {
    let mut clients = TemplateClients::default();
    if let (Some(account_sid), Some(auth_token)) = (
        &credentials.twilio_account_sid,
        &credentials.twilio_auth_token,
    ) {
        let account_sid = TwilioSid::parse_kind(account_sid, &[TwilioSidKind::Account])
            .context("WAGATE_TWILIO_ACCOUNT_SID")?;
        let mut config = TwilioContentConfig::new(account_sid, auth_token.clone());
        if let Some(base) = env("WAGATE_TWILIO_CONTENT_API_BASE") {
            config.api_base = base;
        }
        config.timeout = PROVIDER_TIMEOUT;
        clients.twilio = Some(Arc::new(
            TwilioTemplates::new(config).context("WAGATE_TWILIO_CONTENT_API_BASE")?,
        ));
    }
    match (&credentials.meta_access_token, env("WAGATE_META_WABA_ID")) {
        (Some(access_token), Some(waba_id)) => {
            let defaults = MetaConfig::new(access_token.clone());
            let config = MetaTemplateConfig {
                api_base: env("WAGATE_META_API_BASE").unwrap_or(defaults.api_base),
                api_version: env("WAGATE_META_API_VERSION").unwrap_or(defaults.api_version),
                waba_id,
                access_token: access_token.clone(),
                timeout: PROVIDER_TIMEOUT,
                app_id: credentials.meta_app_id.clone(),
            };
            clients.meta = Some(Arc::new(
                MetaTemplates::new(config).context("WAGATE_META_WABA_ID")?,
            ));
        }
        (Some(_), None) => tracing::warn!(
            "WAGATE_META_ACCESS_TOKEN is set without WAGATE_META_WABA_ID: Meta templates can be \
             registered but not created or synced"
        ),
        _ => {}
    }
    Ok(clients)
}

/// `http://` URL of a bound address, with an unspecified IP replaced by loopback (the sandbox
/// calls the hub from the same machine).
pub fn loopback_url(address: std::net::SocketAddr) -> String {
    let ip = if address.ip().is_unspecified() {
        match address {
            std::net::SocketAddr::V4(_) => std::net::IpAddr::from([127, 0, 0, 1]),
            std::net::SocketAddr::V6(_) => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        address.ip()
    };
    format!("http://{}", std::net::SocketAddr::new(ip, address.port()))
}

/// Seeds the dispatcher's retry jitter; any value works, it only spreads retries apart.
pub fn jitter_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}
