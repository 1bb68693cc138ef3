//! The backends' credentials and CAs in a gateway pod: the Redis user and password and the
//! Pulsar token as env vars read from their Secrets at pod start (the operator never copies a
//! secret into an object it writes), the CA certificates as files mounted from theirs, each
//! named to the gateway by its `*_CA_FILE` variable (PostgreSQL's by libpq's `PGSSLROOTCERT`).

use chat_protocol::names::env;
use k8s_openapi::api::core::v1::{EnvVar, KeyToPath, SecretVolumeSource, Volume, VolumeMount};

use super::container::{plain_env, secret_env};
use crate::crd::{ChatClusterSpec, SecretKeyRef};

/// Where the CA files are mounted: `/etc/chat/tls/<backend>/ca.crt`.
const TLS_DIR: &str = "/etc/chat/tls";
/// The file name each CA Secret key is mounted as.
const CA_FILE: &str = "ca.crt";
/// CA files are public certificates: readable by the gateway's user, written by no one.
const CA_FILE_MODE: i32 = 0o444;

/// Each backend's CA: (the backend, the variable naming the file, the Secret key).
fn cas(spec: &ChatClusterSpec) -> Vec<(&'static str, &'static str, &SecretKeyRef)> {
    let webhook = spec.offline_webhook.as_ref();
    [
        (
            "postgres",
            env::PG_SSL_ROOT_CERT,
            spec.database.ca_secret_ref.as_ref(),
        ),
        (
            "redis",
            env::REDIS_CA_FILE,
            spec.redis.ca_secret_ref.as_ref(),
        ),
        (
            "pulsar",
            env::PULSAR_CA_FILE,
            spec.pulsar.ca_secret_ref.as_ref(),
        ),
        (
            "webhook",
            env::OFFLINE_WEBHOOK_CA_FILE,
            webhook.and_then(|h| h.ca_secret_ref.as_ref()),
        ),
    ]
    .into_iter()
    .filter_map(|(backend, var, secret)| Some((backend, var, secret?)))
    .collect()
}

/// The CA file of `backend` in the pod.
fn ca_path(backend: &str) -> String {
    format!("{TLS_DIR}/{backend}/{CA_FILE}")
}

/// The env vars: credentials from their Secrets, CA file paths in plain text.
pub(super) fn env_vars(spec: &ChatClusterSpec) -> Vec<EnvVar> {
    let secrets = [
        (env::REDIS_USERNAME, &spec.redis.username_secret_ref),
        (env::REDIS_PASSWORD, &spec.redis.password_secret_ref),
        (env::PULSAR_TOKEN, &spec.pulsar.token_secret_ref),
    ];
    let mut vars: Vec<EnvVar> = secrets
        .into_iter()
        .filter_map(|(name, secret)| Some(secret_env(name, secret.as_ref()?)))
        .collect();
    for (backend, var, _) in cas(spec) {
        vars.push(plain_env(var, &ca_path(backend)));
    }
    vars
}

/// One Secret volume per CA, holding just its key as `ca.crt`.
pub(super) fn volumes(spec: &ChatClusterSpec) -> Vec<Volume> {
    cas(spec)
        .into_iter()
        .map(|(backend, _, secret)| Volume {
            name: format!("{backend}-ca"),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name.clone()),
                items: Some(vec![KeyToPath {
                    key: secret.key.clone(),
                    path: CA_FILE.into(),
                    mode: None,
                }]),
                default_mode: Some(CA_FILE_MODE),
                optional: None,
            }),
            ..Volume::default()
        })
        .collect()
}

/// Where [`volumes`] are mounted, read-only.
pub(super) fn mounts(spec: &ChatClusterSpec) -> Vec<VolumeMount> {
    cas(spec)
        .into_iter()
        .map(|(backend, _, _)| VolumeMount {
            name: format!("{backend}-ca"),
            mount_path: format!("{TLS_DIR}/{backend}"),
            read_only: Some(true),
            ..VolumeMount::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::builders::Blueprint;
    use crate::crd::ChatCluster;

    fn tls_cluster() -> ChatCluster {
        let secret = |name: &str, key: &str| json!({"name": name, "key": key});
        serde_json::from_value(json!({
            "apiVersion": "chatcluster.dev/v1alpha1",
            "kind": "ChatCluster",
            "metadata": {"name": "demo", "namespace": "chat", "uid": "1234-abcd"},
            "spec": {
                "image": "registry.example/chat-gateway:0.1.0",
                "redis": {"url": "rediss://redis:6380",
                          "usernameSecretRef": secret("chat-redis", "user"),
                          "passwordSecretRef": secret("chat-redis", "password"),
                          "caSecretRef": secret("chat-redis", "ca.crt")},
                "pulsar": {"serviceUrl": "pulsar+ssl://pulsar:6651",
                           "adminUrl": "https://pulsar:8443",
                           "tokenSecretRef": secret("chat-pulsar", "token"),
                           "adminTokenSecretRef": secret("chat-pulsar", "admin-token"),
                           "caSecretRef": secret("chat-pulsar", "ca.crt")},
                "database": {"urlSecretRef": secret("chat-db", "url"),
                             "caSecretRef": secret("chat-db-ca", "root.crt")},
                "auth": {"jwtSecretRef": secret("chat-jwt", "secret")}
            }
        }))
        .expect("valid ChatCluster")
    }

    #[test]
    fn credentials_come_from_secrets_and_cas_are_mounted_files() {
        let cc = tls_cluster();
        let b = Blueprint::new(&cc).unwrap();
        let sts = serde_json::to_value(b.stateful_set(1)).unwrap();
        let pod = &sts["spec"]["template"]["spec"];
        let env = pod["containers"][0]["env"].as_array().unwrap();
        let var = |name: &str| env.iter().find(|v| v["name"] == name).cloned();
        let from = |name: &str, key: &str| json!({"secretKeyRef": {"name": name, "key": key}});
        assert_eq!(
            var("CHAT_REDIS_USERNAME").unwrap()["valueFrom"],
            from("chat-redis", "user")
        );
        assert_eq!(
            var("CHAT_REDIS_PASSWORD").unwrap()["valueFrom"],
            from("chat-redis", "password")
        );
        assert_eq!(
            var("CHAT_PULSAR_TOKEN").unwrap()["valueFrom"],
            from("chat-pulsar", "token"),
            "the pods get the gateways' token, not the operator's admin token"
        );
        for (var_name, path) in [
            ("PGSSLROOTCERT", "/etc/chat/tls/postgres/ca.crt"),
            ("CHAT_REDIS_CA_FILE", "/etc/chat/tls/redis/ca.crt"),
            ("CHAT_PULSAR_CA_FILE", "/etc/chat/tls/pulsar/ca.crt"),
        ] {
            assert_eq!(var(var_name).unwrap()["value"], path, "{var_name}");
        }
        assert!(var("CHAT_OFFLINE_WEBHOOK_CA_FILE").is_none());

        let volumes = pod["volumes"].as_array().unwrap();
        assert!(volumes.contains(&json!({"name": "redis-ca", "secret": {
            "secretName": "chat-redis", "defaultMode": 0o444,
            "items": [{"key": "ca.crt", "path": "ca.crt"}]}})));
        assert!(volumes.contains(&json!({"name": "postgres-ca", "secret": {
            "secretName": "chat-db-ca", "defaultMode": 0o444,
            "items": [{"key": "root.crt", "path": "ca.crt"}]}})));
        let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
        assert!(mounts.contains(&json!({"name": "pulsar-ca",
            "mountPath": "/etc/chat/tls/pulsar", "readOnly": true})));

        let config: Value = serde_json::to_value(b.config_map()).unwrap();
        let text = config["data"].to_string();
        assert!(
            !text.contains("TOKEN") && !text.contains("PASSWORD"),
            "no credential in the ConfigMap: {text}"
        );
        assert_eq!(
            config["data"]["CHAT_PULSAR_URL"],
            "pulsar+ssl://pulsar:6651"
        );
    }

    #[test]
    fn a_plain_cluster_gets_no_tls_volumes_or_variables() {
        let mut cc = tls_cluster();
        cc.spec.redis = serde_json::from_value(json!({"url": "redis://redis:6379"})).unwrap();
        cc.spec.pulsar.token_secret_ref = None;
        cc.spec.pulsar.ca_secret_ref = None;
        cc.spec.database.ca_secret_ref = None;
        let spec = &cc.spec;
        assert!(super::env_vars(spec).is_empty());
        assert!(super::volumes(spec).is_empty() && super::mounts(spec).is_empty());
    }
}
