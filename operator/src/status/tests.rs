use serde_json::json;

use super::*;
use crate::crd::RolloutStep;

fn t(secs: i64) -> Timestamp {
    let origin: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
    origin + SignedDuration::from_secs(secs)
}

fn pod(ordinal: i32, revision: &str) -> PodState {
    PodState {
        name: format!("demo-gateway-{ordinal}"),
        ordinal,
        revision: Some(revision.into()),
        ready: true,
        deleting: false,
        created: Some(t(-3600)),
        drain_deadline: None,
        connections: Some(10 + i64::from(ordinal)),
        draining: Some(false),
    }
}

/// Three Ready pods on the update revision.
fn running() -> StatusInput {
    StatusInput {
        selector: "app.kubernetes.io/instance=demo,app.kubernetes.io/name=chat-gateway".into(),
        generation: Some(4),
        desired_replicas: 3,
        stateful_set: Some(StatefulSetState {
            replicas: 3,
            current_revision: Some("demo-gateway-new".into()),
            update_revision: Some("demo-gateway-new".into()),
            settled: true,
        }),
        pods: (0..3).map(|n| pod(n, "demo-gateway-new")).collect(),
        rollout: None,
        topics: vec!["persistent://public/chat/demo-pod-demo-gateway-0".into()],
        error: None,
    }
}

/// `(type, status, reason)` of each condition.
fn summary(status: &ChatClusterStatus) -> Vec<(&str, &str, &str)> {
    status
        .conditions
        .iter()
        .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
        .collect()
}

fn condition<'a>(status: &'a ChatClusterStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition present")
}

#[test]
fn a_healthy_cluster_is_running() {
    let status = compute(&running(), &[], t(0));
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(
        json,
        json!({
            "replicas": 3,
            "readyReplicas": 3,
            "connections": 33,
            "phase": "Running",
            "observedGeneration": 4,
            "currentRevision": "demo-gateway-new",
            "updateRevision": "demo-gateway-new",
            "selector": "app.kubernetes.io/instance=demo,app.kubernetes.io/name=chat-gateway",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "AllPodsReady",
                 "message": "3 of 3 pods ready", "observedGeneration": 4,
                 "lastTransitionTime": "2025-01-01T00:00:00Z"},
                {"type": "Progressing", "status": "False", "reason": "UpToDate",
                 "message": "3 pods up to date", "observedGeneration": 4,
                 "lastTransitionTime": "2025-01-01T00:00:00Z"},
                {"type": "Degraded", "status": "False", "reason": "AsExpected",
                 "message": "no pod is failing", "observedGeneration": 4,
                 "lastTransitionTime": "2025-01-01T00:00:00Z"}
            ],
            "topics": ["persistent://public/chat/demo-pod-demo-gateway-0"]
        })
    );
}

#[test]
fn an_unchanged_cluster_gives_an_identical_status() {
    let first = compute(&running(), &[], t(0));
    let second = compute(&running(), &first.conditions, t(300));
    assert_eq!(first, second, "no write in steady state");
}

#[test]
fn transition_time_changes_only_when_the_status_flips() {
    let first = compute(&running(), &[], t(0));

    // Pod 2 goes unready: Ready flips, the others keep their time even if their message changes.
    let mut input = running();
    input.pods[2].ready = false;
    input.pods[2].created = Some(t(50));
    let second = compute(&input, &first.conditions, t(60));
    let ready = condition(&second, READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "PodsNotReady")
    );
    assert_eq!(ready.message, "2 of 3 pods ready");
    assert_eq!(ready.last_transition_time, Time(t(60)));
    let progressing = condition(&second, PROGRESSING);
    assert_eq!(progressing.status, "True");
    assert_eq!(progressing.last_transition_time, Time(t(60)));
    let degraded = condition(&second, DEGRADED);
    assert_eq!(degraded.status, "False");
    assert_eq!(degraded.last_transition_time, Time(t(0)));

    // Back to Ready at t(90): flips again.
    let third = compute(&running(), &second.conditions, t(90));
    assert_eq!(condition(&third, READY).last_transition_time, Time(t(90)));
    assert_eq!(condition(&third, DEGRADED).last_transition_time, Time(t(0)));
}

#[test]
fn merge_condition_keeps_the_time_across_reason_changes() {
    let old = merge_condition(
        &[],
        Verdict {
            type_: PROGRESSING,
            status: true,
            reason: "ScalingUp",
            message: "a".into(),
        },
        Some(1),
        t(0),
    );
    let new = merge_condition(
        std::slice::from_ref(&old),
        Verdict {
            type_: PROGRESSING,
            status: true,
            reason: "RollingOut",
            message: "b".into(),
        },
        Some(2),
        t(10),
    );
    assert_eq!(new.last_transition_time, Time(t(0)));
    assert_eq!(
        (new.reason.as_str(), new.message.as_str()),
        ("RollingOut", "b")
    );
    assert_eq!(new.observed_generation, Some(2));
    let other_type = merge_condition(
        std::slice::from_ref(&old),
        Verdict {
            type_: READY,
            status: true,
            reason: "AllPodsReady",
            message: String::new(),
        },
        Some(2),
        t(10),
    );
    assert_eq!(other_type.last_transition_time, Time(t(10)));
}

#[test]
fn a_new_cluster_is_pending() {
    let mut input = running();
    input.pods.clear();
    input.stateful_set = None;
    let status = compute(&input, &[], t(0));
    assert_eq!(status.phase, Phase::Pending);
    assert_eq!((status.replicas, status.ready_replicas), (0, 0));
    assert_eq!(status.current_revision, None);
    assert_eq!(
        summary(&status),
        [
            ("Ready", "False", "PodsNotReady"),
            ("Progressing", "True", "ScalingUp"),
            ("Degraded", "False", "AsExpected")
        ]
    );
}

#[test]
fn a_rollout_shows_its_progress() {
    let mut input = running();
    input.stateful_set.as_mut().unwrap().current_revision = Some("demo-gateway-old".into());
    for p in &mut input.pods[..2] {
        p.revision = Some("demo-gateway-old".into());
    }
    let p1 = &mut input.pods[1];
    p1.ready = false;
    p1.draining = Some(true);
    p1.drain_deadline = Some(t(30));
    input.rollout = Some(RolloutStatus {
        pod: "demo-gateway-1".into(),
        step: RolloutStep::Draining,
        updated: 1,
    });
    let status = compute(&input, &[], t(0));
    assert_eq!(status.phase, Phase::RollingOut);
    assert_eq!(status.rollout, input.rollout);
    assert_eq!(status.current_revision.as_deref(), Some("demo-gateway-old"));
    assert_eq!(
        summary(&status),
        [
            ("Ready", "False", "PodsNotReady"),
            ("Progressing", "True", "RollingOut"),
            ("Degraded", "False", "AsExpected")
        ]
    );
    assert_eq!(
        condition(&status, PROGRESSING).message,
        "1 of 3 pods updated; demo-gateway-1 Draining"
    );
}

#[test]
fn a_scale_down_keeps_the_cluster_ready() {
    let mut input = running();
    input.desired_replicas = 2;
    let p2 = &mut input.pods[2];
    p2.ready = false;
    p2.draining = Some(true);
    p2.drain_deadline = Some(t(30));
    input.rollout = Some(RolloutStatus {
        pod: "demo-gateway-2".into(),
        step: RolloutStep::Draining,
        updated: 2,
    });
    let status = compute(&input, &[], t(0));
    assert_eq!(status.phase, Phase::RollingOut);
    assert_eq!(status.replicas, 3);
    assert_eq!(status.ready_replicas, 2);
    assert_eq!(
        summary(&status),
        [
            ("Ready", "True", "AllPodsReady"),
            ("Progressing", "True", "ScalingDown"),
            ("Degraded", "False", "AsExpected")
        ]
    );
    assert_eq!(
        condition(&status, PROGRESSING).message,
        "scaling down to 2; removing demo-gateway-2"
    );

    // Still scaling down after the last doomed pod is gone but the StatefulSet not yet shrunk.
    input.pods.truncate(2);
    let status = compute(&input, &[], t(0));
    assert_eq!(condition(&status, PROGRESSING).reason, "ScalingDown");
}

#[test]
fn a_scale_up_is_pending_until_the_new_pods_are_ready() {
    let mut input = running();
    input.desired_replicas = 5;
    input.stateful_set.as_mut().unwrap().replicas = 5;
    input.pods.push(PodState {
        ready: false,
        created: Some(t(-10)),
        connections: Some(0),
        ..pod(3, "demo-gateway-new")
    });
    let status = compute(&input, &[], t(0));
    assert_eq!(status.phase, Phase::Pending);
    assert_eq!(
        summary(&status),
        [
            ("Ready", "False", "PodsNotReady"),
            ("Progressing", "True", "ScalingUp"),
            ("Degraded", "False", "AsExpected")
        ]
    );
}

#[test]
fn a_pod_unready_past_the_grace_is_failing() {
    let mut input = running();
    input.pods[0].ready = false;
    input.pods[0].connections = None;
    let status = compute(&input, &[], t(0));
    assert_eq!(status.phase, Phase::Degraded);
    assert_eq!(status.connections, 23, "unknown connections count as none");
    let degraded = condition(&status, DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "PodsFailing")
    );
    assert_eq!(
        degraded.message,
        "not Ready for more than 180s: demo-gateway-0"
    );

    // The same pod just created is only starting.
    input.pods[0].created = Some(t(-179));
    let status = compute(&input, &[], t(0));
    assert_eq!(status.phase, Phase::Pending);
    assert_eq!(condition(&status, DEGRADED).status, "False");
}

#[test]
fn draining_and_terminating_pods_are_not_failing() {
    let mut input = running();
    input.pods[0].ready = false;
    input.pods[0].draining = Some(true);
    input.pods[1].ready = false;
    input.pods[1].deleting = true;
    let status = compute(&input, &[], t(0));
    assert_eq!(condition(&status, DEGRADED).status, "False");
    assert_eq!(status.replicas, 2, "terminating pods are not counted");
    assert_eq!(status.ready_replicas, 1);
}

#[test]
fn a_failed_reconcile_is_degraded() {
    let mut input = running();
    input.error = Some("creating topics: pulsar admin answered 503".into());
    let status = compute(&input, &[], t(0));
    assert_eq!(status.phase, Phase::Degraded);
    let degraded = condition(&status, DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "ReconcileFailed")
    );
    assert_eq!(
        degraded.message,
        "creating topics: pulsar admin answered 503"
    );
}

#[test]
fn scaled_to_zero_is_running() {
    let mut input = running();
    input.desired_replicas = 0;
    input.stateful_set.as_mut().unwrap().replicas = 0;
    input.pods.clear();
    let status = compute(&input, &[], t(0));
    assert_eq!(status.phase, Phase::Running);
    assert_eq!(condition(&status, READY).message, "0 of 0 pods ready");
}
