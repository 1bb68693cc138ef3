//! Every transition of the state machine, then whole rollouts and scales against a small simulated
//! cluster (a StatefulSet controller, a kubelet and gateways that drain).

use super::*;

const STS: &str = "demo-gateway";

/// A fixed origin plus `secs`, so deadlines read as offsets in the tests.
fn t(secs: i64) -> Timestamp {
    let origin: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
    origin + SignedDuration::from_secs(secs)
}

fn name(ordinal: i32) -> String {
    format!("{STS}-{ordinal}")
}

/// A Ready pod on revision `revision`, long running, holding 10 connections, not draining.
fn pod(ordinal: i32, revision: &str) -> PodState {
    PodState {
        name: name(ordinal),
        ordinal,
        revision: Some(revision.into()),
        ready: true,
        deleting: false,
        created: Some(t(-3600)),
        drain_deadline: None,
        connections: Some(10),
        draining: Some(false),
    }
}

/// Three Ready pods on revision `old` while the StatefulSet's update revision is `new`: a rollout
/// about to start. Topics 0..3 exist; the time is `t(0)`.
fn rolling() -> Observed {
    Observed {
        desired_replicas: 3,
        drain_seconds: 30,
        stateful_set_name: STS.into(),
        stateful_set: Some(StatefulSetState {
            replicas: 3,
            current_revision: Some("old".into()),
            update_revision: Some("new".into()),
            settled: true,
        }),
        pods: (0..3).map(|n| pod(n, "old")).collect(),
        topic_ordinals: vec![0, 1, 2],
        registered_pods: (0..3).map(name).collect(),
        previous: None,
        now: t(0),
    }
}

/// The same cluster with every pod already on the update revision.
fn steady() -> Observed {
    let mut o = rolling();
    o.pods = (0..3).map(|n| pod(n, "new")).collect();
    o
}

fn pod_mut(o: &mut Observed, ordinal: i32) -> &mut PodState {
    o.pods
        .iter_mut()
        .find(|p| p.ordinal == ordinal)
        .expect("pod exists")
}

fn record(ordinal: i32, step: RolloutStep, updated: i32) -> Option<RolloutStatus> {
    Some(RolloutStatus {
        pod: name(ordinal),
        step,
        updated,
    })
}

/// Marks a pod as drained by the operator with `deadline`, still holding `connections`.
fn draining(o: &mut Observed, ordinal: i32, deadline: i64, connections: i64) {
    let p = pod_mut(o, ordinal);
    p.drain_deadline = Some(t(deadline));
    p.draining = Some(true);
    p.ready = false;
    p.connections = Some(connections);
}

// ---- steady state and prerequisites ----

#[test]
fn an_up_to_date_cluster_is_steady() {
    let plan = plan(&steady());
    assert_eq!(
        plan,
        Plan {
            action: Action::Steady,
            rollout: None
        }
    );
    assert_eq!(plan.action.requeue_after(t(0)), None);
}

#[test]
fn topics_come_first_even_before_the_statefulset() {
    let mut o = steady();
    o.topic_ordinals = vec![0];
    o.stateful_set = None;
    assert_eq!(
        plan(&o).action,
        Action::CreateTopics {
            ordinals: vec![1, 2]
        }
    );
}

#[test]
fn a_missing_or_unsettled_statefulset_is_waited_for() {
    let mut o = steady();
    o.stateful_set = None;
    assert_eq!(plan(&o).action, Action::WaitStatefulSet);
    let mut o = rolling();
    o.stateful_set.as_mut().unwrap().settled = false;
    let p = plan(&o);
    assert_eq!(p.action, Action::WaitStatefulSet);
    assert_eq!(p.action.requeue_after(t(0)), Some(WAIT_POLL));
}

#[test]
fn an_unknown_update_revision_rolls_nothing() {
    let mut o = rolling();
    o.stateful_set.as_mut().unwrap().update_revision = None;
    assert_eq!(plan(&o).action, Action::Steady);
}

// ---- scale-up ----

#[test]
fn scale_up_creates_the_topics_then_raises_the_replicas() {
    let mut o = steady();
    o.desired_replicas = 5;
    assert_eq!(
        plan(&o).action,
        Action::CreateTopics {
            ordinals: vec![3, 4]
        }
    );
    o.topic_ordinals = vec![0, 1, 2, 3, 4];
    let p = plan(&o);
    assert_eq!(p.action, Action::ScaleStatefulSet { replicas: 5 });
    assert_eq!(p.action.requeue_after(t(0)), Some(ACTION_REQUEUE));
}

#[test]
fn scale_up_does_not_disturb_a_drain_in_flight() {
    let mut o = rolling();
    draining(&mut o, 2, 30, 5);
    o.previous = record(2, RolloutStep::Draining, 0);
    o.desired_replicas = 4;
    o.topic_ordinals = vec![0, 1, 2, 3];
    let p = plan(&o);
    assert_eq!(p.action, Action::ScaleStatefulSet { replicas: 4 });
    assert_eq!(p.rollout, o.previous, "the record is kept");
    o.stateful_set.as_mut().unwrap().replicas = 4;
    assert_eq!(
        plan(&o).action,
        Action::WaitDrained {
            pod: name(2),
            deadline: t(30)
        }
    );
}

#[test]
fn new_pods_starting_are_steady_outside_a_rollout() {
    let mut o = steady();
    o.pods.truncate(1);
    o.pods.push(PodState {
        ready: false,
        created: Some(t(-5)),
        ..pod(1, "new")
    });
    assert_eq!(plan(&o).action, Action::Steady);
}

// ---- rollout, one pod ----

#[test]
fn rollout_starts_by_draining_the_highest_ordinal() {
    let p = plan(&rolling());
    assert_eq!(
        p.action,
        Action::DrainPod {
            pod: name(2),
            deadline: t(30)
        }
    );
    assert_eq!(p.rollout, record(2, RolloutStep::Draining, 0));
}

#[test]
fn a_draining_pod_with_connections_is_waited_for() {
    let mut o = rolling();
    draining(&mut o, 2, 30, 4);
    o.now = t(10);
    let p = plan(&o);
    assert_eq!(
        p.action,
        Action::WaitDrained {
            pod: name(2),
            deadline: t(30)
        }
    );
    assert_eq!(p.rollout, record(2, RolloutStep::Draining, 0));
    assert_eq!(p.action.requeue_after(t(10)), Some(DRAIN_POLL));
    assert_eq!(
        p.action
            .requeue_after(t(29) + SignedDuration::from_millis(500)),
        Some(Duration::from_millis(500)),
        "the last poll lands on the deadline"
    );
}

#[test]
fn a_drained_pod_is_deleted() {
    let mut o = rolling();
    draining(&mut o, 2, 30, 0);
    o.now = t(12);
    let p = plan(&o);
    assert_eq!(p.action, Action::DeletePod { pod: name(2) });
    assert_eq!(p.rollout, record(2, RolloutStep::Deleting, 0));
}

#[test]
fn the_deadline_ends_the_wait_even_with_connections_left() {
    let mut o = rolling();
    draining(&mut o, 2, 30, 3);
    o.now = t(30);
    assert_eq!(plan(&o).action, Action::DeletePod { pod: name(2) });
}

#[test]
fn a_terminating_pod_is_waited_for() {
    let mut o = rolling();
    draining(&mut o, 2, 30, 0);
    pod_mut(&mut o, 2).deleting = true;
    let p = plan(&o);
    assert_eq!(p.action, Action::WaitDeleted { pod: name(2) });
    assert_eq!(p.rollout, record(2, RolloutStep::Deleting, 0));
}

#[test]
fn a_pod_not_yet_recreated_is_waited_for() {
    let mut o = rolling();
    o.pods.retain(|p| p.ordinal != 2);
    let p = plan(&o);
    assert_eq!(p.action, Action::WaitReady { pod: name(2) });
    assert_eq!(p.rollout, record(2, RolloutStep::WaitingReady, 0));
}

#[test]
fn the_replacement_must_be_ready_before_the_next_pod_goes() {
    let mut o = rolling();
    *pod_mut(&mut o, 2) = PodState {
        ready: false,
        created: Some(t(-2)),
        connections: Some(0),
        ..pod(2, "new")
    };
    let p = plan(&o);
    assert_eq!(p.action, Action::WaitReady { pod: name(2) });
    assert_eq!(p.rollout, record(2, RolloutStep::WaitingReady, 1));

    pod_mut(&mut o, 2).ready = true;
    let p = plan(&o);
    assert_eq!(
        p.action,
        Action::DrainPod {
            pod: name(1),
            deadline: t(30)
        }
    );
    assert_eq!(p.rollout, record(1, RolloutStep::Draining, 1));
}

#[test]
fn the_rollout_ends_when_the_last_replacement_is_ready() {
    let mut o = steady();
    pod_mut(&mut o, 0).ready = false;
    o.previous = record(0, RolloutStep::Deleting, 2);
    let p = plan(&o);
    assert_eq!(p.action, Action::WaitReady { pod: name(0) });
    assert_eq!(p.rollout, record(0, RolloutStep::WaitingReady, 3));

    pod_mut(&mut o, 0).ready = true;
    assert_eq!(
        plan(&o),
        Plan {
            action: Action::Steady,
            rollout: None
        }
    );
}

#[test]
fn an_idle_pod_is_deleted_without_a_drain() {
    let mut o = rolling();
    pod_mut(&mut o, 2).connections = Some(0);
    assert_eq!(plan(&o).action, Action::DeletePod { pod: name(2) });
}

#[test]
fn unready_outdated_pods_go_first_and_without_waiting() {
    let mut o = rolling();
    // Pod 0 crashed on the old revision; pod 2 was just replaced and is still starting.
    *pod_mut(&mut o, 0) = PodState {
        ready: false,
        connections: None,
        draining: None,
        ..pod(0, "old")
    };
    *pod_mut(&mut o, 2) = PodState {
        ready: false,
        created: Some(t(-2)),
        ..pod(2, "new")
    };
    let p = plan(&o);
    assert_eq!(p.action, Action::DeletePod { pod: name(0) });
    assert_eq!(p.rollout, record(0, RolloutStep::Deleting, 1));
}

#[test]
fn an_unready_pod_that_still_answers_is_drained() {
    let mut o = rolling();
    // Unready because a backend is down, but it still holds connections.
    pod_mut(&mut o, 1).ready = false;
    assert_eq!(
        plan(&o).action,
        Action::DrainPod {
            pod: name(1),
            deadline: t(30)
        }
    );
}

#[test]
fn a_ready_pod_whose_admin_port_is_silent_is_still_drained() {
    let mut o = rolling();
    let p = pod_mut(&mut o, 2);
    p.connections = None;
    p.draining = None;
    assert_eq!(
        plan(&o).action,
        Action::DrainPod {
            pod: name(2),
            deadline: t(30)
        }
    );
    // The call failed after the deadline was recorded: wait it out (the pod's own SIGTERM drain
    // covers whatever the lost call did not), then delete.
    pod_mut(&mut o, 2).drain_deadline = Some(t(30));
    o.now = t(5);
    assert_eq!(
        plan(&o).action,
        Action::WaitDrained {
            pod: name(2),
            deadline: t(30)
        }
    );
    o.now = t(31);
    assert_eq!(plan(&o).action, Action::DeletePod { pod: name(2) });
}

// ---- operator restarts and failed steps ----

#[test]
fn a_restarted_operator_finishes_a_drain_it_finds() {
    // The previous operator drained pod 1, then died before writing status.
    let mut o = rolling();
    *pod_mut(&mut o, 2) = pod(2, "new");
    draining(&mut o, 1, 20, 0);
    o.previous = None;
    o.now = t(5);
    let p = plan(&o);
    assert_eq!(p.action, Action::DeletePod { pod: name(1) });
    assert_eq!(p.rollout, record(1, RolloutStep::Deleting, 1));

    // With connections left it keeps the recorded deadline instead of starting over.
    pod_mut(&mut o, 1).connections = Some(3);
    assert_eq!(
        plan(&o).action,
        Action::WaitDrained {
            pod: name(1),
            deadline: t(20)
        }
    );
}

#[test]
fn a_drain_in_flight_beats_the_usual_order() {
    // A restarted operator finds pod 0 draining although 2 is the highest outdated pod.
    let mut o = rolling();
    draining(&mut o, 0, 25, 2);
    assert_eq!(
        plan(&o).action,
        Action::WaitDrained {
            pod: name(0),
            deadline: t(25)
        }
    );
}

#[test]
fn a_lost_drain_call_is_repeated_with_the_same_deadline() {
    // The deadline was recorded but the gateway is not draining (the call failed, or the
    // container restarted since).
    let mut o = rolling();
    draining(&mut o, 2, 30, 6);
    let p = pod_mut(&mut o, 2);
    p.draining = Some(false);
    p.ready = true;
    o.now = t(8);
    assert_eq!(
        plan(&o).action,
        Action::DrainPod {
            pod: name(2),
            deadline: t(30)
        }
    );
}

#[test]
fn a_pod_drained_by_someone_else_is_replaced() {
    // Someone called /admin/drain by hand: the pod will never serve again, whatever its revision.
    let mut o = steady();
    let p = pod_mut(&mut o, 1);
    p.draining = Some(true);
    p.ready = false;
    o.now = t(3);
    let plan1 = plan(&o);
    assert_eq!(
        plan1.action,
        Action::DrainPod {
            pod: name(1),
            deadline: t(33)
        },
        "a deadline is recorded; the gateway keeps the earlier of the two"
    );
    assert_eq!(plan1.rollout, record(1, RolloutStep::Draining, 3));
    pod_mut(&mut o, 1).connections = Some(0);
    assert_eq!(plan(&o).action, Action::DeletePod { pod: name(1) });
}

#[test]
fn a_failed_step_is_planned_again_and_retried_with_backoff() {
    let o = rolling();
    let first = plan(&o);
    assert!(matches!(first.action, Action::DrainPod { .. }));
    // The step failed: nothing changed in the cluster, so the same step comes back, again and
    // again, while the reconciler waits longer each time.
    let mut delays = Vec::new();
    for failures in 1..=8 {
        assert_eq!(plan(&o), first, "attempt {failures}");
        delays.push(retry_backoff(failures).as_secs());
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(retry_backoff(0), BACKOFF_BASE);
    assert_eq!(retry_backoff(u32::MAX), BACKOFF_MAX);
}

// ---- scale-down ----

fn scaling_down(to: i32) -> Observed {
    let mut o = steady();
    o.desired_replicas = to;
    o
}

#[test]
fn scale_down_drains_the_highest_doomed_pod_first() {
    let p = plan(&scaling_down(1));
    assert_eq!(
        p.action,
        Action::DrainPod {
            pod: name(2),
            deadline: t(30)
        }
    );
    assert_eq!(p.rollout, record(2, RolloutStep::Draining, 1));
}

#[test]
fn scale_down_shrinks_the_statefulset_past_a_drained_pod() {
    let mut o = scaling_down(1);
    draining(&mut o, 2, 30, 0);
    let p = plan(&o);
    assert_eq!(p.action, Action::ScaleStatefulSet { replicas: 2 });
    assert_eq!(p.rollout, record(2, RolloutStep::Deleting, 1));

    // At the deadline too.
    pod_mut(&mut o, 2).connections = Some(2);
    o.now = t(30);
    assert_eq!(plan(&o).action, Action::ScaleStatefulSet { replicas: 2 });
}

#[test]
fn pods_above_the_statefulset_are_left_to_its_controller() {
    let mut o = scaling_down(1);
    draining(&mut o, 2, 30, 0);
    o.stateful_set.as_mut().unwrap().replicas = 2;
    let p = plan(&o);
    assert_eq!(p.action, Action::WaitDeleted { pod: name(2) });
    assert_eq!(p.rollout, record(2, RolloutStep::Deleting, 1));
}

#[test]
fn scale_down_skips_ordinals_without_pods() {
    let mut o = scaling_down(1);
    o.stateful_set.as_mut().unwrap().replicas = 5;
    assert_eq!(plan(&o).action, Action::ScaleStatefulSet { replicas: 3 });
    o.pods.truncate(1);
    assert_eq!(plan(&o).action, Action::ScaleStatefulSet { replicas: 1 });
}

#[test]
fn scale_down_removes_a_broken_pod_without_a_drain() {
    let mut o = scaling_down(2);
    let p = pod_mut(&mut o, 2);
    p.ready = false;
    p.connections = None;
    p.draining = None;
    assert_eq!(plan(&o).action, Action::ScaleStatefulSet { replicas: 2 });
}

#[test]
fn scale_down_waits_for_an_unready_survivor_before_draining() {
    let mut o = scaling_down(2);
    pod_mut(&mut o, 0).ready = false;
    let p = plan(&o);
    assert_eq!(p.action, Action::WaitReady { pod: name(0) });
    assert_eq!(p.rollout, record(0, RolloutStep::WaitingReady, 2));
}

#[test]
fn scale_down_comes_before_rolling_the_survivors() {
    let mut o = rolling();
    o.desired_replicas = 2;
    assert_eq!(
        plan(&o).action,
        Action::DrainPod {
            pod: name(2),
            deadline: t(30)
        }
    );
}

#[test]
fn scale_to_zero_drains_every_pod() {
    let mut o = scaling_down(0);
    o.pods.truncate(1);
    o.stateful_set.as_mut().unwrap().replicas = 1;
    assert_eq!(
        plan(&o).action,
        Action::DrainPod {
            pod: name(0),
            deadline: t(30)
        }
    );
}

// ---- cleanup of removed ordinals ----

#[test]
fn topics_of_removed_ordinals_are_deleted_once_their_pods_are_gone() {
    let mut o = steady();
    o.topic_ordinals = vec![4, 0, 1, 2, 3];
    assert_eq!(
        plan(&o).action,
        Action::DeleteTopics {
            ordinals: vec![3, 4]
        }
    );
    // Not while a pod of that ordinal is still terminating; the others fill the wait.
    let mut leaving = pod(3, "new");
    leaving.deleting = true;
    o.pods.push(leaving);
    let p = plan(&o);
    assert_eq!(p.action, Action::DeleteTopics { ordinals: vec![4] });
    assert_eq!(p.rollout, record(3, RolloutStep::Deleting, 3));
    o.topic_ordinals = vec![0, 1, 2, 3];
    assert_eq!(plan(&o).action, Action::WaitDeleted { pod: name(3) });
}

#[test]
fn redis_keys_of_removed_pods_are_deleted() {
    let mut o = steady();
    o.registered_pods = vec![name(0), name(4), "other-gateway-5".into(), name(3), name(2)];
    assert_eq!(
        plan(&o).action,
        Action::CleanupRedisKeys {
            pods: vec![name(3), name(4)]
        }
    );
}

#[test]
fn cleanup_waits_for_the_drain_steps_and_keeps_the_record() {
    let mut o = rolling();
    o.topic_ordinals.push(5);
    assert!(matches!(plan(&o).action, Action::DrainPod { .. }));
    draining(&mut o, 2, 30, 5);
    let p = plan(&o);
    assert_eq!(p.action, Action::DeleteTopics { ordinals: vec![5] });
    assert_eq!(p.rollout, record(2, RolloutStep::Draining, 0));
}

#[test]
fn nothing_is_cleaned_while_the_statefulset_still_has_the_ordinal() {
    let mut o = scaling_down(2);
    draining(&mut o, 2, 30, 4);
    assert_eq!(
        plan(&o).action,
        Action::WaitDrained {
            pod: name(2),
            deadline: t(30)
        }
    );
}

// ---- helpers ----

#[test]
fn drain_seconds_are_rounded_up_and_never_zero() {
    assert_eq!(drain_seconds_left(t(30), t(0)), 30);
    assert_eq!(
        drain_seconds_left(t(30), t(0) + SignedDuration::from_millis(200)),
        30
    );
    assert_eq!(drain_seconds_left(t(30), t(30)), 1);
    assert_eq!(drain_seconds_left(t(30), t(40)), 1);
}

#[test]
fn actions_describe_themselves() {
    let drain = Action::DrainPod {
        pod: name(2),
        deadline: t(30),
    };
    assert_eq!(drain.reason(), "DrainingPod");
    assert_eq!(
        drain.to_string(),
        "draining demo-gateway-2 until 2025-01-01T00:00:30Z"
    );
    assert!(!drain.is_wait());
    assert!(Action::WaitReady { pod: name(1) }.is_wait());
    assert!(Action::Steady.is_wait());
}

// ---- whole sequences against a simulated cluster ----

/// The cluster the plans are executed against: the StatefulSet controller creates missing pods
/// on the update revision and removes pods above its replicas, the kubelet makes new pods Ready
/// after a few seconds, and draining gateways lose half their connections every second.
struct Sim {
    o: Observed,
    /// Every action executed, in order.
    log: Vec<Action>,
    /// Drop `status.rollout` before every plan, as if the operator restarted each time.
    amnesia: bool,
    /// Pods deleted in the last round: gone after this round (terminating takes one round).
    dying: Vec<String>,
}

impl Sim {
    fn new(o: Observed) -> Self {
        Self {
            o,
            log: Vec::new(),
            amnesia: false,
            dying: Vec::new(),
        }
    }

    /// Plans and executes until steady; panics if it takes too long.
    fn run(&mut self) {
        for _ in 0..1000 {
            if self.amnesia {
                self.o.previous = None;
            }
            let plan = plan(&self.o);
            self.o.previous = plan.rollout.clone();
            if plan.action == Action::Steady && self.settled() {
                return;
            }
            self.execute(&plan.action);
            if plan.action != Action::Steady {
                self.log.push(plan.action);
            }
            self.tick();
            self.check_capacity();
        }
        panic!("not settled after 1000 rounds: {:#?}", self.o);
    }

    /// Every pod the StatefulSet wants exists and is Ready.
    fn settled(&self) -> bool {
        let replicas = self.o.stateful_set.as_ref().unwrap().replicas;
        self.o.pods.len() == usize::try_from(replicas).unwrap()
            && self.o.pods.iter().all(|p| p.ready && !p.deleting)
    }

    fn execute(&mut self, action: &Action) {
        let o = &mut self.o;
        match action {
            Action::CreateTopics { ordinals } => o.topic_ordinals.extend(ordinals),
            Action::ScaleStatefulSet { replicas } => {
                o.stateful_set.as_mut().unwrap().replicas = *replicas;
            }
            Action::DrainPod { pod, deadline } => {
                let p = o.pods.iter_mut().find(|p| &p.name == pod).unwrap();
                p.drain_deadline = Some(*deadline);
                p.draining = Some(true);
                p.ready = false;
            }
            Action::DeletePod { pod } => {
                o.pods.iter_mut().find(|p| &p.name == pod).unwrap().deleting = true;
            }
            Action::DeleteTopics { ordinals } => o.topic_ordinals.retain(|n| !ordinals.contains(n)),
            Action::CleanupRedisKeys { pods } => o.registered_pods.retain(|p| !pods.contains(p)),
            Action::Steady
            | Action::WaitStatefulSet
            | Action::WaitDrained { .. }
            | Action::WaitDeleted { .. }
            | Action::WaitReady { .. } => {}
        }
    }

    fn tick(&mut self) {
        let o = &mut self.o;
        let sts = o.stateful_set.clone().unwrap();
        o.now += SignedDuration::from_secs(1);
        let dying = std::mem::take(&mut self.dying);
        o.pods.retain(|p| !dying.contains(&p.name));
        for p in &mut o.pods {
            if p.ordinal >= sts.replicas {
                p.deleting = true;
            }
            if p.draining == Some(true) {
                p.connections = p.connections.map(|c| c / 2);
            }
            let age = o.now.duration_since(p.created.unwrap());
            if !p.ready && p.draining == Some(false) && age >= SignedDuration::from_secs(3) {
                p.ready = true;
                p.connections = Some(10);
            }
            if p.deleting {
                self.dying.push(p.name.clone());
            }
        }
        for n in 0..sts.replicas {
            if o.pods.iter().all(|p| p.ordinal != n) {
                o.pods.push(PodState {
                    ready: false,
                    created: Some(o.now),
                    connections: Some(0),
                    ..pod(n, sts.update_revision.as_deref().unwrap())
                });
                if !o.registered_pods.contains(&name(n)) {
                    o.registered_pods.push(name(n));
                }
            }
        }
    }

    /// Never more than one wanted pod out of service, unless the cluster is still growing.
    fn check_capacity(&self) {
        let o = &self.o;
        let sts = o.stateful_set.as_ref().unwrap();
        let wanted = o.desired_replicas.min(sts.replicas);
        let out = (0..wanted)
            .filter(|&n| !o.pods.iter().any(|p| p.ordinal == n && p.ready))
            .count();
        let young = o
            .pods
            .iter()
            .filter(|p| !p.ready && p.drain_deadline.is_none())
            .count();
        assert!(out <= 1 || young >= out, "{out} pods out: {:#?}", o.pods);
    }

    fn deleted(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::DeletePod { pod } => Some(pod.clone()),
                _ => None,
            })
            .collect()
    }

    fn drained(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Action::DrainPod { pod, .. } => Some(pod.clone()),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_whole_rollout_replaces_each_pod_once_highest_first() {
    let mut sim = Sim::new(rolling());
    sim.run();
    assert_eq!(sim.drained(), [name(2), name(1), name(0)]);
    assert_eq!(sim.deleted(), [name(2), name(1), name(0)]);
    assert!(sim
        .o
        .pods
        .iter()
        .all(|p| p.ready && p.revision.as_deref() == Some("new")));
    assert_eq!(sim.o.previous, None, "the record is cleared at the end");
}

#[test]
fn a_rollout_survives_an_operator_restart_at_every_step() {
    let mut sim = Sim::new(rolling());
    sim.amnesia = true;
    sim.run();
    assert_eq!(sim.deleted(), [name(2), name(1), name(0)]);
    assert!(sim
        .o
        .pods
        .iter()
        .all(|p| p.ready && p.revision.as_deref() == Some("new")));
}

#[test]
fn scaling_three_to_five_to_two() {
    let mut sim = Sim::new(steady());
    sim.o.desired_replicas = 5;
    sim.run();
    assert_eq!(sim.o.stateful_set.as_ref().unwrap().replicas, 5);
    assert_eq!(sim.o.topic_ordinals, [0, 1, 2, 3, 4]);
    assert_eq!(sim.o.pods.len(), 5);
    assert!(sim.drained().is_empty(), "scale-up drains nothing");

    sim.log.clear();
    sim.o.desired_replicas = 2;
    sim.run();
    assert_eq!(sim.drained(), [name(4), name(3), name(2)]);
    let scales: Vec<&Action> = sim
        .log
        .iter()
        .filter(|a| matches!(a, Action::ScaleStatefulSet { .. }))
        .collect();
    assert_eq!(
        scales,
        [
            &Action::ScaleStatefulSet { replicas: 4 },
            &Action::ScaleStatefulSet { replicas: 3 },
            &Action::ScaleStatefulSet { replicas: 2 }
        ]
    );
    assert_eq!(sim.o.stateful_set.as_ref().unwrap().replicas, 2);
    let mut topics = sim.o.topic_ordinals.clone();
    topics.sort_unstable();
    assert_eq!(topics, [0, 1]);
    let mut registered = sim.o.registered_pods.clone();
    registered.sort_unstable();
    assert_eq!(registered, [name(0), name(1)]);
}

#[test]
fn a_rollout_and_a_scale_down_at_once() {
    let mut o = rolling();
    o.desired_replicas = 1;
    let mut sim = Sim::new(o);
    sim.run();
    assert_eq!(sim.drained(), [name(2), name(1), name(0)]);
    assert_eq!(sim.deleted(), [name(0)], "only the survivor is replaced");
    assert_eq!(sim.o.pods.len(), 1);
    assert_eq!(sim.o.pods[0].revision.as_deref(), Some("new"));
}

mod proptests;
