//! Running the hub: open the store, build the hub, bind, serve until shutdown, close the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wagate_app::{AppError, Hub, SystemClock};
use wagate_providers::twilio::TwilioSigningKeys;
use wagate_store::{Options, Store, StoreError};

use crate::audit::{AuditError, WebhookAudit};
use crate::config::ServeConfig;
use crate::routes::router;
use crate::state::{AppState, WebhookKeys};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the event log: {0}")]
    Store(#[from] StoreError),
    #[error("cannot load the event log: {0}")]
    App(#[from] AppError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("the server failed: {0}")]
    Io(std::io::Error),
    #[error("a background task failed: {0}")]
    Task(String),
}

/// A bound, ready hub: call [`Server::run`] to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    public_url: String,
    state: AppState,
    store: Store,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Binds the listen address, opens (creating) the store under the data directory and the
    /// webhook audit log, and rebuilds the hub's indexes from the log.
    pub async fn bind(config: &ServeConfig) -> Result<Self, ServeError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    address: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(ServeError::Io)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let audit = WebhookAudit::open(&config.data_dir)?;
        let data_dir = config.data_dir.clone();
        let policy = config.policy.clone();
        let (store, hub) = tokio::task::spawn_blocking(move || -> Result<_, ServeError> {
            let store = Store::open(&data_dir, Options::default())?;
            let hub = Hub::open(Arc::new(store.clone()), Arc::new(SystemClock), policy)?;
            Ok((store, hub))
        })
        .await
        .map_err(|e| ServeError::Task(e.to_string()))??;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}"));
        let meta = config.providers.meta();
        let keys = WebhookKeys {
            public_url: public_url.clone(),
            twilio: config
                .providers
                .twilio_auth_token()
                .cloned()
                .map(TwilioSigningKeys::new),
            meta_app_secret: meta.and_then(|m| m.app_secret.clone()),
            meta_verify_token: meta.and_then(|m| m.verify_token.clone()),
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = AppState::new(
            hub,
            config.api_token.clone(),
            keys,
            audit,
            shutdown_rx,
            config.providers.is_sandbox(),
        );
        Ok(Self {
            listener,
            local_addr,
            public_url,
            state,
            store,
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

    /// Serves until `shutdown` completes, then stops accepting, lets open requests finish
    /// (open event feeds end), and closes the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            state,
            store,
            shutdown: stop_feeds,
            ..
        } = self;
        let app = router(state);
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::trace!(%error, "cannot set TCP_NODELAY");
            }
        });
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_feeds.send(true);
        })
        .await;
        let closed = tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(|e| ServeError::Task(e.to_string()))?;
        served.map_err(ServeError::Io)?;
        closed.map_err(ServeError::Store)
    }
}

/// Binds and serves until `shutdown` completes (see [`Server`]).
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(&config).await?.run(shutdown).await
}
