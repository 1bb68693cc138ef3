//! The state machine's rules as properties: from any cluster (pods on either revision, Ready or
//! not, drains in flight with any deadline, a StatefulSet larger or smaller than wanted, topics
//! and Redis keys left over) and through any faults (operator restarts, failed steps, crashing
//! containers, `spec.replicas` changed mid-way), every planned step keeps the rules of DESIGN §8,
//! and once the faults stop the cluster reaches the wanted state.

use proptest::prelude::*;

use super::*;

/// One pod of the generated cluster.
#[derive(Debug, Clone)]
struct PodSpec {
    present: bool,
    new_revision: bool,
    ready: bool,
    connections: i64,
    /// 0: not draining; 1: drained by the operator (deadline recorded); 2: draining on its
    /// own (no deadline); 3: deadline recorded but the gateway restarted (not draining);
    /// 4: its admin port does not answer (an old pod only: a kubelet here never heals it).
    drain: u8,
    deadline: i64,
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0i64..20,
        0u8..5,
        -10i64..60,
    )
        .prop_map(
            |(present, new_revision, ready, connections, drain, deadline)| PodSpec {
                present,
                new_revision,
                ready,
                connections,
                drain,
                deadline,
            },
        )
}

/// A fault injected before one round's plan.
#[derive(Debug, Clone)]
enum Fault {
    None,
    /// The operator restarts: `status.rollout` is lost.
    Restart,
    /// The planned step fails (not executed); it is planned again.
    StepFails,
    /// The container of pod `n` restarts: unready, not draining, no connections.
    Crash(i32),
    /// `spec.replicas` changes.
    Replicas(i32),
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        2 => Just(Fault::Restart),
        2 => Just(Fault::StepFails),
        2 => (0i32..6).prop_map(Fault::Crash),
        1 => (0i32..6).prop_map(Fault::Replicas),
    ]
}

fn cluster() -> impl Strategy<Value = Observed> {
    (
        0i32..6,
        0i32..6,
        proptest::collection::vec(pod_spec(), 6),
        proptest::collection::vec(any::<bool>(), 6),
        proptest::collection::vec(any::<bool>(), 6),
    )
        .prop_map(|(desired, replicas, specs, topics, registered)| {
            let mut o = rolling();
            o.desired_replicas = desired;
            o.stateful_set.as_mut().unwrap().replicas = replicas;
            o.pods = specs
                .iter()
                .enumerate()
                .filter(|(_, s)| s.present)
                .map(|(n, s)| {
                    let n = n as i32;
                    let mut p = pod(n, if s.new_revision { "new" } else { "old" });
                    p.ready = s.ready;
                    p.connections = Some(s.connections);
                    match s.drain {
                        1 => {
                            p.drain_deadline = Some(t(s.deadline));
                            p.draining = Some(true);
                        }
                        2 => p.draining = Some(true),
                        3 => p.drain_deadline = Some(t(s.deadline)),
                        4 if !s.new_revision => {
                            p.connections = None;
                            p.draining = None;
                        }
                        _ => {}
                    }
                    if p.draining == Some(true) {
                        p.ready = false;
                    }
                    p
                })
                .collect();
            o.topic_ordinals = (0..6).filter(|&n| topics[n as usize]).collect();
            o.registered_pods = (0..6)
                .filter(|&n| registered[n as usize])
                .map(name)
                .collect();
            o
        })
}

/// A pod the plan may take away: its connections are gone, its drain deadline has passed, or
/// nothing about it can be reached or served.
fn released(o: &Observed, p: &PodState) -> bool {
    p.deleting
        || p.connections == Some(0)
        || p.drain_deadline.is_some_and(|d| o.now >= d)
        || (!p.ready && p.connections.is_none() && p.drain_deadline.is_none())
}

/// The rules every planned step keeps, whatever the cluster looks like.
fn check_step(o: &Observed, action: &Action) -> Result<(), TestCaseError> {
    let sts = o.stateful_set.as_ref().unwrap();
    let pod = |name: &str| o.pods.iter().find(|p| p.name == name);
    match action {
        Action::ScaleStatefulSet { replicas } => {
            if *replicas > sts.replicas {
                prop_assert!(
                    (0..*replicas).all(|n| o.topic_ordinals.contains(&n)),
                    "the StatefulSet grows before its topics exist"
                );
            }
            prop_assert!(*replicas >= o.desired_replicas, "below spec.replicas");
            // A shrink removes the ordinals from `replicas` up to the StatefulSet's size now.
            let removed = *replicas..sts.replicas;
            for p in o.pods.iter().filter(|p| removed.contains(&p.ordinal)) {
                prop_assert!(released(o, p), "{} cut off with connections", p.name);
            }
        }
        Action::DeletePod { pod: name } => {
            let p = pod(name).expect("deletes a pod that exists");
            prop_assert!(!p.deleting, "{name} deleted twice");
            prop_assert!(released(o, p), "{name} deleted with connections");
        }
        Action::DrainPod {
            pod: name,
            deadline,
        } => {
            let p = pod(name).expect("drains a pod that exists");
            prop_assert!(*deadline > o.now, "a drain that is already over");
            if let Some(recorded) = p.drain_deadline {
                prop_assert_eq!(*deadline, recorded, "a drain's deadline moved");
            }
        }
        _ => {}
    }
    // One wanted pod out of service at a time: a Ready pod is taken out (a new drain, or a delete
    // without one) only when every other wanted ordinal has a Ready pod.
    let out = match action {
        Action::DrainPod { pod: name, .. } | Action::DeletePod { pod: name } => pod(name),
        _ => None,
    };
    let wanted = o.desired_replicas.min(sts.replicas);
    if let Some(p) = out.filter(|p| p.ready && !p.drain_started() && p.ordinal < wanted) {
        for n in (0..wanted).filter(|&n| n != p.ordinal) {
            let serving = o
                .pods
                .iter()
                .any(|q| q.ordinal == n && q.ready && !q.deleting);
            prop_assert!(serving, "{} taken out while ordinal {} is out", p.name, n);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every step keeps the rules, and once the faults stop the cluster ends with exactly
    /// `spec.replicas` Ready pods on the update revision, their topics and nothing else.
    #[test]
    fn any_cluster_through_any_faults_converges_safely(
        o in cluster(),
        faults in proptest::collection::vec(fault(), 0..40),
    ) {
        let mut sim = Sim::new(o);
        let rounds = faults.len() + 400;
        let mut done = false;
        for round in 0..rounds {
            let fault = faults.get(round).cloned().unwrap_or(Fault::None);
            match fault {
                Fault::Restart => sim.o.previous = None,
                Fault::Crash(n) => {
                    let now = sim.o.now;
                    if let Some(p) = sim.o.pods.iter_mut().find(|p| p.ordinal == n && !p.deleting) {
                        p.ready = false;
                        p.draining = Some(false);
                        p.connections = Some(0);
                        p.created = Some(now);
                    }
                }
                Fault::Replicas(n) => sim.o.desired_replicas = n,
                Fault::None | Fault::StepFails => {}
            }
            let plan = plan(&sim.o);
            check_step(&sim.o, &plan.action)?;
            if round >= faults.len() && plan.action == Action::Steady && sim.settled() {
                done = true;
                break;
            }
            if !matches!(fault, Fault::StepFails) {
                sim.o.previous = plan.rollout.clone();
                sim.execute(&plan.action);
            }
            sim.tick();
        }
        prop_assert!(done, "not settled after the faults: {:#?}", sim.o);
        let o = &sim.o;
        let desired = o.desired_replicas;
        prop_assert_eq!(o.stateful_set.as_ref().unwrap().replicas, desired);
        let mut ordinals: Vec<i32> = o.pods.iter().map(|p| p.ordinal).collect();
        ordinals.sort_unstable();
        prop_assert_eq!(ordinals, (0..desired).collect::<Vec<_>>());
        prop_assert!(o.pods.iter().all(|p| p.ready && p.revision.as_deref() == Some("new")));
        let mut topics = o.topic_ordinals.clone();
        topics.sort_unstable();
        topics.dedup();
        prop_assert_eq!(topics, (0..desired).collect::<Vec<_>>());
        prop_assert!(o.registered_pods.iter().all(|p| (0..desired).any(|n| *p == name(n))));
    }
}
