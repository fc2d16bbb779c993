//! `wagate dispatch`'s settings: the hub to work for, its API token, where providers reach the
//! hub, and the credentials to send with. Resolved like `serve`'s (flags, environment, the
//! `--config` file, defaults; `op://` references for every secret), so the process that holds
//! the provider credentials can keep them in a vault.

use std::path::PathBuf;

use wagate_providers::Secret;

use super::sources::Sources;
use super::{env, ConfigError, OpCli};
use crate::outbound::LiveCredentials;

/// Default `--hub`.
pub const DEFAULT_HUB: &str = "http://127.0.0.1:8080";

/// The hub's base URL.
const HUB: &str = "WAGATE_HUB";

/// What `dispatch`'s flags say (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct DispatchFlags {
    pub hub: Option<String>,
    pub token: Option<String>,
    pub public_url: Option<String>,
    pub sandbox: bool,
    pub config: Option<PathBuf>,
}

/// What the dispatcher sends through.
#[derive(Debug)]
pub enum DispatchProviders {
    /// The loopback sandbox, signing its callbacks with the token the hub checks Twilio webhooks
    /// with.
    Sandbox { twilio_auth_token: Secret },
    /// Real providers, whichever the credentials allow.
    Live(LiveCredentials),
}

/// Everything `wagate dispatch` runs with.
#[derive(Debug)]
pub struct DispatchConfig {
    pub hub: String,
    pub api_token: Secret,
    /// Where providers reach the hub (Twilio's StatusCallback; what signatures cover); defaults
    /// to `hub`.
    pub public_url: String,
    pub providers: DispatchProviders,
}

impl DispatchConfig {
    /// Resolves the settings from flags, the process environment and the config file.
    pub fn load(flags: &DispatchFlags) -> Result<Self, ConfigError> {
        Self::resolve(flags, &|name| std::env::var(name).ok(), &OpCli::default())
    }

    /// As [`DispatchConfig::load`] with an explicit environment and `op` CLI (for tests).
    pub fn resolve(
        flags: &DispatchFlags,
        environment: &dyn Fn(&str) -> Option<String>,
        op: &OpCli,
    ) -> Result<Self, ConfigError> {
        let sources = Sources::load(flags.config.as_deref(), environment, op)?;
        let file = &sources.file;

        let hub = flags
            .hub
            .clone()
            .or_else(|| sources.env(HUB))
            .or(file.hub.clone())
            .unwrap_or_else(|| DEFAULT_HUB.to_owned());
        // The dispatcher's token: --token, WAGATE_DISPATCHER_TOKEN, WAGATE_API_TOKEN (what
        // earlier versions read; the hub answers 403 unless it is a dispatcher token there),
        // the file's dispatcher_token, then its api_token.
        let api_token = match &flags.token {
            Some(raw) => sources.secret_from("--token", Some(raw.clone()))?,
            None => match sources.secret(env::DISPATCHER_TOKEN, &file.dispatcher_token)? {
                Some(token) => Some(token),
                None => sources.secret(env::API_TOKEN, &file.api_token)?,
            },
        }
        .ok_or(ConfigError::MissingHubToken)?;
        let public_url = sources
            .public_url(flags.public_url.clone())?
            .unwrap_or_else(|| hub.clone());

        let twilio_auth_token = sources.secret(env::TWILIO_AUTH_TOKEN, &file.twilio_auth_token)?;
        let providers = if flags.sandbox {
            DispatchProviders::Sandbox {
                twilio_auth_token: twilio_auth_token.ok_or(ConfigError::SandboxWithoutToken)?,
            }
        } else {
            let credentials = LiveCredentials {
                twilio_account_sid: sources
                    .env(env::TWILIO_ACCOUNT_SID)
                    .or(file.twilio_account_sid.clone()),
                twilio_auth_token,
                meta_access_token: sources
                    .secret(env::META_ACCESS_TOKEN, &file.meta_access_token)?,
                // The dispatcher sends; it creates no templates.
                meta_app_id: None,
            };
            if credentials.twilio_account_sid.is_none() && credentials.meta_access_token.is_none() {
                return Err(ConfigError::NoProviderCredentials);
            }
            DispatchProviders::Live(credentials)
        };
        Ok(Self {
            hub,
            api_token,
            public_url,
            providers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::env_of;

    fn with_file(text: &str) -> (tempfile::TempDir, DispatchFlags) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("dispatch.toml");
        std::fs::write(&path, text).expect("write");
        let flags = DispatchFlags {
            config: Some(path),
            ..DispatchFlags::default()
        };
        (dir, flags)
    }

    #[test]
    fn the_hub_token_and_credentials_come_from_the_config_file() {
        let (_dir, flags) = with_file(
            "hub = \"http://hub.internal:8080\"\napi_token = \"file-token\"\n\
             public_url = \"https://hub.example.com/\"\ntwilio_account_sid = \"AC0123\"\n\
             twilio_auth_token = \"file-twilio\"\nmeta_access_token = \"file-meta\"\n",
        );
        let config =
            DispatchConfig::resolve(&flags, &env_of(&[]), &OpCli::default()).expect("resolved");
        assert_eq!(config.hub, "http://hub.internal:8080");
        assert_eq!(config.api_token.expose(), "file-token");
        assert_eq!(config.public_url, "https://hub.example.com");
        let DispatchProviders::Live(credentials) = &config.providers else {
            panic!("expected live providers, got {:?}", config.providers);
        };
        assert_eq!(credentials.twilio_account_sid.as_deref(), Some("AC0123"));
        assert_eq!(
            credentials.twilio_auth_token.as_ref().map(Secret::expose),
            Some("file-twilio")
        );
        assert_eq!(
            credentials.meta_access_token.as_ref().map(Secret::expose),
            Some("file-meta")
        );
        // Debug never shows a secret.
        let debug = format!("{config:?}");
        assert!(!debug.contains("file-token"), "{debug}");
        assert!(!debug.contains("file-twilio"), "{debug}");
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_file() {
        let (_dir, mut flags) = with_file(
            "hub = \"http://from-file:1\"\napi_token = \"file-token\"\nmeta_access_token = \"m\"\n",
        );
        let environment = env_of(&[
            ("WAGATE_HUB", "http://from-env:2"),
            (env::API_TOKEN, "env-token"),
        ]);
        let config =
            DispatchConfig::resolve(&flags, &environment, &OpCli::default()).expect("resolved");
        assert_eq!(config.hub, "http://from-env:2");
        assert_eq!(config.api_token.expose(), "env-token");
        assert_eq!(config.public_url, "http://from-env:2", "defaults to --hub");

        flags.hub = Some("http://from-flag:3".into());
        flags.token = Some("flag-token".into());
        let config =
            DispatchConfig::resolve(&flags, &environment, &OpCli::default()).expect("resolved");
        assert_eq!(config.hub, "http://from-flag:3");
        assert_eq!(config.api_token.expose(), "flag-token");
    }

    #[test]
    fn defaults_and_missing_settings_are_named() {
        let flags = DispatchFlags {
            sandbox: true,
            ..DispatchFlags::default()
        };
        let error =
            DispatchConfig::resolve(&flags, &env_of(&[]), &OpCli::default()).expect_err("no token");
        assert!(matches!(error, ConfigError::MissingHubToken), "{error}");

        let environment = env_of(&[(env::API_TOKEN, "tok")]);
        let error = DispatchConfig::resolve(&flags, &environment, &OpCli::default())
            .expect_err("no sandbox token");
        assert!(error
            .to_string()
            .contains("--sandbox needs WAGATE_TWILIO_AUTH_TOKEN"));

        let error =
            DispatchConfig::resolve(&DispatchFlags::default(), &environment, &OpCli::default())
                .expect_err("no credentials");
        assert!(
            error.to_string().starts_with("no provider credentials"),
            "{error}"
        );

        let environment = env_of(&[(env::API_TOKEN, "tok"), (env::TWILIO_AUTH_TOKEN, "t")]);
        let config =
            DispatchConfig::resolve(&flags, &environment, &OpCli::default()).expect("sandbox");
        assert_eq!(config.hub, DEFAULT_HUB);
        assert!(matches!(
            config.providers,
            DispatchProviders::Sandbox { .. }
        ));
    }

    #[cfg(unix)]
    #[test]
    fn op_references_resolve_the_hub_token_and_the_credentials() {
        let dir = tempfile::tempdir().expect("dir");
        let op = crate::settings::test_support::fake_op(
            dir.path(),
            &[
                ("op://ops/wagate/api_token", "vault-token"),
                ("op://ops/twilio/auth_token", "vault-twilio"),
                ("op://ops/meta/access_token", "vault-meta"),
            ],
        );
        // The hub token from the file, the provider credentials from the environment.
        let (_file_dir, flags) = with_file("api_token = \"op://ops/wagate/api_token\"\n");
        let environment = env_of(&[
            (env::TWILIO_ACCOUNT_SID, "AC0123"),
            (env::TWILIO_AUTH_TOKEN, "op://ops/twilio/auth_token"),
            (env::META_ACCESS_TOKEN, "op://ops/meta/access_token"),
        ]);
        let config = DispatchConfig::resolve(&flags, &environment, &op).expect("resolved");
        assert_eq!(config.api_token.expose(), "vault-token");
        let DispatchProviders::Live(credentials) = &config.providers else {
            panic!("expected live providers");
        };
        assert_eq!(
            credentials.twilio_auth_token.as_ref().map(Secret::expose),
            Some("vault-twilio")
        );
        assert_eq!(
            credentials.meta_access_token.as_ref().map(Secret::expose),
            Some("vault-meta")
        );

        // A --token flag may be a reference too; a failing one names the setting.
        let flags = DispatchFlags {
            token: Some("op://ops/wagate/missing".into()),
            ..DispatchFlags::default()
        };
        let error = DispatchConfig::resolve(&flags, &environment, &op).expect_err("missing item");
        let text = error.to_string();
        assert!(text.contains("op://ops/wagate/missing"), "{text}");
        assert!(text.contains("--token"), "{text}");
        assert!(text.contains("item not found"), "{text}");
    }

    #[test]
    fn the_dispatcher_token_wins_over_the_api_token_and_blank_ones_are_refused() {
        let environment = env_of(&[
            (env::DISPATCHER_TOKEN, "dispatcher"),
            (env::API_TOKEN, "legacy"),
            (env::META_ACCESS_TOKEN, "m"),
        ]);
        let config =
            DispatchConfig::resolve(&DispatchFlags::default(), &environment, &OpCli::default())
                .expect("resolved");
        assert_eq!(config.api_token.expose(), "dispatcher");
        let (_dir, flags) =
            with_file("dispatcher_token = \"from-file\"\nmeta_access_token = \"m\"\n");
        let config =
            DispatchConfig::resolve(&flags, &env_of(&[]), &OpCli::default()).expect("file");
        assert_eq!(config.api_token.expose(), "from-file");
        for (var, flag) in [
            (Some(env::DISPATCHER_TOKEN), None),
            (Some(env::API_TOKEN), None),
            (None, Some(" ")),
        ] {
            let pairs: Vec<(&str, &str)> = var
                .map(|var| vec![(var, "  "), (env::META_ACCESS_TOKEN, "m")])
                .unwrap_or_else(|| vec![(env::META_ACCESS_TOKEN, "m")]);
            let flags = DispatchFlags {
                token: flag.map(str::to_owned),
                ..DispatchFlags::default()
            };
            let error = DispatchConfig::resolve(&flags, &env_of(&pairs), &OpCli::default())
                .expect_err("blank");
            assert!(matches!(error, ConfigError::EmptySecret { .. }), "{error}");
            assert!(
                error.to_string().contains(var.unwrap_or("--token")),
                "{error}"
            );
        }
    }
}
