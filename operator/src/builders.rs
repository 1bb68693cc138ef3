//! A `ChatCluster` spec turned into the Kubernetes objects that run it: ConfigMap, headless and
//! client Services, StatefulSet, PodDisruptionBudget and (optionally) Ingress — plus the names the
//! rest of the operator derives from it (pods, Pulsar topics, admin URLs).
//!
//! Everything here is a pure function of the resource: the reconciler server-side-applies what
//! [`Blueprint`] returns. Each object carries [`SPEC_HASH_ANNOTATION`], a hash of the object as
//! built, so the reconciler can skip the apply when the live object already carries the same hash
//! ([`needs_apply`]) and an unchanged cluster costs no writes.

use std::collections::{BTreeMap, BTreeSet};

use chat_protocol::names::Topics;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::crd::ChatCluster;
use crate::observed::ordinal_of;
use crate::{Error, Result};

/// Public port: WebSocket upgrades and the HTTP API.
pub const HTTP_PORT: i32 = 8080;
/// Admin port: health, readiness, metrics, `/admin/status`, `/admin/drain`. Never on the ingress.
pub const ADMIN_PORT: i32 = 9090;
/// Seconds added to `drainSeconds` for `terminationGracePeriodSeconds`: after its drain deadline a
/// gateway still flushes queued frames, closes with 1012 and shuts its stores down.
pub const TERMINATION_MARGIN_SECONDS: i32 = 15;
/// Seconds added to `timelifeSeconds` for the ingress proxy timeouts, so the proxy never cuts a
/// session the gateway still considers alive.
pub const INGRESS_TIMEOUT_MARGIN_SECONDS: i32 = 60;
/// Non-root user and group the gateway runs as (the distroless `nonroot` id).
pub const GATEWAY_UID: i64 = 65532;

/// Annotation on every built object: hash of the object as built (see [`needs_apply`]).
pub const SPEC_HASH_ANNOTATION: &str = "chatcluster.dev/spec-hash";
/// Pod-template annotation: hash of the Secret data the pods read ([`secret_hash`]), so rotating a
/// referenced Secret rolls the pods through the drain. Set with [`Blueprint::with_secrets_hash`].
pub const SECRETS_HASH_ANNOTATION: &str = "chatcluster.dev/secrets-hash";
/// Pod-template annotation: hash of the ConfigMap's data. The pods read their settings from the
/// ConfigMap through `envFrom`, which a template diff cannot see; hashing the data into the
/// template makes a settings change a new StatefulSet revision, hence a drained rollout.
pub const CONFIG_HASH_ANNOTATION: &str = "chatcluster.dev/config-hash";

/// `app.kubernetes.io/name` of every object.
pub const APP_NAME: &str = "chat-gateway";
/// `app.kubernetes.io/managed-by` of every object.
pub const MANAGER: &str = "chat-operator";

/// Mount point of the gateway's (unused in cluster mode, but required) data directory, an
/// `emptyDir` so the root filesystem can stay read-only.
const DATA_DIR: &str = "/data";
/// `CHAT_TRUSTED_PROXIES` of the pods: the private ranges pods and ingress controllers have.
/// Clients reach the gateways through the ingress, so the peer of every upgrade is an ingress
/// pod; without this all clients behind one ingress pod would share one per-address connect
/// rate. The gateway keys on the right-most `X-Forwarded-For` hop outside these ranges.
pub const IN_CLUSTER_PROXIES: &str =
    "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7";

/// Whether `desired` must be applied: the live object is missing or carries another
/// [`SPEC_HASH_ANNOTATION`]. Edits made by hand to a live object are therefore only undone when the
/// ChatCluster (or the operator) changes; that is the price of sending no writes in steady state.
pub fn needs_apply<K: Resource>(live: Option<&K>, desired: &K) -> bool {
    let hash = |k: &K| {
        k.meta()
            .annotations
            .as_ref()?
            .get(SPEC_HASH_ANNOTATION)
            .cloned()
    };
    live.is_none_or(|live| {
        let live = hash(live);
        live.is_none() || live != hash(desired)
    })
}

/// The objects of one ChatCluster and the names derived from it. Built once per reconcile with
/// [`Blueprint::new`], which checks the metadata the objects need.
#[derive(Clone, Debug)]
pub struct Blueprint<'a> {
    cc: &'a ChatCluster,
    name: String,
    namespace: String,
    owner: OwnerReference,
    secrets_hash: Option<String>,
}

/// Everything [`Blueprint::children`] builds, in the order to apply it (settings before the pods
/// that read them, Services before the StatefulSet that names one).
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// `<cc>-config`: the gateway settings.
    pub config_map: ConfigMap,
    /// `<cc>-gateway-headless`: per-pod DNS for the admin calls.
    pub headless_service: Service,
    /// `<cc>-gateway`: the client-facing Service.
    pub service: Service,
    /// `<cc>-gateway`: the gateway pods.
    pub stateful_set: StatefulSet,
    /// `<cc>-gateway`: at most one pod voluntarily disrupted at a time.
    pub pod_disruption_budget: PodDisruptionBudget,
    /// `<cc>-gateway`, only when `spec.ingress` is set. When it is `None` and one exists, the
    /// reconciler deletes it.
    pub ingress: Option<Ingress>,
    /// `<cc>-gateway`, only when `spec.networkPolicy.enabled`; deleted like the Ingress.
    pub network_policy: Option<NetworkPolicy>,
    /// `<cc>-gateway` (Gateway API `HTTPRoute`), only when `spec.httpRoute` is set.
    pub http_route: Option<DynamicObject>,
}

impl<'a> Blueprint<'a> {
    /// Checks that `cc` has a name, a namespace and a uid (every object read from the apiserver
    /// has them; the uid goes into the owner references).
    pub fn new(cc: &'a ChatCluster) -> Result<Self> {
        let name = cc
            .metadata
            .name
            .clone()
            .ok_or(Error::MissingMetadata("name"))?;
        let namespace = cc
            .metadata
            .namespace
            .clone()
            .ok_or(Error::MissingMetadata("namespace"))?;
        let owner = cc
            .controller_owner_ref(&())
            .ok_or(Error::MissingMetadata("uid"))?;
        Ok(Self {
            cc,
            name,
            namespace,
            owner,
            secrets_hash: None,
        })
    }

    /// The blueprint with `hash` ([`secret_hash::digest`] of [`Self::secret_uses`]) on the pod
    /// template. The reconciler always sets it; without it the template has no such annotation.
    #[must_use]
    pub fn with_secrets_hash(mut self, hash: String) -> Self {
        self.secrets_hash = Some(hash);
        self
    }

    /// The Secret data the pods read, for [`Self::with_secrets_hash`].
    pub fn secret_uses(&self) -> BTreeSet<secret_hash::SecretUse> {
        secret_hash::uses(&self.pod_spec())
    }

    /// The ChatCluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ChatCluster's namespace, which holds all its objects.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `<cc>-gateway`: the StatefulSet, the client Service, the PDB and the Ingress.
    pub fn stateful_set_name(&self) -> String {
        format!("{}-gateway", self.name)
    }

    /// `<cc>-gateway-headless`.
    pub fn headless_service_name(&self) -> String {
        format!("{}-gateway-headless", self.name)
    }

    /// `<cc>-config`.
    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }

    /// `<cc>-gateway-<ordinal>`.
    pub fn pod_name(&self, ordinal: i32) -> String {
        format!("{}-gateway-{ordinal}", self.name)
    }

    /// Prefix of every Redis key of this cluster: `spec.redis.keyPrefix`, else the ChatCluster's
    /// name.
    pub fn key_prefix(&self) -> &str {
        self.cc
            .spec
            .redis
            .key_prefix
            .as_deref()
            .unwrap_or(&self.name)
    }

    /// The inbox topic of the pod with this ordinal:
    /// `persistent://{tenant}/{namespace}/{keyPrefix}-pod-{pod}` (DESIGN §5).
    pub fn topic(&self, ordinal: i32) -> String {
        self.pulsar_topics().pod_topic(&self.pod_name(ordinal))
    }

    /// The inbox topics of ordinals `0..replicas`.
    pub fn topics(&self, replicas: i32) -> Vec<String> {
        (0..replicas.max(0)).map(|n| self.topic(n)).collect()
    }

    /// The ordinal whose inbox `topic` is, if it is one of this cluster's under the current spec.
    pub fn topic_ordinal(&self, topic: &str) -> Option<i32> {
        ordinal_of(
            &self.stateful_set_name(),
            self.pulsar_topics().pod_of(topic)?,
        )
    }

    /// The pods' inbox topics under the current spec, named as the gateway names them.
    fn pulsar_topics(&self) -> Topics {
        let pulsar = &self.cc.spec.pulsar;
        Topics {
            tenant: pulsar.tenant.clone(),
            namespace: pulsar.namespace.clone(),
            key_prefix: self.key_prefix().to_owned(),
        }
    }

    /// Base URL of a pod's admin port through the headless Service, e.g.
    /// `http://demo-gateway-2.demo-gateway-headless.chat.svc:9090`. The headless Service publishes
    /// unready pods, so a draining pod stays reachable.
    pub fn admin_url(&self, pod: &str) -> String {
        format!(
            "http://{pod}.{}.{}.svc:{ADMIN_PORT}",
            self.headless_service_name(),
            self.namespace
        )
    }

    /// The common labels: `app.kubernetes.io/{name,instance,managed-by}`.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
        labels
    }

    /// [`Self::selector_labels`] as a label selector string, `k=v,k=v`: `status.selector` (the
    /// scale subresource's `labelSelectorPath`) and the operator's pod list.
    pub fn selector_string(&self) -> String {
        self.selector_labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The labels selecting this cluster's gateway pods (a subset of [`Self::labels`]; the
    /// StatefulSet's selector is immutable, so it never changes).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), APP_NAME.into()),
            ("app.kubernetes.io/instance".into(), self.name.clone()),
        ])
    }

    /// All objects, with the StatefulSet at `replicas` (see [`Self::stateful_set`]).
    pub fn children(&self, replicas: i32) -> Children {
        Children {
            config_map: self.config_map(),
            headless_service: self.headless_service(),
            service: self.service(),
            stateful_set: self.stateful_set(replicas),
            pod_disruption_budget: self.pod_disruption_budget(),
            ingress: self.ingress(),
            network_policy: self.network_policy(),
            http_route: self.http_route(),
        }
    }

    fn metadata(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    fn selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.selector_labels()),
            match_expressions: None,
        }
    }
}

/// Adds [`SPEC_HASH_ANNOTATION`]: the hash of the object before the annotation was added.
fn stamped<K: Resource + Serialize>(mut object: K) -> K {
    let hash = content_hash(&object);
    object
        .annotations_mut()
        .insert(SPEC_HASH_ANNOTATION.into(), hash);
    object
}

/// First 16 hex digits of the SHA-256 of `value`'s JSON. Stable across builds and Rust versions
/// (unlike `std`'s hasher), so an operator upgrade alone does not restart every pod.
fn content_hash(value: &impl Serialize) -> String {
    let json = serde_json::to_vec(value).expect("Kubernetes objects and string maps serialize");
    let digest = Sha256::digest(json);
    hex::encode(&digest[..8])
}

mod security;
pub use security::ADMIN_TOKEN_KEY;

mod monitoring;
pub use monitoring::{pod_monitor_resource, CLUSTER_LABEL};

mod backend_tls;
mod config;
mod container;
mod placement;
mod route;
pub mod secret_hash;
mod services;
mod workload;
pub use route::{http_route_resource, INGRESS_TIMEOUT_ANNOTATIONS};
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_placement;
