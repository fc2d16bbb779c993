//! Where `serve` sends its alerts: a Discord webhook (`WAGATE_DISCORD_WEBHOOK_URL`: the URL holds
//! the webhook's token, so it is a secret and may be an `op://` reference), and a generic HTTPS
//! endpoint signed with HMAC-SHA256 (`WAGATE_ALERT_WEBHOOK_URL` with
//! `WAGATE_ALERT_WEBHOOK_SECRET`). Both optional; both used as given (any http(s) URL).

use wagate_providers::Secret;

use super::sources::Sources;
use super::{env, ConfigError};

/// The alert sinks to run, and when the review watcher raises a message with no settled status.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub discord_url: Option<Secret>,
    pub webhook: Option<SignedWebhook>,
    /// `WAGATE_NO_TERMINAL_STATUS_MINUTES` (default 60): a message the provider accepted with
    /// no delivered/read/failed status after this long is raised as `no_terminal_status`.
    pub no_terminal_status_after: chrono::TimeDelta,
    /// `WAGATE_WEBHOOK_SILENCE_MINUTES` (default 30): accepted messages waiting for their first
    /// status callback with none arriving for this long are raised as `webhook_silence`.
    pub webhook_silence_after: chrono::TimeDelta,
}

/// The default of `WAGATE_NO_TERMINAL_STATUS_MINUTES`.
const NO_TERMINAL_STATUS_MINUTES: i64 = 60;
/// The default of `WAGATE_WEBHOOK_SILENCE_MINUTES`: providers send the first callback (`sent`)
/// within seconds, so half an hour without any while messages wait is not a slow network.
const WEBHOOK_SILENCE_MINUTES: i64 = 30;

/// A generic endpoint and the key its requests are signed with.
#[derive(Debug, Clone)]
pub struct SignedWebhook {
    pub url: String,
    pub secret: Secret,
}

pub(super) fn alerts(sources: &Sources<'_>) -> Result<AlertSettings, ConfigError> {
    let discord_url = sources.secret(env::DISCORD_WEBHOOK_URL, &None)?;
    if let Some(url) = &discord_url {
        // The reason names the setting only: the URL holds the webhook's token.
        check_url(env::DISCORD_WEBHOOK_URL, url.expose(), false)?;
    }
    let url = sources.env(env::ALERT_WEBHOOK_URL);
    let secret = sources.secret(env::ALERT_WEBHOOK_SECRET, &None)?;
    let webhook = match (url, secret) {
        (None, None) => None,
        (Some(url), Some(secret)) => {
            check_url(env::ALERT_WEBHOOK_URL, &url, true)?;
            Some(SignedWebhook {
                url: url.trim().to_owned(),
                secret,
            })
        }
        (Some(_), None) => {
            return Err(ConfigError::Invalid {
                setting: env::ALERT_WEBHOOK_SECRET.into(),
                reason: format!(
                    "{} is set: its requests must be signed",
                    env::ALERT_WEBHOOK_URL
                ),
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError::Invalid {
                setting: env::ALERT_WEBHOOK_URL.into(),
                reason: format!("{} is set but no URL to send to", env::ALERT_WEBHOOK_SECRET),
            })
        }
    };
    Ok(AlertSettings {
        discord_url,
        webhook,
        no_terminal_status_after: minutes(
            sources,
            env::NO_TERMINAL_STATUS_MINUTES,
            NO_TERMINAL_STATUS_MINUTES,
        )?,
        webhook_silence_after: minutes(
            sources,
            env::WEBHOOK_SILENCE_MINUTES,
            WEBHOOK_SILENCE_MINUTES,
        )?,
    })
}

/// A watcher's delay: whole minutes, 1 to a week.
fn minutes(
    sources: &Sources<'_>,
    setting: &str,
    default: i64,
) -> Result<chrono::TimeDelta, ConfigError> {
    let minutes = match sources.env(setting) {
        None => default,
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(minutes) if (1..=10_080).contains(&minutes) => minutes,
            _ => {
                return Err(ConfigError::Invalid {
                    setting: setting.into(),
                    reason: format!("{raw:?} is not a whole number of minutes between 1 and 10080"),
                })
            }
        },
    };
    Ok(chrono::TimeDelta::minutes(minutes))
}

fn check_url(setting: &str, url: &str, show: bool) -> Result<(), ConfigError> {
    let url = url.trim();
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        setting: setting.into(),
        reason: if show {
            format!("{url:?} is not an http(s) URL")
        } else {
            "not an http(s) URL".into()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::env_of;
    use crate::settings::OpCli;

    fn resolve(pairs: &[(&str, &str)]) -> Result<AlertSettings, ConfigError> {
        let environment = env_of(pairs);
        let op = OpCli::default();
        let sources = Sources::load(None, &environment, &op)?;
        alerts(&sources)
    }

    #[test]
    fn both_sinks_are_optional_and_taken_as_given() {
        let none = resolve(&[]).expect("none");
        assert!(none.discord_url.is_none() && none.webhook.is_none());
        assert_eq!(none.no_terminal_status_after, chrono::TimeDelta::hours(1));
        assert!(resolve(&[(env::NO_TERMINAL_STATUS_MINUTES, "0")]).is_err());
        assert_eq!(none.webhook_silence_after, chrono::TimeDelta::minutes(30));
        let silence = resolve(&[(env::WEBHOOK_SILENCE_MINUTES, "15")]).expect("15");
        assert_eq!(
            silence.webhook_silence_after,
            chrono::TimeDelta::minutes(15)
        );
        let error = resolve(&[(env::WEBHOOK_SILENCE_MINUTES, "soon")]).expect_err("not minutes");
        assert!(
            error.to_string().contains("WAGATE_WEBHOOK_SILENCE_MINUTES"),
            "{error}"
        );
        let both = resolve(&[
            (
                env::DISCORD_WEBHOOK_URL,
                "http://127.0.0.1:9/api/webhooks/1/t",
            ),
            (env::ALERT_WEBHOOK_URL, "https://alerts.example.com/in"),
            (env::ALERT_WEBHOOK_SECRET, "k"),
        ])
        .expect("both");
        assert_eq!(
            both.discord_url.expect("discord").expose(),
            "http://127.0.0.1:9/api/webhooks/1/t"
        );
        assert_eq!(
            both.webhook.expect("webhook").url,
            "https://alerts.example.com/in"
        );
    }

    #[test]
    fn bad_urls_and_an_unsigned_endpoint_are_refused_by_name_without_the_token() {
        let error = resolve(&[(
            env::DISCORD_WEBHOOK_URL,
            "discord.com/api/webhooks/1/sekret",
        )])
        .expect_err("no scheme");
        let text = error.to_string();
        assert!(
            text.contains(env::DISCORD_WEBHOOK_URL) && !text.contains("sekret"),
            "{text}"
        );
        let error = resolve(&[(env::ALERT_WEBHOOK_URL, "https://alerts.example.com/in")])
            .expect_err("unsigned");
        assert!(
            error.to_string().contains(env::ALERT_WEBHOOK_SECRET),
            "{error}"
        );
    }
}
