//! Day-2 operations against the real controller and the fake API server (DESIGN §9, level 2): an
//! HPA's scale-down through the scale subresource, a rotated Secret, and an `HTTPRoute` asked for
//! on a cluster without the Gateway API CRDs.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

mod support;

use std::collections::BTreeMap;

use chat_operator::builders::SECRETS_HASH_ANNOTATION;
use chat_operator::reconcile::HTTP_ROUTE_UNAVAILABLE;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use support::{is_serving, sample, Harness, NAMESPACE};

/// The selector `status.selector` carries and an HPA lists the pods' metrics with.
const SELECTOR: &str = "app.kubernetes.io/instance=demo,app.kubernetes.io/name=chat-gateway";

/// The JSON of the StatefulSet's pod template annotations.
fn template_annotations(h: &Harness) -> Value {
    h.object("apps/v1", "StatefulSet", "demo-gateway")
        .map(|sts| sts["spec"]["template"]["metadata"]["annotations"].clone())
        .unwrap_or(Value::Null)
}

/// Asserts the journal from `mark` drained each of `ordinals`, in order, each before the next
/// event `after(n)` names (its delete, or the StatefulSet shrinking past it).
fn assert_drained_in_turn(
    h: &Harness,
    mark: usize,
    ordinals: &[i32],
    after: impl Fn(i32) -> String,
) {
    assert_eq!(
        h.journal.starting_with(mark, "drain "),
        ordinals
            .iter()
            .map(|n| format!("drain demo-gateway-{n} deadlineSeconds=30"))
            .collect::<Vec<_>>(),
    );
    let mut last = mark;
    for &n in ordinals {
        let drained = h
            .journal
            .position(mark, &format!("drain demo-gateway-{n} deadlineSeconds=30"));
        let next = h.journal.position(mark, &after(n));
        assert!(
            last <= drained && drained < next,
            "ordinal {n}: {:#?}",
            h.journal.entries()
        );
        last = next;
    }
}

/// An HPA reads the ChatCluster's scale subresource (replicas and the pods' selector) and
/// writes `spec.replicas` through it with a PUT; the scale-down still drains each pod before the
/// StatefulSet shrinks past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_scale_down_through_the_scale_subresource_drains_first() {
    let h = Harness::start();
    h.create(4, "chat-gateway:1").await;
    h.wait_until("4 pods", |h| h.converged(4)).await;

    let clusters = h.clusters();
    let mut scale = clusters.get_scale("demo").await.expect("GET scale");
    let status = scale.status.clone().expect("scale status");
    assert_eq!(status.replicas, 4);
    assert_eq!(status.selector.as_deref(), Some(SELECTOR));
    assert_eq!(
        h.cluster().unwrap().status.unwrap().selector.as_deref(),
        Some(SELECTOR)
    );

    let mark = h.journal.entries().len();
    scale.spec.get_or_insert_default().replicas = Some(2);
    let written = clusters
        .replace_scale("demo", &PostParams::default(), &scale)
        .await
        .expect("PUT scale, as the HPA controller does");
    assert_eq!(written.spec.and_then(|s| s.replicas), Some(2));
    assert_eq!(h.cluster().unwrap().spec.replicas, 2);

    h.wait_until("2 pods", |h| h.converged(2)).await;
    assert_drained_in_turn(&h, mark, &[3, 2], |n| {
        format!("PATCH StatefulSet/demo-gateway replicas={n}")
    });
    let scale = clusters.get_scale("demo").await.expect("GET scale");
    assert_eq!(scale.status.map(|s| s.replicas), Some(2));
    h.stop().await;
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Secret::default()
    }
}

/// Rotating the JWT Secret the pods read changes the pod template's Secret hash, and the pods
/// roll through the normal drain, one at a time. Nothing else changes, and the resync is minutes
/// away: only the operator's Secret watch can start it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_referenced_secret_rolls_the_pods_through_the_drain() {
    let h = Harness::start();
    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), NAMESPACE);
    for object in [
        secret("chat-jwt", &[("secret", "first"), ("unused", "a")]),
        secret("chat-db", &[("url", "postgres://chat@postgres/chat")]),
        secret("unrelated", &[("key", "a")]),
    ] {
        secrets
            .create(&PostParams::default(), &object)
            .await
            .expect("creating a Secret");
    }
    h.create(3, "chat-gateway:1").await;
    h.wait_until("3 pods", |h| h.converged(3)).await;
    let first = template_annotations(&h)[SECRETS_HASH_ANNOTATION].clone();
    assert!(first.is_string(), "{first}");
    let revision = h.cluster().unwrap().status.unwrap().update_revision;
    h.wait_quiet(std::time::Duration::from_millis(300)).await;

    // Neither a Secret no pod reads nor a key the pods do not read rolls anything.
    let merge = |data: Value| Patch::Merge(json!({ "data": data }));
    let b64 = |text: &str| json!(ByteString(text.as_bytes().to_vec()));
    secrets
        .patch(
            "unrelated",
            &PatchParams::default(),
            &merge(json!({"key": b64("b")})),
        )
        .await
        .unwrap();
    secrets
        .patch(
            "chat-jwt",
            &PatchParams::default(),
            &merge(json!({"unused": b64("b")})),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(template_annotations(&h)[SECRETS_HASH_ANNOTATION], first);

    let mark = h.journal.entries().len();
    secrets
        .patch(
            "chat-jwt",
            &PatchParams::default(),
            &merge(json!({"secret": b64("second")})),
        )
        .await
        .expect("rotating the JWT secret");
    let mut most_out = 0;
    h.wait_until_each(
        "every pod on a new revision",
        |h| h.converged(3) && h.cluster().unwrap().status.unwrap().update_revision != revision,
        |h| {
            let serving = h.pods().iter().filter(|p| is_serving(p)).count();
            most_out = most_out.max(3 - serving.min(3));
        },
    )
    .await;
    let second = template_annotations(&h)[SECRETS_HASH_ANNOTATION].clone();
    assert!(second.is_string() && second != first, "{first} → {second}");
    assert_drained_in_turn(&h, mark, &[2, 1, 0], |n| {
        format!("DELETE Pod/demo-gateway-{n}")
    });
    assert_eq!(most_out, 1, "one pod out of service at a time");
    h.stop().await;
}

/// `spec.httpRoute` on a cluster whose API server serves no HTTPRoute (the fake one does not):
/// a Warning Event says so, and the rest of the cluster converges as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_without_the_gateway_api_is_a_warning_not_a_failure() {
    let h = Harness::start();
    let mut cc = sample(2, "chat-gateway:1");
    cc.spec.http_route = Some(
        serde_json::from_value(json!({"parentRefs": [{"name": "public", "namespace": "gw"}]}))
            .unwrap(),
    );
    h.clusters()
        .create(&PostParams::default(), &cc)
        .await
        .expect("creating the ChatCluster");
    h.wait_until("2 pods", |h| h.converged(2)).await;
    h.wait_until("a Warning Event about the route", |h| {
        h.api
            .list("events.k8s.io/v1", "Event", NAMESPACE)
            .iter()
            .any(|e| e["type"] == "Warning" && e["reason"] == HTTP_ROUTE_UNAVAILABLE)
    })
    .await;
    let status = h.cluster().unwrap().status.unwrap();
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert_eq!(degraded.status, "False", "{degraded:?}");
    assert!(h
        .api
        .list("events.k8s.io/v1", "Event", NAMESPACE)
        .iter()
        .all(|e| e["reason"] != "ReconcileFailed"));
    h.stop().await;
}
