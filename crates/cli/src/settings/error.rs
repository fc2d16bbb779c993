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
        "WAGATE_API_TOKEN is required when provider credentials are configured \
         (without provider secrets, serve runs in sandbox mode and generates one)"
    )]
    MissingApiToken,
    #[error(
        "the hub's API token is required: pass --token, set WAGATE_API_TOKEN, or put api_token \
         in the --config file"
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
