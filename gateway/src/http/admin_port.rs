//! The admin port, for the kubelet, Prometheus and the operator: `/healthz`, `/readyz`,
//! `/metrics`, `/admin/status`, `/admin/drain` and `/admin/rebalance`. Never exposed publicly; with `--admin-token`
//! (required off loopback) everything but the three probes wants `Authorization: Bearer <token>`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use chat_protocol::admin::{
    self, DrainRequest, DrainStarted, RebalanceRequest, RebalanceStarted, Status, MAX_DRAIN_SECONDS,
};

use super::parse_json;
use crate::app::App;
use crate::error::{Error, Result};

/// The admin port, for the kubelet, Prometheus and the operator: health, readiness, metrics,
/// `/admin/status`, `/admin/drain` and `/admin/rebalance`.
pub fn admin_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(admin::STATUS_PATH, get(status))
        .route(admin::DRAIN_PATH, post(drain))
        .route(admin::REBALANCE_PATH, post(rebalance))
        // Every path, unknown ones too (nothing is learned without the token), but the probes.
        .layer(middleware::from_fn_with_state(app.clone(), require_token))
        .with_state(app)
}

/// What the kubelet and Prometheus call without a token.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// `--admin-token`, when set: the request's `Authorization: Bearer` must equal it (compared in
/// constant time), else 401.
async fn require_token(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let open = OPEN_PATHS.contains(&request.uri().path());
    if let Some(expected) = app.config.auth.admin_token().filter(|_| !open) {
        let given = super::bearer(request.headers()).unwrap_or("");
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            metrics::counter!("chat_admin_unauthorized_total").increment(1);
            return Error::Unauthorized(
                "admin endpoints need Authorization: Bearer <--admin-token>".into(),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Equal bytes, in time that depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let diff = a
        .iter()
        .zip(b)
        .fold(a.len() ^ b.len(), |acc, (x, y)| acc | usize::from(x ^ y));
    diff == 0
}

/// 200 when this pod should get traffic (its body lists what is degraded), 503 when it should
/// not, with the reason ([`crate::health`]).
async fn readyz(State(app): State<Arc<App>>) -> Response {
    let readiness = crate::health::check(&app).await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, readiness.detail).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    metrics::gauge!("chat_draining").set(if app.drain.is_draining() { 1.0 } else { 0.0 });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::handle().render(),
    )
        .into_response()
}

async fn status(State(app): State<Arc<App>>) -> Json<Status> {
    Json(Status {
        pod: app.pod.clone(),
        connections: app.hub.len() as u64,
        draining: app.drain.is_draining(),
        moving: app.rebalance.moving(&app.hub) as u64,
    })
}

/// `POST /admin/drain {"deadlineSeconds": 30}`: start draining; answers at once (202).
async fn drain(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Result<Response> {
    let body: DrainRequest = if body.is_empty() {
        DrainRequest::default()
    } else {
        parse_json(&body)?
    };
    let secs = body.deadline_seconds.unwrap_or(app.config.drain_seconds);
    if secs > MAX_DRAIN_SECONDS {
        return Err(Error::BadRequest(format!(
            "deadlineSeconds must be at most {MAX_DRAIN_SECONDS}"
        )));
    }
    let (deadline, told) = app.drain.start(&app.hub, Duration::from_secs(secs));
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let body = DrainStarted {
        pod: app.pod.clone(),
        draining: true,
        connections: told as u64,
        deadline_seconds: left.as_secs_f64().ceil() as u64,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `POST /admin/rebalance {"connections": 10, "paceSeconds": 30}`: tell that many of the
/// longest-lived connections to move elsewhere, as a drain would, while the pod stays ready;
/// answers at once (202). 409 while draining (the drain moves them all already).
async fn rebalance(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Result<Response> {
    let body: RebalanceRequest = parse_json(&body)?;
    if body.connections == 0 {
        return Err(Error::BadRequest("connections must be at least 1".into()));
    }
    let secs = body.pace_seconds.unwrap_or(app.config.drain_seconds);
    if !(1..=MAX_DRAIN_SECONDS).contains(&secs) {
        return Err(Error::BadRequest(format!(
            "paceSeconds must be from 1 to {MAX_DRAIN_SECONDS}"
        )));
    }
    if app.drain.is_draining() {
        return Err(Error::Conflict(
            "this pod is draining: every connection is moving already".into(),
        ));
    }
    let count = usize::try_from(body.connections).unwrap_or(usize::MAX);
    let told = app
        .rebalance
        .shed(&app.hub, count, Duration::from_secs(secs));
    let body = RebalanceStarted {
        pod: app.pod.clone(),
        moving: told as u64,
        connections: app.hub.len() as u64,
        pace_seconds: secs,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}
