//! The routes into the cluster besides the Service: the Ingress (`spec.ingress`) and the optional
//! Gateway API route (`spec.httpRoute`), an `HTTPRoute` (`gateway.networking.k8s.io/v1`) to the
//! client Service, for clusters that expose services through a Gateway rather than an Ingress.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An `HTTPRoute` `<cc>-gateway` to the public port, attached to the Gateways in `parentRefs`.
/// Built only when this field is set; when the Gateway API CRDs are not installed the operator
/// says so in a Warning Event (`HTTPRouteUnavailable`) and carries on without the route.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways (or their listeners) the route attaches to.
    #[schemars(length(min = 1))]
    pub parent_refs: Vec<ParentReference>,
    /// Host names the route matches; when empty, `spec.ingress.host` if an ingress is set, else
    /// every host the listener accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
}

/// A Gateway API `ParentReference`: the Gateway (by default) a route attaches to.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// Name of the parent (a Gateway).
    pub name: String,
    /// Its namespace; the ChatCluster's when absent (the Gateway must then allow routes from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// One listener of the Gateway, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// One listener of the Gateway, by port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// API group of the parent; `gateway.networking.k8s.io` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the parent; `Gateway` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Ingress for the WebSocket port (the admin port is never exposed).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name clients connect to.
    pub host: String,
    /// IngressClass to use; the cluster's default class when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Secret with the TLS certificate for `host`; plain HTTP when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Annotations of the Ingress, for the controller of `className`. The ingress-nginx
    /// annotations the operator sets win, except that a `proxy-read-timeout` or
    /// `proxy-send-timeout` of more (whole) seconds than the operator's is kept: a WebSocket must
    /// outlive its session's timelife.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}
