//! Where the event log is: sled in the data directory (the default), or a PostgreSQL database
//! (`--store postgres://…`, `WAGATE_STORE_URL`, the file's `store_url`). The URL may carry the
//! password; the password may be an `op://` reference, in the URL (percent-encoded) or in
//! `WAGATE_STORE_PASSWORD` (the file's `store_password`), which then replaces the URL's.

use wagate_providers::Secret;

use super::sources::Sources;
use super::{env, ConfigError};

/// The event log's backend.
#[derive(Debug, Clone)]
pub enum StoreSetting {
    /// sled in the data directory, keeping the newest `unpacked_tail_events` events as one key
    /// each and packing older ones into blocks (`WAGATE_UNPACKED_TAIL_EVENTS`, the file's
    /// `unpacked_tail_events`; docs/storage.md, "Packing").
    Sled { unpacked_tail_events: u64 },
    /// A PostgreSQL database. The URL is kept as a secret: it may hold the password.
    Postgres {
        url: Secret,
        /// The password to use instead of the URL's (resolved from `op://` if it was one).
        password: Option<Secret>,
    },
}

impl Default for StoreSetting {
    fn default() -> Self {
        StoreSetting::Sled {
            unpacked_tail_events: wagate_store::Options::default().unpacked_tail_events,
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

/// sled's settings: how many of the newest events stay unpacked.
fn sled(sources: &Sources) -> Result<StoreSetting, ConfigError> {
    let unpacked_tail_events = match sources.env(env::UNPACKED_TAIL_EVENTS) {
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .map_err(|_| ConfigError::Invalid {
                setting: env::UNPACKED_TAIL_EVENTS.into(),
                reason: format!("{raw:?} is not a whole number of events"),
            })?,
        None => match sources.file.unpacked_tail_events {
            Some(events) => events,
            None => return Ok(StoreSetting::default()),
        },
    };
    Ok(StoreSetting::Sled {
        unpacked_tail_events,
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
                unpacked_tail_events: 100_000
            })
        ));
        assert!(matches!(
            resolve(None, &[("WAGATE_UNPACKED_TAIL_EVENTS", "0")], &op),
            Ok(StoreSetting::Sled {
                unpacked_tail_events: 0
            })
        ));
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
