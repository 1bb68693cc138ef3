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

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chat_tests::gateway::GatewayProcess;
use chat_tests::process_cluster::ProcessCluster;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

/// What the control API asks of the main task, which owns the cluster (spawning a pod is not
/// `Send`, so the HTTP handlers only pass messages).
enum Command {
    List(oneshot::Sender<Value>),
    Kill(usize, oneshot::Sender<Value>),
    Restart(usize, oneshot::Sender<Value>),
    Stop,
}

type Control = mpsc::Sender<Command>;

fn describe(i: usize, pod: &GatewayProcess) -> Value {
    json!({ "name": ProcessCluster::name(i), "ws": pod.ws_url(), "admin": pod.admin_url("") })
}

/// Pods by index; `null` while killed.
fn pods(cluster: &ProcessCluster, alive: &[bool]) -> Value {
    let list: Vec<Value> = cluster
        .pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if alive[i] {
                describe(i, p)
            } else {
                Value::Null
            }
        })
        .collect();
    Value::Array(list)
}

async fn ask(
    control: &Control,
    make: impl FnOnce(oneshot::Sender<Value>) -> Command,
) -> Json<Value> {
    let (tx, rx) = oneshot::channel();
    let _ = control.send(make(tx)).await;
    Json(rx.await.unwrap_or(Value::Null))
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
    let mut cluster = ProcessCluster::start(&binary, n, &redis_url, &extra).await;
    let mut alive = vec![true; n];

    let (control, mut commands) = mpsc::channel::<Command>(16);
    let app = Router::new()
        .route(
            "/pods",
            get(|State(c): State<Control>| async move { ask(&c, Command::List).await }),
        )
        .route(
            "/pods/{i}/kill",
            post(
                |State(c): State<Control>, Path(i): Path<usize>| async move {
                    ask(&c, |tx| Command::Kill(i, tx)).await
                },
            ),
        )
        .route(
            "/pods/{i}/restart",
            post(
                |State(c): State<Control>, Path(i): Path<usize>| async move {
                    ask(&c, |tx| Command::Restart(i, tx)).await
                },
            ),
        )
        .route(
            "/stop",
            post(|State(c): State<Control>| async move {
                let _ = c.send(Command::Stop).await;
            }),
        )
        .with_state(control.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!(
        "{}",
        json!({ "control": url, "pods": pods(&cluster, &alive) })
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
        let _ = control.send(Command::Stop).await;
    });

    while let Some(command) = commands.recv().await {
        match command {
            Command::List(tx) => {
                let _ = tx.send(pods(&cluster, &alive));
            }
            Command::Kill(i, tx) if i < n => {
                if alive[i] {
                    cluster.pods[i].kill9().await;
                    alive[i] = false;
                }
                let _ = tx.send(pods(&cluster, &alive));
            }
            Command::Restart(i, tx) if i < n => {
                if alive[i] {
                    cluster.pods[i].kill9().await;
                }
                cluster.pods[i] = cluster.spawn_pod(&ProcessCluster::name(i)).await;
                alive[i] = true;
                let _ = tx.send(describe(i, &cluster.pods[i]));
            }
            Command::Kill(..) | Command::Restart(..) => {}
            Command::Stop => break,
        }
    }
    // Kill the pods here: `kill_on_drop` would not run under `process::exit`. The Redis and
    // PostgreSQL watchdogs stop those servers once this process is gone.
    for (i, up) in alive.iter().enumerate() {
        if *up {
            cluster.pods[i].kill9().await;
        }
    }
    std::process::exit(0)
}
