//! The scenario: the fake API server process, the operator, and kubectl doing what the docs tell
//! a user to do with a ChatCluster.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context as _};
use chat_operator::context::{Backends, Context};
use chat_operator::operator::run_controller;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::apiserver::Process;
use crate::gateways::{PodGateways, CONNECTIONS};
use crate::kubectl::Kubectl;
use crate::support::backends::{FakePulsar, FakeRedis};
use crate::support::journal::Journal;

/// The namespace of the kubeconfig's context, and the one the operator watches.
const NAMESPACE: &str = "chat";
/// The repo's example ChatCluster (`demo`, 2 replicas), relative to the workspace.
const EXAMPLE: &str = "tests/e2e-kind/manifests/chatcluster.yaml";
/// What the example needs beside it: its namespace and the Secrets it names.
const BASE: &str = "apiVersion: v1
kind: Namespace
metadata: {name: chat}
---
apiVersion: v1
kind: Secret
metadata: {name: chat-jwt, namespace: chat}
stringData: {secret: kubectl-test-secret}
---
apiVersion: v1
kind: Secret
metadata: {name: chat-db, namespace: chat}
stringData: {url: \"postgres://chat@db/chat\"}
";

pub async fn run() -> anyhow::Result<()> {
    let server = Process::start()?;
    let dir = std::env::temp_dir().join(format!("chat-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = scenario(&server, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn scenario(server: &Process, dir: &Path) -> anyhow::Result<()> {
    let kubectl = Kubectl::new(&server.url, NAMESPACE, dir)?;
    println!("{} against {}", kubectl.version().await?, server.url);
    let operator = Operator::start(kubectl.kubeconfig()).await?;

    // The namespace and the Secrets the example names. Applied, not `kubectl create`d: kubectl
    // writes built-in kinds in protobuf, which the fake server does not speak.
    let base = dir.join("base.yaml");
    std::fs::write(&base, BASE)?;
    let out = kubectl
        .run(&[
            "apply",
            "--server-side",
            "-f",
            base.to_str().context("a UTF-8 path")?,
        ])
        .await?;
    ensure!(
        out.contains("namespace/chat serverside-applied")
            && out.contains("secret/chat-db serverside-applied"),
        "apply of the namespace and Secrets: {out}"
    );

    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(EXAMPLE);
    let example = example.to_str().context("a UTF-8 path")?;
    let out = kubectl
        .run(&["apply", "--server-side", "-f", example])
        .await?;
    ensure!(
        out.trim() == "chatcluster.chatcluster.dev/demo serverside-applied",
        "apply --server-side: {out}"
    );
    wait_for(&kubectl, "{.status.readyReplicas}=2").await?;

    // A misspelt field is refused (kubectl validates strictly, on the server), and nothing moves.
    let typo = dir.join("typo.yaml");
    let example_text = std::fs::read_to_string(example)?;
    std::fs::write(&typo, example_text.replace("  replicas: 2", "  replica: 3"))?;
    let refused = kubectl
        .run(&[
            "apply",
            "--server-side",
            "-f",
            typo.to_str().context("a UTF-8 path")?,
        ])
        .await
        .err()
        .context("applying a ChatCluster with spec.replica is refused")?;
    ensure!(
        format!("{refused:#}").contains("unknown field \"spec.replica\""),
        "the refusal names the field: {refused:#}"
    );
    wait_for(&kubectl, "{.status.phase}=Running").await?;

    // The printer columns, with their values, as the Table the server sent.
    let table = kubectl.run(&["get", "cc"]).await?;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(
        rows.first().map(Vec::as_slice)
            == Some(&["NAME", "REPLICAS", "READY", "CONNECTIONS", "PHASE", "AGE"][..]),
        "kubectl get cc columns:\n{table}"
    );
    let connections = (2 * CONNECTIONS).to_string();
    ensure!(
        rows.len() == 2 && rows[1][..5] == ["demo", "2", "2", connections.as_str(), "Running"],
        "kubectl get cc row:\n{table}"
    );
    ensure!(rows[1][5].ends_with('s'), "an age in seconds:\n{table}");

    // Through the scale subresource; the operator scales the StatefulSet. `get -w` follows it
    // (a watch of Tables).
    let mut watching = kubectl.spawn(&["get", "cc", "demo", "-w"])?;
    let out = kubectl.run(&["scale", "cc/demo", "--replicas=5"]).await?;
    ensure!(
        out.trim() == "chatcluster.chatcluster.dev/demo scaled",
        "scale: {out}"
    );
    wait_for(&kubectl, "{.status.readyReplicas}=5").await?;
    let connections = (5 * CONNECTIONS).to_string();
    let at_five = ["demo", "5", "5", connections.as_str(), "Running"];
    let mut lines = BufReader::new(watching.stdout.take().context("piped stdout")?).lines();
    let mut watched = Vec::new();
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            let row = line.split_whitespace().take(5).eq(at_five);
            watched.push(line);
            if row {
                return Ok(());
            }
        }
        anyhow::bail!("kubectl get -w ended")
    })
    .await;
    watching.start_kill()?;
    ensure!(
        matches!(seen, Ok(Ok(()))),
        "kubectl get -w shows the cluster at 5 Ready pods ({seen:?}):\n{}",
        watched.join("\n")
    );
    let replicas = kubectl
        .run(&[
            "get",
            "statefulset",
            "demo-gateway",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .await?;
    ensure!(
        replicas == "5",
        "the StatefulSet has {replicas} replicas, not 5"
    );
    let pods = kubectl
        .run(&[
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/instance=demo",
            "-o",
            "name",
        ])
        .await?;
    ensure!(pods.lines().count() == 5, "5 gateway pods:\n{pods}");

    // The operator's Events (events.k8s.io/v1), listed as describe lists them (core/v1 with a
    // field selector on the involved object).
    let description = kubectl.run(&["describe", "cc", "demo"]).await?;
    for expected in [
        "Name:",
        "demo",
        "Kind:",
        "ChatCluster",
        "Replicas:",
        "Events:",
    ] {
        ensure!(
            description.contains(expected),
            "describe lacks {expected:?}:\n{description}"
        );
    }
    // The scale to 5 is an Event of its own (its action names the target, so kube's `Recorder`
    // does not fold it into the scale to 2 and keep that note).
    let event = description
        .lines()
        .find(|l| l.contains("Scaling") && l.contains("to 5"))
        .with_context(|| format!("describe shows no Scaling Event for 5:\n{description}"))?;
    ensure!(
        event.split_whitespace().next() == Some("Normal") && event.contains("chat-operator"),
        "the Event's type and source: {event}"
    );

    // kubectl waits for the object to go: the operator's finalizer cleans up first.
    let out = kubectl.run(&["delete", "cc", "demo"]).await?;
    ensure!(
        // kubectl 1.35 adds " from chat namespace".
        out.starts_with("chatcluster.chatcluster.dev \"demo\" deleted"),
        "delete: {out}"
    );
    let left = kubectl.run(&["get", "cc", "-o", "name"]).await?;
    ensure!(left.trim().is_empty(), "the ChatCluster is gone: {left}");
    ensure!(
        operator.pulsar.topics().is_empty(),
        "the finalizer deleted the topics"
    );
    let owned = kubectl
        .run(&["get", "statefulsets,services,configmaps", "-o", "name"])
        .await?;
    ensure!(
        owned.trim().is_empty(),
        "owned objects are collected: {owned}"
    );
    operator.stop().await
}

/// `kubectl wait cc/demo --for=jsonpath=…`.
async fn wait_for(kubectl: &Kubectl, condition: &str) -> anyhow::Result<()> {
    let condition = format!("--for=jsonpath={condition}");
    kubectl
        .run(&["wait", "cc/demo", &condition, "--timeout=60s"])
        .await?;
    Ok(())
}

/// The operator's controller, with a client from the kubeconfig kubectl uses.
struct Operator {
    pulsar: Arc<FakePulsar>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    async fn start(kubeconfig: &Path) -> anyhow::Result<Self> {
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(kubeconfig)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        let client = kube::Client::try_from(config)?;
        let pulsar = Arc::new(FakePulsar::default());
        let backends = Backends {
            pulsar: pulsar.clone(),
            keys: Arc::new(FakeRedis::new(Journal::default())),
            gateway: Arc::new(PodGateways::new(client.clone())),
        };
        let ctx = Arc::new(Context::new(client, backends, Some("kubectl-test".into())));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_controller(ctx, Some(NAMESPACE), shutdown.clone()));
        Ok(Self {
            pulsar,
            shutdown,
            task,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .context("the operator stops on shutdown")??;
        Ok(())
    }
}
