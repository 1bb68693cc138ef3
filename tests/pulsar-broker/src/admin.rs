//! The admin REST calls an operator makes, with Pulsar's paths, statuses and `{"reason": ...}`
//! error bodies: clusters (one, `standalone`, for a new tenant's `allowedClusters`), tenants,
//! namespaces, persistent topics (create, list, delete). Request bodies (tenant info, namespace
//! policies) are accepted and ignored.

use std::sync::Arc;

use axum::{
    extract::{Path, Query, Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, put},
    Json, Router,
};
use serde::Deserialize;

use crate::{broker::Shared, error::Error};

type Result<T> = std::result::Result<T, Error>;

/// The one cluster this broker belongs to, named as a standalone Pulsar names its own.
const CLUSTER: &str = "standalone";

/// The admin routes over the shared broker state; with `token`, every call wants
/// `Authorization: Bearer <token>` (401 otherwise), as Pulsar's token authentication does.
pub(crate) fn router(shared: Arc<Shared>, token: Option<String>) -> Router {
    let routes = routes(shared);
    match token {
        Some(token) => routes.layer(middleware::from_fn(move |request, next| {
            bearer(token.clone(), request, next)
        })),
        None => routes,
    }
}

/// Lets a request through only with the broker's token.
async fn bearer(token: String, request: Request, next: Next) -> Response {
    let sent = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match sent {
        Some(sent) if sent == token => next.run(request).await,
        Some(_) => Error::Authentication("wrong token".into()).into_response(),
        None => Error::Authentication("no bearer token".into()).into_response(),
    }
}

fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/admin/v2/clusters", get(list_clusters))
        .route("/admin/v2/tenants", get(list_tenants))
        .route("/admin/v2/tenants/{tenant}", put(create_tenant))
        .route("/admin/v2/namespaces/{tenant}", get(list_namespaces))
        .route(
            "/admin/v2/namespaces/{tenant}/{namespace}",
            put(create_namespace),
        )
        .route(
            "/admin/v2/persistent/{tenant}/{namespace}",
            get(list_topics),
        )
        .route(
            "/admin/v2/persistent/{tenant}/{namespace}/{topic}",
            put(create_topic).delete(delete_topic),
        )
        .with_state(shared)
}

async fn list_clusters() -> Json<[&'static str; 1]> {
    Json([CLUSTER])
}

async fn list_tenants(State(shared): State<Arc<Shared>>) -> Json<Vec<String>> {
    Json(shared.with_state(|state| state.tenants()))
}

async fn create_tenant(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
) -> Result<StatusCode> {
    shared.with_state(|state| state.create_tenant(&tenant))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_namespaces(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
) -> Result<Json<Vec<String>>> {
    Ok(Json(shared.with_state(|state| state.namespaces(&tenant))?))
}

async fn create_namespace(
    State(shared): State<Arc<Shared>>,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<StatusCode> {
    shared.with_state(|state| state.create_namespace(&tenant, &namespace))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_topics(
    State(shared): State<Arc<Shared>>,
    Path((tenant, namespace)): Path<(String, String)>,
) -> Result<Json<Vec<String>>> {
    Ok(Json(shared.with_state(|state| {
        state.topics_of(&tenant, &namespace)
    })?))
}

async fn create_topic(
    State(shared): State<Arc<Shared>>,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
) -> Result<StatusCode> {
    shared.with_state(|state| state.create_topic(&tenant, &namespace, &topic))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of DELETE on a topic.
#[derive(Debug, Deserialize)]
struct DeleteParams {
    /// Delete even with producers or consumers attached (they are closed).
    #[serde(default)]
    force: bool,
}

async fn delete_topic(
    State(shared): State<Arc<Shared>>,
    Path((tenant, namespace, topic)): Path<(String, String, String)>,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode> {
    shared.run(
        |state| match state.delete_topic(&tenant, &namespace, &topic, params.force) {
            Ok(closes) => (Ok(()), closes),
            Err(error) => (Err(error), Vec::new()),
        },
    )?;
    Ok(StatusCode::NO_CONTENT)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) | Error::ConsumerBusy(_) => StatusCode::CONFLICT,
            Error::InvalidTopicName(_) | Error::NotAllowed(_) => StatusCode::PRECONDITION_FAILED,
            Error::Authentication(_) => StatusCode::UNAUTHORIZED,
            Error::Io(_) | Error::Codec(_) | Error::Handshake(_) | Error::Tls(_) => {
                tracing::error!(error = %self, "admin request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let reason = serde_json::json!({ "reason": self.to_string() });
        (status, Json(reason)).into_response()
    }
}
