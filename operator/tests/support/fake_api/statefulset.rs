//! A minimal StatefulSet controller: pods created (all at once, `Parallel`) and removed to match
//! `spec.replicas`, from the template, labelled with `controller-revision-hash` (a hash of the
//! template). `OnDelete` only: a pod keeps its revision until deleted, and its replacement gets the
//! current `updateRevision`. The StatefulSet's status gets `replicas`, `readyReplicas`,
//! `updatedReplicas`, `observedGeneration`, `currentRevision` and `updateRevision`.
//!
//! It and the [`kubelet`](super::kubelet) run in one loop, woken by every stored change.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Notify;

use super::kinds::{Key, Kind};
use super::kubelet::is_ready;
use super::objects::owned_by;
use super::{Inner, State};

/// How often the emulated controllers look again when nothing woke them.
const TICK: Duration = Duration::from_millis(25);

/// Runs the emulated controllers until the server is dropped.
pub(super) async fn controllers(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.reconcile_workloads();
        drop(strong);
        let _ = tokio::time::timeout(TICK, wake.notified()).await;
    }
}

impl Inner {
    /// One pass of the emulated StatefulSet controller and kubelet.
    fn reconcile_workloads(&self) {
        let mut state = self.lock();
        let sets: Vec<Key> = state
            .objects
            .keys()
            .filter(|k| k.kind == "StatefulSet")
            .cloned()
            .collect();
        for key in sets {
            self.sync_stateful_set(&mut state, &key);
        }
        self.run_kubelet(&mut state);
    }

    fn sync_stateful_set(&self, state: &mut State, key: &Key) {
        let Some(sts) = state.objects.get(key).cloned() else {
            return;
        };
        if sts["metadata"].get("deletionTimestamp").is_some() {
            return;
        }
        let template = &sts["spec"]["template"];
        let mut hasher = DefaultHasher::new();
        template.to_string().hash(&mut hasher);
        let update_revision = format!("{}-{:010x}", key.name, hasher.finish() & 0xff_ffff_ffff);
        let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1);
        let pods = owned_pods(state, key, &sts);
        self.match_replicas(state, key, &sts, &pods, replicas, &update_revision);
        let status = stateful_set_status(&sts, &pods, replicas, update_revision);
        if sts.get("status") != Some(&status) {
            let mut new = sts;
            new["status"] = status;
            self.store(state, key, new, "MODIFIED");
        }
    }

    /// Creates the missing pods below `replicas` (on `update_revision`) and deletes those at or
    /// above it.
    fn match_replicas(
        &self,
        state: &mut State,
        key: &Key,
        sts: &Value,
        pods: &[(i64, Value)],
        replicas: i64,
        update_revision: &str,
    ) {
        let pod_kind = Kind::pod();
        for ordinal in 0..replicas {
            if !pods.iter().any(|(n, _)| *n == ordinal) {
                let name = format!("{}-{ordinal}", key.name);
                let pod = new_pod(sts, &name, update_revision);
                let _ = self.create(
                    state,
                    &Key::new(pod_kind, &key.namespace, &name),
                    pod,
                    false,
                );
            }
        }
        for (ordinal, pod) in pods {
            if *ordinal >= replicas && pod["metadata"].get("deletionTimestamp").is_none() {
                let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                let _ = self.delete(state, &Key::new(pod_kind, &key.namespace, name));
            }
        }
    }
}

/// The pods the StatefulSet at `key` owns, with their ordinals.
fn owned_pods(state: &State, key: &Key, sts: &Value) -> Vec<(i64, Value)> {
    let uid = &sts["metadata"]["uid"];
    let pod_kind = Kind::pod();
    state
        .objects
        .iter()
        .filter(|(k, o)| k.is(pod_kind) && k.namespace == key.namespace && owned_by(o, uid))
        .filter_map(|(k, o)| {
            let ordinal = k
                .name
                .strip_prefix(&format!("{}-", key.name))?
                .parse()
                .ok()?;
            Some((ordinal, o.clone()))
        })
        .collect()
}

/// The status of `sts` with `pods` (as they were before this pass created or deleted any).
fn stateful_set_status(
    sts: &Value,
    pods: &[(i64, Value)],
    replicas: i64,
    update_revision: String,
) -> Value {
    let live: Vec<&Value> = pods
        .iter()
        .filter(|(_, p)| p["metadata"].get("deletionTimestamp").is_none())
        .map(|(_, p)| p)
        .collect();
    let revision = |p: &Value| {
        p["metadata"]["labels"]["controller-revision-hash"]
            .as_str()
            .map(str::to_owned)
    };
    let updated = live
        .iter()
        .filter(|p| revision(p).as_deref() == Some(&update_revision))
        .count();
    let ready = live.iter().filter(|p| is_ready(p)).count();
    let current_revision = if updated == live.len() && i64::try_from(live.len()) == Ok(replicas) {
        update_revision.clone()
    } else {
        sts["status"]["currentRevision"]
            .as_str()
            .map_or_else(|| update_revision.clone(), str::to_owned)
    };
    json!({
        "replicas": live.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "updatedReplicas": updated,
        "currentReplicas": live.iter().filter(|p| revision(p).as_deref() == Some(&current_revision)).count(),
        "observedGeneration": sts["metadata"]["generation"],
        "currentRevision": current_revision,
        "updateRevision": update_revision,
    })
}

/// A new pod of `sts`, from its template, on `revision`.
fn new_pod(sts: &Value, name: &str, revision: &str) -> Value {
    let template = &sts["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["controller-revision-hash"] = json!(revision);
    labels["statefulset.kubernetes.io/pod-name"] = json!(name);
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(name);
    spec["subdomain"] = sts["spec"]["serviceName"].clone();
    json!({
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": template["metadata"]["annotations"].clone(),
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": sts["metadata"]["name"],
                "uid": sts["metadata"]["uid"],
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
        "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]},
    })
}
