//! `wagate serve`'s settings. With no provider secret configured (no Twilio auth token, no Meta
//! app secret, no Meta access token) the hub runs in **sandbox mode**: it generates a token for
//! each role that has none configured, and a Twilio-style auth token that the sandbox provider
//! signs its callbacks with. All are random, held in memory only, and handed to the caller to
//! print once.
//!
//! It refuses to start unsafely: a blank secret anywhere, Twilio credentials without the public
//! URL Twilio signs, or a Meta access token without the app secret its webhooks are checked with
//! (a hub that would answer 403 to every genuine webhook, STOPs included), unless
//! `--allow-unverifiable-webhooks` says this is a local test.

use std::net::SocketAddr;
use std::path::PathBuf;

use rand::RngCore;
use wagate_domain::{Policy, Role};
use wagate_http::{ApiToken, HttpSettings, Limits, RejectionLimits, WebhookSecrets};
use wagate_providers::Secret;

use super::policy::{pause_marketing_on_quality_drop, policy, webhook_dedup};
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
    /// `--store`: a PostgreSQL URL (`None`: the environment, the file, else sled in `data`).
    pub store: Option<String>,
    pub config: Option<PathBuf>,
    /// Start even when a provider's webhooks cannot be verified (`--allow-unverifiable-webhooks`).
    pub allow_unverifiable_webhooks: bool,
    /// `--meta-app-id` (`None`: the environment, the file).
    pub meta_app_id: Option<String>,
    /// `--price-table FILE`: the cost ledger's price table.
    pub price_table: Option<PathBuf>,
    /// `--webhook-disable-after-days` (checked with the other sources' values).
    pub webhook_disable_after_days: Option<String>,
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
    /// The app whose Resumable Upload API takes template media header samples
    /// (`--meta-app-id`, `WAGATE_META_APP_ID`, `meta_app_id`): a number, not a secret.
    pub app_id: Option<String>,
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

/// The Meta app id: `--meta-app-id`, else `WAGATE_META_APP_ID`, else `meta_app_id`; digits only,
/// so a token pasted into the wrong setting is refused rather than sent in a URL.
fn meta_app_id(
    flag: Option<String>,
    from_env: Option<String>,
    from_file: Option<String>,
) -> Result<Option<String>, ConfigError> {
    let (setting, raw) = match (flag, from_env, from_file) {
        (Some(raw), _, _) => ("--meta-app-id", raw),
        (None, Some(raw), _) => (env::META_APP_ID, raw),
        (None, None, Some(raw)) => ("meta_app_id", raw),
        (None, None, None) => return Ok(None),
    };
    let id = raw.trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(ConfigError::Invalid {
            setting: setting.into(),
            reason: "expected the Meta app's numeric id (App Dashboard, App ID)".into(),
        });
    }
    Ok(Some(id.to_owned()))
}

/// A secret `serve` generated; the caller prints it once.
#[derive(Debug, Clone)]
pub struct GeneratedSecret {
    /// What it is, e.g. `agent token`.
    pub label: &'static str,
    pub value: Secret,
}

/// Everything `wagate serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the event log is (sled in `data_dir` unless a PostgreSQL URL is configured).
    pub store: super::StoreSetting,
    /// The base URL providers call (signatures cover it); `None`: `http://<bound address>`.
    pub public_url: Option<String>,
    /// The command API's tokens, each with its name and role.
    pub tokens: Vec<ApiToken>,
    pub providers: Providers,
    pub policy: Policy,
    /// Secrets generated at start (sandbox mode), to print once.
    pub generated: Vec<GeneratedSecret>,
    /// What `--allow-unverifiable-webhooks` let through: a warning for each, to print loudly.
    pub unverifiable: Vec<String>,
    /// Timeouts and caps on every connection.
    pub limits: Limits,
    /// The webhook rejection log's directory (never inside `data_dir`) and bounds.
    pub rejected_dir: PathBuf,
    pub rejected: RejectionLimits,
    /// Where alerts go (none: the review queue only).
    pub alerts: super::AlertSettings,
    /// The HubSpot timeline (none: no mirror).
    pub crm: Option<super::CrmSettings>,
    /// What messages cost (empty: every cost is reported unpriced).
    pub prices: wagate_app::PriceTable,
    /// How long an outgoing webhook endpoint fails before it is disabled.
    pub webhook_disable_after: chrono::TimeDelta,
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
        let store = super::store::store(flags.store.clone(), &sources)?;

        let mut tokens = super::tokens::configured(&sources)?;
        let twilio_auth_token = sources.secret(env::TWILIO_AUTH_TOKEN, &file.twilio_auth_token)?;
        let twilio_account_sid = sources
            .env(env::TWILIO_ACCOUNT_SID)
            .or(file.twilio_account_sid.clone());
        let meta = MetaSettings {
            app_secret: sources.secret(env::META_APP_SECRET, &file.meta_app_secret)?,
            verify_token: sources.secret(env::META_VERIFY_TOKEN, &file.meta_verify_token)?,
            access_token: sources.secret(env::META_ACCESS_TOKEN, &file.meta_access_token)?,
            app_id: meta_app_id(
                flags.meta_app_id.clone(),
                sources.env(env::META_APP_ID),
                file.meta_app_id.clone(),
            )?,
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
            in_doubt_timeout: super::policy::in_doubt_timeout(
                sources.env(env::IN_DOUBT_TIMEOUT_SECONDS),
            )?
            .unwrap_or(policy.in_doubt_timeout),
            pause_marketing_on_quality_drop: pause_marketing_on_quality_drop(
                sources.env(env::PAUSE_MARKETING_ON_QUALITY_DROP),
                file.pause_marketing_on_quality_drop,
            )?,
            ..policy
        };

        let limits = super::limits::limits(&sources)?;
        let (rejected_dir, rejected) = super::rejected::rejected(&sources, &data_dir)?;
        let alerts = super::alerts::alerts(&sources)?;
        let crm = super::crm::crm(&sources, &data_dir)?;
        let prices = super::prices::price_table(flags.price_table.clone(), &sources)?;
        let webhook_disable_after = super::event_webhooks::disable_after(
            flags.webhook_disable_after_days.clone(),
            &sources,
        )?;

        let mut generated = Vec::new();
        let live =
            twilio_auth_token.is_some() || meta.app_secret.is_some() || meta.access_token.is_some();
        let allow =
            flags.allow_unverifiable_webhooks || file.allow_unverifiable_webhooks.unwrap_or(false);
        let unverifiable = unverifiable_webhooks(
            twilio_auth_token.is_some(),
            public_url.is_some(),
            &meta,
            allow,
        )?;
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
        if providers.is_sandbox() {
            // One token per role that has none, so each role can be tried at once. The
            // operator's is printed as `api token`, the label earlier versions printed.
            let mut made = Vec::new();
            for role in [Role::Operator, Role::Agent, Role::Dispatcher, Role::Auditor] {
                if tokens.iter().any(|token| token.role == role) {
                    continue;
                }
                let value = random_token(&format!("wg_{}_", role.as_str()));
                made.push(GeneratedSecret {
                    label: match role {
                        Role::Operator => "api token",
                        Role::Agent => "agent token",
                        Role::Dispatcher => "dispatcher token",
                        Role::Auditor => "auditor token",
                    },
                    value: value.clone(),
                });
                tokens.push(ApiToken::new(role.as_str(), role, value));
            }
            generated.splice(0..0, made);
        } else if tokens.is_empty() {
            return Err(ConfigError::MissingApiToken);
        }
        super::tokens::check_unique(&tokens)?;
        Ok(Self {
            listen,
            data_dir,
            store,
            public_url,
            tokens,
            providers,
            policy,
            generated,
            unverifiable,
            limits,
            rejected_dir,
            rejected,
            alerts,
            crm,
            prices,
            webhook_disable_after,
        })
    }

    /// What the HTTP face runs with.
    pub fn http_settings(&self) -> HttpSettings {
        let meta = self.providers.meta();
        HttpSettings {
            templates: Default::default(),
            crm: None,
            listen: self.listen,
            audit_dir: self.rejected_dir.clone(),
            rejected: self.rejected,
            public_url: self.public_url.clone(),
            tokens: self.tokens.clone(),
            webhooks: WebhookSecrets {
                twilio_auth_token: self.providers.twilio_auth_token().cloned(),
                meta_app_secret: meta.and_then(|m| m.app_secret.clone()),
                meta_verify_token: meta.and_then(|m| m.verify_token.clone()),
            },
            sandbox: self.providers.is_sandbox(),
            limits: self.limits,
        }
    }
}

/// Refuses webhook configurations no genuine webhook can pass (each would be answered 403,
/// STOPs included); with `allow`, returns them as warnings instead.
fn unverifiable_webhooks(
    twilio: bool,
    public_url: bool,
    meta: &MetaSettings,
    allow: bool,
) -> Result<Vec<String>, ConfigError> {
    let mut problems = Vec::new();
    if twilio && !public_url {
        problems.push(ConfigError::UnverifiableWebhooks {
            setting: env::TWILIO_AUTH_TOKEN,
            missing: env::PUBLIC_URL,
            why: "Twilio signs the public URL it calls, so without it no Twilio webhook (a STOP \
                  included) can be verified",
        });
    }
    if meta.access_token.is_some() && meta.app_secret.is_none() {
        problems.push(ConfigError::UnverifiableWebhooks {
            setting: env::META_ACCESS_TOKEN,
            missing: env::META_APP_SECRET,
            why: "Meta's webhooks are checked with the app secret, so without it every reply to \
                  what this hub sends (a STOP included) would be refused",
        });
    }
    match (problems.is_empty(), allow) {
        (true, _) => Ok(Vec::new()),
        (false, true) => Ok(problems.iter().map(ToString::to_string).collect()),
        (false, false) => Err(problems.remove(0)),
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

    /// The value of the token named `name`.
    fn token<'a>(config: &'a ServeConfig, name: &str) -> &'a str {
        config
            .tokens
            .iter()
            .find(|token| token.name == name)
            .map(|token| token.secret.expose())
            .unwrap_or_else(|| panic!("no token {name}"))
    }

    #[test]
    fn no_provider_secret_means_sandbox_with_generated_tokens() {
        let config = ServeConfig::resolve(&ServeFlags::default(), &env_of(&[]), &OpCli::default())
            .expect("ok");
        assert!(config.providers.is_sandbox());
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA));
        let labels: Vec<&str> = config.generated.iter().map(|g| g.label).collect();
        assert_eq!(
            labels,
            [
                "api token",
                "agent token",
                "dispatcher token",
                "auditor token",
                "sandbox twilio auth token"
            ]
        );
        for role in Role::ALL {
            let tokens: Vec<&ApiToken> = config.tokens.iter().filter(|t| t.role == role).collect();
            assert_eq!(tokens.len(), 1, "{role}");
            assert_eq!(tokens[0].name, role.as_str());
            let prefix = format!("wg_{role}_");
            assert!(tokens[0].secret.expose().starts_with(&prefix));
            assert_eq!(tokens[0].secret.expose().len(), prefix.len() + 32);
            // Debug never shows a secret.
            let debug = format!("{config:?}");
            assert!(!debug.contains(tokens[0].secret.expose()), "{debug}");
        }
        // A role given a token keeps it; the others are generated.
        let config = ServeConfig::resolve(
            &ServeFlags::default(),
            &env_of(&[(env::AGENT_TOKEN, "my-agent")]),
            &OpCli::default(),
        )
        .expect("ok");
        assert_eq!(token(&config, "agent"), "my-agent");
        assert!(!config.generated.iter().any(|g| g.label == "agent token"));
        assert_eq!(config.tokens.len(), 4);
    }

    #[test]
    fn provider_secrets_need_an_api_token() {
        let error = ServeConfig::resolve(
            &ServeFlags::default(),
            &env_of(&[
                (env::TWILIO_AUTH_TOKEN, "12345"),
                (env::PUBLIC_URL, "https://hub.example.com"),
            ]),
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
                (env::PAUSE_MARKETING_ON_QUALITY_DROP, "off"),
            ]),
            &OpCli::default(),
        )
        .expect("live");
        assert_eq!(config.policy.webhook_dedup, TimeDelta::days(45));
        assert!(!config.policy.pause_marketing_on_quality_drop);
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
            (
                env::PAUSE_MARKETING_ON_QUALITY_DROP,
                "maybe",
                "WAGATE_PAUSE_MARKETING_ON_QUALITY_DROP",
            ),
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
        assert_eq!(token(&config, "api"), "from-file");
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
        assert_eq!(token(&config, "api"), "from-env");

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
                (env::PUBLIC_URL, "https://hub.example.com"),
                (env::META_VERIFY_TOKEN, "verify"),
            ]),
            &OpCli::default(),
        )
        .expect("live");
        let http = config.http_settings();
        assert!(!http.sandbox);
        assert_eq!(http.tokens.len(), 1);
        assert_eq!(http.tokens[0].name, "api");
        assert_eq!(http.tokens[0].role, Role::Operator);
        assert_eq!(http.tokens[0].secret.expose(), "tok");
        assert_eq!(
            http.webhooks.twilio_auth_token.as_ref().map(Secret::expose),
            Some("12345")
        );
        assert_eq!(
            http.webhooks.meta_verify_token.as_ref().map(Secret::expose),
            Some("verify")
        );
        assert!(http.webhooks.meta_app_secret.is_none());
        assert_eq!(http.audit_dir, config.rejected_dir);
        assert_ne!(http.audit_dir, config.data_dir);
    }

    #[test]
    fn tokens_come_from_each_role_variable_and_named_file_tables() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wagate.toml");
        std::fs::write(
            &path,
            "meta_app_secret = \"s\"\n\
             [[tokens]]\nname = \"outreach-bot\"\nrole = \"agent\"\ntoken = \"a1\"\n\
             [[tokens]]\nname = \"second-bot\"\nrole = \"agent\"\ntoken = \"a2\"\n\
             [[tokens]]\nname = \"ops-alice\"\nrole = \"operator\"\ntoken = \"o1\"\n",
        )
        .expect("write");
        let flags = ServeFlags {
            config: Some(path.clone()),
            ..ServeFlags::default()
        };
        let config = ServeConfig::resolve(
            &flags,
            &env_of(&[
                (env::DISPATCHER_TOKEN, "d"),
                (env::AUDITOR_TOKEN, "au"),
                (env::API_TOKEN, "legacy"),
            ]),
            &OpCli::default(),
        )
        .expect("tokens");
        let summary: Vec<(String, Role, String)> = config
            .tokens
            .iter()
            .map(|t| (t.name.clone(), t.role, t.secret.expose().to_owned()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("api".into(), Role::Operator, "legacy".into()),
                ("dispatcher".into(), Role::Dispatcher, "d".into()),
                ("auditor".into(), Role::Auditor, "au".into()),
                ("outreach-bot".into(), Role::Agent, "a1".into()),
                ("second-bot".into(), Role::Agent, "a2".into()),
                ("ops-alice".into(), Role::Operator, "o1".into()),
            ]
        );

        // An unknown role is an error naming it and the table.
        std::fs::write(
            &path,
            "[[tokens]]\nname = \"root\"\nrole = \"admin\"\ntoken = \"x\"\n",
        )
        .expect("write");
        let error = ServeConfig::resolve(&flags, &env_of(&[]), &OpCli::default())
            .expect_err("unknown role");
        let text = error.to_string();
        assert!(
            text.contains("\"admin\"") && text.contains("root"),
            "{text}"
        );

        // One value with two roles, or two tokens of one name, are refused.
        std::fs::write(
            &path,
            "[[tokens]]\nname = \"bot\"\nrole = \"agent\"\ntoken = \"same\"\n",
        )
        .expect("write");
        let error = ServeConfig::resolve(
            &flags,
            &env_of(&[(env::OPERATOR_TOKEN, "same")]),
            &OpCli::default(),
        )
        .expect_err("two roles");
        assert!(error.to_string().contains("two roles"), "{error}");
        std::fs::write(
            &path,
            "[[tokens]]\nname = \"agent\"\nrole = \"agent\"\ntoken = \"other\"\n",
        )
        .expect("write");
        let error = ServeConfig::resolve(
            &flags,
            &env_of(&[(env::AGENT_TOKEN, "one")]),
            &OpCli::default(),
        )
        .expect_err("two names");
        assert!(error.to_string().contains("\"agent\""), "{error}");
    }

    #[test]
    fn blank_secrets_are_refused_naming_the_setting() {
        for var in [
            env::API_TOKEN,
            env::AGENT_TOKEN,
            env::OPERATOR_TOKEN,
            env::DISPATCHER_TOKEN,
            env::AUDITOR_TOKEN,
            env::TWILIO_AUTH_TOKEN,
            env::META_APP_SECRET,
            env::META_ACCESS_TOKEN,
            env::META_VERIFY_TOKEN,
        ] {
            for blank in ["", "   ", "\t\n"] {
                let error = ServeConfig::resolve(
                    &ServeFlags::default(),
                    &env_of(&[(var, blank)]),
                    &OpCli::default(),
                )
                .expect_err(var);
                assert!(matches!(error, ConfigError::EmptySecret { .. }), "{error}");
                assert!(error.to_string().contains(var), "{error}");
            }
        }
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wagate.toml");
        let flags = ServeFlags {
            config: Some(path.clone()),
            ..ServeFlags::default()
        };
        for (text, needle) in [
            ("twilio_auth_token = \"\"\n", "twilio_auth_token"),
            ("api_token = \"  \"\n", "api_token"),
            (
                "[[tokens]]\nname = \"bot\"\nrole = \"agent\"\ntoken = \" \"\n",
                "\"bot\"",
            ),
        ] {
            std::fs::write(&path, text).expect("write");
            let error =
                ServeConfig::resolve(&flags, &env_of(&[]), &OpCli::default()).expect_err(text);
            assert!(matches!(error, ConfigError::EmptySecret { .. }), "{error}");
            assert!(error.to_string().contains(needle), "{error}");
        }
        #[cfg(unix)]
        {
            let op = crate::settings::test_support::fake_op(
                dir.path(),
                &[("op://vault/twilio/auth", " ")],
            );
            let error = ServeConfig::resolve(
                &ServeFlags::default(),
                &env_of(&[(env::TWILIO_AUTH_TOKEN, "op://vault/twilio/auth")]),
                &op,
            )
            .expect_err("blank op");
            let text = error.to_string();
            assert!(text.contains("WAGATE_TWILIO_AUTH_TOKEN"), "{text}");
            assert!(text.contains("op://vault/twilio/auth"), "{text}");
        }
    }

    #[test]
    fn unverifiable_webhooks_refuse_to_start_unless_allowed() {
        let twilio_without_url = [(env::TWILIO_AUTH_TOKEN, "12345"), (env::API_TOKEN, "tok")];
        let error = ServeConfig::resolve(
            &ServeFlags::default(),
            &env_of(&twilio_without_url),
            &OpCli::default(),
        )
        .expect_err("no public url");
        let text = error.to_string();
        assert!(
            text.contains("WAGATE_TWILIO_AUTH_TOKEN") && text.contains("Set WAGATE_PUBLIC_URL"),
            "{text}"
        );
        let meta_without_secret = [(env::META_ACCESS_TOKEN, "m"), (env::API_TOKEN, "tok")];
        let error = ServeConfig::resolve(
            &ServeFlags::default(),
            &env_of(&meta_without_secret),
            &OpCli::default(),
        )
        .expect_err("no app secret");
        assert!(
            error.to_string().contains("Set WAGATE_META_APP_SECRET"),
            "{error}"
        );
        let allowed = ServeFlags {
            allow_unverifiable_webhooks: true,
            ..ServeFlags::default()
        };
        for environment in [&twilio_without_url[..], &meta_without_secret[..]] {
            let config = ServeConfig::resolve(&allowed, &env_of(environment), &OpCli::default())
                .expect("allowed");
            assert_eq!(config.unverifiable.len(), 1);
        }
        // With what each needs, nothing to warn about.
        let config = ServeConfig::resolve(
            &ServeFlags::default(),
            &env_of(&[
                (env::TWILIO_AUTH_TOKEN, "12345"),
                (env::PUBLIC_URL, "https://hub.example.com"),
                (env::META_ACCESS_TOKEN, "m"),
                (env::META_APP_SECRET, "s"),
                (env::API_TOKEN, "tok"),
            ]),
            &OpCli::default(),
        )
        .expect("safe");
        assert!(config.unverifiable.is_empty());
    }

    /// The Meta app id: the flag over the environment over the file; anything but digits is
    /// refused naming where it came from.
    #[test]
    fn the_meta_app_id_comes_from_the_flag_the_environment_or_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wagate.toml");
        std::fs::write(&path, "meta_app_id = \"111\"\napi_token = \"t\"\n").expect("write");
        let app_id = |flag: Option<&str>, environment: &[(&str, &str)]| {
            let flags = ServeFlags {
                config: Some(path.clone()),
                meta_app_id: flag.map(str::to_owned),
                ..ServeFlags::default()
            };
            ServeConfig::resolve(&flags, &env_of(environment), &OpCli::default())
                .map(|config| config.providers.meta().and_then(|m| m.app_id.clone()))
        };
        let live = [(env::META_ACCESS_TOKEN, "m"), (env::META_APP_SECRET, "s")];
        assert_eq!(app_id(None, &live).expect("file"), Some("111".into()));
        let with_env = [live[0], live[1], (env::META_APP_ID, "222")];
        assert_eq!(app_id(None, &with_env).expect("env"), Some("222".into()));
        assert_eq!(
            app_id(Some("333"), &with_env).expect("flag"),
            Some("333".into())
        );
        let bad = [live[0], live[1], (env::META_APP_ID, "EAAG-token")];
        let error = app_id(None, &bad).expect_err("not a number");
        assert!(error.to_string().contains("WAGATE_META_APP_ID"), "{error}");
        assert!(!error.to_string().contains("EAAG"), "{error}");
    }
}
