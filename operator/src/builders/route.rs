//! The routes into the cluster besides the Service: the Ingress (its annotations the user's merged
//! with the operator's) and the Gateway API `HTTPRoute` of `spec.httpRoute`.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::{stamped, Blueprint, INGRESS_TIMEOUT_MARGIN_SECONDS};

/// The ingress-nginx timeouts a WebSocket lives under: the operator's value (timelife plus a
/// margin) is a floor, a user's larger one is kept.
pub const INGRESS_TIMEOUT_ANNOTATIONS: [&str; 2] = [
    "nginx.ingress.kubernetes.io/proxy-read-timeout",
    "nginx.ingress.kubernetes.io/proxy-send-timeout",
];

/// The Ingress's annotations: `user`'s, then `ours` over them — except a timeout of
/// [`INGRESS_TIMEOUT_ANNOTATIONS`] that the user set to more whole seconds than ours, which stays
/// (a longer timeout cuts no session; a shorter one would cut sessions the gateway still serves).
pub(super) fn ingress_annotations(
    user: &BTreeMap<String, String>,
    ours: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut annotations = user.clone();
    for (key, value) in ours {
        let longer = INGRESS_TIMEOUT_ANNOTATIONS.contains(&key.as_str())
            && user
                .get(&key)
                .and_then(|theirs| theirs.trim().parse::<u64>().ok())
                .zip(value.parse::<u64>().ok())
                .is_some_and(|(theirs, ours)| theirs > ours);
        if !longer {
            annotations.insert(key, value);
        }
    }
    annotations
}

/// `gateway.networking.k8s.io/v1` `HTTPRoute`, which k8s-openapi does not carry: built as a
/// [`DynamicObject`] of this resource.
pub fn http_route_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

/// A Gateway API duration (`^([0-9]{1,5}(h|m|s|ms)){1,4}$`) of `seconds`, in hours, minutes
/// and seconds so that large values keep within five digits.
fn duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let mut text = String::new();
    if h > 0 {
        text.push_str(&format!("{}h", h.min(99_999)));
    }
    if m > 0 {
        text.push_str(&format!("{m}m"));
    }
    if s > 0 || text.is_empty() {
        text.push_str(&format!("{s}s"));
    }
    text
}

impl Blueprint<'_> {
    /// `<cc>-gateway` when `spec.httpRoute` is set: every path of the hosts to the client
    /// Service's public port, attached to `parentRefs`. The request timeout is raised above the
    /// session's timelife, as the Ingress's, for implementations that apply it to an upgraded
    /// connection.
    pub fn http_route(&self) -> Option<DynamicObject> {
        let spec = self.cc.spec.http_route.as_ref()?;
        let hostnames = if spec.hostnames.is_empty() {
            self.cc
                .spec
                .ingress
                .as_ref()
                .map(|i| vec![i.host.clone()])
                .unwrap_or_default()
        } else {
            spec.hostnames.clone()
        };
        let timeout = duration(i64::from(
            self.cc.spec.gateway.timelife_seconds + INGRESS_TIMEOUT_MARGIN_SECONDS,
        ));
        let mut route = DynamicObject::new(&self.stateful_set_name(), &http_route_resource());
        route.metadata = self.metadata(self.stateful_set_name());
        let mut body = json!({
            "parentRefs": spec.parent_refs,
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": self.stateful_set_name(), "port": super::HTTP_PORT}],
                "timeouts": {"request": timeout},
            }],
        });
        if !hostnames.is_empty() {
            body["hostnames"] = json!(hostnames);
        }
        route.data = json!({ "spec": body });
        Some(stamped(route))
    }
}

impl Blueprint<'_> {
    /// `<cc>-gateway` when `spec.ingress` is set: the public port under `/` for `host`, TLS when
    /// `tlsSecretName` is given. WebSockets are long-lived, so ingress-nginx's proxy timeouts
    /// (60 s by default) are raised above the session's timelife.
    pub fn ingress(&self) -> Option<Ingress> {
        let spec = self.cc.spec.ingress.as_ref()?;
        let timeout =
            (self.cc.spec.gateway.timelife_seconds + INGRESS_TIMEOUT_MARGIN_SECONDS).to_string();
        let mut metadata = self.metadata(self.stateful_set_name());
        let ours = BTreeMap::from([
            (
                "nginx.ingress.kubernetes.io/proxy-read-timeout".to_owned(),
                timeout.clone(),
            ),
            (
                "nginx.ingress.kubernetes.io/proxy-send-timeout".to_owned(),
                timeout,
            ),
            // Uploads go through the ingress: bodies up to the gateway's limit (nginx reads a
            // plain number as bytes). nginx answers a larger one itself, with its own 413 page,
            // before it reaches a pod: a gateway that refused it mid-body would reach the client
            // as nginx's 502 (nginx sends the body it buffered and finds the connection closed).
            (
                "nginx.ingress.kubernetes.io/proxy-body-size".to_owned(),
                self.cc.spec.files.max_file_bytes.to_string(),
            ),
        ]);
        metadata.annotations = Some(ingress_annotations(&spec.annotations, ours));
        Some(stamped(Ingress {
            metadata,
            spec: Some(K8sIngressSpec {
                ingress_class_name: spec.class_name.clone(),
                rules: Some(vec![IngressRule {
                    host: Some(spec.host.clone()),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some("/".into()),
                            path_type: "Prefix".into(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: self.stateful_set_name(),
                                    port: Some(ServiceBackendPort {
                                        name: Some("http".into()),
                                        number: None,
                                    }),
                                }),
                                resource: None,
                            },
                        }],
                    }),
                }]),
                tls: spec.tls_secret_name.as_ref().map(|secret| {
                    vec![IngressTLS {
                        hosts: Some(vec![spec.host.clone()]),
                        secret_name: Some(secret.clone()),
                    }]
                }),
                default_backend: None,
            }),
            status: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_keep_within_the_gateway_api_pattern() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(1860), "31m");
        assert_eq!(duration(3661), "1h1m1s");
        assert_eq!(
            duration(i64::from(i32::MAX)),
            "596523h14m7s".replace("596523", "99999")
        );
    }
}
