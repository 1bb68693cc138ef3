//! The `ChatCluster` CRD: the checked-in YAML matches the Rust types, DESIGN §8's sample resource
//! deserializes and round-trips, and the schema's CEL rules accept and reject what they should
//! (evaluated locally with kube's CEL interpreter, as an apiserver would).

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

use chat_operator::crd::{
    ChatCluster, ChatClusterSpec, FilesSpec, GatewaySpec, ObjectStoreSpec, SecretKeyRef,
};
use kube::core::cel::{validate_cel, validate_cel_update};
use kube::CustomResourceExt;

const REGENERATE: &str = "run: cargo run -p chat-operator -- crd > crds/chatcluster.yaml";

/// DESIGN §8's example, minus status, with concrete `resources`.
const SAMPLE: &str = r#"
apiVersion: chatcluster.dev/v1alpha1
kind: ChatCluster
metadata: {name: demo, namespace: chat}
spec:
  replicas: 3
  image: registry.example/chat-gateway:0.1.0
  gateway: {timelifeSeconds: 1800, heartbeatSeconds: 30, drainSeconds: 30,
            maxConnectionsPerPod: 50000,
            resources: {requests: {cpu: 500m, memory: 512Mi}, limits: {memory: 1Gi}}}
  redis: {url: "redis://redis:6379", keyPrefix: demo}
  pulsar: {serviceUrl: "pulsar://pulsar:6650", adminUrl: "http://pulsar:8080",
           tenant: public, namespace: chat}
  database: {urlSecretRef: {name: chat-db, key: url}}
  auth: {jwtSecretRef: {name: chat-jwt, key: secret}}
  ingress: {host: chat.example.com, className: nginx, tlsSecretName: chat-tls}
"#;

fn sample() -> ChatCluster {
    serde_saphyr::from_str(SAMPLE).expect("DESIGN §8 sample deserializes into ChatCluster")
}

#[test]
fn checked_in_crd_matches_the_rust_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/chatcluster.yaml");
    let checked_in = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("reading {path}: {err}; {REGENERATE}"));
    let generated = chat_operator::crd::crd_yaml().expect("CRD renders as YAML");
    if generated != checked_in {
        let first_difference = generated
            .lines()
            .zip(checked_in.lines())
            .enumerate()
            .find(|(_, (new, old))| new != old)
            .map_or_else(
                || "one file is a prefix of the other".to_owned(),
                |(n, (new, old))| format!("line {}: generated `{new}`, checked in `{old}`", n + 1),
            );
        panic!(
            "crds/chatcluster.yaml is out of date with operator/src/crd.rs \
             ({first_difference}); {REGENERATE}"
        );
    }
}

#[test]
fn crd_names_subresources_and_columns() {
    let crd = ChatCluster::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("chatclusters.chatcluster.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["cc".to_owned()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    let subresources = version.subresources.as_ref().expect("subresources");
    assert!(subresources.status.is_some(), "status subresource");
    let scale = subresources.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.replicas");
    assert_eq!(
        scale.label_selector_path.as_deref(),
        Some(".status.selector"),
        "an HPA needs the pods' selector"
    );
    let crd = serde_json::to_value(&crd).expect("CRD serializes");
    let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
    assert_eq!(status["properties"]["selector"]["type"], "string");
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        ["Replicas", "Ready", "Connections", "Phase", "Age"]
    );
}

#[test]
fn schema_defaults_are_the_rust_defaults() {
    let crd = serde_json::to_value(ChatCluster::crd()).expect("CRD serializes");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["replicas"]["default"], 3);
    assert_eq!(spec["properties"]["replicas"]["minimum"], 0.0);
    assert_eq!(
        spec["properties"]["gateway"]["default"],
        serde_json::to_value(GatewaySpec::default()).expect("GatewaySpec serializes")
    );
    let pulsar = &spec["properties"]["pulsar"]["properties"];
    assert_eq!(pulsar["tenant"]["default"], "public");
    assert_eq!(pulsar["namespace"]["default"], "default");
}

#[test]
fn design_sample_deserializes_and_its_spec_round_trips() {
    let cc = sample();
    assert_eq!(cc.metadata.name.as_deref(), Some("demo"));
    assert_eq!(cc.metadata.namespace.as_deref(), Some("chat"));
    assert_eq!(cc.spec.replicas, 3);
    assert_eq!(cc.spec.gateway.max_connections_per_pod, 50_000);
    assert_eq!(cc.spec.redis.url.as_deref(), Some("redis://redis:6379"));
    assert_eq!(
        cc.spec.database.url_secret_ref,
        Some(SecretKeyRef {
            name: "chat-db".to_owned(),
            key: "url".to_owned()
        })
    );
    assert_eq!(cc.spec.pulsar.namespace, "chat");
    assert!(cc.status.is_none());

    let sample_spec = serde_saphyr::from_str::<serde_json::Value>(SAMPLE)
        .expect("sample parses as a value")["spec"]
        .clone();
    let spec_value = serde_json::to_value(&cc.spec).expect("spec serializes");
    assert_eq!(
        spec_value, sample_spec,
        "serializing the spec gives back the sample's spec"
    );

    let yaml = serde_saphyr::to_string(&cc.spec).expect("spec renders as YAML");
    let again: ChatClusterSpec = serde_saphyr::from_str(&yaml).expect("rendered spec parses");
    assert_eq!(again, cc.spec);
}

#[test]
fn omitted_fields_take_their_defaults() {
    let cc: ChatCluster = serde_saphyr::from_str(
        r#"
apiVersion: chatcluster.dev/v1alpha1
kind: ChatCluster
metadata: {name: small}
spec:
  image: chat-gateway:dev
  redis: {url: "redis://redis:6379"}
  pulsar: {serviceUrl: "pulsar://pulsar:6650", adminUrl: "http://pulsar:8080"}
  database: {url: "postgres://chat@postgres/chat"}
  auth: {jwtSecretRef: {name: chat-jwt, key: secret}}
"#,
    )
    .expect("minimal ChatCluster deserializes");
    assert_eq!(cc.spec.replicas, 3);
    assert_eq!(cc.spec.gateway, GatewaySpec::default());
    assert_eq!(
        (
            cc.spec.gateway.timelife_seconds,
            cc.spec.gateway.heartbeat_seconds
        ),
        (1800, 30)
    );
    assert_eq!(cc.spec.gateway.drain_seconds, 30);
    assert_eq!(cc.spec.gateway.max_connections_per_pod, 50_000);
    assert_eq!(
        (
            cc.spec.pulsar.tenant.as_str(),
            cc.spec.pulsar.namespace.as_str()
        ),
        ("public", "default")
    );
    assert_eq!(cc.spec.redis.key_prefix, None);
    assert_eq!(cc.spec.ingress, None);
    assert_eq!(cc.spec.files, FilesSpec::default());
    assert_eq!(cc.spec.files.max_file_bytes, 20 * 1024 * 1024);
}

#[test]
fn cel_requires_both_object_store_keys_or_neither() {
    let secret = |key: &str| {
        Some(SecretKeyRef {
            name: "chat-s3".to_owned(),
            key: key.to_owned(),
        })
    };
    let mut cc = sample();
    let store = ObjectStoreSpec {
        url: "s3://chat-files/demo".to_owned(),
        endpoint: Some("https://minio.example.com".to_owned()),
        region: None,
        access_key_id_secret_ref: secret("id"),
        secret_access_key_secret_ref: secret("secret"),
    };
    cc.spec.files.object_store = Some(store.clone());
    validate_cel(&cc).expect("both keys");
    cc.spec.files.object_store = Some(ObjectStoreSpec {
        access_key_id_secret_ref: None,
        secret_access_key_secret_ref: None,
        ..store.clone()
    });
    validate_cel(&cc).expect("neither key: the pod's own credentials");
    cc.spec.files.object_store = Some(ObjectStoreSpec {
        secret_access_key_secret_ref: None,
        ..store
    });
    let err = validate_cel(&cc).expect_err("one key alone is rejected");
    assert!(
        err.to_string().contains("both or neither"),
        "unexpected error: {err}"
    );
}

#[test]
fn cel_rules_accept_the_design_sample() {
    validate_cel(&sample()).expect("DESIGN §8 sample passes the CRD's CEL rules");
}

#[test]
fn cel_rejects_a_drain_longer_than_the_timelife() {
    let mut cc = sample();
    cc.spec.gateway.drain_seconds = cc.spec.gateway.timelife_seconds;
    validate_cel(&cc).expect("drain equal to timelife is allowed");

    cc.spec.gateway.drain_seconds = cc.spec.gateway.timelife_seconds + 1;
    let err = validate_cel(&cc).expect_err("drain longer than timelife is rejected");
    assert!(
        err.to_string()
            .contains("drainSeconds must not be greater than timelifeSeconds"),
        "unexpected error: {err}"
    );
}

#[test]
fn cel_requires_exactly_one_url_source() {
    let secret = SecretKeyRef {
        name: "s".to_owned(),
        key: "k".to_owned(),
    };

    let mut both = sample();
    both.spec.redis.url_secret_ref = Some(secret.clone());
    let err = validate_cel(&both).expect_err("redis with url and urlSecretRef is rejected");
    assert!(
        err.to_string()
            .contains("exactly one of url and urlSecretRef"),
        "{err}"
    );

    let mut neither = sample();
    neither.spec.database.url_secret_ref = None;
    let err = validate_cel(&neither).expect_err("database with no url is rejected");
    assert!(
        err.to_string()
            .contains("exactly one of url and urlSecretRef"),
        "{err}"
    );

    let mut swapped = sample();
    swapped.spec.redis.url = None;
    swapped.spec.redis.url_secret_ref = Some(secret);
    swapped.spec.database.url = Some("postgres://chat@postgres/chat".to_owned());
    swapped.spec.database.url_secret_ref = None;
    validate_cel(&swapped).expect("either source alone is allowed");
}

/// The rules of the CRD's schema node at `path` (properties), as (rule, message) pairs.
fn rules_at(path: &[&str]) -> Vec<(String, String)> {
    let crd = serde_json::to_value(ChatCluster::crd()).expect("CRD serializes");
    let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    for field in path {
        node = &node["properties"][field];
    }
    node["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["rule"].as_str().unwrap_or_default().to_owned(),
                r["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_crd_carries_transition_rules_keeping_the_identity() {
    let redis = rules_at(&["spec", "redis"]);
    assert!(
        redis
            .iter()
            .any(|(rule, message)| rule.contains("oldSelf.keyPrefix")
                && message.contains("redis.keyPrefix is immutable")),
        "{redis:?}"
    );
    let pulsar = rules_at(&["spec", "pulsar"]);
    // `namespace` is a CEL reserved word, escaped as Kubernetes does.
    for (field, name) in [("tenant", "tenant"), ("namespace", "__namespace__")] {
        assert!(
            pulsar.iter().any(
                |(rule, message)| rule == &format!("self.{name} == oldSelf.{name}")
                    && message.contains(&format!("pulsar.{field} is immutable"))
            ),
            "{pulsar:?}"
        );
    }
}

#[test]
fn cel_refuses_a_new_key_prefix_on_a_live_cluster() {
    let old = sample();
    let mut new = sample();
    new.spec.replicas = 5;
    new.spec.image = "registry.example/chat-gateway:0.2.0".to_owned();
    validate_cel_update(&new, &old).expect("other changes are allowed");

    new.spec.redis.key_prefix = Some("other".to_owned());
    let err = validate_cel_update(&new, &old).expect_err("a new keyPrefix is refused");
    assert!(
        err.to_string().contains("redis.keyPrefix is immutable"),
        "{err}"
    );
    new.spec.redis.key_prefix = None;
    let err = validate_cel_update(&new, &old).expect_err("removing the keyPrefix is refused");
    assert!(
        err.to_string().contains("redis.keyPrefix is immutable"),
        "{err}"
    );
    let mut unset = sample();
    unset.spec.redis.key_prefix = None;
    validate_cel_update(&unset, &unset).expect("an absent keyPrefix may stay absent");
    let err = validate_cel_update(&old, &unset).expect_err("setting one later is refused");
    assert!(
        err.to_string().contains("redis.keyPrefix is immutable"),
        "{err}"
    );
}

#[test]
fn cel_refuses_a_new_pulsar_tenant_or_namespace_on_a_live_cluster() {
    let old = sample();
    let mut new = sample();
    new.spec.pulsar.service_url = "pulsar+ssl://pulsar:6651".to_owned();
    validate_cel_update(&new, &old).expect("a new URL is allowed");

    new.spec.pulsar.tenant = "chat".to_owned();
    let err = validate_cel_update(&new, &old).expect_err("a new tenant is refused");
    assert!(
        err.to_string().contains("pulsar.tenant is immutable"),
        "{err}"
    );

    let mut new = sample();
    new.spec.pulsar.namespace = "other".to_owned();
    let err = validate_cel_update(&new, &old).expect_err("a new namespace is refused");
    assert!(
        err.to_string().contains("pulsar.namespace is immutable"),
        "{err}"
    );
    validate_cel(&new).expect("on creation any namespace is fine");
}

#[test]
fn cel_refuses_pod_labels_and_annotations_that_are_the_operators() {
    let mut cc = sample();
    cc.spec.pod.labels = [("team".to_owned(), "chat".to_owned())].into();
    cc.spec.pod.annotations = [("prometheus.io/scrape".to_owned(), "true".to_owned())].into();
    validate_cel(&cc).expect("other labels and annotations are fine");

    for reserved in chat_operator::crd::RESERVED_LABELS {
        let mut bad = cc.clone();
        bad.spec
            .pod
            .labels
            .insert(reserved.to_owned(), "x".to_owned());
        let err = validate_cel(&bad).expect_err("a selector label is refused");
        assert!(
            err.to_string().contains("pod labels may not set"),
            "{reserved}: {err}"
        );
    }
    let mut bad = cc;
    bad.spec
        .pod
        .annotations
        .insert("chatcluster.dev/secrets-hash".to_owned(), "x".to_owned());
    let err = validate_cel(&bad).expect_err("an operator annotation is refused");
    assert!(err.to_string().contains("chatcluster.dev/"), "{err}");
}
