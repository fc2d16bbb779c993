//! The HubSpot timeline (`crm`): on when `WAGATE_HUBSPOT_TOKEN` is set (a private app token; may
//! be an `op://` reference). `WAGATE_HUBSPOT_API_BASE` (default `https://api.hubapi.com`; tests
//! point it at a fake), `WAGATE_HUBSPOT_EVENTS` (which events to mirror: a comma list of
//! `outbound`, `inbound`, `status`, `consent`; default all), `WAGATE_HUBSPOT_CREATE_CONTACTS`
//! (`true`: create a contact absent from HubSpot; default `false`),
//! `WAGATE_HUBSPOT_CONSENT_PROPERTY` (a contact property set to `opted_in`/`opted_out`),
//! `WAGATE_HUBSPOT_ID_PROPERTY` (a text property on communications and notes wagate stamps
//! with its record key, searched before re-creating after a crash), and
//! `WAGATE_HUBSPOT_STATE_FILE` (default `<data>.hubspot.jsonl`, beside the data directory).

use std::path::{Path, PathBuf};

use wagate_providers::Secret;

use super::sources::Sources;
use super::{env, ConfigError};

/// The default of `WAGATE_HUBSPOT_API_BASE`.
pub const DEFAULT_HUBSPOT_API_BASE: &str = "https://api.hubapi.com";

/// Which events become HubSpot records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirrored {
    /// Outbound messages (template and freeform): a Communication each.
    pub outbound: bool,
    /// Inbound messages: a Communication each.
    pub inbound: bool,
    /// Dispatch outcomes and status callbacks: the outbound Communication updated.
    pub status: bool,
    /// Opt-ins and opt-outs: a note, and the consent property when configured.
    pub consent: bool,
}

impl Mirrored {
    pub const ALL: Mirrored = Mirrored {
        outbound: true,
        inbound: true,
        status: true,
        consent: true,
    };

    fn parse(raw: &str) -> Result<Self, ConfigError> {
        let mut mirrored = Mirrored {
            outbound: false,
            inbound: false,
            status: false,
            consent: false,
        };
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "outbound" => mirrored.outbound = true,
                "inbound" => mirrored.inbound = true,
                "status" => mirrored.status = true,
                "consent" => mirrored.consent = true,
                "all" => mirrored = Mirrored::ALL,
                other => {
                    return Err(ConfigError::Invalid {
                        setting: env::HUBSPOT_EVENTS.into(),
                        reason: format!(
                            "{other:?} is not one of outbound, inbound, status, consent, all"
                        ),
                    })
                }
            }
        }
        Ok(mirrored)
    }
}

/// Everything the HubSpot mirror runs with.
#[derive(Debug, Clone)]
pub struct CrmSettings {
    pub token: Secret,
    pub api_base: String,
    pub mirrored: Mirrored,
    pub create_contacts: bool,
    pub consent_property: Option<String>,
    pub id_property: Option<String>,
    pub state_file: PathBuf,
}

/// `None` when no token is set (no mirror).
pub(super) fn crm(sources: &Sources<'_>, data: &Path) -> Result<Option<CrmSettings>, ConfigError> {
    let Some(token) = sources.secret(env::HUBSPOT_TOKEN, &None)? else {
        for other in [
            env::HUBSPOT_API_BASE,
            env::HUBSPOT_EVENTS,
            env::HUBSPOT_CREATE_CONTACTS,
            env::HUBSPOT_CONSENT_PROPERTY,
            env::HUBSPOT_ID_PROPERTY,
            env::HUBSPOT_STATE_FILE,
        ] {
            if sources.env(other).is_some() {
                return Err(ConfigError::Invalid {
                    setting: env::HUBSPOT_TOKEN.into(),
                    reason: format!("{other} is set but there is no token to call HubSpot with"),
                });
            }
        }
        return Ok(None);
    };
    let api_base = sources
        .env(env::HUBSPOT_API_BASE)
        .map(|raw| raw.trim().trim_end_matches('/').to_owned())
        .unwrap_or_else(|| DEFAULT_HUBSPOT_API_BASE.to_owned());
    if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
        return Err(ConfigError::Invalid {
            setting: env::HUBSPOT_API_BASE.into(),
            reason: format!("{api_base:?} is not an http(s) URL"),
        });
    }
    let mirrored = match sources.env(env::HUBSPOT_EVENTS) {
        None => Mirrored::ALL,
        Some(raw) => Mirrored::parse(&raw)?,
    };
    let create_contacts = match sources.env(env::HUBSPOT_CREATE_CONTACTS) {
        None => false,
        Some(raw) => match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            other => {
                return Err(ConfigError::Invalid {
                    setting: env::HUBSPOT_CREATE_CONTACTS.into(),
                    reason: format!("{other:?} is not true or false"),
                })
            }
        },
    };
    let property = |name: &str| -> Result<Option<String>, ConfigError> {
        match sources.env(name) {
            None => Ok(None),
            Some(raw) => {
                let raw = raw.trim().to_owned();
                // HubSpot's internal property names: lower-case letters, digits, underscores.
                let valid = raw
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && raw.chars().next().is_some_and(|c| c.is_ascii_lowercase());
                if valid {
                    Ok(Some(raw))
                } else {
                    Err(ConfigError::Invalid {
                        setting: name.into(),
                        reason: format!(
                            "{raw:?} is not a HubSpot internal property name (a-z, 0-9, _)"
                        ),
                    })
                }
            }
        }
    };
    let consent_property = property(env::HUBSPOT_CONSENT_PROPERTY)?;
    let id_property = property(env::HUBSPOT_ID_PROPERTY)?;
    let state_file = match sources.env(env::HUBSPOT_STATE_FILE) {
        Some(path) => PathBuf::from(path.trim()),
        None => {
            let name = data
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| "wagate-data".to_owned());
            data.with_file_name(format!("{name}.hubspot.jsonl"))
        }
    };
    Ok(Some(CrmSettings {
        token,
        api_base,
        mirrored,
        create_contacts,
        consent_property,
        id_property,
        state_file,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::env_of;
    use crate::settings::OpCli;

    fn resolve(pairs: &[(&str, &str)]) -> Result<Option<CrmSettings>, ConfigError> {
        let environment = env_of(pairs);
        let op = OpCli::default();
        let sources = Sources::load(None, &environment, &op)?;
        crm(&sources, Path::new("/srv/wagate-data"))
    }

    #[test]
    fn off_without_a_token_and_defaults_with_one() {
        assert!(resolve(&[]).expect("none").is_none());
        let settings = resolve(&[(env::HUBSPOT_TOKEN, "pat-na1-x")])
            .expect("ok")
            .expect("on");
        assert_eq!(settings.api_base, DEFAULT_HUBSPOT_API_BASE);
        assert_eq!(settings.mirrored, Mirrored::ALL);
        assert!(!settings.create_contacts);
        assert_eq!(
            settings.state_file,
            PathBuf::from("/srv/wagate-data.hubspot.jsonl")
        );
    }

    #[test]
    fn bad_values_name_their_setting() {
        let error = resolve(&[
            (env::HUBSPOT_TOKEN, "t"),
            (env::HUBSPOT_EVENTS, "outbound,calls"),
        ])
        .expect_err("events");
        assert!(error.to_string().contains(env::HUBSPOT_EVENTS), "{error}");
        let error = resolve(&[
            (env::HUBSPOT_TOKEN, "t"),
            (env::HUBSPOT_ID_PROPERTY, "Wagate Id"),
        ])
        .expect_err("property");
        assert!(
            error.to_string().contains(env::HUBSPOT_ID_PROPERTY),
            "{error}"
        );
        let error = resolve(&[(env::HUBSPOT_EVENTS, "inbound")]).expect_err("no token");
        assert!(error.to_string().contains(env::HUBSPOT_TOKEN), "{error}");
        let only = resolve(&[
            (env::HUBSPOT_TOKEN, "t"),
            (env::HUBSPOT_EVENTS, "inbound, consent"),
        ])
        .expect("ok")
        .expect("on");
        assert!(only.mirrored.inbound && only.mirrored.consent);
        assert!(!only.mirrored.outbound && !only.mirrored.status);
    }
}
