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
    pub fn secret(
        &self,
        var: &str,
        from_file: &Option<String>,
    ) -> Result<Option<Secret>, ConfigError> {
        self.secret_from(var, self.env(var).or_else(|| from_file.clone()))
    }

    /// `raw` (already taken from a flag, the environment or the file) as a secret, resolving an
    /// `op://` reference; errors name `setting`.
    pub fn secret_from(
        &self,
        setting: &str,
        raw: Option<String>,
    ) -> Result<Option<Secret>, ConfigError> {
        match raw {
            Some(raw) => self.op.resolve(setting, raw.trim()).map(Some),
            None => Ok(None),
        }
    }

    /// `WAGATE_PUBLIC_URL`, else the file's `public_url`, checked and without a trailing slash.
    pub fn public_url(&self, flag: Option<String>) -> Result<Option<String>, ConfigError> {
        flag.or_else(|| self.env(env::PUBLIC_URL))
            .or(self.file.public_url.clone())
            .map(|url| validate_public_url(&url))
            .transpose()
    }
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
