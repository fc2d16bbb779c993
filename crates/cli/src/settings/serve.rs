//! `wagate serve`'s settings. With no provider secret configured (no Twilio auth token, no Meta
//! app secret, no Meta access token) the hub runs in **sandbox mode**: it generates an API token
//! (unless one is given) and a Twilio-style auth token that the sandbox provider signs its
//! callbacks with. Both are random, held in memory only, and handed to the caller to print once.

use std::net::SocketAddr;
use std::path::PathBuf;

use rand::RngCore;
use wagate_domain::Policy;
use wagate_http::{HttpSettings, WebhookSecrets};
use wagate_providers::Secret;

use super::policy::{policy, webhook_dedup};
use super::sources::Sources;
use super::{env, ConfigError, OpCli};

/// Default `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default `--data`.
pub const DEFAULT_DATA: &str = "./wagate-data";

/// What `serve`'s flags say (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct ServeFlags {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

/// Twilio credentials (webhook signatures; the dispatcher's Messages API calls).
#[derive(Debug, Clone)]
pub struct TwilioSettings {
    pub account_sid: Option<String>,
    pub auth_token: Secret,
}

/// Meta Cloud API settings: each is optional (webhooks need the app secret, the subscription
/// handshake the verify token, sending the access token).
#[derive(Debug, Clone, Default)]
pub struct MetaSettings {
    pub app_secret: Option<Secret>,
    pub verify_token: Option<Secret>,
    pub access_token: Option<Secret>,
}

/// Which providers the hub talks to.
#[derive(Debug, Clone)]
pub enum Providers {
    /// No provider secret configured: the loopback sandbox provider, whose signed callbacks
    /// use `twilio_auth_token` (generated at start, never written to disk).
    Sandbox { twilio_auth_token: Secret },
    /// Real providers, each optional.
    Live {
        twilio: Option<TwilioSettings>,
        meta: MetaSettings,
    },
}

impl Providers {
    /// The key Twilio-style webhooks are checked with.
    pub fn twilio_auth_token(&self) -> Option<&Secret> {
        match self {
            Self::Sandbox { twilio_auth_token } => Some(twilio_auth_token),
            Self::Live { twilio, .. } => twilio.as_ref().map(|t| &t.auth_token),
        }
    }

    pub fn meta(&self) -> Option<&MetaSettings> {
        match self {
            Self::Sandbox { .. } => None,
            Self::Live { meta, .. } => Some(meta),
        }
    }

    pub fn is_sandbox(&self) -> bool {
        matches!(self, Self::Sandbox { .. })
    }
}

/// A secret `serve` generated; the caller prints it once.
#[derive(Debug, Clone)]
pub struct GeneratedSecret {
    /// What it is, e.g. `api token`.
    pub label: &'static str,
    pub value: Secret,
}

/// Everything `wagate serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The base URL providers call (signatures cover it); `None`: `http://<bound address>`.
    pub public_url: Option<String>,
    pub api_token: Secret,
    pub providers: Providers,
    pub policy: Policy,
    /// Secrets generated at start (sandbox mode), to print once.
    pub generated: Vec<GeneratedSecret>,
}

impl ServeConfig {
    /// Resolves the settings from flags, the process environment and the config file.
    pub fn load(flags: &ServeFlags) -> Result<Self, ConfigError> {
        Self::resolve(flags, &|name| std::env::var(name).ok(), &OpCli::default())
    }

    /// As [`ServeConfig::load`] with an explicit environment and `op` CLI (for tests).
    pub fn resolve(
        flags: &ServeFlags,
        environment: &dyn Fn(&str) -> Option<String>,
        op: &OpCli,
    ) -> Result<Self, ConfigError> {
        let sources = Sources::load(flags.config.as_deref(), environment, op)?;
        let file = &sources.file;

        let listen_raw = flags
            .listen
            .clone()
            .or(file.listen.clone())
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_raw.parse().map_err(|e| ConfigError::Invalid {
            setting: "--listen".into(),
            reason: format!("{listen_raw:?} is not an address:port ({e})"),
        })?;
        let data_dir = flags
            .data
            .clone()
            .or(file.data.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
        let public_url = sources.public_url(None)?;

        let api_token = sources.secret(env::API_TOKEN, &file.api_token)?;
        let twilio_auth_token = sources.secret(env::TWILIO_AUTH_TOKEN, &file.twilio_auth_token)?;
        let twilio_account_sid = sources
            .env(env::TWILIO_ACCOUNT_SID)
            .or(file.twilio_account_sid.clone());
        let meta = MetaSettings {
            app_secret: sources.secret(env::META_APP_SECRET, &file.meta_app_secret)?,
            verify_token: sources.secret(env::META_VERIFY_TOKEN, &file.meta_verify_token)?,
            access_token: sources.secret(env::META_ACCESS_TOKEN, &file.meta_access_token)?,
        };
        let policy = policy(
            sources.env(env::WORKFLOWS),
            file.workflows.clone(),
            sources.env(env::WINDOW_MARGIN_SECONDS),
            file.window_margin_seconds,
            sources.env(env::MESSAGING_LIMIT),
            file.messaging_limit.clone(),
        )?;
        let policy = Policy {
            webhook_dedup: webhook_dedup(
                sources.env(env::WEBHOOK_DEDUP_DAYS),
                file.webhook_dedup_days,
            )?,
            ..policy
        };

        let mut generated = Vec::new();
        let live =
            twilio_auth_token.is_some() || meta.app_secret.is_some() || meta.access_token.is_some();
        let providers = if live {
            Providers::Live {
                twilio: twilio_auth_token.map(|auth_token| TwilioSettings {
                    account_sid: twilio_account_sid,
                    auth_token,
                }),
                meta,
            }
        } else {
            let token = random_token("sbx_");
            generated.push(GeneratedSecret {
                label: "sandbox twilio auth token",
                value: token.clone(),
            });
            Providers::Sandbox {
                twilio_auth_token: token,
            }
        };
        let api_token = match api_token {
            Some(token) => token,
            None if providers.is_sandbox() => {
                let token = random_token("wg_");
                generated.insert(
                    0,
                    GeneratedSecret {
                        label: "api token",
                        value: token.clone(),
                    },
                );
                token
            }
            None => return Err(ConfigError::MissingApiToken),
        };
        Ok(Self {
            listen,
            data_dir,
            public_url,
            api_token,
            providers,
            policy,
            generated,
        })
    }

    /// What the HTTP face runs with.
    pub fn http_settings(&self) -> HttpSettings {
        let meta = self.providers.meta();
        HttpSettings {
            listen: self.listen,
            audit_dir: self.data_dir.clone(),
            public_url: self.public_url.clone(),
            api_token: self.api_token.clone(),
            webhooks: WebhookSecrets {
                twilio_auth_token: self.providers.twilio_auth_token().cloned(),
                meta_app_secret: meta.and_then(|m| m.app_secret.clone()),
                meta_verify_token: meta.and_then(|m| m.verify_token.clone()),
            },
            sandbox: self.providers.is_sandbox(),
        }
    }
}

/// A random token: `prefix` + 32 hex digits (128 bits from the OS-seeded generator).
fn random_token(prefix: &str) -> Secret {
    let mut bytes = [0_u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Secret::new(format!("{prefix}{hex}"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use wagate_domain::MessagingLimit;

    use super::*;
    use crate::settings::test_support::env_of;

    #[test]
    fn no_provider_secret_means_sandbox_with_generated_tokens() {
        let config = ServeConfig::resolve(&ServeFlags::default(), &env_of(&[]), &OpCli::default())
            .expect("ok");
        assert!(config.providers.is_sandbox());
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA));
        let labels: Vec<&str> = config.generated.iter().map(|g| g.label).collect();
        assert_eq!(labels, ["api token", "sandbox twilio auth token"]);
        assert!(config.api_token.expose().starts_with("wg_"));
        assert_eq!(config.api_token.expose().len(), 3 + 32);
        // Debug never shows a secret.
        let debug = format!("{config:?}");
        assert!(!debug.contains(config.api_token.expose()), "{debug}");
    }

    #[test]
    fn provider_secrets_need_an_api_token() {
        let error = ServeConfig::resolve(
            &ServeFlags::default(),
            &env_of(&[(env::TWILIO_AUTH_TOKEN, "12345")]),
            &OpCli::default(),
        )
        .expect_err("no api token");
        assert!(matches!(error, ConfigError::MissingApiToken), "{error}");

        let config = ServeConfig::resolve(
            &ServeFlags::default(),
            &env_of(&[
                (env::TWILIO_AUTH_TOKEN, "12345"),
                (env::API_TOKEN, "tok"),
                (env::PUBLIC_URL, "https://hub.example.com/"),
                (env::WORKFLOWS, "status_update, lead_qualification"),
                (env::WINDOW_MARGIN_SECONDS, "0"),
                (env::MESSAGING_LIMIT, "unlimited"),
                (env::WEBHOOK_DEDUP_DAYS, "45"),
            ]),
            &OpCli::default(),
        )
        .expect("live");
        assert_eq!(config.policy.webhook_dedup, TimeDelta::days(45));
        assert!(!config.providers.is_sandbox());
        assert!(config.generated.is_empty());
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://hub.example.com")
        );
        assert_eq!(config.policy.workflows_allowed.len(), 2);
        assert_eq!(config.policy.window_safety_margin, TimeDelta::zero());
        assert_eq!(
            config.policy.default_messaging_limit,
            MessagingLimit::Unlimited
        );
    }

    #[test]
    fn bad_settings_are_named() {
        for (var, value, needle) in [
            (
                env::WINDOW_MARGIN_SECONDS,
                "ten",
                "WAGATE_WINDOW_MARGIN_SECONDS",
            ),
            (env::MESSAGING_LIMIT, "lots", "WAGATE_MESSAGING_LIMIT"),
            (env::WEBHOOK_DEDUP_DAYS, "6", "WAGATE_WEBHOOK_DEDUP_DAYS"),
            (
                env::WEBHOOK_DEDUP_DAYS,
                "a month",
                "WAGATE_WEBHOOK_DEDUP_DAYS",
            ),
            (env::WORKFLOWS, "Bad-Name", "WAGATE_WORKFLOWS"),
            (env::PUBLIC_URL, "hub.example.com", "WAGATE_PUBLIC_URL"),
        ] {
            let error = ServeConfig::resolve(
                &ServeFlags::default(),
                &env_of(&[(var, value)]),
                &OpCli::default(),
            )
            .expect_err(var);
            assert!(error.to_string().contains(needle), "{error}");
        }
        let flags = ServeFlags {
            listen: Some("nowhere".into()),
            ..ServeFlags::default()
        };
        let error =
            ServeConfig::resolve(&flags, &env_of(&[]), &OpCli::default()).expect_err("listen");
        assert!(error.to_string().contains("--listen"), "{error}");
    }

    #[test]
    fn config_file_values_and_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wagate.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\napi_token = \"from-file\"\nmeta_app_secret = \"s\"\nmessaging_limit = 2000\nworkflows = [\"status_update\"]\n",
        )
        .expect("write");
        let flags = ServeFlags {
            config: Some(path.clone()),
            ..ServeFlags::default()
        };
        let config = ServeConfig::resolve(&flags, &env_of(&[]), &OpCli::default()).expect("file");
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.api_token.expose(), "from-file");
        assert_eq!(
            config.policy.default_messaging_limit,
            MessagingLimit::Limited(2000)
        );
        // The environment wins over the file.
        let config = ServeConfig::resolve(
            &flags,
            &env_of(&[(env::API_TOKEN, "from-env")]),
            &OpCli::default(),
        )
        .expect("env");
        assert_eq!(config.api_token.expose(), "from-env");

        std::fs::write(&path, "listen = [\nsecret = \"hunter2\"").expect("write");
        let error = ServeConfig::resolve(&flags, &env_of(&[]), &OpCli::default()).expect_err("bad");
        let text = error.to_string();
        assert!(text.contains("wagate.toml"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        std::fs::write(&path, "lissten = \"x\"").expect("write");
        let error = ServeConfig::resolve(&flags, &env_of(&[]), &OpCli::default()).expect_err("key");
        assert!(error.to_string().contains("lissten"), "{error}");
    }

    #[test]
    fn op_references_need_the_op_cli_and_never_leak() {
        let missing = OpCli::with_program("/nonexistent/op");
        let error = ServeConfig::resolve(
            &ServeFlags::default(),
            &env_of(&[(env::META_APP_SECRET, "op://vault/meta/app_secret")]),
            &missing,
        )
        .expect_err("no op");
        let text = error.to_string();
        assert!(text.contains("op://vault/meta/app_secret"), "{text}");
        assert!(text.contains("WAGATE_META_APP_SECRET"), "{text}");

        #[cfg(unix)]
        {
            let dir = tempfile::tempdir().expect("dir");
            let op = crate::settings::test_support::fake_op(
                dir.path(),
                &[("op://vault/meta/app_secret", "resolved-secret")],
            );
            let config = ServeConfig::resolve(
                &ServeFlags::default(),
                &env_of(&[
                    (env::META_APP_SECRET, "op://vault/meta/app_secret"),
                    (env::API_TOKEN, "tok"),
                ]),
                &op,
            )
            .expect("resolved");
            let meta = config.providers.meta().expect("live");
            assert_eq!(
                meta.app_secret.as_ref().map(Secret::expose),
                Some("resolved-secret")
            );
            assert!(!format!("{config:?}").contains("resolved-secret"));
        }
    }

    #[test]
    fn http_settings_carry_the_webhook_keys_and_mode() {
        let config = ServeConfig::resolve(
            &ServeFlags::default(),
            &env_of(&[
                (env::API_TOKEN, "tok"),
                (env::TWILIO_AUTH_TOKEN, "12345"),
                (env::META_VERIFY_TOKEN, "verify"),
            ]),
            &OpCli::default(),
        )
        .expect("live");
        let http = config.http_settings();
        assert!(!http.sandbox);
        assert_eq!(http.api_token.expose(), "tok");
        assert_eq!(
            http.webhooks.twilio_auth_token.as_ref().map(Secret::expose),
            Some("12345")
        );
        assert_eq!(
            http.webhooks.meta_verify_token.as_ref().map(Secret::expose),
            Some("verify")
        );
        assert!(http.webhooks.meta_app_secret.is_none());
        assert_eq!(http.audit_dir, config.data_dir);
    }
}
