//! The backends and secrets a ChatCluster points its gateways at: Redis, Pulsar, PostgreSQL and
//! the client-token secret, each a URL or a Secret reference.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key in a Secret in the ChatCluster's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret's data.
    pub key: String,
}

/// Redis connection; exactly one of `url` and `urlSecretRef`. `keyPrefix` is immutable: the
/// live pods' routes are under the old prefix, so a new one would split the route table.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.url) != has(self.urlSecretRef)")
    .message("set exactly one of url and urlSecretRef"))]
#[x_kube(validation = Rule::new("(has(self.keyPrefix) ? self.keyPrefix : '') == (has(oldSelf.keyPrefix) ? oldSelf.keyPrefix : '')")
    .message("redis.keyPrefix is immutable: the pods' routes live under it; create a new ChatCluster to change it"))]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Redis URL in plain text, e.g. `redis://redis:6379`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Secret key holding the Redis URL, for URLs with a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the Redis ACL user name (`CHAT_REDIS_USERNAME`); replaces a user in
    /// the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the Redis password (`CHAT_REDIS_PASSWORD`); replaces one in the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the PEM CA that signed a `rediss://` server's certificate, for a
    /// private CA (the public roots are trusted without it). Mounted in the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Prefix of every Redis key of this cluster, so clusters can share one Redis. When absent the
    /// ChatCluster's name is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

/// Pulsar connection and the tenant/namespace holding the pods' inbox topics. `tenant` and
/// `namespace` are immutable: the live pods consume their inboxes there, and pods on the new
/// names would not reach them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.tenant == oldSelf.tenant")
    .message("pulsar.tenant is immutable: the pods' inbox topics live in it; create a new ChatCluster to change it"))]
// `namespace` is a CEL reserved word: Kubernetes exposes the property as `__namespace__`.
#[x_kube(validation = Rule::new("self.__namespace__ == oldSelf.__namespace__")
    .message("pulsar.namespace is immutable: the pods' inbox topics live in it; create a new ChatCluster to change it"))]
#[serde(rename_all = "camelCase")]
pub struct PulsarSpec {
    /// Binary-protocol URL the gateways connect to, e.g. `pulsar://pulsar:6650`, or
    /// `pulsar+ssl://pulsar:6651` for TLS.
    pub service_url: String,
    /// Admin REST URL the operator creates and deletes topics through, e.g. `http://pulsar:8080`
    /// or `https://pulsar:8443`.
    pub admin_url: String,
    /// Secret key holding the token (a JWT) the gateways authenticate with, to the broker and
    /// to the admin API (`CHAT_PULSAR_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the token the operator sends to the admin API (it creates and deletes
    /// topics, which the gateways' role may not). Default: `tokenSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding a PEM CA to trust, besides the public roots, for `pulsar+ssl://` and
    /// an `https://` admin API; mounted in the pods and read by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Pulsar tenant of the topics.
    #[serde(default = "default_pulsar_tenant")]
    pub tenant: String,
    /// Pulsar namespace of the topics, inside the tenant.
    #[serde(default = "default_pulsar_namespace")]
    pub namespace: String,
}

/// Pulsar's built-in tenant, present on every broker.
fn default_pulsar_tenant() -> String {
    "public".to_owned()
}

/// Pulsar's built-in namespace, present on every broker.
fn default_pulsar_namespace() -> String {
    "default".to_owned()
}

/// PostgreSQL connection; exactly one of `url` and `urlSecretRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.url) != has(self.urlSecretRef)")
    .message("set exactly one of url and urlSecretRef"))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// PostgreSQL URL in plain text, e.g. `postgres://chat@postgres/chat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Secret key holding the PostgreSQL URL, for URLs with a password. TLS is set in the URL:
    /// `?sslmode=require`, or `verify-full` to check the server's certificate and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the PEM CA of `sslmode=verify-ca|verify-full` (a private or cloud
    /// CA): mounted in the pods and named by `PGSSLROOTCERT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// Client authentication.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Secret key holding the HS256 secret; every pod must share it, so it cannot be generated
    /// per pod as in embedded mode.
    pub jwt_secret_ref: SecretKeyRef,
    /// Secret key holding the bearer token of the gateways' admin port (`CHAT_ADMIN_TOKEN`),
    /// which the operator also sends on its drain and status calls. When absent the operator
    /// creates the Secret `<cc>-admin-token` (key `token`, random, owned by the ChatCluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_secret_ref: Option<SecretKeyRef>,
    /// Origins browsers may open WebSockets from (`CHAT_ALLOWED_ORIGINS`, `scheme://host[:port]`).
    /// When absent: the ingress host (`https://host` with `tlsSecretName`, else `http://host`),
    /// or every origin without an ingress. An empty list allows every origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
}
