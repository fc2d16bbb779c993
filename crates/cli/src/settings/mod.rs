//! Settings of the processes this binary runs (`wagate serve`, `wagate dispatch`), resolved the
//! same way for both: flags, then environment, then an optional TOML file (`--config FILE`), then
//! defaults. Secrets may be `op://vault/item/field` references, resolved with the 1Password CLI
//! (`op read`). Secrets are held as [`Secret`](wagate_providers::Secret)s and never printed;
//! errors name the setting and the reference, never a value.
//!
//! The libraries take ready-made values: `wagate-http` gets a
//! [`HttpSettings`](wagate_http::HttpSettings), the dispatcher its providers and hub client.

mod alerts;
mod crm;
mod dispatch;
mod error;
mod event_webhooks;
mod file;
mod limits;
mod op;
mod policy;
mod prices;
mod rejected;
mod serve;
mod sources;
mod store;
mod tokens;

pub use alerts::AlertSettings;
pub use crm::{CrmSettings, Mirrored};
pub use dispatch::{DispatchConfig, DispatchFlags, DispatchProviders};
pub use error::ConfigError;
pub use op::OpCli;
pub use serve::{Providers, ServeConfig, ServeFlags};
pub use store::StoreSetting;

/// The HubSpot mirror's settings for `wagate crm backfill`: the process environment and
/// `config`, as `serve` reads them; `None` without a token.
pub fn crm_settings(
    config: Option<&std::path::Path>,
    data: &std::path::Path,
) -> Result<Option<CrmSettings>, ConfigError> {
    let environment = |name: &str| std::env::var(name).ok();
    let op = OpCli::default();
    let sources = sources::Sources::load(config, &environment, &op)?;
    crm::crm(&sources, data)
}

/// Environment variables the settings are read from.
pub mod env {
    pub const PUBLIC_URL: &str = "WAGATE_PUBLIC_URL";
    pub const STORE_URL: &str = "WAGATE_STORE_URL";
    pub const STORE_PASSWORD: &str = "WAGATE_STORE_PASSWORD";
    pub const UNPACKED_TAIL_EVENTS: &str = "WAGATE_UNPACKED_TAIL_EVENTS";
    pub const SLED_CACHE_MIB: &str = "WAGATE_SLED_CACHE_MIB";
    /// The cost ledger's price table (see settings/prices.rs).
    pub const PRICE_TABLE: &str = "WAGATE_PRICE_TABLE";
    /// An operator token (the single token of earlier versions).
    pub const API_TOKEN: &str = "WAGATE_API_TOKEN";
    pub const AGENT_TOKEN: &str = "WAGATE_AGENT_TOKEN";
    pub const OPERATOR_TOKEN: &str = "WAGATE_OPERATOR_TOKEN";
    pub const DISPATCHER_TOKEN: &str = "WAGATE_DISPATCHER_TOKEN";
    pub const AUDITOR_TOKEN: &str = "WAGATE_AUDITOR_TOKEN";
    pub const TWILIO_ACCOUNT_SID: &str = "WAGATE_TWILIO_ACCOUNT_SID";
    pub const TWILIO_AUTH_TOKEN: &str = "WAGATE_TWILIO_AUTH_TOKEN";
    pub const META_APP_SECRET: &str = "WAGATE_META_APP_SECRET";
    pub const META_VERIFY_TOKEN: &str = "WAGATE_META_VERIFY_TOKEN";
    pub const META_ACCESS_TOKEN: &str = "WAGATE_META_ACCESS_TOKEN";
    /// The Meta app whose Resumable Upload API takes template media header samples.
    pub const META_APP_ID: &str = "WAGATE_META_APP_ID";
    pub const WORKFLOWS: &str = "WAGATE_WORKFLOWS";
    pub const WINDOW_MARGIN_SECONDS: &str = "WAGATE_WINDOW_MARGIN_SECONDS";
    pub const MESSAGING_LIMIT: &str = "WAGATE_MESSAGING_LIMIT";
    pub const WEBHOOK_DEDUP_DAYS: &str = "WAGATE_WEBHOOK_DEDUP_DAYS";
    pub const IN_DOUBT_TIMEOUT_SECONDS: &str = "WAGATE_IN_DOUBT_TIMEOUT_SECONDS";
    pub const PAUSE_MARKETING_ON_QUALITY_DROP: &str = "WAGATE_PAUSE_MARKETING_ON_QUALITY_DROP";
    // `serve`'s connection limits (see settings/limits.rs).
    pub const HEADER_READ_TIMEOUT_SECONDS: &str = "WAGATE_HEADER_READ_TIMEOUT_SECONDS";
    pub const BODY_READ_TIMEOUT_SECONDS: &str = "WAGATE_BODY_READ_TIMEOUT_SECONDS";
    pub const REQUEST_TIMEOUT_SECONDS: &str = "WAGATE_REQUEST_TIMEOUT_SECONDS";
    pub const MAX_CONNECTIONS: &str = "WAGATE_MAX_CONNECTIONS";
    pub const MAX_HEADER_BYTES: &str = "WAGATE_MAX_HEADER_BYTES";
    pub const SHUTDOWN_GRACE_SECONDS: &str = "WAGATE_SHUTDOWN_GRACE_SECONDS";
    // `serve`'s webhook rejection log (see settings/rejected.rs).
    pub const REJECTED_DIR: &str = "WAGATE_REJECTED_DIR";
    pub const REJECTED_SEGMENT_MIB: &str = "WAGATE_REJECTED_SEGMENT_MIB";
    pub const REJECTED_MAX_MIB: &str = "WAGATE_REJECTED_MAX_MIB";
    pub const REJECTED_RETENTION_DAYS: &str = "WAGATE_REJECTED_RETENTION_DAYS";
    // `serve`'s alerts (see settings/alerts.rs).
    pub const DISCORD_WEBHOOK_URL: &str = "WAGATE_DISCORD_WEBHOOK_URL";
    pub const ALERT_WEBHOOK_URL: &str = "WAGATE_ALERT_WEBHOOK_URL";
    pub const ALERT_WEBHOOK_SECRET: &str = "WAGATE_ALERT_WEBHOOK_SECRET";
    pub const NO_TERMINAL_STATUS_MINUTES: &str = "WAGATE_NO_TERMINAL_STATUS_MINUTES";
    pub const WEBHOOK_SILENCE_MINUTES: &str = "WAGATE_WEBHOOK_SILENCE_MINUTES";
    // The HubSpot timeline (see settings/crm.rs).
    pub const HUBSPOT_TOKEN: &str = "WAGATE_HUBSPOT_TOKEN";
    pub const HUBSPOT_API_BASE: &str = "WAGATE_HUBSPOT_API_BASE";
    pub const HUBSPOT_EVENTS: &str = "WAGATE_HUBSPOT_EVENTS";
    pub const HUBSPOT_CREATE_CONTACTS: &str = "WAGATE_HUBSPOT_CREATE_CONTACTS";
    pub const HUBSPOT_CONSENT_PROPERTY: &str = "WAGATE_HUBSPOT_CONSENT_PROPERTY";
    pub const HUBSPOT_ID_PROPERTY: &str = "WAGATE_HUBSPOT_ID_PROPERTY";
    pub const HUBSPOT_STATE_FILE: &str = "WAGATE_HUBSPOT_STATE_FILE";
    // The outgoing event webhooks (see settings/event_webhooks.rs).
    pub const WEBHOOK_DISABLE_AFTER_DAYS: &str = "WAGATE_WEBHOOK_DISABLE_AFTER_DAYS";
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::OpCli;

    /// An environment holding exactly `pairs`.
    pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// A fake `op` CLI in `dir`: `op read --no-newline <reference>` prints the value paired with
    /// the reference in `known`; any other reference fails with "item not found" on stderr.
    #[cfg(unix)]
    pub fn fake_op(dir: &Path, known: &[(&str, &str)]) -> OpCli {
        use std::os::unix::fs::PermissionsExt;

        let path = dir.join("op");
        let mut script = String::from("#!/bin/sh\n");
        for (reference, value) in known {
            script.push_str(&format!(
                "if [ \"$3\" = \"{reference}\" ]; then printf '{value}'; exit 0; fi\n"
            ));
        }
        script.push_str("echo \"item not found\" >&2\nexit 1\n");
        std::fs::write(&path, script).expect("write fake op");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        OpCli::with_program(&path)
    }
}
