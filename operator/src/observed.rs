//! What the reconciler saw, boiled down to the facts [`crate::rollout`] and [`crate::status`]
//! decide on.
//!
//! The reconciler reads the StatefulSet, the gateway pods and each pod's `GET /admin/status`, and
//! turns them into these plain values with [`StatefulSetState::from_stateful_set`] and
//! [`PodState::from_pod`]; everything downstream is synchronous and testable without a cluster.

use chat_protocol::admin;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

/// Pod annotation holding the drain deadline (RFC 3339) the operator gave the pod.
///
/// It lives on the pod, not in the ChatCluster status, so it dies with the pod and a restarted
/// operator reads it back from the object it concerns: the drain carries on with the same
/// deadline instead of starting over.
pub const DRAIN_DEADLINE_ANNOTATION: &str = "chatcluster.dev/drain-deadline";

/// Label the StatefulSet controller puts on each pod: the revision the pod was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The StatefulSet as the rollout needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatefulSetState {
    /// `spec.replicas`: how many pods the StatefulSet controller keeps.
    pub replicas: i32,
    /// `status.currentRevision`.
    pub current_revision: Option<String>,
    /// `status.updateRevision`: the revision new pods are created from.
    pub update_revision: Option<String>,
    /// `status.observedGeneration >= metadata.generation`: the status describes the current spec.
    /// Until then `update_revision` may still name the previous template.
    pub settled: bool,
}

impl StatefulSetState {
    /// Reads a live StatefulSet. An object without `metadata.generation` (never stored by an
    /// apiserver) counts as settled; one with a generation but no status does not.
    pub fn from_stateful_set(sts: &StatefulSet) -> Self {
        let status = sts.status.as_ref();
        let observed = status.and_then(|s| s.observed_generation);
        let settled = match (sts.metadata.generation, observed) {
            (None, _) => true,
            (Some(generation), Some(observed)) => observed >= generation,
            (Some(_), None) => false,
        };
        Self {
            replicas: sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            current_revision: status.and_then(|s| s.current_revision.clone()),
            update_revision: status.and_then(|s| s.update_revision.clone()),
            settled,
        }
    }
}

/// What the operator reads from a gateway's `GET /admin/status` ([`admin::Status`]; `pod` is
/// left out: the pod name is known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminStatus {
    /// Open WebSocket connections.
    pub connections: i64,
    /// Whether the gateway is draining (unready, refusing upgrades, closing at its deadline).
    pub draining: bool,
    /// Connections told to move by a rebalancing step and not gone yet.
    pub moving: i64,
}

impl From<admin::Status> for AdminStatus {
    fn from(status: admin::Status) -> Self {
        Self {
            connections: i64::try_from(status.connections).unwrap_or(i64::MAX),
            draining: status.draining,
            moving: i64::try_from(status.moving).unwrap_or(i64::MAX),
        }
    }
}

/// One gateway pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    /// Pod name, `<cc>-gateway-<ordinal>`.
    pub name: String,
    /// StatefulSet ordinal.
    pub ordinal: i32,
    /// Value of the [`REVISION_LABEL`].
    pub revision: Option<String>,
    /// The pod's `Ready` condition is `True`.
    pub ready: bool,
    /// The pod has a `deletionTimestamp`: it is terminating.
    pub deleting: bool,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
    /// The drain deadline recorded in [`DRAIN_DEADLINE_ANNOTATION`], if the operator drained it.
    pub drain_deadline: Option<Timestamp>,
    /// Connections from `/admin/status`; `None` when the admin port did not answer.
    pub connections: Option<i64>,
    /// `draining` from `/admin/status`; `None` when the admin port did not answer.
    pub draining: Option<bool>,
}

impl PodState {
    /// Reads a live pod of the StatefulSet `stateful_set` (its name is `<stateful_set>-<n>`),
    /// with its admin status if the admin port answered. `None` for a pod that is not one of the
    /// StatefulSet's (the name does not end in an ordinal).
    pub fn from_pod(stateful_set: &str, pod: &Pod, admin: Option<AdminStatus>) -> Option<Self> {
        let name = pod.metadata.name.clone()?;
        let ordinal = ordinal_of(stateful_set, &name)?;
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        let drain_deadline = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DRAIN_DEADLINE_ANNOTATION))
            .and_then(|v| v.parse().ok());
        Some(Self {
            name,
            ordinal,
            revision: pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL).cloned()),
            ready,
            deleting: pod.metadata.deletion_timestamp.is_some(),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
            drain_deadline,
            connections: admin.map(|a| a.connections),
            draining: admin.map(|a| a.draining),
        })
    }

    /// Whether a drain of this pod has begun: the operator recorded a deadline or the gateway says
    /// it is draining. A draining gateway never serves again, so such a pod must be replaced.
    pub fn drain_started(&self) -> bool {
        self.drain_deadline.is_some() || self.draining == Some(true)
    }
}

/// A JSON merge patch recording `deadline` in the pod's [`DRAIN_DEADLINE_ANNOTATION`], in the form
/// [`PodState::from_pod`] reads back.
pub fn drain_deadline_patch(deadline: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"annotations": {DRAIN_DEADLINE_ANNOTATION: deadline.to_string()}}
    })
}

/// The ordinal of pod `pod` of StatefulSet `stateful_set`: `demo-gateway-2` → 2.
pub fn ordinal_of(stateful_set: &str, pod: &str) -> Option<i32> {
    let digits = pod.strip_prefix(stateful_set)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("valid pod")
    }

    #[test]
    fn ordinal_parses_only_this_statefulsets_pods() {
        assert_eq!(ordinal_of("demo-gateway", "demo-gateway-0"), Some(0));
        assert_eq!(ordinal_of("demo-gateway", "demo-gateway-12"), Some(12));
        assert_eq!(ordinal_of("demo-gateway", "demo-gateway-"), None);
        assert_eq!(ordinal_of("demo-gateway", "demo-gateway-x1"), None);
        assert_eq!(ordinal_of("demo-gateway", "demo-gateway-headless-1"), None);
        assert_eq!(ordinal_of("demo-gateway", "other-gateway-1"), None);
        assert_eq!(ordinal_of("demo-gateway", "demo-gateway-+1"), None);
    }

    #[test]
    fn pod_state_reads_labels_conditions_annotations_and_admin_status() {
        let p = pod(json!({
            "metadata": {
                "name": "demo-gateway-1",
                "creationTimestamp": "2025-01-01T00:00:00Z",
                "deletionTimestamp": "2025-01-01T00:10:00Z",
                "labels": {"controller-revision-hash": "demo-gateway-abc"},
                "annotations": {DRAIN_DEADLINE_ANNOTATION: "2025-01-01T00:05:30Z"}
            },
            "status": {"conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Ready", "status": "True"}
            ]}
        }));
        let admin = AdminStatus {
            connections: 7,
            draining: true,
            moving: 0,
        };
        let state = PodState::from_pod("demo-gateway", &p, Some(admin)).expect("gateway pod");
        assert_eq!(
            state,
            PodState {
                name: "demo-gateway-1".into(),
                ordinal: 1,
                revision: Some("demo-gateway-abc".into()),
                ready: true,
                deleting: true,
                created: Some("2025-01-01T00:00:00Z".parse().unwrap()),
                drain_deadline: Some("2025-01-01T00:05:30Z".parse().unwrap()),
                connections: Some(7),
                draining: Some(true),
            }
        );
        assert!(state.drain_started());
    }

    #[test]
    fn pod_state_defaults_when_facts_are_missing() {
        let p = pod(json!({
            "metadata": {"name": "demo-gateway-0",
                         "annotations": {DRAIN_DEADLINE_ANNOTATION: "not a time"}},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}
        }));
        let state = PodState::from_pod("demo-gateway", &p, None).expect("gateway pod");
        assert!(!state.ready && !state.deleting);
        assert_eq!(state.revision, None);
        assert_eq!(
            state.drain_deadline, None,
            "an unparsable deadline is ignored"
        );
        assert_eq!((state.connections, state.draining), (None, None));
        assert!(!state.drain_started());
        let stranger = pod(json!({"metadata": {"name": "redis-0"}}));
        assert_eq!(PodState::from_pod("demo-gateway", &stranger, None), None);
    }

    #[test]
    fn the_drain_deadline_patch_reads_back() {
        let deadline: Timestamp = "2025-01-01T00:00:30.5Z".parse().unwrap();
        let mut value = json!({"metadata": {"name": "demo-gateway-2"}});
        let patch = drain_deadline_patch(deadline);
        value["metadata"]["annotations"] = patch["metadata"]["annotations"].clone();
        let state = PodState::from_pod("demo-gateway", &pod(value), None).unwrap();
        assert_eq!(state.drain_deadline, Some(deadline));
    }

    #[test]
    fn admin_status_parses_the_gateway_body() {
        let body: admin::Status = serde_json::from_value(
            json!({"pod": "demo-gateway-0", "connections": 12, "draining": false}),
        )
        .unwrap();
        assert_eq!(
            AdminStatus::from(body),
            AdminStatus {
                connections: 12,
                draining: false,
                moving: 0,
            }
        );
    }

    #[test]
    fn statefulset_state_is_settled_only_when_status_caught_up() {
        let sts = |generation: Option<i64>, observed: Option<i64>| {
            let mut value = json!({
                "metadata": {"name": "demo-gateway"},
                "spec": {"replicas": 3, "selector": {}, "serviceName": "x",
                         "template": {}},
                "status": {"replicas": 3, "currentRevision": "r1", "updateRevision": "r2"}
            });
            if let Some(g) = generation {
                value["metadata"]["generation"] = json!(g);
            }
            if let Some(o) = observed {
                value["status"]["observedGeneration"] = json!(o);
            }
            let sts: StatefulSet = serde_json::from_value(value).unwrap();
            StatefulSetState::from_stateful_set(&sts)
        };
        let state = sts(Some(2), Some(2));
        assert_eq!(
            state,
            StatefulSetState {
                replicas: 3,
                current_revision: Some("r1".into()),
                update_revision: Some("r2".into()),
                settled: true,
            }
        );
        assert!(!sts(Some(3), Some(2)).settled);
        assert!(!sts(Some(1), None).settled);
        assert!(sts(None, None).settled);
    }
}
