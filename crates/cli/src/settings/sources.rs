//! The layers a setting is looked up in, below its flag: the environment, then the config file.
//! Secrets from either layer may be `op://` references.

use std::path::Path;

use wagate_providers::Secret;

use super::file::FileConfig;
use super::{env, ConfigError, OpCli};

/// The environment and the config file of one resolution, and how references are read.
pub(super) struct Sources<'a> {
    environment: &'a dyn Fn(&str) -> Option<String>,
    pub file: FileConfig,
    op: &'a OpCli,
}

impl<'a> Sources<'a> {
    pub fn load(
        config: Option<&Path>,
        environment: &'a dyn Fn(&str) -> Option<String>,
        op: &'a OpCli,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            environment,
            file: FileConfig::load(config)?,
            op,
        })
    }

    /// The variable's value; a blank value counts as unset.
    pub fn env(&self, name: &str) -> Option<String> {
        (self.environment)(name).filter(|value| !value.trim().is_empty())
    }

    /// The secret named `var`: the environment's value, else the file's, resolving an `op://`
    /// reference.
    /// A variable that is set but blank is refused, naming it, and so is a blank value in the
    /// file (named by its key).
    pub fn secret(
        &self,
        var: &str,
        from_file: &Option<String>,
    ) -> Result<Option<Secret>, ConfigError> {
        if let Some(raw) = (self.environment)(var) {
            return self.secret_from(var, Some(raw));
        }
        self.secret_from(&file_key(var), from_file.clone())
    }

    /// `raw` (already taken from a flag, the environment or the file) as a secret, resolving an
    /// `op://` reference; errors name `setting`.
    pub fn secret_from(
        &self,
        setting: &str,
        raw: Option<String>,
    ) -> Result<Option<Secret>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        // An empty secret is worse than none: an empty HMAC key lets anyone sign a webhook.
        if raw.trim().is_empty() {
            return Err(ConfigError::EmptySecret {
                setting: setting.to_owned(),
            });
        }
        let secret = self.op.resolve(setting, raw.trim())?;
        if secret.expose().trim().is_empty() {
            return Err(ConfigError::EmptySecret {
                setting: format!("{setting} (as read from {})", raw.trim()),
            });
        }
        Ok(Some(secret))
    }

    /// `WAGATE_PUBLIC_URL`, else the file's `public_url`, checked and without a trailing slash.
    pub fn public_url(&self, flag: Option<String>) -> Result<Option<String>, ConfigError> {
        flag.or_else(|| self.env(env::PUBLIC_URL))
            .or(self.file.public_url.clone())
            .map(|url| validate_public_url(&url))
            .transpose()
    }
}

/// The config file's key of an environment variable: `WAGATE_META_APP_SECRET` →
/// `meta_app_secret (in the --config file)`.
pub(super) fn file_key(var: &str) -> String {
    format!(
        "{} (in the --config file)",
        var.trim_start_matches("WAGATE_").to_ascii_lowercase()
    )
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
