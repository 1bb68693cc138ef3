//! The ChatCluster's network-facing security settings: who may reach which port
//! (`spec.networkPolicy`). The admin token and the allowed origins are in
//! [`super::AuthSpec`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An optional NetworkPolicy on the gateway pods (off by default): the public port only from the
/// ingress controller and the named in-cluster clients, the admin port only from the operator
/// and the monitoring namespace. Kubelet probes are node traffic, which NetworkPolicies do not
/// filter on common CNIs.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy `<cc>-gateway`; when false an existing one is deleted.
    #[serde(default)]
    pub enabled: bool,
    /// The ingress controller's pods, allowed to the public port.
    #[serde(default = "default_ingress_controller")]
    pub ingress_controller: PeerSpec,
    /// In-cluster clients allowed to the public port (backends calling the HTTP API).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<PeerSpec>,
    /// The operator's pods, allowed to the admin port (drain, status).
    #[serde(default = "default_operator")]
    pub operator: PeerSpec,
    /// Namespace whose pods (Prometheus) may scrape the admin port's `/metrics`.
    #[serde(default = "default_monitoring_namespace")]
    pub monitoring_namespace: String,
}

/// Pods allowed in: those with `podLabels` (every pod when empty) in `namespace` (the
/// ChatCluster's own when absent).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PeerSpec {
    /// The pods' namespace (matched on `kubernetes.io/metadata.name`); the ChatCluster's own
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels the pods carry; every pod of the namespace when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
}

/// ingress-nginx's usual namespace.
fn default_ingress_controller() -> PeerSpec {
    PeerSpec {
        namespace: Some("ingress-nginx".into()),
        pod_labels: BTreeMap::new(),
    }
}

/// The chart's operator pods, in the `chat-operator` namespace the docs install it to.
fn default_operator() -> PeerSpec {
    PeerSpec {
        namespace: Some("chat-operator".into()),
        pod_labels: BTreeMap::from([("app.kubernetes.io/component".into(), "operator".into())]),
    }
}

/// kube-prometheus-stack's usual namespace.
fn default_monitoring_namespace() -> String {
    "monitoring".into()
}
