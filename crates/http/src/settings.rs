//! What the HTTP face runs with: ready-made values. Where they come from (flags, environment,
//! files, vaults) is the binary's business; this crate only uses them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wagate_domain::{MessagingLimit, Role};

pub use crate::audit::RejectionLimits;
use wagate_providers::Secret;

/// The server's settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The address to bind (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The directory of the webhook rejection log ([`crate::audit`]): its own, never the
    /// store's folder (created 0700 if missing).
    pub audit_dir: PathBuf,
    /// How much the rejection log keeps.
    pub rejected: RejectionLimits,
    /// The base URL providers call (signatures cover it); `None`: `http://<bound address>`.
    pub public_url: Option<String>,
    /// The bearer tokens of the command API, each with its name and role.
    pub tokens: Vec<ApiToken>,
    pub webhooks: WebhookSecrets,
    /// The sandbox provider stands in for real ones (reported by `/healthz` and `/metrics`).
    pub sandbox: bool,
    /// Timeouts and caps on every connection.
    pub limits: Limits,
    /// The providers' template APIs (creating templates, reading their status); empty: creating
    /// a template is refused naming the missing configuration.
    pub templates: wagate_providers::templates::TemplateClients,
    /// The binary's CRM mirror, for `POST /v1/crm/backfill`; `None`: the hub runs none (the
    /// route answers 409 saying so).
    pub crm: Option<crate::crm::CrmHandle>,
}

/// The smallest header limit accepted (hyper's own smallest read buffer: a smaller limit would
/// refuse ordinary requests).
pub const MIN_HEADER_BYTES: usize = 8192;

/// Limits on every connection and request, so that no client (signed or not) can hold the hub's
/// sockets, memory or shutdown. docs/operations.md lists them with their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection that has not sent a request's complete headers within this time is closed
    /// (hyper's `header_read_timeout`; also bounds an idle keep-alive connection).
    pub header_read_timeout: Duration,
    /// A request body that sends nothing for this long fails (tower-http's
    /// `RequestBodyTimeout`: the time between two chunks, not the whole body).
    pub body_read_timeout: Duration,
    /// A request not answered within this time (reading its body included, so a body trickling
    /// a byte at a time is cut off here) is answered 408. The event feed's stream is not bounded:
    /// only the time to its first byte is.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// The largest request head (request line and headers) accepted; larger is answered 431.
    /// At least [`MIN_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// On shutdown, how long open requests may still run before their connections are cut.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// One bearer token of the command API: its name (recorded with every event its commands
/// append), its role (which routes it may use) and its value.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    pub secret: Secret,
}

impl ApiToken {
    pub fn new(name: impl Into<String>, role: Role, secret: Secret) -> Self {
        Self {
            name: name.into(),
            role,
            secret,
        }
    }
}

/// The secrets provider webhooks are checked with; `None`: that provider's webhooks are not
/// configured and are refused.
#[derive(Debug, Clone, Default)]
pub struct WebhookSecrets {
    /// Twilio's (or the sandbox's) auth token: `X-Twilio-Signature`.
    pub twilio_auth_token: Option<Secret>,
    /// Meta's app secret: `X-Hub-Signature-256`.
    pub meta_app_secret: Option<Secret>,
    /// Meta's subscription verify token.
    pub meta_verify_token: Option<Secret>,
}

impl HttpSettings {
    /// Settings for tests and embedding: listen on `listen`, the rejection log in `audit_dir`,
    /// `api_token` as an operator token named `api`, no webhook secrets, not sandbox.
    pub fn new(listen: SocketAddr, audit_dir: impl Into<PathBuf>, api_token: Secret) -> Self {
        Self {
            listen,
            audit_dir: audit_dir.into(),
            rejected: RejectionLimits::default(),
            public_url: None,
            tokens: vec![ApiToken::new("api", Role::Operator, api_token)],
            webhooks: WebhookSecrets::default(),
            sandbox: false,
            limits: Limits::default(),
            templates: Default::default(),
            crm: None,
        }
    }
}

/// `"250"` → `Limited(250)`, `"unlimited"` → `Unlimited`: the messaging-limit syntax of the API
/// and of the binary's settings.
pub fn parse_messaging_limit(raw: &str) -> Option<MessagingLimit> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("unlimited") {
        return Some(MessagingLimit::Unlimited);
    }
    raw.parse::<u32>().ok().map(MessagingLimit::Limited)
}
