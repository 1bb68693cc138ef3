//! `chat-operator run`: the controller wiring, leader election, the operator's HTTP endpoints and
//! shutdown.
//!
//! [`run_controller`] is the `kube::runtime::Controller` over ChatClusters: it owns their
//! StatefulSets, Services, ConfigMaps, PodDisruptionBudgets and Ingresses, and watches their pods
//! (owned by the StatefulSet, mapped back through the `app.kubernetes.io/instance` label), so a pod
//! turning Ready or going away wakes the rollout at once. It also watches the Secrets of the
//! watched namespaces and wakes the ChatClusters whose pods read one that changed
//! ([`clusters_reading`]), so a rotated Secret rolls the pods without waiting for the resync.
//! Tests run it against a fake API server.
//!
//! [`run`] is the whole process: with leader election, only the holder of the Lease runs the
//! controller; a replica that loses the Lease stops its controller and stands by.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::ArgAction;
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::{Controller, Error as ControllerError};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use kube_lease_manager::LeaseManagerBuilder;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::builders::{Blueprint, APP_NAME, MANAGER};
use crate::context::{Backends, Context};
use crate::crd::ChatCluster;
use crate::reconcile::{error_policy, reconcile};
use crate::{http, metrics, Result};

/// Seconds a Lease stays valid without renewal: how long a crashed leader's clusters go
/// unreconciled before a standby takes over.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// Seconds before expiry the leader renews, also the clock skew tolerated between nodes.
pub const LEASE_GRACE_SECONDS: u64 = 5;
/// Longest wait for the controller's in-flight reconciles and the HTTP server after SIGTERM; the
/// chart's `terminationGracePeriodSeconds` (30 s) is above it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// `chat-operator run` settings: each flag also reads the environment variable the Helm chart sets.
#[derive(clap::Args, Clone, Debug)]
pub struct RunConfig {
    /// Namespace whose ChatClusters are reconciled; empty for every namespace.
    #[arg(long, env = "CHAT_OPERATOR_WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,

    /// Reconcile only while holding the leader Lease, so several operator replicas are safe
    /// (`true`/`false`).
    #[arg(
        long,
        env = "CHAT_OPERATOR_LEADER_ELECTION",
        default_value = "false",
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new()
    )]
    pub leader_election: bool,

    /// Name of the leader Lease.
    #[arg(
        long,
        env = "CHAT_OPERATOR_LEASE_NAME",
        default_value = "chat-operator"
    )]
    pub lease_name: String,

    /// Namespace of the leader Lease, the operator's own; when absent, the service account's
    /// namespace (in a pod) or the kubeconfig's.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the Lease and in its Events; when absent, the host name (the pod
    /// name in Kubernetes).
    #[arg(long, env = "CHAT_OPERATOR_IDENTITY")]
    pub identity: Option<String>,

    /// Address serving `/metrics`, `/healthz` and `/readyz`.
    #[arg(
        long,
        env = "CHAT_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: SocketAddr,

    /// Log JSON lines instead of text (the filter is `RUST_LOG`).
    #[arg(
        long,
        env = "CHAT_OPERATOR_LOG_JSON",
        default_value = "false",
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new()
    )]
    pub log_json: bool,
}

/// The operator process: the HTTP endpoints, then the controller (behind the Lease when leader
/// election is on) until `shutdown` is cancelled.
pub async fn run(config: RunConfig, shutdown: CancellationToken) -> Result<()> {
    let listener = TcpListener::bind(config.metrics_addr).await?;
    info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    let health = Arc::new(http::Health::default());
    let server = tokio::spawn(http::serve(
        listener,
        health.clone(),
        metrics::handle(),
        shutdown.clone(),
    ));
    let client = Client::try_default().await?;
    let version = client.apiserver_version().await?;
    info!(version = %version.git_version, "connected to the Kubernetes API");
    health.set_ready(true);
    let identity = config.identity.clone().unwrap_or_else(default_identity);
    let ctx = Arc::new(Context::new(
        client.clone(),
        Backends::real()?,
        Some(identity.clone()),
    ));
    let namespace = Some(config.watch_namespace.as_str()).filter(|ns| !ns.is_empty());
    if config.leader_election {
        let lease = Lease {
            name: config.lease_name.clone(),
            namespace: config
                .lease_namespace
                .clone()
                .unwrap_or_else(|| client.default_namespace().to_owned()),
            identity,
            duration_seconds: LEASE_DURATION_SECONDS,
            grace_seconds: LEASE_GRACE_SECONDS,
        };
        run_with_leader_election(ctx, namespace, lease, shutdown.clone()).await?;
    } else {
        ::metrics::gauge!(metrics::LEADER).set(1.0);
        run_controller(ctx, namespace, shutdown.clone()).await;
    }
    health.set_ready(false);
    shutdown.cancel();
    match server.await {
        Ok(result) => result,
        Err(err) => {
            warn!(%err, "the HTTP server task failed");
            Ok(())
        }
    }
}

/// The Lease a replica must hold to reconcile.
#[derive(Clone, Debug)]
pub struct Lease {
    /// Lease name.
    pub name: String,
    /// Lease namespace (the operator's own).
    pub namespace: String,
    /// This replica's holder identity.
    pub identity: String,
    /// Seconds the Lease stays valid without renewal ([`LEASE_DURATION_SECONDS`]).
    pub duration_seconds: u64,
    /// Seconds before expiry the holder renews ([`LEASE_GRACE_SECONDS`]); below the duration.
    pub grace_seconds: u64,
}

/// Runs [`run_controller`] whenever this replica holds `lease`, until `shutdown`. The Lease is
/// released on the way out, so a standby takes over without waiting for it to expire.
pub async fn run_with_leader_election(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    lease: Lease,
    shutdown: CancellationToken,
) -> Result<()> {
    let manager = LeaseManagerBuilder::new(ctx.client.clone(), &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(lease.duration_seconds)
        .with_grace(lease.grace_seconds)
        .build()
        .await?;
    let (mut leader, task) = manager.watch().await;
    info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "waiting for the leader Lease");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            became = leader.wait_for(|is_leader| *is_leader) => {
                if became.is_err() {
                    warn!("the Lease manager stopped");
                    break;
                }
            }
        }
        info!(identity = %lease.identity, "holding the leader Lease: reconciling");
        ::metrics::gauge!(metrics::LEADER).set(1.0);
        let stop = shutdown.child_token();
        let lost = tokio::spawn({
            let mut leader = leader.clone();
            let stop = stop.clone();
            async move {
                let _ = leader.wait_for(|is_leader| !*is_leader).await;
                stop.cancel();
            }
        });
        run_controller(ctx.clone(), namespace, stop).await;
        lost.abort();
        ::metrics::gauge!(metrics::LEADER).set(0.0);
        if shutdown.is_cancelled() {
            break;
        }
        warn!(identity = %lease.identity, "lost the leader Lease: standing by");
    }
    // Closing the channel makes the manager release the Lease and return.
    drop(leader);
    match task.await {
        Ok(Ok(_)) => info!("released the leader Lease"),
        Ok(Err(err)) => warn!(%err, "releasing the leader Lease"),
        Err(err) => warn!(%err, "the Lease manager task failed"),
    }
    Ok(())
}

/// The ChatCluster controller, until `shutdown` is cancelled and the reconciles in flight are done.
/// `namespace` limits it to one namespace; `None` watches all.
pub async fn run_controller(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: CancellationToken,
) {
    let client = ctx.client.clone();
    let children =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let controller = Controller::new(
        api::<ChatCluster>(&client, namespace),
        watcher::Config::default(),
    );
    let clusters = controller.store();
    controller
        .owns(api::<StatefulSet>(&client, namespace), children.clone())
        .owns(api::<Service>(&client, namespace), children.clone())
        .owns(api::<ConfigMap>(&client, namespace), children.clone())
        .owns(
            api::<PodDisruptionBudget>(&client, namespace),
            children.clone(),
        )
        .owns(api::<Ingress>(&client, namespace), children.clone())
        .watches(api::<Pod>(&client, namespace), children, cluster_of_pod)
        .watches(
            api::<Secret>(&client, namespace),
            watcher::Config::default(),
            move |secret| clusters_reading(&clusters.state(), &secret),
        )
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((cluster, _)) => debug!(%cluster, "reconciled"),
                // Already logged by `error_policy`.
                Err(ControllerError::ReconcilerFailed(err, cluster)) => {
                    debug!(%cluster, %err, "reconcile failed");
                }
                Err(err) => warn!(%err, "controller"),
            }
        })
        .await;
    info!("controller stopped");
}

/// The ChatClusters whose gateway pods read `secret` (an env var, a mounted CA, the admin token):
/// a change of its data is a change of their pod template's Secret hash, so they are reconciled.
pub fn clusters_reading(
    clusters: &[Arc<ChatCluster>],
    secret: &Secret,
) -> Vec<ObjectRef<ChatCluster>> {
    let (Some(name), Some(namespace)) = (&secret.metadata.name, &secret.metadata.namespace) else {
        return Vec::new();
    };
    clusters
        .iter()
        .filter(|cc| cc.metadata.namespace.as_ref() == Some(namespace))
        .filter(|cc| {
            Blueprint::new(cc).is_ok_and(|bp| bp.secret_uses().iter().any(|(used, _)| used == name))
        })
        .map(|cc| ObjectRef::from_obj(&**cc))
        .collect()
}

/// The ChatCluster a gateway pod belongs to, from its `app.kubernetes.io/instance` label.
pub fn cluster_of_pod(pod: Pod) -> Option<ObjectRef<ChatCluster>> {
    let labels = pod.metadata.labels.as_ref()?;
    if labels.get("app.kubernetes.io/name").map(String::as_str) != Some(APP_NAME) {
        return None;
    }
    let cluster = labels.get("app.kubernetes.io/instance")?;
    Some(ObjectRef::new(cluster).within(pod.metadata.namespace.as_deref()?))
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The host name (a pod's name), else a name unique to this process.
fn default_identity() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("chat-operator-{}", std::process::id()))
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM: stopping"),
                    _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
                }
            }
            Err(err) => {
                warn!(%err, "no SIGTERM handler; stopping on SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        info!("SIGINT: stopping");
    }
    shutdown.cancel();
}
