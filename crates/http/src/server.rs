//! Running the HTTP face: bind, serve a hub until shutdown. The caller (the binary's composition
//! root) opens the log and the hub before and closes the log after: this crate never touches it.
//!
//! The accept loop is hyper's HTTP/1.1 connection builder rather than `axum::serve`, which has no
//! connection cap, header-read timeout, header size limit or bounded drain. HTTP/1.1 only, on
//! purpose: providers and wagate's own clients speak it, and hyper-util's HTTP/1-or-2 detection
//! runs before the header-read timer starts, so a client that connected and sent nothing would
//! be held open for ever (hyperium/hyper#3962). Every connection
//! holds a permit of a semaphore of [`Limits::max_connections`](crate::Limits) taken *before*
//! `accept`, so connections beyond the cap wait in the kernel's listen backlog.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Extension;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceBuilder;
use tower_http::timeout::RequestBodyTimeoutLayer;
use wagate_app::Hub;
use wagate_providers::twilio::TwilioSigningKeys;

use crate::audit::{AuditError, WebhookAudit};
use crate::routes::router_with_limits;
use crate::settings::{HttpSettings, Limits};
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
    limits: Limits,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Binds the listen address and opens the webhook rejection log in `settings.audit_dir`
    /// (created 0700 if missing).
    pub async fn bind(settings: &HttpSettings, hub: Hub) -> Result<Self, ServeError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    address: settings.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(ServeError::Io)?;
        let audit = WebhookAudit::open(&settings.audit_dir, settings.rejected)?;
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
        let state = AppState::with_parts(
            hub,
            settings.tokens.clone(),
            keys,
            audit,
            shutdown_rx,
            settings.sandbox,
            settings.templates.clone(),
            settings.crm.clone(),
        );
        Ok(Self {
            listener,
            local_addr,
            public_url,
            state,
            limits: settings.limits,
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

    /// The providers' template APIs, for the binary's status poller.
    pub fn templates(&self) -> &wagate_providers::templates::TemplateClients {
        self.state.templates()
    }

    /// The command service, for in-process consumers (the dispatcher).
    pub fn hub(&self) -> &Hub {
        self.state.hub()
    }

    /// Serves until `shutdown` completes, then stops accepting and lets open requests finish
    /// (open event feeds end) for at most [`Limits::shutdown_grace`]; connections still open
    /// then are cut. When it returns, no request is using the hub any more: the caller may close
    /// the log. A request cut off was never answered, so nothing acknowledged is lost.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Self {
            listener,
            state,
            limits,
            shutdown: stop_feeds,
            ..
        } = self;
        let app = router_with_limits(state, &limits);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // Starts when the connection is accepted (and again at each next request's first
            // byte), so a silent client is cut off too.
            .header_read_timeout(limits.header_read_timeout)
            // The request line and headers together: more is answered 431.
            .max_header_size(limits.max_header_bytes);
        let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);

        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    // The semaphore is never closed.
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait instead of spinning; the
                        // connections already open go on.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::trace!(%error, "cannot set TCP_NODELAY");
            }
            let service = ServiceBuilder::new()
                // Outside the router, whose handlers see `Body`: the body type changes here.
                .layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout))
                .layer(Extension(ConnectInfo(remote)))
                .service(app.clone());
            let connection =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let connection = graceful.watch(connection);
            connections.spawn(async move {
                if let Err(error) = connection.await {
                    // Timeouts, resets, malformed requests: the client's doing.
                    tracing::debug!(%error, "connection ended with an error");
                }
                drop(permit);
            });
            // Reap finished connections so the set does not grow with every one ever served.
            while connections.try_join_next().is_some() {}
        }

        drop(listener);
        let _ = stop_feeds.send(true);
        if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            while connections.try_join_next().is_some() {}
            tracing::warn!(
                open = connections.len(),
                grace_seconds = limits.shutdown_grace.as_secs(),
                "open connections cut off after the shutdown grace period"
            );
        }
        // Cut whatever is left and wait until every task has let go of the hub.
        connections.abort_all();
        while connections.join_next().await.is_some() {}
        Ok(())
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
