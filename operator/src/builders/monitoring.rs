//! The PodMonitor (`monitoring.coreos.com/v1`) of `spec.monitoring.podMonitor`: the Prometheus
//! Operator scrapes every gateway pod's admin port `/metrics` (open without the admin token).
//!
//! The kind is not in `k8s-openapi`, so it is built as a [`DynamicObject`] over
//! [`pod_monitor_resource`]; the reconciler ([`crate::monitoring`]) applies it and copes with the
//! CRD being absent.

use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use serde_json::json;

use super::{stamped, Blueprint};

/// The Prometheus Operator's PodMonitor kind, `monitoring.coreos.com/v1`.
pub fn pod_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "PodMonitor"),
        "podmonitors",
    )
}

/// The label every scraped series gets: the ChatCluster's name, so one Prometheus can tell the
/// clusters of a namespace apart.
pub const CLUSTER_LABEL: &str = "chatcluster";

impl Blueprint<'_> {
    /// `<cc>-gateway`, only when `spec.monitoring.podMonitor.enabled`; deleted like the Ingress
    /// when it is not.
    pub fn pod_monitor(&self) -> Option<DynamicObject> {
        let spec = self
            .cc
            .spec
            .monitoring
            .as_ref()
            .and_then(|m| m.enabled_pod_monitor())?;
        let mut metadata = self.metadata(self.stateful_set_name());
        let mut labels = spec.labels.clone();
        // The operator's own labels win: the reconciler finds its objects by them.
        labels.extend(self.labels());
        metadata.labels = Some(labels);
        let mut object = DynamicObject::new(&self.stateful_set_name(), &pod_monitor_resource());
        object.metadata = metadata;
        object.data = json!({
            "spec": {
                "selector": {"matchLabels": self.selector_labels()},
                "podMetricsEndpoints": [{
                    "port": "admin",
                    "path": "/metrics",
                    "interval": spec.interval,
                    "relabelings": [{
                        "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
                        "targetLabel": CLUSTER_LABEL,
                    }],
                }],
            }
        });
        Some(stamped(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::crd::ChatCluster;

    fn cluster(monitoring: Value) -> ChatCluster {
        serde_json::from_value(json!({
            "apiVersion": "chatcluster.dev/v1alpha1",
            "kind": "ChatCluster",
            "metadata": {"name": "demo", "namespace": "chat", "uid": "1234-abcd"},
            "spec": {
                "image": "chat-gateway:1",
                "redis": {"url": "redis://redis:6379"},
                "pulsar": {"serviceUrl": "pulsar://pulsar:6650", "adminUrl": "http://pulsar:8080",
                           "tenant": "public", "namespace": "chat"},
                "database": {"urlSecretRef": {"name": "chat-db", "key": "url"}},
                "auth": {"jwtSecretRef": {"name": "chat-jwt", "key": "secret"}},
                "monitoring": monitoring,
            }
        }))
        .expect("valid ChatCluster")
    }

    #[test]
    fn no_pod_monitor_unless_enabled() {
        for monitoring in [json!({}), json!({"podMonitor": {"enabled": false}})] {
            let cc = cluster(monitoring);
            assert!(Blueprint::new(&cc).unwrap().pod_monitor().is_none());
        }
    }

    #[test]
    fn the_pod_monitor_scrapes_the_admin_port_of_this_clusters_pods() {
        let cc = cluster(json!({"podMonitor": {"enabled": true, "labels": {
            "release": "kps", "app.kubernetes.io/instance": "someone-else"}}}));
        let pm = Blueprint::new(&cc).unwrap().pod_monitor().unwrap();
        let pm = serde_json::to_value(&pm).unwrap();
        assert_eq!(pm["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(pm["kind"], "PodMonitor");
        assert_eq!(pm["metadata"]["name"], "demo-gateway");
        assert_eq!(pm["metadata"]["ownerReferences"][0]["uid"], "1234-abcd");
        let labels = &pm["metadata"]["labels"];
        assert_eq!(labels["release"], "kps");
        assert_eq!(
            labels["app.kubernetes.io/instance"], "demo",
            "the operator's labels win"
        );
        assert!(pm["metadata"]["annotations"][crate::builders::SPEC_HASH_ANNOTATION].is_string());
        assert_eq!(
            pm["spec"],
            json!({
                "selector": {"matchLabels": {
                    "app.kubernetes.io/name": "chat-gateway",
                    "app.kubernetes.io/instance": "demo"}},
                "podMetricsEndpoints": [{
                    "port": "admin", "path": "/metrics", "interval": "30s",
                    "relabelings": [{
                        "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
                        "targetLabel": "chatcluster"}]
                }]
            })
        );
    }
}
