//! `spec.pod`, `spec.service`, the Ingress's annotations, `spec.httpRoute` and the Secret hash:
//! each field where it lands, and the operator's own values winning over the user's.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::{json, Value};

use super::*;

/// DESIGN §8's example with `extra` merged into its spec.
fn demo_with(extra: Value) -> ChatCluster {
    let mut cc = json!({
        "apiVersion": "chatcluster.dev/v1alpha1",
        "kind": "ChatCluster",
        "metadata": {"name": "demo", "namespace": "chat", "uid": "1234-abcd"},
        "spec": {
            "replicas": 3,
            "image": "registry.example/chat-gateway:0.1.0",
            "redis": {"url": "redis://redis:6379", "keyPrefix": "demo",
                      "caSecretRef": {"name": "chat-redis", "key": "ca.crt"}},
            "pulsar": {"serviceUrl": "pulsar://pulsar:6650", "adminUrl": "http://pulsar:8080",
                       "tenant": "public", "namespace": "chat"},
            "database": {"urlSecretRef": {"name": "chat-db", "key": "url"}},
            "auth": {"jwtSecretRef": {"name": "chat-jwt", "key": "secret"}},
            "ingress": {"host": "chat.example.com", "className": "nginx"}
        }
    });
    json_patch::merge(&mut cc["spec"], &extra);
    serde_json::from_value(cc).expect("valid ChatCluster")
}

fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("serializes")
}

/// The pod template of `cc`'s StatefulSet, as JSON.
fn template(cc: &ChatCluster) -> Value {
    to_json(&Blueprint::new(cc).unwrap().stateful_set(3))["spec"]["template"].clone()
}

fn env_names(template: &Value) -> Vec<String> {
    template["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn pod_scheduling_fields_land_on_the_pod_spec() {
    let toleration = json!({"key": "dedicated", "operator": "Equal", "value": "chat",
                            "effect": "NoSchedule"});
    let affinity = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a", "b"]}]}]}}});
    let cc = demo_with(json!({"pod": {
        "imagePullSecrets": [{"name": "registry-creds"}],
        "nodeSelector": {"pool": "chat"},
        "tolerations": [toleration],
        "affinity": affinity,
        "priorityClassName": "chat-critical",
    }}));
    let spec = &template(&cc)["spec"];
    assert_eq!(
        spec["imagePullSecrets"],
        json!([{"name": "registry-creds"}])
    );
    assert_eq!(spec["nodeSelector"], json!({"pool": "chat"}));
    assert_eq!(spec["tolerations"], json!([toleration]));
    assert_eq!(spec["affinity"], affinity);
    assert_eq!(spec["priorityClassName"], "chat-critical");
    // Not given: the operator's default spread stays.
    assert_eq!(
        spec["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
}

#[test]
fn without_spec_pod_the_template_has_none_of_its_fields() {
    let spec = template(&demo_with(json!({})))["spec"].clone();
    for field in [
        "imagePullSecrets",
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
    ] {
        assert!(spec.get(field).is_none(), "{field}: {spec}");
    }
}

#[test]
fn topology_spread_constraints_replace_the_default() {
    let zone = json!({"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                      "whenUnsatisfiable": "DoNotSchedule",
                      "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "demo"}}});
    let cc = demo_with(json!({"pod": {"topologySpreadConstraints": [zone]}}));
    assert_eq!(
        template(&cc)["spec"]["topologySpreadConstraints"],
        json!([zone])
    );
}

#[test]
fn pod_labels_are_added_but_never_replace_the_selector_labels() {
    let cc = demo_with(json!({"pod": {"labels": {
        "team": "chat",
        "app.kubernetes.io/instance": "other",
        "app.kubernetes.io/managed-by": "me",
    }}}));
    let sts = to_json(&Blueprint::new(&cc).unwrap().stateful_set(3));
    let labels = &sts["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        *labels,
        json!({"team": "chat", "app.kubernetes.io/instance": "demo",
               "app.kubernetes.io/managed-by": "chat-operator",
               "app.kubernetes.io/name": "chat-gateway"})
    );
    assert_eq!(
        sts["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
        "demo"
    );
}

#[test]
fn pod_annotations_are_added_but_never_replace_the_operators() {
    let cc = demo_with(json!({"pod": {"annotations": {
        "prometheus.io/scrape": "true",
        CONFIG_HASH_ANNOTATION: "forged",
        "chatcluster.dev/drain-deadline": "2000-01-01T00:00:00Z",
    }}}));
    let plain = template(&demo_with(json!({})));
    let annotations = template(&cc)["metadata"]["annotations"].clone();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        annotations[CONFIG_HASH_ANNOTATION],
        plain["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    );
    assert!(annotations.get("chatcluster.dev/drain-deadline").is_none());
}

#[test]
fn extra_env_comes_after_the_operators_and_never_replaces_it() {
    let cc = demo_with(json!({"pod": {"env": [
        {"name": "RUST_LOG", "value": "chat_gateway=debug"},
        {"name": "CHAT_JWT_SECRET", "value": "forged"},
        {"name": "CHAT_TIMELIFE_SECONDS", "value": "5"},
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "extra", "key": "k"}}},
        {"name": "RUST_LOG", "value": "second"},
    ]}}));
    let bp = Blueprint::new(&cc).unwrap();
    let template = template(&cc);
    let names = env_names(&template);
    let plain = env_names(&self::template(&demo_with(json!({}))));
    assert_eq!(names[..plain.len()], plain[..], "the operator's come first");
    assert_eq!(names[plain.len()..], ["RUST_LOG", "FROM_SECRET"]);
    let env = template["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let jwt = env.iter().find(|v| v["name"] == "CHAT_JWT_SECRET").unwrap();
    assert_eq!(jwt["valueFrom"]["secretKeyRef"]["name"], "chat-jwt");
    assert_eq!(
        bp.ignored_env(),
        ["CHAT_JWT_SECRET", "CHAT_TIMELIFE_SECONDS", "RUST_LOG"]
    );
    assert!(
        bp.secret_uses()
            .contains(&("extra".to_owned(), Some("k".to_owned()))),
        "a Secret named in spec.pod.env is hashed too"
    );
}

#[test]
fn gateway_resources_go_on_the_gateway_container() {
    let cc = demo_with(json!({"gateway": {"resources": {
        "requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}}}));
    let container = &template(&cc)["spec"]["containers"][0];
    assert_eq!(container["name"], "gateway");
    assert_eq!(
        container["resources"],
        json!({"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}})
    );
}

#[test]
fn service_type_and_annotations_go_on_the_client_service_only() {
    let cc = demo_with(json!({"service": {
        "type": "LoadBalancer",
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
    }}));
    let bp = Blueprint::new(&cc).unwrap();
    let service = to_json(&bp.service());
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(
        service["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"],
        "nlb"
    );
    assert!(service["metadata"]["annotations"][SPEC_HASH_ANNOTATION].is_string());
    let headless = to_json(&bp.headless_service());
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert!(headless["metadata"]["annotations"]
        .get("service.beta.kubernetes.io/aws-load-balancer-type")
        .is_none());
    let plain = demo_with(json!({}));
    assert_eq!(
        to_json(&Blueprint::new(&plain).unwrap().service())["spec"]["type"],
        "ClusterIP"
    );
}

fn ingress_annotations(annotations: Value) -> Value {
    let cc = demo_with(json!({"ingress": {"annotations": annotations, "className": "internal"}}));
    let ingress = to_json(&Blueprint::new(&cc).unwrap().ingress().unwrap());
    assert_eq!(ingress["spec"]["ingressClassName"], "internal");
    ingress["metadata"]["annotations"].clone()
}

#[test]
fn ingress_takes_free_annotations_but_its_timeouts_never_drop_below_the_timelife() {
    let read = "nginx.ingress.kubernetes.io/proxy-read-timeout";
    let send = "nginx.ingress.kubernetes.io/proxy-send-timeout";
    let body = "nginx.ingress.kubernetes.io/proxy-body-size";
    let annotations = ingress_annotations(json!({
        "cert-manager.io/cluster-issuer": "letsencrypt",
        read: "30",
        send: "soon",
        body: "1k",
    }));
    assert_eq!(annotations["cert-manager.io/cluster-issuer"], "letsencrypt");
    assert_eq!(annotations[read], "1860", "a shorter timeout is raised");
    assert_eq!(annotations[send], "1860", "a non-number is replaced");
    assert_eq!(
        annotations[body], "20971520",
        "the gateway's limit, not the user's"
    );

    let longer = ingress_annotations(json!({read: "7200", send: "1860"}));
    assert_eq!(longer[read], "7200", "a longer timeout stays");
    assert_eq!(longer[send], "1860");
}

#[test]
fn no_http_route_unless_asked() {
    let cc = demo_with(json!({}));
    assert!(Blueprint::new(&cc)
        .unwrap()
        .children(3)
        .http_route
        .is_none());
}

#[test]
fn http_route_attaches_to_its_parents_and_routes_to_the_client_service() {
    let cc = demo_with(json!({"httpRoute": {"parentRefs": [
        {"name": "public", "namespace": "gateways", "sectionName": "https"}]}}));
    let route = to_json(&Blueprint::new(&cc).unwrap().children(3).http_route.unwrap());
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(route["kind"], "HTTPRoute");
    assert_eq!(route["metadata"]["name"], "demo-gateway");
    assert_eq!(route["metadata"]["ownerReferences"][0]["uid"], "1234-abcd");
    assert!(route["metadata"]["annotations"][SPEC_HASH_ANNOTATION].is_string());
    assert_eq!(
        route["spec"],
        json!({
            "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
            "hostnames": ["chat.example.com"],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": "demo-gateway", "port": HTTP_PORT}],
                "timeouts": {"request": "31m"},
            }],
        })
    );
    let own_hosts = demo_with(json!({"ingress": null, "httpRoute": {
        "parentRefs": [{"name": "public"}], "hostnames": ["a.example.com", "b.example.com"]}}));
    let route = to_json(&Blueprint::new(&own_hosts).unwrap().http_route().unwrap());
    assert_eq!(
        route["spec"]["hostnames"],
        json!(["a.example.com", "b.example.com"])
    );
}

fn secret(name: &str, data: &[(&str, &str)]) -> (String, Secret) {
    let secret = Secret {
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    (name.to_owned(), secret)
}

#[test]
fn the_secret_hash_covers_every_secret_the_pods_read() {
    let cc = demo_with(json!({}));
    let bp = Blueprint::new(&cc).unwrap();
    let uses = bp.secret_uses();
    let used = |name: &str, key: &str| (name.to_owned(), Some(key.to_owned()));
    assert_eq!(
        uses,
        BTreeSet::from([
            used("chat-db", "url"),
            used("chat-jwt", "secret"),
            used("chat-redis", "ca.crt"),
            used("demo-admin-token", "token"),
        ])
    );
    let secrets = BTreeMap::from([
        secret("chat-db", &[("url", "postgres://a")]),
        secret("chat-jwt", &[("secret", "s1"), ("unused", "x")]),
        secret("chat-redis", &[("ca.crt", "PEM")]),
        secret("demo-admin-token", &[("token", "t")]),
    ]);
    let hash = secret_hash::digest(&uses, &secrets);
    assert_eq!(hash.len(), 16);
    assert_eq!(hash, secret_hash::digest(&uses, &secrets), "stable");
    let mut changed = secrets.clone();
    changed.extend([secret("chat-jwt", &[("secret", "s2"), ("unused", "x")])]);
    assert_ne!(hash, secret_hash::digest(&uses, &changed), "a rotated key");
    let mut unrelated = secrets.clone();
    unrelated.extend([secret("chat-jwt", &[("secret", "s1"), ("unused", "y")])]);
    assert_eq!(
        hash,
        secret_hash::digest(&uses, &unrelated),
        "a key no pod reads"
    );
    let mut missing = secrets.clone();
    missing.remove("chat-redis");
    assert_ne!(hash, secret_hash::digest(&uses, &missing), "a Secret gone");
}

#[test]
fn the_secret_hash_is_a_pod_template_annotation() {
    let cc = demo_with(json!({}));
    let one = Blueprint::new(&cc)
        .unwrap()
        .with_secrets_hash("aaaa".into());
    let two = Blueprint::new(&cc)
        .unwrap()
        .with_secrets_hash("bbbb".into());
    let annotations = |bp: &Blueprint<'_>| {
        to_json(&bp.stateful_set(3))["spec"]["template"]["metadata"]["annotations"].clone()
    };
    assert_eq!(annotations(&one)[SECRETS_HASH_ANNOTATION], "aaaa");
    assert_ne!(
        to_json(&one.stateful_set(3))["spec"]["template"],
        to_json(&two.stateful_set(3))["spec"]["template"],
        "another hash is another StatefulSet revision"
    );
}

#[test]
fn the_selector_string_selects_the_gateway_pods() {
    let cc = demo_with(json!({}));
    assert_eq!(
        Blueprint::new(&cc).unwrap().selector_string(),
        "app.kubernetes.io/instance=demo,app.kubernetes.io/name=chat-gateway"
    );
}
