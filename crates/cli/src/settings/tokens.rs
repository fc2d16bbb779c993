//! The command API's tokens: one optional token per role from the environment
//! (`WAGATE_AGENT_TOKEN`, `WAGATE_OPERATOR_TOKEN`, `WAGATE_DISPATCHER_TOKEN`,
//! `WAGATE_AUDITOR_TOKEN`; `WAGATE_API_TOKEN` is an operator token), the file's `api_token` (an
//! operator token) and any number of named tokens in the file:
//!
//! ```toml
//! [[tokens]]
//! name = "outreach-bot"
//! role = "agent"
//! token = "op://vault/wagate/agent"
//! ```
//!
//! The name is what the log records as who asked; names and values must be unique.

use std::collections::BTreeSet;

use wagate_domain::Role;
use wagate_http::ApiToken;

use super::sources::Sources;
use super::{env, ConfigError};

/// The environment variable of each role's token (`WAGATE_API_TOKEN` is read as well, as an
/// operator token), and the name its token is recorded under.
pub(super) const ROLE_VARIABLES: [(&str, Role, &str); 5] = [
    (env::AGENT_TOKEN, Role::Agent, "agent"),
    (env::OPERATOR_TOKEN, Role::Operator, "operator"),
    (env::API_TOKEN, Role::Operator, "api"),
    (env::DISPATCHER_TOKEN, Role::Dispatcher, "dispatcher"),
    (env::AUDITOR_TOKEN, Role::Auditor, "auditor"),
];

/// Every configured token, environment first, then the file's.
pub(super) fn configured(sources: &Sources<'_>) -> Result<Vec<ApiToken>, ConfigError> {
    let mut tokens = Vec::new();
    for (var, role, name) in ROLE_VARIABLES {
        // The file's `api_token` is the operator token `api`, as WAGATE_API_TOKEN (which wins).
        let from_file = if var == env::API_TOKEN {
            sources.file.api_token.clone()
        } else {
            None
        };
        if let Some(secret) = sources.secret(var, &from_file)? {
            tokens.push(ApiToken::new(name, role, secret));
        }
    }
    for (index, entry) in sources.file.tokens.iter().flatten().enumerate() {
        let setting = format!(
            "[[tokens]] #{} ({:?}) in the --config file",
            index + 1,
            entry.name
        );
        let role = Role::parse(entry.role.trim()).ok_or_else(|| ConfigError::UnknownRole {
            setting: setting.clone(),
            role: entry.role.clone(),
        })?;
        let name = entry.name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ConfigError::BadToken {
                setting,
                reason: "a token's name is required, printable ASCII without spaces".into(),
            });
        }
        let secret = sources
            .secret_from(&setting, Some(entry.token.clone()))?
            .ok_or_else(|| ConfigError::EmptySecret {
                setting: setting.clone(),
            })?;
        tokens.push(ApiToken::new(name, role, secret));
    }
    check_unique(&tokens)?;
    Ok(tokens)
}

/// Two tokens with one name would make the log ambiguous; one value with two roles would make
/// the role ambiguous. (One value under two names of one role is allowed: the first name is
/// recorded, e.g. WAGATE_OPERATOR_TOKEN and WAGATE_API_TOKEN set alike during a migration.)
pub(super) fn check_unique(tokens: &[ApiToken]) -> Result<(), ConfigError> {
    let mut names = BTreeSet::new();
    for (index, token) in tokens.iter().enumerate() {
        let clash = tokens[..index].iter().find(|earlier| {
            earlier.role != token.role && earlier.secret.expose() == token.secret.expose()
        });
        if let Some(earlier) = clash {
            return Err(ConfigError::BadToken {
                setting: format!("token {:?}", token.name),
                reason: format!(
                    "its value is also the {} token {:?}'s: one value cannot have two roles",
                    earlier.role, earlier.name
                ),
            });
        }
        if !names.insert(token.name.as_str()) {
            return Err(ConfigError::BadToken {
                setting: format!("token {:?}", token.name),
                reason: "two tokens have this name; each must have its own".into(),
            });
        }
    }
    Ok(())
}
