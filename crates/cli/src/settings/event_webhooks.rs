//! The outgoing event webhooks' settings: `WAGATE_WEBHOOK_DISABLE_AFTER_DAYS` (flag
//! `--webhook-disable-after-days`, file key `webhook_disable_after_days`; default 3), how long
//! an endpoint may fail continuously before it is disabled and a review item raised. Fractional
//! days are accepted (`0.5` is twelve hours; a test may use a few seconds).

use super::sources::Sources;
use super::{env, ConfigError};

/// The default of `WAGATE_WEBHOOK_DISABLE_AFTER_DAYS`.
pub const DEFAULT_DISABLE_AFTER_DAYS: f64 = 3.0;

/// The longest accepted (ten years): beyond it the duration would not be a meaningful setting,
/// and far beyond it would not fit a `TimeDelta`.
const MAX_DISABLE_AFTER_DAYS: f64 = 3_650.0;

/// `flag`, else the environment, else the file, else the default, as a duration.
pub(super) fn disable_after(
    flag: Option<String>,
    sources: &Sources<'_>,
) -> Result<chrono::TimeDelta, ConfigError> {
    let (setting, days) = if let Some(raw) = flag {
        ("--webhook-disable-after-days".to_owned(), parse(&raw))
    } else if let Some(raw) = sources.env(env::WEBHOOK_DISABLE_AFTER_DAYS) {
        (env::WEBHOOK_DISABLE_AFTER_DAYS.to_owned(), parse(&raw))
    } else if let Some(days) = sources.file.webhook_disable_after_days {
        (
            "webhook_disable_after_days (in the --config file)".to_owned(),
            Ok(days),
        )
    } else {
        return Ok(of_days(DEFAULT_DISABLE_AFTER_DAYS));
    };
    let days = days.map_err(|reason| ConfigError::Invalid {
        setting: setting.clone(),
        reason,
    })?;
    if !days.is_finite() || days <= 0.0 || days > MAX_DISABLE_AFTER_DAYS {
        return Err(ConfigError::Invalid {
            setting,
            reason: format!(
                "{days} is not a number of days above 0 and at most {MAX_DISABLE_AFTER_DAYS}"
            ),
        });
    }
    Ok(of_days(days))
}

fn parse(raw: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .map_err(|_| format!("{:?} is not a number of days (e.g. 3 or 0.5)", raw.trim()))
}

/// `days` (checked: positive, finite, bounded) as a duration, to the millisecond.
fn of_days(days: f64) -> chrono::TimeDelta {
    // At most ten years in milliseconds: well within i64.
    chrono::TimeDelta::milliseconds((days * 86_400_000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::env_of;
    use crate::settings::OpCli;

    fn resolve(
        flag: Option<&str>,
        environment: &[(&str, &str)],
        file: &str,
    ) -> Result<chrono::TimeDelta, ConfigError> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wagate.toml");
        std::fs::write(&path, file).expect("write");
        let environment = env_of(environment);
        let op = OpCli::default();
        let sources = Sources::load(Some(&path), &environment, &op).expect("sources");
        disable_after(flag.map(str::to_owned), &sources)
    }

    #[test]
    fn flags_win_over_the_environment_over_the_file_over_the_default() {
        let var = env::WEBHOOK_DISABLE_AFTER_DAYS;
        assert_eq!(
            resolve(None, &[], "").expect("valid"),
            chrono::TimeDelta::days(3)
        );
        assert_eq!(
            resolve(None, &[], "webhook_disable_after_days = 2\n").expect("valid"),
            chrono::TimeDelta::days(2)
        );
        assert_eq!(
            resolve(None, &[(var, "0.5")], "webhook_disable_after_days = 2\n").expect("valid"),
            chrono::TimeDelta::hours(12)
        );
        assert_eq!(
            resolve(Some("0.00005"), &[(var, "0.5")], "").expect("valid"),
            chrono::TimeDelta::milliseconds(4_320)
        );
    }

    #[test]
    fn bad_values_are_refused_naming_where_they_came_from() {
        let var = env::WEBHOOK_DISABLE_AFTER_DAYS;
        for raw in ["0", "-1", "NaN", "inf", "three", "99999"] {
            let error = resolve(None, &[(var, raw)], "").expect_err(raw).to_string();
            assert!(error.contains(var), "{raw}: {error}");
        }
        let error = resolve(Some("0"), &[], "").expect_err("flag").to_string();
        assert!(error.contains("--webhook-disable-after-days"), "{error}");
        let error = resolve(None, &[], "webhook_disable_after_days = -2.5\n")
            .expect_err("file")
            .to_string();
        assert!(error.contains("webhook_disable_after_days"), "{error}");
    }
}
