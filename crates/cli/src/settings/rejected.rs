//! `serve`'s webhook rejection log: its directory and bounds, each from its `WAGATE_REJECTED_…`
//! variable, else the config file's lower-case key, else the default (docs/operations.md,
//! "Rejected webhooks").
//!
//! "Outside sled's folder" means outside the data directory altogether: sled owns `--data`
//! (its files, its temporary files, its snapshots), and a log that grows with every refused
//! request must neither fill that folder's budget nor be mistaken for, or removed with, the
//! store's files. The default is therefore a sibling, `<data>.rejected`; a configured directory
//! inside the data directory is refused.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use wagate_http::RejectionLimits;

use super::limits::number;
use super::sources::Sources;
use super::{env, ConfigError};

const MIB: u64 = 1024 * 1024;
const DAY: u64 = 24 * 60 * 60;

/// The rejection log's directory and bounds for the data directory `data`.
pub(super) fn rejected(
    sources: &Sources,
    data: &Path,
) -> Result<(PathBuf, RejectionLimits), ConfigError> {
    let file = &sources.file;
    let dir = match sources
        .env(env::REJECTED_DIR)
        .map(PathBuf::from)
        .or(file.rejected_dir.clone())
    {
        Some(dir) => {
            if lexical(&dir).starts_with(lexical(data)) {
                return Err(ConfigError::Invalid {
                    setting: env::REJECTED_DIR.into(),
                    reason: format!(
                        "{} is inside the data directory {}: the rejection log must live outside the store's folder",
                        dir.display(),
                        data.display()
                    ),
                });
            }
            dir
        }
        None => sibling(data)?,
    };
    let defaults = RejectionLimits::default();
    let segment_mib = number(
        sources,
        env::REJECTED_SEGMENT_MIB,
        file.rejected_segment_mib,
        1..=1024,
        "MiB",
    )?;
    let max_mib = number(
        sources,
        env::REJECTED_MAX_MIB,
        file.rejected_max_mib,
        1..=65536,
        "MiB",
    )?;
    let days = number(
        sources,
        env::REJECTED_RETENTION_DAYS,
        file.rejected_retention_days,
        1..=3650,
        "days",
    )?;
    let limits = RejectionLimits {
        segment_bytes: segment_mib.map_or(defaults.segment_bytes, |m| m * MIB),
        max_bytes: max_mib.map_or(defaults.max_bytes, |m| m * MIB),
        retention: days.map_or(defaults.retention, |d| Duration::from_secs(d * DAY)),
    };
    if limits.segment_bytes > limits.max_bytes {
        return Err(ConfigError::Invalid {
            setting: env::REJECTED_SEGMENT_MIB.into(),
            reason: format!(
                "a segment of {} MiB is larger than the whole log ({} MiB, {})",
                limits.segment_bytes / MIB,
                limits.max_bytes / MIB,
                env::REJECTED_MAX_MIB
            ),
        });
    }
    Ok((dir, limits))
}

/// `a/./b/` → `a/b`: enough to compare configured paths (no file system access: the
/// directories may not exist yet).
fn lexical(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// `<data>.rejected`, beside the data directory.
fn sibling(data: &Path) -> Result<PathBuf, ConfigError> {
    let data = lexical(data);
    let name = data.file_name().ok_or_else(|| ConfigError::Invalid {
        setting: env::REJECTED_DIR.into(),
        reason: format!(
            "no default beside the data directory {}: set a directory outside it",
            data.display()
        ),
    })?;
    let mut name = name.to_os_string();
    name.push(".rejected");
    Ok(data.with_file_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::env_of;
    use crate::settings::OpCli;

    fn resolve(
        pairs: &[(&str, &str)],
        data: &str,
    ) -> Result<(PathBuf, RejectionLimits), ConfigError> {
        let environment = env_of(pairs);
        let op = OpCli::default();
        let sources = Sources::load(None, &environment, &op)?;
        rejected(&sources, Path::new(data))
    }

    #[test]
    fn the_default_is_a_sibling_of_the_data_directory_with_the_documented_bounds() {
        let (dir, limits) = resolve(&[], "./wagate-data/").expect("ok");
        assert_eq!(dir, PathBuf::from("wagate-data.rejected"));
        assert_eq!(limits, RejectionLimits::default());
        assert_eq!(limits.max_bytes, 64 * MIB);
        assert_eq!(
            resolve(&[], "/srv/hub/data").expect("ok").0,
            PathBuf::from("/srv/hub/data.rejected")
        );
    }

    #[test]
    fn settings_are_read_and_bad_ones_named() {
        let (dir, limits) = resolve(
            &[
                (env::REJECTED_DIR, "/var/lib/wagate-rejected"),
                (env::REJECTED_SEGMENT_MIB, "2"),
                (env::REJECTED_MAX_MIB, "10"),
                (env::REJECTED_RETENTION_DAYS, "3"),
            ],
            "/srv/data",
        )
        .expect("ok");
        assert_eq!(dir, PathBuf::from("/var/lib/wagate-rejected"));
        assert_eq!(limits.segment_bytes, 2 * MIB);
        assert_eq!(limits.max_bytes, 10 * MIB);
        assert_eq!(limits.retention, Duration::from_secs(3 * DAY));
        for (pairs, says) in [
            (
                vec![(env::REJECTED_DIR, "/srv/data/rejected")],
                "inside the data directory",
            ),
            (
                vec![(env::REJECTED_DIR, "/srv/data")],
                "inside the data directory",
            ),
            (
                vec![
                    (env::REJECTED_SEGMENT_MIB, "16"),
                    (env::REJECTED_MAX_MIB, "8"),
                ],
                "larger than the whole log",
            ),
            (vec![(env::REJECTED_RETENTION_DAYS, "0")], "must be from 1"),
        ] {
            let error = resolve(&pairs, "/srv/data").expect_err(says).to_string();
            assert!(error.contains(says), "{error}");
        }
        let error = resolve(&[], "/").expect_err("root").to_string();
        assert!(error.contains(env::REJECTED_DIR), "{error}");
    }
}
