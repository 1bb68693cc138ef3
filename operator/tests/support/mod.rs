//! Test support for the controller tests: the fake API server, the backend fakes, and a harness
//! running the real `kube::runtime::Controller` against them.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]

pub mod backends;
pub mod fake_api;
pub mod journal;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_operator::context::{Backends, Context};
use chat_operator::crd::{ChatCluster, Phase};
use chat_operator::gateway::GatewayAdmin;
use chat_operator::keys::KeyStore;
use chat_operator::operator::{run_controller, run_with_leader_election, Lease};
use chat_operator::pulsar::PulsarAdmin;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use backends::{FakeGateway, FakePulsar, FakeRedis, JournaledPulsar};
use fake_api::{is_ready, FakeApi, Settings};
use journal::Journal;

/// Namespace of the test clusters.
pub const NAMESPACE: &str = "chat";
/// Name of the test cluster.
pub const NAME: &str = "demo";
/// Its Redis key prefix.
pub const PREFIX: &str = "demo";
/// Longest any test waits for one condition.
pub const WAIT: Duration = Duration::from_secs(20);
/// Connections each fake gateway holds until drained.
pub const CONNECTIONS: i64 = 10;

/// One running operator: its context and how to stop it.
pub struct Operator {
    pub ctx: Arc<Context>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Operator {
    /// Cancels its shutdown token and waits (bounded) for it to stop.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("the operator stops on shutdown")
                .expect("the operator task does not panic");
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The fake API server, the backend fakes and (after [`Harness::start`]) a running controller.
pub struct Harness {
    pub api: FakeApi,
    pub client: Client,
    pub journal: Journal,
    pub pulsar: Arc<FakePulsar>,
    pub redis: Arc<FakeRedis>,
    pub gateway: Arc<FakeGateway>,
    /// The seams the controllers spawned from now on use: the fakes above unless a test puts a
    /// real adapter in their place.
    pub pulsar_admin: Arc<dyn PulsarAdmin>,
    pub keys: Arc<dyn KeyStore>,
    pub gateway_admin: Arc<dyn GatewayAdmin>,
    /// The operator [`Harness::start`] runs.
    pub operator: Option<Operator>,
}

impl Harness {
    /// The fake API server and the backend fakes, no operator yet.
    pub fn new() -> Self {
        Self::with_settings(Settings::default())
    }

    /// [`Harness::new`] with the emulated kubelet's `settings`.
    pub fn with_settings(settings: Settings) -> Self {
        init_tracing();
        let journal = Journal::default();
        let api = FakeApi::new(journal.clone(), settings);
        let client = api.client();
        let pulsar = Arc::new(FakePulsar::default());
        let redis = Arc::new(FakeRedis::new(journal.clone()));
        let gateway = Arc::new(FakeGateway::new(
            api.clone(),
            redis.clone(),
            journal.clone(),
            PREFIX,
            CONNECTIONS,
        ));
        let pulsar_admin = Arc::new(JournaledPulsar::new(pulsar.clone(), journal.clone()));
        Self {
            api,
            client,
            journal,
            pulsar_admin,
            keys: redis.clone(),
            gateway_admin: gateway.clone(),
            pulsar,
            redis,
            gateway,
            operator: None,
        }
    }

    /// [`Harness::new`] with the controller running, watching [`NAMESPACE`].
    pub fn start() -> Self {
        let mut h = Self::new();
        h.operator = Some(h.spawn_controller());
        h
    }

    /// The running operator's context.
    pub fn ctx(&self) -> &Arc<Context> {
        &self.operator.as_ref().expect("an operator runs").ctx
    }

    /// A context over the fakes, as one operator replica named `identity` has.
    pub fn context(&self, identity: &str) -> Arc<Context> {
        let backends = Backends {
            pulsar: self.pulsar_admin.clone(),
            keys: self.keys.clone(),
            gateway: self.gateway_admin.clone(),
        };
        Arc::new(Context::new(
            self.client.clone(),
            backends,
            Some(identity.to_owned()),
        ))
    }

    /// Runs the controller (no leader election).
    pub fn spawn_controller(&self) -> Operator {
        let ctx = self.context("test-operator");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let ctx = ctx.clone();
            let shutdown = shutdown.clone();
            async move { run_controller(ctx, Some(NAMESPACE), shutdown).await }
        });
        Operator {
            ctx,
            shutdown,
            task: Some(task),
        }
    }

    /// Runs a replica that reconciles only while it holds `lease`.
    pub fn spawn_leader(&self, lease: Lease) -> Operator {
        let ctx = self.context(&lease.identity);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let ctx = ctx.clone();
            let shutdown = shutdown.clone();
            async move {
                run_with_leader_election(ctx, Some(NAMESPACE), lease, shutdown)
                    .await
                    .expect("leader election runs");
            }
        });
        Operator {
            ctx,
            shutdown,
            task: Some(task),
        }
    }

    /// Stops the running operator and starts a new one, with nothing kept in memory: an operator
    /// restart.
    pub async fn restart_operator(&mut self) {
        if let Some(operator) = self.operator.take() {
            operator.stop().await;
        }
        self.operator = Some(self.spawn_controller());
    }

    /// The ChatCluster API of [`NAMESPACE`], through the fake server.
    pub fn clusters(&self) -> Api<ChatCluster> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// Creates the test cluster with `replicas` pods of `image`.
    pub async fn create(&self, replicas: i32, image: &str) {
        self.clusters()
            .create(&PostParams::default(), &sample(replicas, image))
            .await
            .expect("creating the ChatCluster");
    }

    /// Deletes the test cluster and waits until it is gone: its finalizer released.
    pub async fn delete_cluster(&self) {
        self.clusters()
            .delete(NAME, &DeleteParams::default())
            .await
            .expect("deleting the ChatCluster");
        self.wait_until("the ChatCluster is gone", |h| h.cluster().is_none())
            .await;
    }

    /// Merge-patches the test cluster's spec, as `kubectl patch --type merge` would.
    pub async fn patch_spec(&self, spec: Value) {
        self.clusters()
            .patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .expect("patching the ChatCluster");
    }

    /// The test cluster as stored, if it exists.
    pub fn cluster(&self) -> Option<ChatCluster> {
        let value = self
            .api
            .get("chatcluster.dev/v1alpha1", "ChatCluster", NAMESPACE, NAME)?;
        Some(serde_json::from_value(value).expect("a stored ChatCluster deserializes"))
    }

    /// The stored object of `kind` named `name` in [`NAMESPACE`].
    pub fn object(&self, api_version: &str, kind: &str, name: &str) -> Option<Value> {
        self.api.get(api_version, kind, NAMESPACE, name)
    }

    /// The gateway pods, terminating ones included, by name.
    pub fn pods(&self) -> Vec<Value> {
        self.api.list("v1", "Pod", NAMESPACE)
    }

    /// Whether the cluster is `Running` with `replicas` Ready pods, all on the StatefulSet's
    /// update revision, its status describing its current generation.
    pub fn converged(&self, replicas: i32) -> bool {
        let Some(cc) = self.cluster() else {
            return false;
        };
        let Some(status) = cc.status.as_ref() else {
            return false;
        };
        let Some(sts) = self.object("apps/v1", "StatefulSet", "demo-gateway") else {
            return false;
        };
        let update = sts["status"]["updateRevision"].as_str().unwrap_or("");
        let pods = self.pods();
        let pods_ok = i32::try_from(pods.len()) == Ok(replicas)
            && pods.iter().all(|p| {
                is_serving(p) && p["metadata"]["labels"]["controller-revision-hash"] == update
            });
        pods_ok
            && status.phase == Phase::Running
            && status.ready_replicas == replicas
            && status.rollout.is_none()
            && status.observed_generation == cc.metadata.generation
            && status.current_revision.as_deref() == Some(update)
            && status.update_revision.as_deref() == Some(update)
            && sts["spec"]["replicas"] == replicas
            && status.topics.len() == usize::try_from(replicas).expect("replicas >= 0")
    }

    /// Waits (at most [`WAIT`]) until `done` holds, calling `each` on every look (to check
    /// invariants along the way).
    pub async fn wait_until_each(
        &self,
        what: &str,
        done: impl FnMut(&Self) -> bool,
        each: impl FnMut(&Self),
    ) {
        self.wait_within(WAIT, what, done, each).await;
    }

    /// Waits (at most `limit`) until `done` holds, calling `each` on every look.
    pub async fn wait_within(
        &self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&Self) -> bool,
        mut each: impl FnMut(&Self),
    ) {
        let started = Instant::now();
        loop {
            each(self);
            if done(self) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}\nstatus: {:#?}\npods: {:#?}\njournal: {:#?}",
                self.cluster().and_then(|c| c.status),
                self.pods()
                    .iter()
                    .map(summary)
                    .collect::<Vec<_>>(),
                self.journal.entries(),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (at most [`WAIT`]) until `done` holds.
    pub async fn wait_until(&self, what: &str, done: impl FnMut(&Self) -> bool) {
        self.wait_until_each(what, done, |_| ()).await;
    }

    /// Waits until no write has reached the fake server for `quiet`: the controller is idle.
    pub async fn wait_quiet(&self, quiet: Duration) {
        let started = Instant::now();
        let mut writes = self.api.writes();
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            assert!(
                started.elapsed() < WAIT,
                "the controller never went quiet: {:#?}",
                self.journal.entries()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.api.writes();
            if now != writes {
                writes = now;
                since = Instant::now();
            }
        }
    }

    /// Stops the operator and waits for it (bounded). `CHAT_TEST_JOURNAL=1` prints the journal.
    pub async fn stop(mut self) {
        if std::env::var_os("CHAT_TEST_JOURNAL").is_some() {
            eprintln!("journal: {:#?}", self.journal.entries());
        }
        if let Some(operator) = self.operator.take() {
            operator.stop().await;
        }
    }
}

/// The test ChatCluster: DESIGN §8's example, with `replicas` pods of `image`.
pub fn sample(replicas: i32, image: &str) -> ChatCluster {
    serde_json::from_value(json!({
        "apiVersion": "chatcluster.dev/v1alpha1",
        "kind": "ChatCluster",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "image": image,
            "gateway": {"timelifeSeconds": 1800, "heartbeatSeconds": 30, "drainSeconds": 30,
                        "maxConnectionsPerPod": 50000},
            "redis": {"url": "redis://redis:6379", "keyPrefix": PREFIX},
            "pulsar": {"serviceUrl": "pulsar://pulsar:6650", "adminUrl": "http://pulsar:8080",
                       "tenant": "public", "namespace": "chat"},
            "database": {"urlSecretRef": {"name": "chat-db", "key": "url"}},
            "auth": {"jwtSecretRef": {"name": "chat-jwt", "key": "secret"}},
            "ingress": {"host": "chat.example.com", "className": "nginx"},
        }
    }))
    .expect("the sample is a ChatCluster")
}

/// The inbox topic of `ordinal` in the test cluster.
pub fn topic(ordinal: i32) -> String {
    format!("persistent://public/chat/{PREFIX}-pod-demo-gateway-{ordinal}")
}

/// Whether `pod` serves: Ready and not terminating.
pub fn is_serving(pod: &Value) -> bool {
    is_ready(pod) && pod["metadata"].get("deletionTimestamp").is_none()
}

/// `name revision ready deleting`, for failure messages.
pub fn summary(pod: &Value) -> String {
    format!(
        "{} {} ready={} deleting={}",
        pod["metadata"]["name"].as_str().unwrap_or("?"),
        pod["metadata"]["labels"]["controller-revision-hash"]
            .as_str()
            .unwrap_or("?"),
        is_ready(pod),
        pod["metadata"].get("deletionTimestamp").is_some()
    )
}

/// `RUST_LOG=chat_operator=debug cargo test …` shows the operator's logs.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
