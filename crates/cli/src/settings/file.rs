//! The optional TOML file (`--config FILE`): the settings by lower-case name. One file format for
//! every command, so one file can configure both `serve` and `dispatch`; each command reads the
//! keys it uses.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    /// `serve` only: the PostgreSQL log (see settings/store.rs).
    pub store_url: Option<String>,
    pub store_password: Option<String>,
    /// sled only: events kept unpacked (see settings/store.rs).
    pub unpacked_tail_events: Option<u64>,
    /// sled only: its page cache, in MiB (see settings/store.rs).
    pub sled_cache_mib: Option<u64>,
    /// `dispatch` only: the hub's base URL.
    pub hub: Option<String>,
    pub public_url: Option<String>,
    pub api_token: Option<String>,
    pub twilio_account_sid: Option<String>,
    pub twilio_auth_token: Option<String>,
    pub meta_app_secret: Option<String>,
    pub meta_verify_token: Option<String>,
    pub meta_access_token: Option<String>,
    /// `serve` only: the Meta app id (template media header uploads).
    pub meta_app_id: Option<String>,
    pub workflows: Option<Vec<String>>,
    pub window_margin_seconds: Option<i64>,
    pub messaging_limit: Option<toml::Value>,
    pub webhook_dedup_days: Option<i64>,
    /// `serve` only: refuse marketing templates from a number whose quality dropped.
    pub pause_marketing_on_quality_drop: Option<bool>,
    /// `dispatch` only: the hub's dispatcher token (else `api_token`).
    pub dispatcher_token: Option<String>,
    /// Named tokens of the command API, each with its role (`[[tokens]]` tables).
    pub tokens: Option<Vec<FileToken>>,
    /// `serve` only: start even when a provider's webhooks cannot be verified (local testing).
    pub allow_unverifiable_webhooks: Option<bool>,
    /// `serve` only: the connection limits (see settings/limits.rs).
    pub header_read_timeout_seconds: Option<u64>,
    pub body_read_timeout_seconds: Option<u64>,
    pub request_timeout_seconds: Option<u64>,
    pub max_connections: Option<u64>,
    pub max_header_bytes: Option<u64>,
    pub shutdown_grace_seconds: Option<u64>,
    pub rejected_dir: Option<PathBuf>,
    pub rejected_segment_mib: Option<u64>,
    pub rejected_max_mib: Option<u64>,
    pub rejected_retention_days: Option<u64>,
    /// `serve` only: the cost ledger's price table file (see settings/prices.rs).
    pub price_table: Option<PathBuf>,
    /// `serve` only: disable an outgoing webhook endpoint after failing this many days.
    pub webhook_disable_after_days: Option<f64>,
}

/// One `[[tokens]]` table: `name = "outreach-bot"`, `role = "agent"`, `token = "…"` (or an
/// `op://` reference).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileToken {
    pub name: String,
    pub role: String,
    pub token: String,
}

impl FileConfig {
    /// The file at `path`, or all-absent settings without one.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(path) => read(path),
            None => Ok(Self::default()),
        }
    }
}

fn read(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::FileUnreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse(&text, path)
}

/// Parses the file's text; `path` only names the file in the error.
pub(super) fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::FileInvalid {
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
