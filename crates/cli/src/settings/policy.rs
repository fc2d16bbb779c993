//! The compliance policy's configurable parts: allowed workflows, the window safety margin, the
//! default messaging limit, how long webhooks are de-duplicated.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use wagate_domain::policy::{PROVIDER_RETRY_HORIZON, WEBHOOK_DEDUP_DEFAULT};
use wagate_domain::{Policy, Workflow};

use super::{env, ConfigError};

pub(super) fn policy(
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
            wagate_http::parse_messaging_limit(&raw).ok_or_else(|| ConfigError::Invalid {
                setting: env::MESSAGING_LIMIT.into(),
                reason: format!("{raw:?} is neither a number of recipients nor \"unlimited\""),
            })?;
    }
    Ok(policy)
}

/// `WAGATE_PAUSE_MARKETING_ON_QUALITY_DROP` (`true`/`false`, `1`/`0`, `on`/`off`) or
/// `pause_marketing_on_quality_drop`; on by default (`Policy::pause_marketing_on_quality_drop`
/// says why).
pub(super) fn pause_marketing_on_quality_drop(
    from_env: Option<String>,
    from_file: Option<bool>,
) -> Result<bool, ConfigError> {
    match from_env {
        Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            _ => Err(ConfigError::Invalid {
                setting: env::PAUSE_MARKETING_ON_QUALITY_DROP.into(),
                reason: format!("{raw:?} is not true or false"),
            }),
        },
        None => Ok(from_file.unwrap_or(true)),
    }
}

/// How long webhooks are de-duplicated: `WAGATE_WEBHOOK_DEDUP_DAYS` or `webhook_dedup_days`,
/// 30 days by default. Always longer than the providers' retry horizon (7 days): a key that
/// expired while Meta still retries would let the same inbound be applied twice.
pub(super) fn webhook_dedup(
    days_env: Option<String>,
    days_file: Option<i64>,
) -> Result<TimeDelta, ConfigError> {
    let days = match days_env {
        Some(raw) => Some(
            raw.trim()
                .parse::<i64>()
                .map_err(|_| ConfigError::Invalid {
                    setting: env::WEBHOOK_DEDUP_DAYS.into(),
                    reason: format!("{raw:?} is not a whole number of days"),
                })?,
        ),
        None => days_file,
    };
    let Some(days) = days else {
        return Ok(WEBHOOK_DEDUP_DEFAULT);
    };
    let horizon = PROVIDER_RETRY_HORIZON.num_days();
    // Ten years is far beyond any retry and keeps the arithmetic on timestamps in range.
    if !(horizon + 1..=3650).contains(&days) {
        return Err(ConfigError::Invalid {
            setting: env::WEBHOOK_DEDUP_DAYS.into(),
            reason: format!(
                "{days} days: must be longer than the providers' retry horizon ({horizon} days) \
                 and at most 3650"
            ),
        });
    }
    Ok(TimeDelta::days(days))
}

/// `WAGATE_IN_DOUBT_TIMEOUT_SECONDS`: how long a claim may stay without an outcome or callback
/// before it expires in doubt (for a person: the review queue's `in_doubt_expired`). Default 15 min.
pub(super) fn in_doubt_timeout(raw: Option<String>) -> Result<Option<TimeDelta>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    match raw.trim().parse::<i64>() {
        Ok(seconds) if (1..=86_400).contains(&seconds) => Ok(Some(TimeDelta::seconds(seconds))),
        _ => Err(ConfigError::Invalid {
            setting: env::IN_DOUBT_TIMEOUT_SECONDS.into(),
            reason: format!("{raw:?} is not a whole number of seconds between 1 and 86400"),
        }),
    }
}
