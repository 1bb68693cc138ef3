//! The operator's Ingress behind a real nginx, configured as ingress-nginx would configure it
//! (issue 19, point 9).
//!
//! Real: Debian's `nginx` binary (a process of its own, unprivileged paths under a temp dir);
//! the Ingress and Service the operator builds (`Blueprint::ingress`, `Blueprint::service`);
//! three gateway pods (in-process `Running` servers as in tests/tests/cluster.rs) sharing the
//! real Redis route table and the Pulsar test broker; `chat_client` users on real WebSockets.
//!
//! Stand-in: the ingress-nginx controller. [`translate`] writes the configuration its template
//! would for the Ingress's fields and annotations (and refuses the ones it does not know);
//! [`controller`] follows the pods' readiness and reloads nginx when it changes, as the
//! controller follows the Service's Endpoints.
//!
//! Not covered: ingress-nginx's Lua balancer (a plain round-robin `upstream` stands in), a
//! `wss://` WebSocket (HTTPS is checked with a plain request), and an idle WebSocket outliving
//! nginx's 60 s default (too slow for a test): the timeouts are checked in the configuration
//! instead ([`conf`]).

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support, not a library API: the workspace lints are for the libraries"
)]

mod annotations;
mod chat;
mod conf;
mod controller;
mod nginx;
mod scenarios;
mod translate;

use chat_operator::crd::ChatCluster;
use serde_json::{json, Value};

/// The Ingress host: a name that resolves to this machine, so the clients' `Host` header is the
/// one nginx routes on.
pub const HOST: &str = "localhost";
/// `spec.gateway.timelifeSeconds` of the test cluster.
pub const TIMELIFE_SECONDS: u64 = 120;
/// `spec.files.maxFileBytes`: 4 MiB, above nginx's default body size of 1 MiB.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The test ChatCluster with an Ingress for [`HOST`] (class `nginx`), `annotations` added.
pub fn cluster(annotations: Value) -> ChatCluster {
    serde_json::from_value(json!({
        "apiVersion": "chatcluster.dev/v1alpha1",
        "kind": "ChatCluster",
        "metadata": {"name": "demo", "namespace": "chat", "uid": "1234-abcd"},
        "spec": {
            "replicas": 3,
            "image": "registry.example/chat-gateway:0.1.0",
            "gateway": {"timelifeSeconds": TIMELIFE_SECONDS, "heartbeatSeconds": 30,
                        "drainSeconds": 6},
            "redis": {"url": "redis://redis:6379", "keyPrefix": "demo"},
            "pulsar": {"serviceUrl": "pulsar://pulsar:6650", "adminUrl": "http://pulsar:8080",
                       "tenant": "public", "namespace": "chat"},
            "database": {"urlSecretRef": {"name": "chat-db", "key": "url"}},
            "auth": {"jwtSecretRef": {"name": "chat-jwt", "key": "secret"}},
            "files": {"maxFileBytes": MAX_FILE_BYTES},
            "ingress": {"host": HOST, "className": "nginx", "annotations": annotations},
        }
    }))
    .expect("a ChatCluster")
}
