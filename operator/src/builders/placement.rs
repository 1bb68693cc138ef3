//! `spec.pod` and `spec.service` laid over what the operator builds. The operator's own labels,
//! annotations and env vars are applied last, so a user value can add but never replace one.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{EnvVar, PodSpec};

use crate::crd::{PodSpecOverrides, RESERVED_ANNOTATION_PREFIX, RESERVED_LABELS};

/// `spec.pod`'s scheduling fields on the pod spec. Topology spread constraints, when given,
/// replace the operator's default spread; the other fields have no operator value to replace.
pub(super) fn schedule(pod: &mut PodSpec, overrides: &PodSpecOverrides) {
    pod.image_pull_secrets = non_empty(&overrides.image_pull_secrets);
    pod.tolerations = non_empty(&overrides.tolerations);
    pod.node_selector =
        (!overrides.node_selector.is_empty()).then(|| overrides.node_selector.clone());
    pod.affinity.clone_from(&overrides.affinity);
    pod.priority_class_name
        .clone_from(&overrides.priority_class_name);
    if let Some(spread) = &overrides.topology_spread_constraints {
        pod.topology_spread_constraints = Some(spread.clone());
    }
}

fn non_empty<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    (!items.is_empty()).then(|| items.to_vec())
}

/// The pod template's labels: the user's (minus the reserved keys, which CEL refuses anyway),
/// then the operator's.
pub(super) fn labels(
    user: &BTreeMap<String, String>,
    ours: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = user
        .iter()
        .filter(|(key, _)| !RESERVED_LABELS.contains(&key.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(ours);
    labels
}

/// The pod template's annotations: the user's (minus `chatcluster.dev/` keys), then the
/// operator's.
pub(super) fn annotations(
    user: &BTreeMap<String, String>,
    ours: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = user
        .iter()
        .filter(|(key, _)| !key.starts_with(RESERVED_ANNOTATION_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.extend(ours);
    annotations
}

/// Splits `spec.pod.env` into the variables appended after the operator's and the names dropped
/// because the operator sets them: in `operator_env`, or in the ConfigMap (`config_keys`), which a
/// container `env` entry would otherwise override. Of two user entries with one name, the first
/// is kept (as the apiserver would warn about the second).
pub(super) fn extra_env(
    user: &[EnvVar],
    operator_env: &[EnvVar],
    config_keys: impl IntoIterator<Item = String>,
) -> (Vec<EnvVar>, Vec<String>) {
    let mut taken: BTreeSet<String> = operator_env.iter().map(|v| v.name.clone()).collect();
    taken.extend(config_keys);
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for var in user {
        if taken.insert(var.name.clone()) {
            kept.push(var.clone());
        } else {
            dropped.push(var.name.clone());
        }
    }
    (kept, dropped)
}
