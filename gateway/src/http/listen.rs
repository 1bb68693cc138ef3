//! The public port's accept loop: hyper's HTTP/1 server with a deadline on every request head,
//! and the TCP peer recorded on each request (the per-address limit reads it).
//!
//! `axum::serve` gives hyper no timer, so a client that connects and sends nothing — or sends
//! half a request line and stops — holds its socket and task forever. Here a new connection's
//! first request head must be complete within `--header-timeout-seconds`, and each later one on
//! a keep-alive connection (idle time included) within [`KEEP_ALIVE_HEAD_TIMEOUT`]. HTTP/1
//! only: browsers and apps upgrade to WebSocket over HTTP/1.1, and the ingress speaks HTTP/1.1
//! to pods.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// How long a keep-alive connection may wait for its next request head. Longer than a proxy's
/// idle upstream connections live (ingress-nginx: 60 s), so the proxy, not the gateway, closes
/// them: a gateway closing one just as the proxy sends on it would fail that request (502).
const KEEP_ALIVE_HEAD_TIMEOUT: Duration = Duration::from_secs(75);

/// How long to wait before accepting again after an accept error (out of file descriptors:
/// retrying at once would spin).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `stop` fires; then each connection finishes its request
/// in flight (an upgraded WebSocket is no longer hyper's: the drain ends those) and this returns.
pub async fn serve_public(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    stop: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        connections.spawn(serve_connection(
            tcp,
            peer,
            router.clone(),
            header_timeout,
            stop.clone(),
        ));
    }
    connections.close();
    connections.wait().await;
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    stop: CancellationToken,
) {
    // Told when the first request head is complete: the first-request deadline is met.
    let headed = Arc::new(Notify::new());
    let told = headed.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        told.notify_one();
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move {
            let response = router.call(req.map(Body::new)).await;
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(KEEP_ALIVE_HEAD_TIMEOUT.max(header_timeout));
    let mut conn = pin!(http
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades());
    let first_head = tokio::time::sleep(header_timeout);
    tokio::select! {
        result = conn.as_mut() => return ended(result, peer),
        () = headed.notified() => {}
        () = first_head => {
            tracing::debug!(%peer, "no complete request head in time; closing");
            return;
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            return ended(conn.await, peer);
        }
    }
    tokio::select! {
        result = conn.as_mut() => ended(result, peer),
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            ended(conn.await, peer);
        }
    }
}

fn ended(result: hyper::Result<()>, peer: SocketAddr) {
    if let Err(e) = result {
        tracing::debug!(error = %e, %peer, "connection ended");
    }
}
