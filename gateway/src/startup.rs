//! Starting while a backend is down: the process comes up, its admin port answers (`/healthz`
//! ok, `/readyz` 503 with the reason), and it connects to PostgreSQL, Redis and Pulsar with
//! backoff until they answer — instead of exiting, which in Kubernetes turns one backend's
//! outage into a crash loop of every pod that restarts meanwhile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::error::{Error, Result};
use crate::server::Backends;

/// First pause between attempts to reach the backends.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest pause between attempts.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A listener that several servers in turn can accept on: the admin port answers while the
/// gateway starts, then serves the full admin router on the same socket.
#[derive(Clone)]
pub struct SharedListener(Arc<TcpListener>);

impl From<TcpListener> for SharedListener {
    fn from(listener: TcpListener) -> Self {
        Self(Arc::new(listener))
    }
}

impl SharedListener {
    /// The address it is bound to.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

impl axum::serve::Listener for SharedListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "admin port: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Connects the backends `config` names, retrying with backoff while any is unreachable; the
/// admin port answers meanwhile, unready with the reason. A configuration error (a malformed
/// URL) fails at once. `None` when `shutdown` fired first.
pub async fn connect_backends(
    config: &ServeConfig,
    admin: &SharedListener,
    shutdown: &CancellationToken,
) -> Result<Option<Backends>> {
    let first = match Backends::from_config(config).await {
        Ok(backends) => return Ok(Some(backends)),
        Err(e) if !retryable(&e) => return Err(e),
        Err(e) => e,
    };
    let why = Arc::new(Mutex::new(first.to_string()));
    let stop_admin = CancellationToken::new();
    let server = axum::serve(admin.clone(), starting_router(why.clone()))
        .with_graceful_shutdown(stop_admin.clone().cancelled_owned());
    let server = tokio::spawn(async move { server.await });
    let mut pause = FIRST_RETRY;
    let mut attempt = 1u32;
    let mut error = first;
    let result = loop {
        tracing::warn!(error = %error, attempt, retry_in = ?pause, "a backend is not reachable; unready until it is");
        metrics::counter!("chat_startup_backend_failures_total").increment(1);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.cancelled() => break Ok(None),
        }
        match Backends::from_config(config).await {
            Ok(backends) => {
                tracing::info!(attempt, "backends reachable; starting");
                break Ok(Some(backends));
            }
            Err(e) if !retryable(&e) => break Err(e),
            Err(e) => {
                *why.lock().expect("startup reason lock") = e.to_string();
                error = e;
            }
        }
        attempt += 1;
        pause = (pause * 2).min(MAX_RETRY);
    };
    stop_admin.cancel();
    let _ = server.await;
    result
}

/// Whether start-up should wait for the backend rather than exit: anything but a configuration
/// the gateway could never start with.
fn retryable(e: &Error) -> bool {
    !matches!(
        e,
        Error::BadRequest(_) | Error::Database(sqlx::Error::Configuration(_))
    )
}

/// The admin port while starting: alive, not ready, and why.
fn starting_router(why: Arc<Mutex<String>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(why): State<Arc<Mutex<String>>>| async move {
                let why = why.lock().expect("startup reason lock").clone();
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("starting: waiting for a backend: {why}"),
                )
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    crate::metrics::handle().render(),
                )
                    .into_response()
            }),
        )
        .with_state(why)
}
