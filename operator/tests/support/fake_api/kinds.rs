//! The kinds the fake API server serves, how their URLs name them, and the [`Key`] an object is
//! stored under.

/// The kinds this server knows: (apiVersion, kind, plural, namespaced, has a status subresource).
const TYPES: &[(&str, &str, &str, bool, bool)] = &[
    ("v1", "Pod", "pods", true, true),
    ("v1", "Service", "services", true, true),
    ("v1", "ConfigMap", "configmaps", true, false),
    ("v1", "Secret", "secrets", true, false),
    ("v1", "Event", "events", true, false),
    ("v1", "Namespace", "namespaces", false, true),
    ("apps/v1", "StatefulSet", "statefulsets", true, true),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        true,
    ),
    ("networking.k8s.io/v1", "Ingress", "ingresses", true, true),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        false,
    ),
    ("events.k8s.io/v1", "Event", "events", true, false),
    ("coordination.k8s.io/v1", "Lease", "leases", true, false),
    (
        "chatcluster.dev/v1alpha1",
        "ChatCluster",
        "chatclusters",
        true,
        true,
    ),
    // A CRD of the Prometheus Operator: served only with `Settings::monitoring_crd`.
    (
        "monitoring.coreos.com/v1",
        "PodMonitor",
        "podmonitors",
        true,
        false,
    ),
];

/// One kind of object.
#[derive(Clone, Copy, Debug)]
pub(super) struct Kind {
    pub(super) api_version: &'static str,
    pub(super) kind: &'static str,
    pub(super) plural: &'static str,
    pub(super) namespaced: bool,
    pub(super) status_subresource: bool,
}

impl Kind {
    pub(super) fn by_plural(api_version: &str, plural: &str) -> Option<Self> {
        TYPES
            .iter()
            .find(|t| t.0 == api_version && t.2 == plural)
            .map(Self::from)
    }

    pub(super) fn by_kind(api_version: &str, kind: &str) -> Option<Self> {
        TYPES
            .iter()
            .find(|t| t.0 == api_version && t.1 == kind)
            .map(Self::from)
    }

    /// Every kind served, in a stable order.
    pub(super) fn all() -> impl Iterator<Item = Self> {
        TYPES.iter().map(Self::from)
    }

    /// The API group: empty for the core group (`v1`).
    pub(super) fn group(&self) -> &'static str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }

    /// The kind of `key`'s object.
    pub(super) fn of(key: &Key) -> Self {
        Self::by_kind(&key.api_version, &key.kind).expect("known kind")
    }

    /// `v1` Pods, which the StatefulSet controller and the kubelet look after.
    pub(super) fn pod() -> Self {
        Self::by_kind("v1", "Pod").expect("known kind")
    }
}

impl From<&(&'static str, &'static str, &'static str, bool, bool)> for Kind {
    fn from(t: &(&'static str, &'static str, &'static str, bool, bool)) -> Self {
        Self {
            api_version: t.0,
            kind: t.1,
            plural: t.2,
            namespaced: t.3,
            status_subresource: t.4,
        }
    }
}

/// Where an object is stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Key {
    /// `v1`, `apps/v1`, …
    pub(super) api_version: String,
    /// `Pod`, `StatefulSet`, …
    pub(super) kind: String,
    /// Empty for cluster-scoped objects.
    pub(super) namespace: String,
    /// `metadata.name`.
    pub(super) name: String,
}

impl Key {
    pub(super) fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Self {
            api_version: kind.api_version.into(),
            kind: kind.kind.into(),
            namespace: if kind.namespaced {
                namespace.into()
            } else {
                String::new()
            },
            name: name.into(),
        }
    }

    pub(super) fn is(&self, kind: Kind) -> bool {
        self.api_version == kind.api_version && self.kind == kind.kind
    }
}
