//! `serve`'s limits on every connection: each from its `WAGATE_…` variable, else the config
//! file's lower-case key, else [`Limits::default`] (docs/operations.md lists them).

use std::time::Duration;

use wagate_http::{Limits, MIN_HEADER_BYTES};

use super::sources::Sources;
use super::{env, ConfigError};

/// A day: no timeout or grace longer than that is meant (a typo of units, more likely).
const MAX_SECONDS: u64 = 24 * 60 * 60;
/// Far above any machine's descriptor limit; a larger cap is certainly a mistake.
const MAX_CONNECTIONS: u64 = 1_000_000;
/// 1 MiB of headers is already far beyond what any provider or client sends.
const MAX_HEADER_BYTES: u64 = 1024 * 1024;

/// The limits `sources` configure.
pub(super) fn limits(sources: &Sources) -> Result<Limits, ConfigError> {
    let file = &sources.file;
    let defaults = Limits::default();
    let seconds = |name: &'static str, file: Option<u64>, default: Duration| {
        number(sources, name, file, 1..=MAX_SECONDS, "seconds")
            .map(|value| value.map_or(default, Duration::from_secs))
    };
    Ok(Limits {
        header_read_timeout: seconds(
            env::HEADER_READ_TIMEOUT_SECONDS,
            file.header_read_timeout_seconds,
            defaults.header_read_timeout,
        )?,
        body_read_timeout: seconds(
            env::BODY_READ_TIMEOUT_SECONDS,
            file.body_read_timeout_seconds,
            defaults.body_read_timeout,
        )?,
        request_timeout: seconds(
            env::REQUEST_TIMEOUT_SECONDS,
            file.request_timeout_seconds,
            defaults.request_timeout,
        )?,
        max_connections: number(
            sources,
            env::MAX_CONNECTIONS,
            file.max_connections,
            1..=MAX_CONNECTIONS,
            "connections",
        )?
        .map_or(defaults.max_connections, |n| n as usize),
        max_header_bytes: number(
            sources,
            env::MAX_HEADER_BYTES,
            file.max_header_bytes,
            MIN_HEADER_BYTES as u64..=MAX_HEADER_BYTES,
            "bytes",
        )?
        .map_or(defaults.max_header_bytes, |n| n as usize),
        shutdown_grace: seconds(
            env::SHUTDOWN_GRACE_SECONDS,
            file.shutdown_grace_seconds,
            defaults.shutdown_grace,
        )?,
    })
}

/// The variable `name`'s whole number (else the file's), inside `range`; `None`: neither is set.
pub(super) fn number(
    sources: &Sources,
    name: &'static str,
    file: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
) -> Result<Option<u64>, ConfigError> {
    let value = match sources.env(name) {
        Some(raw) => Some(
            raw.trim()
                .parse::<u64>()
                .map_err(|_| ConfigError::Invalid {
                    setting: name.into(),
                    reason: format!("{raw:?} is not a whole number of {unit}"),
                })?,
        ),
        None => file,
    };
    match value {
        Some(value) if !range.contains(&value) => Err(ConfigError::Invalid {
            setting: name.into(),
            reason: format!(
                "{value} {unit}: must be from {} to {}",
                range.start(),
                range.end()
            ),
        }),
        value => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::env_of;
    use crate::settings::OpCli;

    fn resolve(pairs: &[(&str, &str)], toml: Option<&str>) -> Result<Limits, ConfigError> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wagate.toml");
        if let Some(toml) = toml {
            std::fs::write(&path, toml).expect("write");
        }
        let environment = env_of(pairs);
        let op = OpCli::default();
        let sources = Sources::load(toml.map(|_| path.as_path()), &environment, &op)?;
        limits(&sources)
    }

    #[test]
    fn unset_limits_are_the_documented_defaults() {
        assert_eq!(resolve(&[], None).expect("ok"), Limits::default());
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let limits = resolve(
            &[
                (env::HEADER_READ_TIMEOUT_SECONDS, "3"),
                (env::MAX_CONNECTIONS, "7"),
            ],
            Some("header_read_timeout_seconds = 5\nshutdown_grace_seconds = 2\nmax_header_bytes = 16384\n"),
        )
        .expect("ok");
        assert_eq!(limits.header_read_timeout, Duration::from_secs(3));
        assert_eq!(limits.max_connections, 7);
        assert_eq!(limits.shutdown_grace, Duration::from_secs(2));
        assert_eq!(limits.max_header_bytes, 16384);
        assert_eq!(limits.request_timeout, Limits::default().request_timeout);
    }

    #[test]
    fn bad_limits_are_named() {
        for (name, value, says) in [
            (env::REQUEST_TIMEOUT_SECONDS, "0", "must be from 1"),
            (
                env::REQUEST_TIMEOUT_SECONDS,
                "30s",
                "not a whole number of seconds",
            ),
            (env::MAX_CONNECTIONS, "0", "must be from 1"),
            (env::MAX_HEADER_BYTES, "4096", "must be from 8192"),
        ] {
            let error = resolve(&[(name, value)], None)
                .expect_err(value)
                .to_string();
            assert!(error.contains(name) && error.contains(says), "{error}");
        }
    }
}
