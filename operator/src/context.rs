//! What every reconcile shares: the Kubernetes client, the Event recorder, the three backend seams
//! and the in-memory retry counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::Client;

use crate::crd::ChatCluster;
use crate::gateway::{GatewayAdmin, HttpGatewayAdmin};
use crate::keys::{KeyStore, RedisKeyStore};
use crate::pulsar::{HttpPulsarAdmin, PulsarAdmin};
use crate::Result;

/// The one server-side-apply field manager of every object the operator writes.
pub const FIELD_MANAGER: &str = "chat-operator";
/// `reportingController` of the operator's Kubernetes Events.
pub const REPORTER: &str = "chat-operator";
/// The finalizer on every ChatCluster: its topics and Redis keys are deleted before it goes.
pub const FINALIZER: &str = "chatcluster.dev/cleanup";

/// The operator's side effects outside Kubernetes, one small trait each.
#[derive(Clone)]
pub struct Backends {
    /// Pulsar admin REST: tenants, namespaces, topics.
    pub pulsar: Arc<dyn PulsarAdmin>,
    /// Redis: the route-table keys of removed pods and deleted clusters.
    pub keys: Arc<dyn KeyStore>,
    /// The gateways' admin API: status and drain.
    pub gateway: Arc<dyn GatewayAdmin>,
}

impl Backends {
    /// The real implementations: HTTP for Pulsar and the gateways, Redis for the keys.
    pub fn real() -> Result<Self> {
        Ok(Self {
            pulsar: Arc::new(HttpPulsarAdmin::new()?),
            keys: Arc::new(RedisKeyStore::new()),
            gateway: Arc::new(HttpGatewayAdmin::new()?),
        })
    }
}

/// Shared by all reconciles of one controller.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Publishes the Events that tell each step.
    pub recorder: Recorder,
    /// Pulsar, Redis and the gateways.
    pub backends: Backends,
    /// Consecutive failures per ChatCluster, for [`crate::rollout::retry_backoff`]. In memory only:
    /// a restarted operator starts again at the shortest delay, which is harmless.
    failures: Mutex<HashMap<ObjectRef<ChatCluster>, u32>>,
    /// Reconciles started, for tests and the metrics.
    reconciles: AtomicU64,
}

impl Context {
    /// A context whose Events name `instance` as the reporting instance (the pod name).
    pub fn new(client: Client, backends: Backends, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: REPORTER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            backends,
            failures: Mutex::default(),
            reconciles: AtomicU64::new(0),
        }
    }

    /// How many reconciles have started.
    pub fn reconciles(&self) -> u64 {
        self.reconciles.load(Ordering::Relaxed)
    }

    pub(crate) fn count_reconcile(&self) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one more failure of `cluster` and returns how many in a row it has had.
    pub(crate) fn record_failure(&self, cluster: ObjectRef<ChatCluster>) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(cluster).or_default();
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `cluster` after a reconcile succeeded.
    pub(crate) fn clear_failures(&self, cluster: &ObjectRef<ChatCluster>) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(cluster);
    }
}
