//! `op://vault/item/field` references: resolved with the 1Password CLI (`op read`), so a secret
//! can live in a vault instead of the environment or a file.

use std::fmt;
use std::path::PathBuf;
use std::process::Command;

use wagate_providers::Secret;

use super::ConfigError;

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
    /// Uses `program` instead of `op` from PATH (tests use a fake).
    #[cfg(test)]
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
    use super::*;

    #[test]
    fn a_plain_value_is_itself() {
        let secret = OpCli::with_program("/nonexistent/op")
            .resolve("WAGATE_API_TOKEN", "plain-value")
            .expect("no op needed");
        assert_eq!(secret.expose(), "plain-value");
    }

    #[cfg(unix)]
    #[test]
    fn a_reference_is_what_op_read_prints_and_failures_name_it() {
        let dir = tempfile::tempdir().expect("dir");
        let op = crate::settings::test_support::fake_op(
            dir.path(),
            &[("op://vault/meta/app_secret", "resolved-secret")],
        );
        let secret = op
            .resolve("WAGATE_META_APP_SECRET", "op://vault/meta/app_secret")
            .expect("resolved");
        assert_eq!(secret.expose(), "resolved-secret");
        let error = op
            .resolve("WAGATE_META_APP_SECRET", "op://vault/other/field")
            .expect_err("not found");
        let text = error.to_string();
        assert!(text.contains("item not found"), "{text}");
        assert!(text.contains("op://vault/other/field"), "{text}");
        assert!(text.contains("WAGATE_META_APP_SECRET"), "{text}");
    }
}
