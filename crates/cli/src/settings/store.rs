//! Where the event log is: sled in the data directory (the default), or a PostgreSQL database
//! (`--store postgres://…`, `WAGATE_STORE_URL`, the file's `store_url`). The URL may carry the
//! password; the password may be an `op://` reference, in the URL (percent-encoded) or in
//! `WAGATE_STORE_PASSWORD` (the file's `store_password`), which then replaces the URL's.

use wagate_providers::Secret;

use super::limits::number;
use super::sources::Sources;
use super::{env, ConfigError};

/// The event log's backend.
#[derive(Debug, Clone)]
pub enum StoreSetting {
    /// sled in the data directory, keeping the newest `unpacked_tail_events` events as one key
    /// each and packing older ones into blocks (`WAGATE_UNPACKED_TAIL_EVENTS`, the file's
    /// `unpacked_tail_events`; docs/storage.md, "Packing"), with a page cache of `cache_mib`
    /// MiB (`WAGATE_SLED_CACHE_MIB`, the file's `sled_cache_mib`).
    Sled {
        unpacked_tail_events: u64,
        cache_mib: u64,
    },
    /// A PostgreSQL database. The URL is kept as a secret: it may hold the password.
    Postgres {
        url: Secret,
        /// The password to use instead of the URL's (resolved from `op://` if it was one).
        password: Option<Secret>,
    },
}

impl Default for StoreSetting {
    fn default() -> Self {
        let options = wagate_store::Options::default();
        StoreSetting::Sled {
            unpacked_tail_events: options.unpacked_tail_events,
            cache_mib: options.cache_capacity_bytes / MIB,
        }
    }
}

/// Resolves the store from `flag` (`--store`), the environment and the file.
pub(super) fn store(flag: Option<String>, sources: &Sources) -> Result<StoreSetting, ConfigError> {
    let (setting, raw) = match (flag, sources.env(env::STORE_URL)) {
        (Some(flag), _) => ("--store", flag),
        (None, Some(var)) => (env::STORE_URL, var),
        (None, None) => match sources.file.store_url.clone() {
            Some(url) => ("store_url (in the --config file)", url),
            None => return sled(sources),
        },
    };
    let raw = raw.trim().to_owned();
    if !wagate_store_postgres::is_postgres_url(&raw) {
        return Err(ConfigError::Invalid {
            setting: setting.into(),
            reason: "must be a postgres:// (or postgresql://) URL; sled's folder is --data".into(),
        });
    }
    let in_url =
        wagate_store_postgres::url_password(&raw).map_err(|error| ConfigError::Invalid {
            setting: setting.into(),
            reason: error.to_string(),
        })?;
    let password = match sources.secret(env::STORE_PASSWORD, &sources.file.store_password)? {
        Some(password) => Some(password),
        None => match in_url {
            Some(reference) if reference.starts_with("op://") => {
                sources.secret_from(&format!("the password in {setting}"), Some(reference))?
            }
            _ => None,
        },
    };
    Ok(StoreSetting::Postgres {
        url: Secret::new(raw),
        password,
    })
}

const MIB: u64 = 1024 * 1024;
/// Bounds of `WAGATE_SLED_CACHE_MIB`: below 1 MiB sled reads every page from the file; 64 GiB is
/// beyond any machine this runs on, so a larger value is a typo.
const SLED_CACHE_MIB_RANGE: std::ops::RangeInclusive<u64> = 1..=64 * 1024;

/// sled's settings: how many of the newest events stay unpacked, and its page cache.
fn sled(sources: &Sources) -> Result<StoreSetting, ConfigError> {
    let defaults = wagate_store::Options::default();
    let unpacked_tail_events = number(
        sources,
        env::UNPACKED_TAIL_EVENTS,
        sources.file.unpacked_tail_events,
        0..=u64::MAX,
        "events",
    )?
    .unwrap_or(defaults.unpacked_tail_events);
    let cache_mib = number(
        sources,
        env::SLED_CACHE_MIB,
        sources.file.sled_cache_mib,
        SLED_CACHE_MIB_RANGE,
        "MiB",
    )?
    .unwrap_or(defaults.cache_capacity_bytes / MIB);
    Ok(StoreSetting::Sled {
        unpacked_tail_events,
        cache_mib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::OpCli;

    fn resolve(
        flag: Option<&str>,
        vars: &[(&str, &str)],
        op: &OpCli,
    ) -> Result<StoreSetting, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let environment =
            move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let sources = Sources::load(None, &environment, op)?;
        store(flag.map(str::to_owned), &sources)
    }

    #[test]
    fn sled_is_the_default_and_a_flag_beats_the_environment() {
        let op = OpCli::default();
        assert!(matches!(
            resolve(None, &[], &op),
            Ok(StoreSetting::Sled {
                unpacked_tail_events: 100_000,
                cache_mib: 64,
            })
        ));
        assert!(matches!(
            resolve(None, &[("WAGATE_UNPACKED_TAIL_EVENTS", "0")], &op),
            Ok(StoreSetting::Sled {
                unpacked_tail_events: 0,
                cache_mib: 64,
            })
        ));
        assert!(matches!(
            resolve(None, &[("WAGATE_SLED_CACHE_MIB", " 16 ")], &op),
            Ok(StoreSetting::Sled {
                unpacked_tail_events: 100_000,
                cache_mib: 16,
            })
        ));
        for bad in ["0", "65537", "lots"] {
            match resolve(None, &[("WAGATE_SLED_CACHE_MIB", bad)], &op) {
                Err(error) => assert!(
                    error.to_string().contains("WAGATE_SLED_CACHE_MIB"),
                    "{bad}: {error}"
                ),
                Ok(other) => panic!("{bad}: expected an error, got {other:?}"),
            }
        }
        match resolve(None, &[("WAGATE_UNPACKED_TAIL_EVENTS", "many")], &op) {
            Err(error) => assert!(
                error.to_string().contains("WAGATE_UNPACKED_TAIL_EVENTS"),
                "{error}"
            ),
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
        let chosen = resolve(
            Some("postgres://flag@db/log"),
            &[(env::STORE_URL, "postgres://env@db/log")],
            &op,
        );
        match chosen {
            Ok(StoreSetting::Postgres { url, password }) => {
                assert_eq!(url.expose(), "postgres://flag@db/log");
                assert!(password.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            resolve(None, &[(env::STORE_URL, "postgres://env@db/log")], &op),
            Ok(StoreSetting::Postgres { .. })
        ));
    }

    #[test]
    fn a_url_that_is_not_postgres_is_refused_naming_the_setting() {
        let error = resolve(
            None,
            &[(env::STORE_URL, "/var/lib/wagate")],
            &OpCli::default(),
        )
        .expect_err("refused");
        let text = error.to_string();
        assert!(
            text.contains(env::STORE_URL) && text.contains("postgres://"),
            "{text}"
        );
    }
}
