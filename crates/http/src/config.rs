//! `wagate serve` configuration: flags, then environment, then an optional TOML file, then
//! defaults. Secrets may be `op://vault/item/field` references, resolved with the 1Password
//! CLI (`op read`). Secrets are held as [`Secret`]s and never printed; errors name the setting
//! and the reference, never a value.
//!
//! With no provider secret configured (no Twilio auth token, no Meta app secret, no Meta access
//! token) the hub runs in **sandbox mode**: it generates an API token (unless one is given) and
//! a Twilio-style auth token that the sandbox provider signs its callbacks with. Both are random,
//! held in memory only, and handed to the caller to print once.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::TimeDelta;
use rand::RngCore;
use serde::Deserialize;
use wagate_domain::{MessagingLimit, Policy, Workflow};
use wagate_providers::Secret;

/// Default `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default `--data`.
pub const DEFAULT_DATA: &str = "./wagate-data";

/// Environment variables read by `serve`.
pub mod env {
    pub const PUBLIC_URL: &str = "WAGATE_PUBLIC_URL";
    pub const API_TOKEN: &str = "WAGATE_API_TOKEN";
    pub const TWILIO_ACCOUNT_SID: &str = "WAGATE_TWILIO_ACCOUNT_SID";
    pub const TWILIO_AUTH_TOKEN: &str = "WAGATE_TWILIO_AUTH_TOKEN";
    pub const META_APP_SECRET: &str = "WAGATE_META_APP_SECRET";
    pub const META_VERIFY_TOKEN: &str = "WAGATE_META_VERIFY_TOKEN";
    pub const META_ACCESS_TOKEN: &str = "WAGATE_META_ACCESS_TOKEN";
    pub const WORKFLOWS: &str = "WAGATE_WORKFLOWS";
    pub const WINDOW_MARGIN_SECONDS: &str = "WAGATE_WINDOW_MARGIN_SECONDS";
    pub const MESSAGING_LIMIT: &str = "WAGATE_MESSAGING_LIMIT";
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("config file {path} is not valid: {reason}")]
    FileInvalid { path: PathBuf, reason: String },
    #[error("invalid {setting}: {reason}")]
    Invalid { setting: String, reason: String },
    #[error(
        "{setting} is the 1Password reference {reference}, but the `op` CLI is not on PATH \
         (install it, or give the value directly)"
    )]
    OpMissing { setting: String, reference: String },
    #[error("{setting}: `op read {reference}` failed: {reason}")]
    OpFailed {
        setting: String,
        reference: String,
        reason: String,
    },
    #[error(
        "WAGATE_API_TOKEN is required when provider credentials are configured \
         (without provider secrets, serve runs in sandbox mode and generates one)"
    )]
    MissingApiToken,
}

/// What the flags say (`None`: not given).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

/// The optional TOML file: the same settings, by lower-case name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data: Option<PathBuf>,
    public_url: Option<String>,
    api_token: Option<String>,
    twilio_account_sid: Option<String>,
    twilio_auth_token: Option<String>,
    meta_app_secret: Option<String>,
    meta_verify_token: Option<String>,
    meta_access_token: Option<String>,
    workflows: Option<Vec<String>>,
    window_margin_seconds: Option<i64>,
    messaging_limit: Option<toml::Value>,
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
    /// A configuration for tests and embedding: listen on `listen`, data in `data_dir`, the
    /// given API token and providers, default policy.
    pub fn new(
        listen: SocketAddr,
        data_dir: impl Into<PathBuf>,
        api_token: Secret,
        providers: Providers,
    ) -> Self {
        Self {
            listen,
            data_dir: data_dir.into(),
            public_url: None,
            api_token,
            providers,
            policy: Policy::default(),
            generated: Vec::new(),
        }
    }

    /// Resolves the configuration from flags, the process environment and the config file.
    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        Self::resolve(flags, &|name| std::env::var(name).ok(), &OpCli::default())
    }

    /// As [`ServeConfig::load`] with an explicit environment and `op` CLI (for tests).
    pub fn resolve(
        flags: &Flags,
        environment: &dyn Fn(&str) -> Option<String>,
        op: &OpCli,
    ) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let lookup = |name: &str| environment(name).filter(|v| !v.trim().is_empty());
        let secret =
            |var: &str, from_file: &Option<String>| -> Result<Option<Secret>, ConfigError> {
                match lookup(var).or_else(|| from_file.clone()) {
                    Some(raw) => op.resolve(var, raw.trim()).map(Some),
                    None => Ok(None),
                }
            };

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
        let public_url = lookup(env::PUBLIC_URL)
            .or(file.public_url.clone())
            .map(|url| validate_public_url(&url))
            .transpose()?;

        let api_token = secret(env::API_TOKEN, &file.api_token)?;
        let twilio_auth_token = secret(env::TWILIO_AUTH_TOKEN, &file.twilio_auth_token)?;
        let twilio_account_sid = lookup(env::TWILIO_ACCOUNT_SID).or(file.twilio_account_sid);
        let meta = MetaSettings {
            app_secret: secret(env::META_APP_SECRET, &file.meta_app_secret)?,
            verify_token: secret(env::META_VERIFY_TOKEN, &file.meta_verify_token)?,
            access_token: secret(env::META_ACCESS_TOKEN, &file.meta_access_token)?,
        };
        let policy = policy(
            lookup(env::WORKFLOWS),
            file.workflows,
            lookup(env::WINDOW_MARGIN_SECONDS),
            file.window_margin_seconds,
            lookup(env::MESSAGING_LIMIT),
            file.messaging_limit,
        )?;

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
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::FileUnreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::FileInvalid {
        path: path.to_path_buf(),
        // toml's message names the key and the line; it quotes the offending line, which may
        // be a secret: keep only the first line of the message.
        reason: e
            .message()
            .lines()
            .next()
            .unwrap_or("parse error")
            .to_owned()
            + &e.span()
                .map(|span| format!(" (at byte {})", span.start))
                .unwrap_or_default(),
    })
}

fn validate_public_url(url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    let ok = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
        && !trimmed.contains('?')
        && !trimmed.contains('#')
        && trimmed.len() > "https://".len();
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(ConfigError::Invalid {
            setting: env::PUBLIC_URL.into(),
            reason: format!(
                "{url:?} is not a base URL like https://hub.example.com (no query, no fragment)"
            ),
        })
    }
}

fn policy(
    workflows_env: Option<String>,
    workflows_file: Option<Vec<String>>,
    margin_env: Option<String>,
    margin_file: Option<i64>,
    limit_env: Option<String>,
    limit_file: Option<toml::Value>,
) -> Result<Policy, ConfigError> {
    let mut policy = Policy::default();
    let workflows: Option<Vec<String>> = workflows_env
        .map(|list| list.split(',').map(|w| w.trim().to_owned()).collect())
        .or(workflows_file);
    if let Some(names) = workflows {
        let parsed: Result<BTreeSet<Workflow>, ConfigError> = names
            .iter()
            .filter(|name| !name.is_empty())
            .map(|name| {
                Workflow::parse(name).map_err(|e| ConfigError::Invalid {
                    setting: env::WORKFLOWS.into(),
                    reason: e.to_string(),
                })
            })
            .collect();
        let parsed = parsed?;
        if parsed.is_empty() {
            return Err(ConfigError::Invalid {
                setting: env::WORKFLOWS.into(),
                reason: "names no workflow".into(),
            });
        }
        policy.workflows_allowed = parsed;
    }
    let margin = match margin_env {
        Some(raw) => Some(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| ConfigError::Invalid {
                    setting: env::WINDOW_MARGIN_SECONDS.into(),
                    reason: format!("{raw:?} is not a whole number of seconds"),
                })?,
        ),
        None => margin_file,
    };
    if let Some(seconds) = margin {
        // The window is 24 h: a margin must leave some of it open.
        if !(0..86_400).contains(&seconds) {
            return Err(ConfigError::Invalid {
                setting: env::WINDOW_MARGIN_SECONDS.into(),
                reason: format!("{seconds} is not between 0 and 86399"),
            });
        }
        policy.window_safety_margin = TimeDelta::seconds(seconds);
    }
    let limit = match (limit_env, limit_file) {
        (Some(raw), _) => Some(raw),
        (None, Some(toml::Value::Integer(n))) => Some(n.to_string()),
        (None, Some(toml::Value::String(s))) => Some(s),
        (None, Some(other)) => {
            return Err(ConfigError::Invalid {
                setting: "messaging_limit".into(),
                reason: format!(
                    "expected a number or \"unlimited\", found a {}",
                    other.type_str()
                ),
            })
        }
        (None, None) => None,
    };
    if let Some(raw) = limit {
        policy.default_messaging_limit =
            parse_messaging_limit(&raw).ok_or_else(|| ConfigError::Invalid {
                setting: env::MESSAGING_LIMIT.into(),
                reason: format!("{raw:?} is neither a number of recipients nor \"unlimited\""),
            })?;
    }
    Ok(policy)
}

/// `"250"` → `Limited(250)`, `"unlimited"` → `Unlimited`.
pub fn parse_messaging_limit(raw: &str) -> Option<MessagingLimit> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("unlimited") {
        return Some(MessagingLimit::Unlimited);
    }
    raw.parse::<u32>().ok().map(MessagingLimit::Limited)
}

/// A random token: `prefix` + 32 hex digits (128 bits from the OS-seeded generator).
pub fn random_token(prefix: &str) -> Secret {
    let mut bytes = [0_u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Secret::new(format!("{prefix}{hex}"))
}

/// How `op://` references are resolved: `<program> read <reference>`.
#[derive(Clone)]
pub struct OpCli {
    program: PathBuf,
}

impl Default for OpCli {
    fn default() -> Self {
        Self {
            program: PathBuf::from("op"),
        }
    }
}

impl fmt::Debug for OpCli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpCli")
            .field("program", &self.program)
            .finish()
    }
}

impl OpCli {
    /// Uses `program` instead of `op` from PATH.
    pub fn with_program(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }

    /// The value itself, or, for an `op://` reference, what `op read` prints.
    pub fn resolve(&self, setting: &str, raw: &str) -> Result<Secret, ConfigError> {
        if !raw.starts_with("op://") {
            return Ok(Secret::new(raw));
        }
        let output = Command::new(&self.program)
            .arg("read")
            .arg("--no-newline")
            .arg(raw)
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ConfigError::OpMissing {
                    setting: setting.to_owned(),
                    reference: raw.to_owned(),
                },
                _ => ConfigError::OpFailed {
                    setting: setting.to_owned(),
                    reference: raw.to_owned(),
                    reason: e.to_string(),
                },
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first_line: String = stderr
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            return Err(ConfigError::OpFailed {
                setting: setting.to_owned(),
                reference: raw.to_owned(),
                reason: format!("{} {}", output.status, first_line.trim()),
            });
        }
        let value = String::from_utf8(output.stdout).map_err(|_| ConfigError::OpFailed {
            setting: setting.to_owned(),
            reference: raw.to_owned(),
            reason: "the value is not UTF-8".into(),
        })?;
        let value = value.trim_end_matches(['\r', '\n']).to_owned();
        if value.is_empty() {
            return Err(ConfigError::OpFailed {
                setting: setting.to_owned(),
                reference: raw.to_owned(),
                reason: "the value is empty".into(),
            });
        }
        Ok(Secret::new(value))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn no_provider_secret_means_sandbox_with_generated_tokens() {
        let config =
            ServeConfig::resolve(&Flags::default(), &env_of(&[]), &OpCli::default()).expect("ok");
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
            &Flags::default(),
            &env_of(&[(env::TWILIO_AUTH_TOKEN, "12345")]),
            &OpCli::default(),
        )
        .expect_err("no api token");
        assert!(matches!(error, ConfigError::MissingApiToken), "{error}");

        let config = ServeConfig::resolve(
            &Flags::default(),
            &env_of(&[
                (env::TWILIO_AUTH_TOKEN, "12345"),
                (env::API_TOKEN, "tok"),
                (env::PUBLIC_URL, "https://hub.example.com/"),
                (env::WORKFLOWS, "status_update, lead_qualification"),
                (env::WINDOW_MARGIN_SECONDS, "0"),
                (env::MESSAGING_LIMIT, "unlimited"),
            ]),
            &OpCli::default(),
        )
        .expect("live");
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
            (env::WORKFLOWS, "Bad-Name", "WAGATE_WORKFLOWS"),
            (env::PUBLIC_URL, "hub.example.com", "WAGATE_PUBLIC_URL"),
        ] {
            let error = ServeConfig::resolve(
                &Flags::default(),
                &env_of(&[(var, value)]),
                &OpCli::default(),
            )
            .expect_err(var);
            assert!(error.to_string().contains(needle), "{error}");
        }
        let flags = Flags {
            listen: Some("nowhere".into()),
            ..Flags::default()
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
        let flags = Flags {
            config: Some(path.clone()),
            ..Flags::default()
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
            &Flags::default(),
            &env_of(&[(env::META_APP_SECRET, "op://vault/meta/app_secret")]),
            &missing,
        )
        .expect_err("no op");
        let text = error.to_string();
        assert!(text.contains("op://vault/meta/app_secret"), "{text}");
        assert!(text.contains("WAGATE_META_APP_SECRET"), "{text}");

        let dir = tempfile::tempdir().expect("dir");
        let fake = dir.path().join("op");
        std::fs::write(
            &fake,
            "#!/bin/sh\nif [ \"$3\" = \"op://vault/meta/app_secret\" ]; then printf 'resolved-secret'; exit 0; fi\necho \"item not found\" >&2\nexit 1\n",
        )
        .expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            let op = OpCli::with_program(&fake);
            let secret = op
                .resolve(env::META_APP_SECRET, "op://vault/meta/app_secret")
                .expect("resolved");
            assert_eq!(secret.expose(), "resolved-secret");
            let error = op
                .resolve(env::META_APP_SECRET, "op://vault/other/field")
                .expect_err("not found");
            assert!(error.to_string().contains("item not found"), "{error}");
        }
    }
}
