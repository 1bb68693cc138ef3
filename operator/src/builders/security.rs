//! The objects and settings that decide who reaches a ChatCluster's gateways: the admin token
//! (its Secret, created when the spec names none), the browsers' allowed origins, and the
//! optional NetworkPolicy.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec as K8sNetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{stamped, Blueprint, ADMIN_PORT, HTTP_PORT};
use crate::crd::{PeerSpec, SecretKeyRef};

/// Key of the admin token in the Secret the operator creates.
pub const ADMIN_TOKEN_KEY: &str = "token";

impl Blueprint<'_> {
    /// Where the admin token is: `spec.auth.adminTokenSecretRef`, else the Secret
    /// `<cc>-admin-token` the operator creates ([`Self::admin_token_secret`]).
    pub fn admin_token_ref(&self) -> SecretKeyRef {
        self.cc
            .spec
            .auth
            .admin_token_secret_ref
            .clone()
            .unwrap_or_else(|| SecretKeyRef {
                name: format!("{}-admin-token", self.name),
                key: ADMIN_TOKEN_KEY.into(),
            })
    }

    /// Whether the operator owns the admin token's Secret (the spec names none).
    pub fn generates_admin_token(&self) -> bool {
        self.cc.spec.auth.admin_token_secret_ref.is_none()
    }

    /// `<cc>-admin-token` holding `token`, owned by the ChatCluster (deleted with it). Created
    /// once, never applied again: a new token would need every pod restarted.
    pub fn admin_token_secret(&self, token: &str) -> Secret {
        let name = self.admin_token_ref().name;
        Secret {
            metadata: self.metadata(name),
            string_data: Some(BTreeMap::from([(ADMIN_TOKEN_KEY.into(), token.into())])),
            type_: Some("Opaque".into()),
            ..Secret::default()
        }
    }

    /// `CHAT_ALLOWED_ORIGINS`: `spec.auth.allowedOrigins`, else the ingress host's origin
    /// (`https://` with TLS, `http://` without), else none (every origin allowed).
    pub fn allowed_origins(&self) -> Option<String> {
        let spec = &self.cc.spec;
        if let Some(origins) = &spec.auth.allowed_origins {
            return Some(origins.join(","));
        }
        let ingress = spec.ingress.as_ref()?;
        let scheme = if ingress.tls_secret_name.is_some() {
            "https"
        } else {
            "http"
        };
        Some(format!("{scheme}://{}", ingress.host))
    }

    /// `<cc>-gateway`, when `spec.networkPolicy.enabled`: ingress to the gateway pods only on
    /// the public port from the ingress controller and the named clients, and on the admin port
    /// from the operator and the monitoring namespace. Egress is not restricted.
    pub fn network_policy(&self) -> Option<NetworkPolicy> {
        let spec = self.cc.spec.network_policy.as_ref().filter(|p| p.enabled)?;
        let public = std::iter::once(&spec.ingress_controller)
            .chain(&spec.clients)
            .map(|p| self.peer(p))
            .collect();
        let monitoring = PeerSpec {
            namespace: Some(spec.monitoring_namespace.clone()),
            pod_labels: BTreeMap::new(),
        };
        let admin = vec![self.peer(&spec.operator), self.peer(&monitoring)];
        Some(stamped(NetworkPolicy {
            metadata: self.metadata(self.stateful_set_name()),
            spec: Some(K8sNetworkPolicySpec {
                pod_selector: Some(self.selector()),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![rule(HTTP_PORT, public), rule(ADMIN_PORT, admin)]),
                egress: None,
            }),
        }))
    }

    fn peer(&self, peer: &PeerSpec) -> NetworkPolicyPeer {
        let namespace = peer.namespace.as_deref().unwrap_or(&self.namespace);
        NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".into(),
                    namespace.into(),
                )])),
                match_expressions: None,
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(peer.pod_labels.clone()).filter(|l| !l.is_empty()),
                match_expressions: None,
            }),
            ip_block: None,
        }
    }
}

fn rule(port: i32, from: Vec<NetworkPolicyPeer>) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from: Some(from),
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(port)),
            protocol: Some("TCP".into()),
            end_port: None,
        }]),
    }
}
