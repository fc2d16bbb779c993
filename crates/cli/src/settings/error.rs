//! Why settings could not be resolved: each error names the setting (and the file or reference),
//! never a secret's value.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("config file {path} is not valid: {reason}")]
    FileInvalid { path: PathBuf, reason: String },
    #[error("invalid {setting}: {reason}")]
    Invalid { setting: String, reason: String },
    #[error(
        "{setting} is the 1Password reference {reference}, but the `op` CLI is not on PATH \
         (install it, or give the value directly)"
    )]
    OpMissing { setting: String, reference: String },
    #[error("{setting}: `op read {reference}` failed: {reason}")]
    OpFailed {
        setting: String,
        reference: String,
        reason: String,
    },
    #[error(
        "a command API token is required when provider credentials are configured: set \
         WAGATE_OPERATOR_TOKEN (or WAGATE_API_TOKEN), WAGATE_AGENT_TOKEN, WAGATE_DISPATCHER_TOKEN \
         or WAGATE_AUDITOR_TOKEN, or [[tokens]] in the --config file (without provider secrets, \
         serve runs in sandbox mode and generates one per role)"
    )]
    MissingApiToken,
    #[error(
        "{setting} is empty: a blank secret is refused (remove the setting or give it a value)"
    )]
    EmptySecret { setting: String },
    #[error(
        "{setting}: unknown role {role:?} (the roles are agent, operator, dispatcher, auditor)"
    )]
    UnknownRole { setting: String, role: String },
    #[error("{setting}: {reason}")]
    BadToken { setting: String, reason: String },
    #[error(
        "{setting} is set but {missing} is not: {why}. Set {missing}, or pass \
         --allow-unverifiable-webhooks for local testing"
    )]
    UnverifiableWebhooks {
        setting: &'static str,
        missing: &'static str,
        why: &'static str,
    },
    #[error(
        "the hub's dispatcher token is required: pass --token, set WAGATE_DISPATCHER_TOKEN \
         (WAGATE_API_TOKEN is read too, for compatibility), or put dispatcher_token in the \
         --config file"
    )]
    MissingHubToken,
    #[error(
        "--sandbox needs WAGATE_TWILIO_AUTH_TOKEN: the token the hub checks Twilio webhooks with"
    )]
    SandboxWithoutToken,
    #[error(
        "no provider credentials: set WAGATE_TWILIO_ACCOUNT_SID and WAGATE_TWILIO_AUTH_TOKEN, \
         or WAGATE_META_ACCESS_TOKEN, or pass --sandbox"
    )]
    NoProviderCredentials,
}
