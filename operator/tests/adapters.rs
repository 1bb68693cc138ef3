//! The real implementations of the operator's seams: `RedisKeyStore` against a real
//! `redis-server`, `HttpPulsarAdmin` and `HttpGatewayAdmin` against HTTP servers on loopback that
//! record the exact requests (the Pulsar test broker answers `HttpPulsarAdmin` in
//! `tests/pulsar_admin.rs`, real gateways answer `HttpGatewayAdmin` in `tests/rollout_real`), and
//! the operator's own `/metrics`, `/healthz` and `/readyz`.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use chat_operator::gateway::{GatewayAdmin, HttpGatewayAdmin};
use chat_operator::http::Health;
use chat_operator::keys::{KeyStore, RedisKeyStore, RedisTarget};
use chat_operator::observed::AdminStatus;
use chat_operator::pulsar::{AdminEndpoint, HttpPulsarAdmin, PulsarAdmin};
use chat_tests::fixtures::free_port;
use chat_tests::redis::RedisServer;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Serves `router` on a free loopback port; returns its base URL.
async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn redis_key_store_reads_servers_removes_pods_and_deletes_only_its_prefix() {
    // A server of its own, not the shared one: the test lists every key (`KEYS *`) and checks
    // that a prefix with a glob character leaves its neighbours alone.
    let server = RedisServer::start_own();
    let url = server.url();
    let mut conn = server.client().await;
    let seed = |args: &[&str]| {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd
    };
    for args in [
        &[
            "ZADD",
            "demo:servers",
            "1",
            "demo-gateway-0",
            "2",
            "demo-gateway-3",
        ][..],
        &["SADD", "demo:pod:demo-gateway-0", "alice:phone"],
        &["SADD", "demo:pod:demo-gateway-3", "bob:laptop"],
        &["SET", "demo:route:alice:phone", "demo-gateway-0|1"],
        &["SET", "demox:servers", "another cluster"],
        &["SET", "de*:servers", "a prefix with a glob character"],
        &["SET", "demo2:servers", "matched by de* unless escaped"],
    ] {
        seed(args).query_async::<()>(&mut conn).await.unwrap();
    }
    let store = RedisKeyStore::new();
    let url = RedisTarget::plain(&url);

    let servers = store.servers(&url, "demo").await.unwrap();
    assert_eq!(servers, ["demo-gateway-0", "demo-gateway-3"]);

    store
        .remove_pods(&url, "demo", &["demo-gateway-3".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        store.servers(&url, "demo").await.unwrap(),
        ["demo-gateway-0"]
    );
    let exists: bool = seed(&["EXISTS", "demo:pod:demo-gateway-3"])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists);

    assert_eq!(store.delete_prefix(&url, "demo").await.unwrap(), 3);
    assert_eq!(store.delete_prefix(&url, "de*").await.unwrap(), 1);
    let mut left: Vec<String> = seed(&["KEYS", "*"]).query_async(&mut conn).await.unwrap();
    left.sort();
    assert_eq!(left, ["demo2:servers", "demox:servers"]);
}

#[tokio::test]
async fn redis_key_store_fails_fast_when_redis_is_unreachable() {
    let started = Instant::now();
    let result = RedisKeyStore::new()
        .servers(
            &RedisTarget::plain(&format!("redis://127.0.0.1:{}/", free_port())),
            "demo",
        )
        .await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Requests an HTTP stub received: `METHOD /path?query body`.
type Calls = Arc<Mutex<Vec<String>>>;

/// Records each request and answers as Pulsar's admin API for a broker whose tenants are `public`, whose cluster is
/// `standalone`, whose namespace `public/chat` exists, and which knows the topics created so far.
fn pulsar_stub(calls: Calls) -> Router {
    let topics: Arc<Mutex<Vec<String>>> = Arc::default();
    Router::new()
        .route(
            "/admin/v2/tenants",
            get(|| async { Json(json!(["public"])) }),
        )
        .route(
            "/admin/v2/clusters",
            get(|| async { Json(json!(["standalone"])) }),
        )
        .fallback(any(
            move |method: Method, uri: Uri, State(calls): State<Calls>, body: String| {
                let topics = topics.clone();
                async move {
                    let path = uri.path().to_owned();
                    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                    calls
                        .lock()
                        .unwrap()
                        .push(format!("{method} {path}{query} {body}").trim().to_owned());
                    let mut topics = topics.lock().unwrap();
                    match (method, path.as_str()) {
                        (Method::PUT, "/admin/v2/namespaces/public/chat") => StatusCode::CONFLICT,
                        (Method::PUT, p) if p.starts_with("/admin/v2/persistent/") => {
                            if topics.contains(&path) {
                                StatusCode::CONFLICT
                            } else {
                                topics.push(path.clone());
                                StatusCode::NO_CONTENT
                            }
                        }
                        (Method::DELETE, p) if p.starts_with("/admin/v2/persistent/") => {
                            if topics.contains(&path) {
                                topics.retain(|t| *t != path);
                                StatusCode::NO_CONTENT
                            } else {
                                StatusCode::NOT_FOUND
                            }
                        }
                        (Method::PUT, _) => StatusCode::NO_CONTENT,
                        _ => StatusCode::INTERNAL_SERVER_ERROR,
                    }
                }
            },
        ))
        .with_state(calls)
}

#[tokio::test]
async fn pulsar_admin_creates_what_is_missing_and_treats_409_and_404_as_done() {
    let calls = Calls::default();
    let url = AdminEndpoint::plain(&serve(pulsar_stub(calls.clone())).await);
    let admin = HttpPulsarAdmin::new().unwrap();
    let topic = "persistent://public/chat/demo-pod-demo-gateway-0";

    admin
        .ensure_namespace(&url, "public", "chat")
        .await
        .unwrap();
    admin.ensure_namespace(&url, "acme", "chat").await.unwrap();
    admin.create_topic(&url, topic).await.unwrap();
    admin.create_topic(&url, topic).await.unwrap();
    admin.delete_topic(&url, topic).await.unwrap();
    admin.delete_topic(&url, topic).await.unwrap();
    admin
        .create_topic(&url, "persistent://public/chat/x")
        .await
        .unwrap();
    admin
        .ensure_namespace(&url, "public", "other")
        .await
        .unwrap();

    let path = "/admin/v2/persistent/public/chat/demo-pod-demo-gateway-0";
    assert_eq!(
        calls.lock().unwrap().as_slice(),
        [
            "PUT /admin/v2/namespaces/public/chat".to_owned(),
            r#"PUT /admin/v2/tenants/acme {"adminRoles":[],"allowedClusters":["standalone"]}"#
                .to_owned(),
            "PUT /admin/v2/namespaces/acme/chat".to_owned(),
            format!("PUT {path}"),
            format!("PUT {path}"),
            format!("DELETE {path}?force=true"),
            format!("DELETE {path}?force=true"),
            "PUT /admin/v2/persistent/public/chat/x".to_owned(),
            "PUT /admin/v2/namespaces/public/other".to_owned(),
        ]
    );
}

#[tokio::test]
async fn gateway_admin_reads_status_and_posts_the_drain() {
    let drains = Arc::new(Mutex::new(Vec::<Value>::new()));
    // As a gateway with --admin-token "tok": anything else is 401.
    let router = Router::new()
        .route(
            "/admin/status",
            get(|| async {
                Json(json!({"pod": "demo-gateway-0", "connections": 7, "draining": false}))
            }),
        )
        .route(
            "/admin/drain",
            post(
                |State(drains): State<Arc<Mutex<Vec<Value>>>>, Json(body): Json<Value>| async move {
                    drains.lock().unwrap().push(body);
                    Json(json!({"draining": true}))
                },
            ),
        )
        .layer(axum::middleware::from_fn(
            |request: axum::extract::Request, next: axum::middleware::Next| async move {
                let auth = request.headers().get("authorization").cloned();
                if auth.as_ref().and_then(|v| v.to_str().ok()) != Some("Bearer tok") {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                next.run(request).await
            },
        ))
        .with_state(drains.clone());
    let url = serve(router).await;
    let gateway = HttpGatewayAdmin::new().unwrap();

    assert!(gateway.status(&url, None).await.is_err(), "no token: 401");
    assert!(gateway.drain(&url, 25, Some("wrong")).await.is_err());
    let status = gateway.status(&url, Some("tok")).await.unwrap();
    assert_eq!(
        status,
        AdminStatus {
            connections: 7,
            draining: false,
            moving: 0,
        }
    );
    gateway.drain(&url, 25, Some("tok")).await.unwrap();
    assert_eq!(
        drains.lock().unwrap().as_slice(),
        [json!({"deadlineSeconds": 25})]
    );

    let down =
        serve(Router::new().fallback(any(|| async { StatusCode::SERVICE_UNAVAILABLE }))).await;
    assert!(gateway.status(&down, Some("tok")).await.is_err());
    assert!(gateway.drain(&down, 25, Some("tok")).await.is_err());
}

#[tokio::test]
async fn operator_endpoints_serve_health_readiness_and_metrics() {
    let health = Arc::new(Health::default());
    let handle = chat_operator::metrics::handle();
    metrics::counter!(chat_operator::metrics::RECONCILES).increment(1);
    let url = serve(chat_operator::http::router(health.clone(), handle)).await;
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let request = http.get(format!("{url}{path}"));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };

    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await.0, 503);
    health.set_ready(true);
    assert_eq!(get("/readyz").await.0, 200);
    let (code, body) = get("/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("chat_operator_reconciles_total"), "{body}");
}
