//! The real `kube::runtime::Controller` (this crate's `run_controller`) against the in-process fake
//! API server (DESIGN §9, level 2), with fakes of Pulsar, Redis and the gateways that record every
//! call: create, roll out, scale, delete, and no writes in steady state.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use chat_operator::context::FINALIZER;
use chat_operator::crd::Phase;
use chat_operator::operator::Lease;
use serde_json::json;
use support::{is_serving, topic, Harness, NAMESPACE, PREFIX};

/// Owned objects of the test cluster: (apiVersion, kind, name).
const CHILDREN: &[(&str, &str, &str)] = &[
    ("v1", "ConfigMap", "demo-config"),
    ("v1", "Service", "demo-gateway-headless"),
    ("v1", "Service", "demo-gateway"),
    ("apps/v1", "StatefulSet", "demo-gateway"),
    ("policy/v1", "PodDisruptionBudget", "demo-gateway"),
    ("networking.k8s.io/v1", "Ingress", "demo-gateway"),
];

fn topics(ordinals: impl IntoIterator<Item = i32>) -> BTreeSet<String> {
    ordinals.into_iter().map(topic).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_gets_its_objects_topics_and_ready_pods() {
    let h = Harness::start();
    h.create(3, "chat-gateway:1").await;
    h.wait_until("3 Ready pods and phase Running", |h| h.converged(3))
        .await;

    let cc = h.cluster().expect("the cluster exists");
    let uid = cc.metadata.uid.clone().expect("stored objects have a uid");
    assert_eq!(cc.metadata.finalizers, Some(vec![FINALIZER.to_owned()]));
    for (api_version, kind, name) in CHILDREN {
        let object = h
            .object(api_version, kind, name)
            .unwrap_or_else(|| panic!("{kind} {name} exists"));
        let owners = &object["metadata"]["ownerReferences"];
        assert_eq!(owners[0]["uid"], uid.as_str(), "{kind} {name} is owned");
        assert_eq!(owners[0]["controller"], true, "{kind} {name} is controlled");
        assert!(
            object["metadata"]["annotations"]["chatcluster.dev/spec-hash"].is_string(),
            "{kind} {name} carries its hash"
        );
    }
    let status = cc.status.expect("status written");
    assert_eq!((status.replicas, status.ready_replicas), (3, 3));
    assert_eq!(status.connections, 3 * support::CONNECTIONS);
    assert_eq!(status.topics, (0..3).map(topic).collect::<Vec<_>>());
    let conditions: Vec<(&str, &str)> = status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        conditions,
        [
            ("Ready", "True"),
            ("Progressing", "False"),
            ("Degraded", "False")
        ]
    );
    assert_eq!(h.pulsar.topics(), topics(0..3));
    assert!(h.pulsar.namespaces().contains("public/chat"));

    // Created at 0 replicas, then the topics, then the pods.
    let at_zero = h
        .journal
        .position(0, "PATCH StatefulSet/demo-gateway replicas=0");
    let last_topic = h
        .journal
        .position(0, &format!("pulsar create {}", topic(2)));
    let scaled = h
        .journal
        .position(0, "PATCH StatefulSet/demo-gateway replicas=3");
    assert!(
        at_zero < last_topic && last_topic < scaled,
        "{:#?}",
        h.journal.entries()
    );

    let reasons: BTreeSet<String> = h
        .api
        .list("events.k8s.io/v1", "Event", NAMESPACE)
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    assert!(
        reasons.contains("CreatingTopics") && reasons.contains("Scaling"),
        "events: {reasons:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_image_drains_and_replaces_pods_one_at_a_time_from_the_highest() {
    let h = Harness::start();
    h.create(3, "chat-gateway:1").await;
    h.wait_until("the first version runs", |h| h.converged(3))
        .await;
    let old_revision = h.cluster().unwrap().status.unwrap().update_revision;
    let mark = h.journal.entries().len();

    h.patch_spec(json!({"image": "chat-gateway:2"})).await;
    let mut phases = BTreeSet::new();
    let mut most_out = 0;
    h.wait_until_each(
        "every pod on the new revision and phase Running",
        |h| h.converged(3) && h.cluster().unwrap().status.unwrap().update_revision != old_revision,
        |h| {
            if let Some(status) = h.cluster().and_then(|c| c.status) {
                phases.insert(format!("{:?}", status.phase));
            }
            let pods = h.pods();
            let serving = pods.iter().filter(|p| is_serving(p)).count();
            most_out = most_out.max(3 - serving.min(3));
        },
    )
    .await;

    assert_eq!(
        h.journal.starting_with(mark, "drain "),
        [2, 1, 0].map(|n| format!("drain demo-gateway-{n} deadlineSeconds=30")),
    );
    assert_eq!(
        h.journal.starting_with(mark, "DELETE Pod/"),
        [2, 1, 0].map(|n| format!("DELETE Pod/demo-gateway-{n}")),
    );
    // Each pod is drained before it is deleted, and deleted before the next one is drained.
    let mut last = mark;
    for n in [2, 1, 0] {
        let drained = h
            .journal
            .position(mark, &format!("drain demo-gateway-{n} deadlineSeconds=30"));
        let deleted = h
            .journal
            .position(mark, &format!("DELETE Pod/demo-gateway-{n}"));
        assert!(
            last <= drained && drained < deleted,
            "{:#?}",
            h.journal.entries()
        );
        last = deleted;
    }
    assert_eq!(most_out, 1, "one pod out of service at a time");
    assert!(phases.contains("RollingOut"), "phases seen: {phases:?}");
    assert_eq!(h.cluster().unwrap().status.unwrap().phase, Phase::Running);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_up_adds_topics_and_pods_and_scaling_down_drains_first_then_cleans_up() {
    let h = Harness::start();
    h.create(3, "chat-gateway:1").await;
    h.wait_until("3 pods", |h| h.converged(3)).await;

    h.patch_spec(json!({"replicas": 5})).await;
    h.wait_until("5 pods", |h| h.converged(5)).await;
    assert_eq!(h.pulsar.topics(), topics(0..5));
    h.wait_until("5 gateways registered in Redis", |h| {
        h.redis.members(&format!("{PREFIX}:servers")).len() == 5
    })
    .await;

    let mark = h.journal.entries().len();
    h.patch_spec(json!({"replicas": 2})).await;
    h.wait_until("2 pods, their topics and keys only", |h| {
        h.converged(2)
            && h.pulsar.topics() == topics(0..2)
            && h.redis.members(&format!("{PREFIX}:servers"))
                == BTreeSet::from(["demo-gateway-0".to_owned(), "demo-gateway-1".to_owned()])
    })
    .await;

    assert_eq!(
        h.journal.starting_with(mark, "drain "),
        [4, 3, 2].map(|n| format!("drain demo-gateway-{n} deadlineSeconds=30")),
    );
    for n in [4, 3, 2] {
        let drained = h
            .journal
            .position(mark, &format!("drain demo-gateway-{n} deadlineSeconds=30"));
        let shrunk = h.journal.position(
            mark,
            &format!("PATCH StatefulSet/demo-gateway replicas={n}"),
        );
        let topic_deleted = h
            .journal
            .position(mark, &format!("pulsar delete {}", topic(n)));
        let keys_removed = h
            .journal
            .find(mark, |e| {
                e.starts_with("redis remove") && e.contains(&format!("demo-gateway-{n}"))
            })
            .expect("the pod's Redis keys were removed");
        assert!(
            drained < shrunk && shrunk < topic_deleted && shrunk < keys_removed,
            "ordinal {n}: {:#?}",
            h.journal.entries()
        );
    }
    assert!(
        h.journal.starting_with(mark, "DELETE Pod/").is_empty(),
        "scale-down deletes no pod itself"
    );
    for n in 2..5 {
        assert!(h
            .redis
            .members(&format!("{PREFIX}:pod:demo-gateway-{n}"))
            .is_empty());
    }
    assert_eq!(
        h.redis
            .members(&format!("{PREFIX}:pod:demo-gateway-0"))
            .len(),
        1
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_cluster_cleans_up_and_releases_the_finalizer() {
    let h = Harness::start();
    h.create(3, "chat-gateway:1").await;
    h.wait_until("3 pods", |h| h.converged(3)).await;
    assert!(!h.redis.keys().is_empty());
    let mark = h.journal.entries().len();

    h.delete_cluster().await;

    assert!(
        h.pulsar.topics().is_empty(),
        "topics left: {:?}",
        h.pulsar.topics()
    );
    assert!(h.redis.keys().is_empty(), "keys left: {:?}", h.redis.keys());
    let stopped = h.journal.position(mark, "DELETE StatefulSet/demo-gateway");
    let keys = h
        .journal
        .position(mark, &format!("redis delete-prefix {PREFIX}"));
    let topics_deleted = h
        .journal
        .position(mark, &format!("pulsar delete {}", topic(0)));
    let released = h.journal.position(mark, "PATCH ChatCluster/demo");
    assert!(stopped < topics_deleted && topics_deleted < keys && keys < released);
    for (api_version, kind, name) in CHILDREN {
        assert!(
            h.object(api_version, kind, name).is_none(),
            "{kind} {name} was collected"
        );
    }
    assert!(h.pods().is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converged_cluster_costs_no_writes() {
    let h = Harness::start();
    h.create(3, "chat-gateway:1").await;
    h.wait_until("3 pods", |h| h.converged(3)).await;
    h.wait_quiet(Duration::from_millis(500)).await;

    let writes = h.api.writes();
    let mark = h.journal.entries().len();
    for (api_version, kind, name) in [
        ("v1", "Pod", "demo-gateway-1"),
        ("apps/v1", "StatefulSet", "demo-gateway"),
        ("chatcluster.dev/v1alpha1", "ChatCluster", "demo"),
    ] {
        let reconciles = h.ctx().reconciles();
        h.api.touch(api_version, kind, NAMESPACE, name);
        h.wait_until(&format!("a reconcile after touching {kind} {name}"), |h| {
            h.ctx().reconciles() > reconciles
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.api.writes(),
        writes,
        "writes in steady state: {:#?}",
        &h.journal.entries()[mark..]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_shows_as_degraded_and_is_retried_until_it_works() {
    let h = Harness::start();
    h.pulsar.set_failing(true);
    h.create(2, "chat-gateway:1").await;
    h.wait_until("Degraded with ReconcileFailed", |h| {
        h.cluster().and_then(|c| c.status).is_some_and(|s| {
            s.phase == Phase::Degraded
                && s.conditions.iter().any(|c| {
                    c.type_ == "Degraded" && c.status == "True" && c.reason == "ReconcileFailed"
                })
        })
    })
    .await;
    // The reconciler publishes the Event right after it writes the status: wait for it too.
    h.wait_until("a Warning Event tells the failure", |h| {
        h.api
            .list("events.k8s.io/v1", "Event", NAMESPACE)
            .iter()
            .any(|e| e["type"] == "Warning" && e["reason"] == "ReconcileFailed")
    })
    .await;

    h.pulsar.set_failing(false);
    h.wait_until("recovered: 2 pods Running", |h| h.converged(2))
        .await;
    let status = h.cluster().unwrap().status.unwrap();
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("False", "AsExpected")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_carries_on_with_the_rollout_where_it_stopped() {
    let mut h = Harness::start();
    h.create(3, "chat-gateway:1").await;
    h.wait_until("the first version runs", |h| h.converged(3))
        .await;
    let mark = h.journal.entries().len();

    // The replacement of pod 2 will not turn Ready until released: the rollout waits there.
    h.api.hold_unready("demo-gateway-2");
    h.patch_spec(json!({"image": "chat-gateway:2"})).await;
    h.wait_until("the rollout waits for the new demo-gateway-2", |h| {
        h.cluster()
            .and_then(|c| c.status)
            .and_then(|s| s.rollout)
            .is_some_and(|r| r.pod == "demo-gateway-2" && format!("{:?}", r.step) == "WaitingReady")
    })
    .await;

    h.restart_operator().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.journal.starting_with(mark, "drain "),
        ["drain demo-gateway-2 deadlineSeconds=30"],
        "no other pod leaves while the replacement is not Ready"
    );
    h.api.release_unready("demo-gateway-2");
    h.wait_until("the rollout finished", |h| h.converged(3))
        .await;
    assert_eq!(
        h.journal.starting_with(mark, "drain "),
        [2, 1, 0].map(|n| format!("drain demo-gateway-{n} deadlineSeconds=30")),
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_reconciles_and_a_standby_takes_over_when_it_leaves() {
    let h = Harness::new();
    let lease = |identity: &str| Lease {
        name: "chat-operator".into(),
        namespace: "operators".into(),
        identity: identity.into(),
        duration_seconds: 2,
        grace_seconds: 1,
    };
    let holder = |h: &Harness| {
        h.api
            .get(
                "coordination.k8s.io/v1",
                "Lease",
                "operators",
                "chat-operator",
            )
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
    };
    let a = h.spawn_leader(lease("operator-a"));
    h.wait_until("operator-a holds the Lease", |h| {
        holder(h).as_deref() == Some("operator-a")
    })
    .await;
    let b = h.spawn_leader(lease("operator-b"));
    h.create(3, "chat-gateway:1").await;
    h.wait_until("3 pods", |h| h.converged(3)).await;
    assert!(a.ctx.reconciles() > 0);
    assert_eq!(b.ctx.reconciles(), 0, "the standby does not reconcile");
    assert_eq!(holder(&h).as_deref(), Some("operator-a"));

    a.stop().await;
    h.wait_until("operator-b holds the Lease", |h| {
        holder(h).as_deref() == Some("operator-b")
    })
    .await;
    h.patch_spec(json!({"replicas": 4})).await;
    h.wait_until("4 pods, scaled by operator-b", |h| h.converged(4))
        .await;
    assert!(b.ctx.reconciles() > 0);
    b.stop().await;
    assert_eq!(holder(&h), None, "the last holder released the Lease");
}

/// The admin token: the operator creates `demo-admin-token` (owned, once), the pods get it from
/// the Secret, and every status and drain call carries it (the fake gateways answer 401
/// otherwise, journaled as `admin 401`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_is_created_once_and_sent_on_every_admin_call() {
    let h = Harness::start();
    h.create(2, "chat-gateway:1").await;
    h.wait_until("2 Ready pods", |h| h.converged(2)).await;
    let uid = h.cluster().unwrap().metadata.uid.unwrap();
    let secret = h
        .object("v1", "Secret", "demo-admin-token")
        .expect("created");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        uid.as_str()
    );
    let token = secret["data"]["token"].clone();
    assert!(token.as_str().is_some_and(|t| t.len() > 40), "{secret}");
    let status = h.cluster().unwrap().status.unwrap();
    assert_eq!(
        status.connections,
        2 * support::CONNECTIONS,
        "status calls were answered"
    );

    h.patch_spec(json!({"image": "chat-gateway:2"})).await;
    let old = h.cluster().unwrap().status.unwrap().update_revision;
    h.wait_until("rolled out", |h| {
        h.converged(2) && h.cluster().unwrap().status.unwrap().update_revision != old
    })
    .await;
    assert_eq!(
        h.journal.starting_with(0, "drain ").len(),
        2,
        "both pods drained"
    );
    assert!(
        h.journal.starting_with(0, "admin 401").is_empty(),
        "{:#?}",
        h.journal.entries()
    );
    let again = h.object("v1", "Secret", "demo-admin-token").unwrap();
    assert_eq!(again["data"]["token"], token, "never rewritten");
    h.stop().await;
}
