//! Snapshot-style tests: the serialized JSON of the fields that matter, compared whole.

use serde_json::{json, Value};

use super::*;
use crate::crd::SecretKeyRef;

/// DESIGN §8's example, as the apiserver would hand it over (uid, defaults filled in).
fn demo() -> ChatCluster {
    serde_json::from_value(json!({
        "apiVersion": "chatcluster.dev/v1alpha1",
        "kind": "ChatCluster",
        "metadata": {"name": "demo", "namespace": "chat", "uid": "1234-abcd"},
        "spec": {
            "replicas": 3,
            "image": "registry.example/chat-gateway:0.1.0",
            "gateway": {
                "timelifeSeconds": 1800, "heartbeatSeconds": 30, "drainSeconds": 30,
                "maxConnectionsPerPod": 50000,
                "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                              "limits": {"memory": "1Gi"}}
            },
            "redis": {"url": "redis://redis:6379", "keyPrefix": "demo"},
            "pulsar": {"serviceUrl": "pulsar://pulsar:6650", "adminUrl": "http://pulsar:8080",
                       "tenant": "public", "namespace": "chat"},
            "database": {"urlSecretRef": {"name": "chat-db", "key": "url"}},
            "auth": {"jwtSecretRef": {"name": "chat-jwt", "key": "secret"}},
            "ingress": {"host": "chat.example.com", "className": "nginx",
                        "tlsSecretName": "chat-tls"}
        }
    }))
    .expect("valid ChatCluster")
}

fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("serializes")
}

fn common_labels() -> Value {
    json!({
        "app.kubernetes.io/instance": "demo",
        "app.kubernetes.io/managed-by": "chat-operator",
        "app.kubernetes.io/name": "chat-gateway"
    })
}

fn selector() -> Value {
    json!({"matchLabels": {"app.kubernetes.io/instance": "demo",
                           "app.kubernetes.io/name": "chat-gateway"}})
}

#[test]
fn names_topics_and_admin_urls() {
    let cc = demo();
    let b = Blueprint::new(&cc).unwrap();
    assert_eq!(b.name(), "demo");
    assert_eq!(b.namespace(), "chat");
    assert_eq!(b.stateful_set_name(), "demo-gateway");
    assert_eq!(b.headless_service_name(), "demo-gateway-headless");
    assert_eq!(b.config_map_name(), "demo-config");
    assert_eq!(b.pod_name(2), "demo-gateway-2");
    assert_eq!(b.key_prefix(), "demo");
    assert_eq!(
        b.topics(2),
        [
            "persistent://public/chat/demo-pod-demo-gateway-0",
            "persistent://public/chat/demo-pod-demo-gateway-1"
        ]
    );
    assert!(b.topics(-1).is_empty());
    assert_eq!(b.topic_ordinal(&b.topic(17)), Some(17));
    assert_eq!(
        b.topic_ordinal("persistent://public/chat/other-pod-demo-gateway-1"),
        None
    );
    assert_eq!(
        b.topic_ordinal("persistent://public/chat/demo-pod-demo-gateway-"),
        None
    );
    assert_eq!(
        b.admin_url("demo-gateway-2"),
        "http://demo-gateway-2.demo-gateway-headless.chat.svc:9090"
    );
}

#[test]
fn key_prefix_defaults_to_the_cluster_name() {
    let mut cc = demo();
    cc.metadata.name = Some("prod".into());
    cc.spec.redis.key_prefix = None;
    let b = Blueprint::new(&cc).unwrap();
    assert_eq!(b.key_prefix(), "prod");
    assert_eq!(
        b.topic(0),
        "persistent://public/chat/prod-pod-prod-gateway-0"
    );
    assert_eq!(b.config_map().data.unwrap()["CHAT_KEY_PREFIX"], "prod");
}

#[test]
fn blueprint_needs_name_namespace_and_uid() {
    for field in ["name", "namespace", "uid"] {
        let mut cc = demo();
        match field {
            "name" => cc.metadata.name = None,
            "namespace" => cc.metadata.namespace = None,
            _ => cc.metadata.uid = None,
        }
        let err = Blueprint::new(&cc).unwrap_err();
        assert!(
            matches!(err, Error::MissingMetadata(f) if f == field),
            "{field}: {err}"
        );
    }
}

#[test]
fn config_map_holds_the_gateway_settings_as_env_vars() {
    let cc = demo();
    let cm = to_json(&Blueprint::new(&cc).unwrap().config_map());
    assert_eq!(cm["metadata"]["name"], "demo-config");
    assert_eq!(
        cm["data"],
        json!({
            "CHAT_ALLOWED_ORIGINS": "https://chat.example.com",
            "CHAT_DRAIN_SECONDS": "30",
            "CHAT_HEARTBEAT_SECONDS": "30",
            "CHAT_KEY_PREFIX": "demo",
            "CHAT_MAX_CONNECTIONS": "50000",
            "CHAT_MAX_FILE_BYTES": "20971520",
            "CHAT_PULSAR_ADMIN_URL": "http://pulsar:8080",
            "CHAT_PULSAR_NAMESPACE": "chat",
            "CHAT_PULSAR_TENANT": "public",
            "CHAT_PULSAR_URL": "pulsar://pulsar:6650",
            "CHAT_RECALL_SECONDS": "120",
            "CHAT_REDIS_URL": "redis://redis:6379",
            "CHAT_TIMELIFE_SECONDS": "1800",
            "CHAT_TRUSTED_PROXIES": super::IN_CLUSTER_PROXIES
        })
    );
}

#[test]
fn secret_urls_stay_out_of_the_config_map_and_plain_ones_go_in() {
    let mut cc = demo();
    cc.spec.redis.url = None;
    cc.spec.redis.url_secret_ref = Some(SecretKeyRef {
        name: "chat-redis".into(),
        key: "url".into(),
    });
    cc.spec.database.url = Some("postgres://chat@postgres/chat".into());
    cc.spec.database.url_secret_ref = None;
    let b = Blueprint::new(&cc).unwrap();
    let data = b.config_map().data.unwrap();
    assert!(!data.contains_key("CHAT_REDIS_URL"));
    assert_eq!(data["CHAT_DATABASE_URL"], "postgres://chat@postgres/chat");
    let sts = to_json(&b.stateful_set(3));
    let env = &sts["spec"]["template"]["spec"]["containers"][0]["env"];
    let names: Vec<&str> = env
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "CHAT_LISTEN",
            "CHAT_ADMIN_LISTEN",
            "CHAT_DATA_DIR",
            "CHAT_POD_NAME",
            "CHAT_JWT_SECRET",
            "CHAT_ADMIN_TOKEN",
            "CHAT_REDIS_URL"
        ]
    );
    assert_eq!(
        env[6],
        json!({"name": "CHAT_REDIS_URL",
               "valueFrom": {"secretKeyRef": {"name": "chat-redis", "key": "url"}}})
    );
}

#[test]
fn the_object_store_goes_in_the_config_map_and_its_credentials_by_secret() {
    let mut cc = demo();
    let store: crate::crd::ObjectStoreSpec = serde_json::from_value(json!({
        "url": "s3://chat-files/prod", "endpoint": "https://minio.example.com",
        "accessKeyIdSecretRef": {"name": "chat-s3", "key": "id"},
        "secretAccessKeySecretRef": {"name": "chat-s3", "key": "secret"}
    }))
    .unwrap();
    cc.spec.files.object_store = Some(store);
    cc.spec.files.max_file_bytes = 1 << 20;
    let b = Blueprint::new(&cc).unwrap();
    let data = b.config_map().data.unwrap();
    assert_eq!(data["CHAT_OBJECT_STORE_URL"], "s3://chat-files/prod");
    assert_eq!(
        data["CHAT_OBJECT_STORE_ENDPOINT"],
        "https://minio.example.com"
    );
    assert_eq!(data["CHAT_MAX_FILE_BYTES"], "1048576");
    assert!(!data.contains_key("CHAT_OBJECT_STORE_REGION"));
    assert!(!data.keys().any(|k| k.contains("ACCESS_KEY")), "{data:?}");
    let sts = to_json(&b.stateful_set(3));
    let env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        env.contains(&json!({"name": "CHAT_OBJECT_STORE_SECRET_ACCESS_KEY",
        "valueFrom": {"secretKeyRef": {"name": "chat-s3", "key": "secret"}}}))
    );
    assert!(
        env.contains(&json!({"name": "CHAT_OBJECT_STORE_ACCESS_KEY_ID",
        "valueFrom": {"secretKeyRef": {"name": "chat-s3", "key": "id"}}}))
    );
    let ingress = to_json(&b.ingress().unwrap());
    assert_eq!(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"],
        "1048576"
    );
}

#[test]
fn headless_service_publishes_every_pod_for_the_admin_calls() {
    let cc = demo();
    let svc = to_json(&Blueprint::new(&cc).unwrap().headless_service());
    assert_eq!(svc["metadata"]["name"], "demo-gateway-headless");
    assert_eq!(
        svc["spec"],
        json!({
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": selector()["matchLabels"],
            "ports": [
                {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"},
                {"name": "admin", "port": 9090, "targetPort": "admin", "protocol": "TCP"}
            ]
        })
    );
}

#[test]
fn client_service_exposes_only_the_public_port() {
    let cc = demo();
    let svc = to_json(&Blueprint::new(&cc).unwrap().service());
    assert_eq!(svc["metadata"]["name"], "demo-gateway");
    assert_eq!(
        svc["spec"],
        json!({
            "type": "ClusterIP",
            "selector": selector()["matchLabels"],
            "ports": [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
        })
    );
}

#[test]
fn stateful_set_spec() {
    let cc = demo();
    let sts = to_json(&Blueprint::new(&cc).unwrap().stateful_set(2));
    assert_eq!(sts["metadata"]["name"], "demo-gateway");
    let spec = &sts["spec"];
    assert_eq!(
        spec["replicas"], 2,
        "the replicas asked for, not spec.replicas"
    );
    assert_eq!(spec["serviceName"], "demo-gateway-headless");
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    assert_eq!(spec["updateStrategy"], json!({"type": "OnDelete"}));
    assert_eq!(spec["selector"], selector());
    let template = &spec["template"];
    assert_eq!(template["metadata"]["labels"], common_labels());
    let pod = &template["spec"];
    assert_eq!(
        pod["terminationGracePeriodSeconds"], 45,
        "drain 30 + margin 15"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["enableServiceLinks"], false);
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
               "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}])
    );
    assert_eq!(
        pod["topologySpreadConstraints"],
        json!([{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector()}])
    );
}

#[test]
fn gateway_container() {
    let cc = demo();
    let sts = to_json(&Blueprint::new(&cc).unwrap().stateful_set(3));
    let containers = &sts["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().unwrap().len(), 1);
    let c = &containers[0];
    assert_eq!(c["name"], "gateway");
    assert_eq!(c["image"], "registry.example/chat-gateway:0.1.0");
    assert_eq!(c["command"], json!(["chat-gateway"]));
    assert_eq!(c["args"], json!(["serve"]));
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"},
               {"name": "admin", "containerPort": 9090, "protocol": "TCP"}])
    );
    assert_eq!(
        c["env"],
        json!([
            {"name": "CHAT_LISTEN", "value": "0.0.0.0:8080"},
            {"name": "CHAT_ADMIN_LISTEN", "value": "0.0.0.0:9090"},
            {"name": "CHAT_DATA_DIR", "value": "/data"},
            {"name": "CHAT_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "CHAT_JWT_SECRET",
             "valueFrom": {"secretKeyRef": {"name": "chat-jwt", "key": "secret"}}},
            {"name": "CHAT_ADMIN_TOKEN",
             "valueFrom": {"secretKeyRef": {"name": "demo-admin-token", "key": "token"}}},
            {"name": "CHAT_DATABASE_URL",
             "valueFrom": {"secretKeyRef": {"name": "chat-db", "key": "url"}}}
        ])
    );
    assert_eq!(
        c["envFrom"],
        json!([{"configMapRef": {"name": "demo-config"}}])
    );
    assert_eq!(
        c["readinessProbe"],
        json!({"httpGet": {"path": "/readyz", "port": "admin"},
               "periodSeconds": 5, "failureThreshold": 2, "timeoutSeconds": 2})
    );
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": "admin"},
               "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 2})
    );
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}})
    );
    assert_eq!(
        c["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
               "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}})
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}])
    );
}

#[test]
fn grace_period_follows_the_drain_time() {
    let mut cc = demo();
    cc.spec.gateway.drain_seconds = 120;
    let sts = Blueprint::new(&cc).unwrap().stateful_set(3);
    let pod = sts.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(135));
}

fn template_annotations(cc: &ChatCluster) -> BTreeMap<String, String> {
    let sts = Blueprint::new(cc).unwrap().stateful_set(3);
    sts.spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap()
}

#[test]
fn a_settings_change_changes_the_pod_template() {
    let cc = demo();
    let before = template_annotations(&cc);
    assert_eq!(before.len(), 1);
    assert_eq!(before[CONFIG_HASH_ANNOTATION].len(), 16);

    let mut heartbeat = demo();
    heartbeat.spec.gateway.heartbeat_seconds = 20;
    assert_ne!(template_annotations(&heartbeat), before);

    let mut pulsar = demo();
    pulsar.spec.pulsar.service_url = "pulsar://other:6650".into();
    assert_ne!(template_annotations(&pulsar), before);

    // The ingress host is: the allowed origins follow it (issue 17).
    let mut ingress = demo();
    ingress.spec.ingress = None;
    assert_ne!(template_annotations(&ingress), before);
    // The replica count is not a pod setting.
    let b = Blueprint::new(&cc).unwrap();
    assert_eq!(
        b.stateful_set(1).spec.unwrap().template,
        b.stateful_set(5).spec.unwrap().template
    );
}

#[test]
fn pod_disruption_budget_allows_one_pod_out() {
    let cc = demo();
    let pdb = to_json(&Blueprint::new(&cc).unwrap().pod_disruption_budget());
    assert_eq!(pdb["metadata"]["name"], "demo-gateway");
    assert_eq!(
        pdb["spec"],
        json!({"maxUnavailable": 1, "selector": selector()})
    );
}

#[test]
fn ingress_for_websockets_with_tls() {
    let cc = demo();
    let ingress = to_json(
        &Blueprint::new(&cc)
            .unwrap()
            .ingress()
            .expect("spec.ingress set"),
    );
    assert_eq!(ingress["metadata"]["name"], "demo-gateway");
    let annotations = &ingress["metadata"]["annotations"];
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"],
        "1860"
    );
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"],
        "1860"
    );
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/proxy-body-size"], "20971520",
        "uploads up to the gateway's limit pass the ingress"
    );
    assert_eq!(
        ingress["spec"],
        json!({
            "ingressClassName": "nginx",
            "rules": [{"host": "chat.example.com", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "demo-gateway", "port": {"name": "http"}}}
            }]}}],
            "tls": [{"hosts": ["chat.example.com"], "secretName": "chat-tls"}]
        })
    );
}

#[test]
fn ingress_timeouts_cover_the_timelife_and_tls_is_optional() {
    let mut cc = demo();
    cc.spec.gateway.timelife_seconds = 7200;
    let spec = cc.spec.ingress.as_mut().unwrap();
    spec.tls_secret_name = None;
    spec.class_name = None;
    let ingress = to_json(&Blueprint::new(&cc).unwrap().ingress().unwrap());
    let timeout = ingress["metadata"]["annotations"]
        ["nginx.ingress.kubernetes.io/proxy-read-timeout"]
        .as_str()
        .unwrap()
        .parse::<i32>()
        .unwrap();
    assert!(timeout >= 7200, "{timeout}");
    assert_eq!(ingress["spec"].get("tls"), None);
    assert_eq!(ingress["spec"].get("ingressClassName"), None);
}

#[test]
fn no_ingress_without_spec_ingress() {
    let mut cc = demo();
    cc.spec.ingress = None;
    let b = Blueprint::new(&cc).unwrap();
    assert_eq!(b.ingress(), None);
    assert_eq!(b.children(3).ingress, None);
}

#[test]
fn every_child_is_owned_labelled_namespaced_and_hashed() {
    let cc = demo();
    let children = Blueprint::new(&cc).unwrap().children(3);
    let objects = [
        to_json(&children.config_map),
        to_json(&children.headless_service),
        to_json(&children.service),
        to_json(&children.stateful_set),
        to_json(&children.pod_disruption_budget),
        to_json(children.ingress.as_ref().unwrap()),
    ];
    for object in &objects {
        let meta = &object["metadata"];
        assert_eq!(meta["namespace"], "chat", "{meta}");
        assert_eq!(meta["labels"], common_labels(), "{meta}");
        assert_eq!(
            meta["ownerReferences"],
            json!([{"apiVersion": "chatcluster.dev/v1alpha1", "kind": "ChatCluster",
                    "name": "demo", "uid": "1234-abcd", "controller": true}]),
            "{meta}"
        );
        let hash = meta["annotations"][SPEC_HASH_ANNOTATION].as_str().unwrap();
        assert_eq!(hash.len(), 16, "{meta}");
    }
}

#[test]
fn spec_hash_is_stable_and_follows_the_content() {
    let cc = demo();
    let b = Blueprint::new(&cc).unwrap();
    let hash = |sts: &StatefulSet| sts.annotations()[SPEC_HASH_ANNOTATION].clone();
    assert_eq!(hash(&b.stateful_set(3)), hash(&b.stateful_set(3)));
    assert_ne!(hash(&b.stateful_set(3)), hash(&b.stateful_set(4)));
    let mut image = demo();
    image.spec.image = "registry.example/chat-gateway:0.2.0".into();
    assert_ne!(
        hash(&b.stateful_set(3)),
        hash(&Blueprint::new(&image).unwrap().stateful_set(3))
    );
}

#[test]
fn needs_apply_compares_the_spec_hash() {
    let cc = demo();
    let b = Blueprint::new(&cc).unwrap();
    let desired = b.stateful_set(3);
    assert!(needs_apply(None, &desired), "missing");

    // What the apiserver returns: the applied object plus server-side fields.
    let mut live = desired.clone();
    live.metadata.resource_version = Some("42".into());
    live.metadata.generation = Some(3);
    assert!(!needs_apply(Some(&live), &desired), "unchanged");

    assert!(needs_apply(Some(&b.stateful_set(4)), &desired), "changed");

    let mut unstamped = desired.clone();
    unstamped.annotations_mut().remove(SPEC_HASH_ANNOTATION);
    assert!(
        needs_apply(Some(&unstamped), &desired),
        "never applied by us"
    );
}

#[test]
fn the_offline_webhook_url_goes_in_the_config_map_and_its_secret_by_reference() {
    let mut cc = demo();
    cc.spec.offline_webhook = Some(crate::crd::OfflineWebhookSpec {
        url: "https://push.example/hook".into(),
        secret_ref: SecretKeyRef {
            name: "chat-webhook".into(),
            key: "secret".into(),
        },
        retry_seconds: 600,
        ca_secret_ref: None,
    });
    let b = Blueprint::new(&cc).unwrap();
    let data = b.config_map().data.unwrap();
    assert_eq!(
        data["CHAT_OFFLINE_WEBHOOK_URL"],
        "https://push.example/hook"
    );
    assert_eq!(data["CHAT_OFFLINE_WEBHOOK_RETRY_SECONDS"], "600");
    assert!(!data.contains_key("CHAT_OFFLINE_WEBHOOK_SECRET"));
    let sts = to_json(&b.stateful_set(3));
    let env = &sts["spec"]["template"]["spec"]["containers"][0]["env"];
    let secret = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "CHAT_OFFLINE_WEBHOOK_SECRET")
        .expect("the webhook secret's env var");
    assert_eq!(
        secret["valueFrom"],
        json!({"secretKeyRef": {"name": "chat-webhook", "key": "secret"}})
    );
}

#[test]
fn allowed_origins_follow_the_ingress_unless_the_spec_says() {
    let origins = |patch: Value| {
        let mut value = to_json(&demo());
        json_patch(&mut value["spec"], patch);
        let cc: ChatCluster = serde_json::from_value(value).unwrap();
        Blueprint::new(&cc).unwrap().allowed_origins()
    };
    assert_eq!(
        origins(json!({})).as_deref(),
        Some("https://chat.example.com")
    );
    let plain = json!({"ingress": {"tlsSecretName": null}});
    assert_eq!(origins(plain).as_deref(), Some("http://chat.example.com"));
    assert_eq!(
        origins(json!({"ingress": null})),
        None,
        "no ingress: every origin"
    );
    let listed = json!({"auth": {"jwtSecretRef": {"name": "chat-jwt", "key": "secret"},
                                 "allowedOrigins": ["https://a.example", "https://b.example:8443"]}});
    assert_eq!(
        origins(listed).as_deref(),
        Some("https://a.example,https://b.example:8443")
    );
}

#[test]
fn the_admin_token_secret_is_generated_unless_the_spec_names_one() {
    let cc = demo();
    let b = Blueprint::new(&cc).unwrap();
    assert!(b.generates_admin_token());
    let secret = to_json(&b.admin_token_secret("abc"));
    assert_eq!(secret["metadata"]["name"], "demo-admin-token");
    assert_eq!(secret["metadata"]["ownerReferences"][0]["uid"], "1234-abcd");
    assert_eq!(secret["stringData"], json!({"token": "abc"}));
    let mut value = to_json(&demo());
    value["spec"]["auth"]["adminTokenSecretRef"] = json!({"name": "ops", "key": "admin"});
    let named: ChatCluster = serde_json::from_value(value).unwrap();
    let b = Blueprint::new(&named).unwrap();
    assert!(!b.generates_admin_token());
    let env =
        to_json(&b.stateful_set(1))["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    let admin = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "CHAT_ADMIN_TOKEN")
        .unwrap();
    assert_eq!(
        admin["valueFrom"]["secretKeyRef"],
        json!({"name": "ops", "key": "admin"})
    );
}

#[test]
fn the_network_policy_is_off_by_default_and_lists_the_allowed_sources() {
    let cc = demo();
    assert!(Blueprint::new(&cc)
        .unwrap()
        .children(3)
        .network_policy
        .is_none());
    let mut value = to_json(&demo());
    value["spec"]["networkPolicy"] = json!({
        "enabled": true,
        "clients": [{"namespace": "backend", "podLabels": {"app": "api"}}, {"podLabels": {"app": "bot"}}]
    });
    let cc: ChatCluster = serde_json::from_value(value).unwrap();
    let policy = to_json(&Blueprint::new(&cc).unwrap().network_policy().unwrap());
    assert_eq!(policy["metadata"]["name"], "demo-gateway");
    let ns = |n: &str| json!({"matchLabels": {"kubernetes.io/metadata.name": n}});
    assert_eq!(
        policy["spec"],
        json!({
            "podSelector": selector(),
            "policyTypes": ["Ingress"],
            "ingress": [
                {"ports": [{"port": 8080, "protocol": "TCP"}], "from": [
                    {"namespaceSelector": ns("ingress-nginx"), "podSelector": {}},
                    {"namespaceSelector": ns("backend"), "podSelector": {"matchLabels": {"app": "api"}}},
                    {"namespaceSelector": ns("chat"), "podSelector": {"matchLabels": {"app": "bot"}}}
                ]},
                {"ports": [{"port": 9090, "protocol": "TCP"}], "from": [
                    {"namespaceSelector": ns("chat-operator"),
                     "podSelector": {"matchLabels": {"app.kubernetes.io/component": "operator"}}},
                    {"namespaceSelector": ns("monitoring"), "podSelector": {}}
                ]}
            ]
        })
    );
}

/// Merges `patch` into `target` (objects key by key; anything else replaces).
fn json_patch(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                json_patch(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}
