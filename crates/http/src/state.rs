//! What every handler shares.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::sync::watch;
use wagate_app::Hub;
use wagate_domain::Actor;
use wagate_providers::twilio::TwilioSigningKeys;
use wagate_providers::Secret;

use crate::audit::WebhookAudit;
use crate::metrics::Metrics;
use crate::ops::sessions::Sessions;
use crate::settings::ApiToken;

/// The keys webhooks are checked with, and the public URL Twilio signs.
#[derive(Debug, Clone)]
pub struct WebhookKeys {
    /// The base URL providers call, without a trailing slash (`https://hub.example.com`).
    pub public_url: String,
    /// Twilio (or sandbox) signing keys; `None`: Twilio webhooks are not configured.
    pub twilio: Option<TwilioSigningKeys>,
    /// Meta app secret (`X-Hub-Signature-256`); `None`: Meta webhooks are not configured.
    pub meta_app_secret: Option<Secret>,
    /// Meta subscription verify token.
    pub meta_verify_token: Option<Secret>,
}

/// The router's state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    hub: Hub,
    tokens: Vec<ApiToken>,
    keys: WebhookKeys,
    audit: WebhookAudit,
    metrics: Metrics,
    ops_sessions: Sessions,
    consent_guard: crate::consent_page::guard::Guard,
    shutdown: watch::Receiver<bool>,
    mode: &'static str,
    /// When the most recent webhooks were rejected (at most a burst's threshold of them), for
    /// the review queue's `webhook_rejections`.
    rejections: parking_lot::Mutex<std::collections::VecDeque<wagate_domain::Timestamp>>,
    templates: wagate_providers::templates::TemplateClients,
    crm: Option<crate::crm::CrmHandle>,
}

impl AppState {
    /// `shutdown` turns true when the server stops: open event feeds end then.
    pub fn new(
        hub: Hub,
        tokens: Vec<ApiToken>,
        keys: WebhookKeys,
        audit: WebhookAudit,
        shutdown: watch::Receiver<bool>,
        sandbox: bool,
    ) -> Self {
        Self::with_templates(
            hub,
            tokens,
            keys,
            audit,
            shutdown,
            sandbox,
            Default::default(),
        )
    }

    /// [`AppState::new`] with the providers' template APIs.
    pub fn with_templates(
        hub: Hub,
        tokens: Vec<ApiToken>,
        keys: WebhookKeys,
        audit: WebhookAudit,
        shutdown: watch::Receiver<bool>,
        sandbox: bool,
        templates: wagate_providers::templates::TemplateClients,
    ) -> Self {
        Self::with_parts(hub, tokens, keys, audit, shutdown, sandbox, templates, None)
    }

    /// [`AppState::with_templates`] with the binary's CRM mirror.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn with_parts(
        hub: Hub,
        tokens: Vec<ApiToken>,
        keys: WebhookKeys,
        audit: WebhookAudit,
        shutdown: watch::Receiver<bool>,
        sandbox: bool,
        templates: wagate_providers::templates::TemplateClients,
        crm: Option<crate::crm::CrmHandle>,
    ) -> Self {
        // Installed before anything is recorded through the `metrics` facade, which would
        // otherwise be dropped.
        crate::metrics::facade();
        Self {
            inner: Arc::new(Inner {
                hub,
                tokens,
                keys,
                audit,
                metrics: Metrics::default(),
                ops_sessions: Sessions::default(),
                consent_guard: Default::default(),
                shutdown,
                mode: if sandbox { "sandbox" } else { "providers" },
                rejections: parking_lot::Mutex::default(),
                templates,
                crm,
            }),
        }
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The command API's tokens, each with its name and role.
    pub(crate) fn tokens(&self) -> &[ApiToken] {
        &self.inner.tokens
    }

    pub(crate) fn keys(&self) -> &WebhookKeys {
        &self.inner.keys
    }

    pub(crate) fn audit(&self) -> &WebhookAudit {
        &self.inner.audit
    }

    /// Notes a rejected webhook at `at` and answers the recent rejection times (at most
    /// `keep`, oldest first).
    pub(crate) fn note_rejection(
        &self,
        at: wagate_domain::Timestamp,
        keep: usize,
    ) -> Vec<wagate_domain::Timestamp> {
        let mut times = self.inner.rejections.lock();
        times.push_back(at);
        while times.len() > keep.max(1) {
            times.pop_front();
        }
        times.iter().copied().collect()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The ops page's sign-in sessions (in memory).
    pub(crate) fn ops_sessions(&self) -> &Sessions {
        &self.inner.ops_sessions
    }

    /// The consent page's form tokens and rate limits (in memory).
    pub(crate) fn consent_guard(&self) -> &crate::consent_page::guard::Guard {
        &self.inner.consent_guard
    }

    pub(crate) fn shutdown(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.clone()
    }

    /// The providers' template APIs.
    pub fn templates(&self) -> &wagate_providers::templates::TemplateClients {
        &self.inner.templates
    }

    /// The binary's CRM mirror, when the hub runs one.
    pub(crate) fn crm(&self) -> Option<&crate::crm::CrmHandle> {
        self.inner.crm.as_ref()
    }

    pub(crate) fn mode(&self) -> &'static str {
        self.inner.mode
    }
}

/// The hub as the caller of this request: commands through it record the caller (the token's
/// role and name, which the bearer middleware put in the request) as who asked for every event
/// they append. On a route without a token it is the plain hub.
pub(crate) struct Acting(pub Hub);

impl FromRequestParts<AppState> for Acting {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Acting(match parts.extensions.get::<Actor>() {
            Some(actor) => state.hub().acting(actor.clone()),
            None => state.hub().clone(),
        }))
    }
}
