//! Real backends and gateway pods for the TypeScript SDK's integration tests
//! (`clients/typescript/test/integration`), which spawn this binary:
//!
//! ```text
//! sdk-harness GATEWAY_BIN PODS [extra gateway flags…]
//! ```
//!
//! It starts Redis, PostgreSQL, the Pulsar test broker and `PODS` `chat-gateway` processes in
//! cluster mode (the `ProcessCluster` of the Rust tests), prints one JSON line
//! `{"control": URL, "pods": [{"name", "ws", "admin"}]}` on stdout, and serves a control API on
//! loopback: `GET /pods`; `POST /pods/{i}/kill` (SIGKILL); `POST /pods/{i}/restart` (SIGKILL if
//! running, then start again with the same name; answers the new pod); `POST /stop`. It stops
//! everything when its stdin closes (the test process ended, however it ended).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chat_tests::gateway::GatewayProcess;
use chat_tests::process_cluster::ProcessCluster;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

/// Pods by index; `None` while killed.
struct Harness {
    cluster: ProcessCluster,
    alive: Vec<bool>,
}

type Shared = Arc<Mutex<Harness>>;

fn describe(i: usize, pod: &GatewayProcess) -> Value {
    json!({ "name": ProcessCluster::name(i), "ws": pod.ws_url(), "admin": pod.admin_url("") })
}

fn pods(h: &Harness) -> Value {
    let list: Vec<Value> = h
        .cluster
        .pods
        .iter()
        .enumerate()
        .map(|(i, p)| if h.alive[i] { describe(i, p) } else { Value::Null })
        .collect();
    Value::Array(list)
}

async fn list(State(h): State<Shared>) -> Json<Value> {
    Json(pods(&*h.lock().await))
}

async fn kill(State(h): State<Shared>, Path(i): Path<usize>) -> Json<Value> {
    let mut h = h.lock().await;
    if h.alive[i] {
        h.cluster.pods[i].kill9().await;
        h.alive[i] = false;
    }
    Json(pods(&h))
}

async fn restart(State(h): State<Shared>, Path(i): Path<usize>) -> Json<Value> {
    let mut h = h.lock().await;
    if h.alive[i] {
        h.cluster.pods[i].kill9().await;
    }
    let pod = h.cluster.spawn_pod(&ProcessCluster::name(i)).await;
    h.cluster.pods[i] = pod;
    h.alive[i] = true;
    Json(describe(i, &h.cluster.pods[i]))
}

/// Kills every pod (their `kill_on_drop` would not run under `process::exit`) and exits; the
/// Redis and PostgreSQL watchdogs stop those servers when this process is gone.
async fn shutdown(h: &Shared) -> ! {
    let mut h = h.lock().await;
    for i in 0..h.cluster.pods.len() {
        if h.alive[i] {
            h.cluster.pods[i].kill9().await;
        }
    }
    std::process::exit(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (binary, n) = match args.as_slice() {
        [binary, n, ..] => (binary.clone(), n.parse::<usize>()?),
        _ => anyhow::bail!("usage: sdk-harness GATEWAY_BIN PODS [extra gateway flags…]"),
    };
    let extra: Vec<&str> = args[2..].iter().map(String::as_str).collect();
    let redis_url = chat_tests::redis::server().url();
    let cluster = ProcessCluster::start(&binary, n, &redis_url, &extra).await;
    let h: Shared = Arc::new(Mutex::new(Harness { cluster, alive: vec![true; n] }));
    let app = Router::new()
        .route("/pods", get(list))
        .route("/pods/{i}/kill", post(kill))
        .route("/pods/{i}/restart", post(restart))
        .route(
            "/stop",
            post(|State(h): State<Shared>| async move { shutdown(&h).await }),
        )
        .with_state(h.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let control = format!("http://{}", listener.local_addr()?);
    println!("{}", json!({ "control": control, "pods": pods(&*h.lock().await) }));
    let watch = h.clone();
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
        shutdown(&watch).await
    });
    axum::serve(listener, app).await?;
    Ok(())
}
