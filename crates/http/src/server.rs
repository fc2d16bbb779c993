//! Running the HTTP face: bind, serve a hub until shutdown. The caller (the binary's composition
//! root) opens the log and the hub before and closes the log after: this crate never touches it.

use std::future::Future;
use std::net::SocketAddr;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wagate_app::Hub;
use wagate_providers::twilio::TwilioSigningKeys;

use crate::audit::{AuditError, WebhookAudit};
use crate::routes::router;
use crate::settings::HttpSettings;
use crate::state::{AppState, WebhookKeys};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("the server failed: {0}")]
    Io(std::io::Error),
}

/// A bound, ready server: call [`Server::run`] to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    public_url: String,
    state: AppState,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Binds the listen address and opens (creating) the webhook audit log in
    /// `settings.audit_dir`, which must exist.
    pub async fn bind(settings: &HttpSettings, hub: Hub) -> Result<Self, ServeError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    address: settings.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(ServeError::Io)?;
        let audit = WebhookAudit::open(&settings.audit_dir)?;
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}"));
        let keys = WebhookKeys {
            public_url: public_url.clone(),
            twilio: settings
                .webhooks
                .twilio_auth_token
                .clone()
                .map(TwilioSigningKeys::new),
            meta_app_secret: settings.webhooks.meta_app_secret.clone(),
            meta_verify_token: settings.webhooks.meta_verify_token.clone(),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = AppState::new(
            hub,
            settings.tokens.clone(),
            keys,
            audit,
            shutdown_rx,
            settings.sandbox,
        );
        Ok(Self {
            listener,
            local_addr,
            public_url,
            state,
            shutdown,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The base URL providers call (signatures are checked against it).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The command service, for in-process consumers (the dispatcher).
    pub fn hub(&self) -> &Hub {
        self.state.hub()
    }

    /// Serves until `shutdown` completes, then stops accepting and lets open requests finish
    /// (open event feeds end). When it returns, no request is using the hub any more: the caller
    /// may close the log.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            state,
            shutdown: stop_feeds,
            ..
        } = self;
        let app = router(state);
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::trace!(%error, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_feeds.send(true);
        })
        .await
        .map_err(ServeError::Io)
    }
}

/// Binds and serves `hub` until `shutdown` completes (see [`Server`]).
pub async fn serve(
    settings: &HttpSettings,
    hub: Hub,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(settings, hub).await?.run(shutdown).await
}
