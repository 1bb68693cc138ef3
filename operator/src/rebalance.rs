//! Rebalancing, the pure part: given each serving pod's connections, which pods shed how many.
//!
//! After a rollout the last pod replaced holds almost nothing, and after a scale-up the new pods
//! start empty: the Service only places *new* connections, and WebSockets live for the timelife.
//! So while the cluster is steady the operator compares each pod with the mean and asks the pods
//! above it to move part of their connections (`POST /admin/rebalance`: the same DRAIN (22) a
//! drain sends, the pod staying ready). The clients reconnect through the Service, and since the
//! shedding pods are the busiest, most of them land elsewhere.
//!
//! The plan ([`plan`]) is paced: a pod sheds at most `maxSharePercent` of its connections per step
//! and never goes below the mean; no step is taken while moves of the last one are in flight (a
//! gateway reports them as `moving`), and the reconciler keeps steps `intervalSeconds` apart.
//! It stops once every pod is within `tolerancePercent` of the mean, and does nothing when the
//! cluster holds fewer than `minConnectionsPerPod` per pod on average: a few connections more or
//! less on a pod are not worth a reconnect.

use crate::crd::RebalanceSpec;

/// One serving pod's load, from its `/admin/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodLoad {
    /// Pod name.
    pub name: String,
    /// Open connections (those moving included: they are still there).
    pub connections: i64,
    /// Connections told to move by an earlier step and not gone yet.
    pub moving: i64,
}

/// One pod's share of a step: move `connections` of its `of`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shed {
    /// Pod name.
    pub pod: String,
    /// How many connections to move.
    pub connections: i64,
    /// How many it holds.
    pub of: i64,
}

/// What to do about the spread of connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Fewer connections than `minConnectionsPerPod` per pod on average (or no pod): nothing to do.
    TooFew,
    /// Every pod is within the tolerance of the mean.
    Balanced,
    /// Out of balance, but moves of the last step are still in flight: wait for them.
    InFlight,
    /// Out of balance: these pods shed (none below the mean).
    Shed(Vec<Shed>),
}

/// The pods' mean connections and the largest distance of a pod from it, in percent of the mean
/// (0 when there are no connections).
pub fn spread(pods: &[PodLoad]) -> (f64, i64) {
    if pods.is_empty() {
        return (0.0, 0);
    }
    let total: i64 = pods.iter().map(|p| p.connections).sum();
    let mean = total as f64 / pods.len() as f64;
    if mean <= 0.0 {
        return (mean, 0);
    }
    let worst = pods
        .iter()
        .map(|p| (p.connections as f64 - mean).abs())
        .fold(0.0, f64::max);
    (mean, (worst * 100.0 / mean).round() as i64)
}

/// The next step for `pods` (the serving pods, all of them) under `spec` (see the module docs).
pub fn plan(pods: &[PodLoad], spec: &RebalanceSpec) -> Verdict {
    let total: i64 = pods.iter().map(|p| p.connections).sum();
    let minimum = i64::from(spec.min_connections_per_pod.max(1)) * pods.len() as i64;
    if pods.is_empty() || total < minimum {
        return Verdict::TooFew;
    }
    let (mean, spread) = spread(pods);
    if spread <= i64::from(spec.tolerance_percent) {
        return Verdict::Balanced;
    }
    if pods.iter().any(|p| p.moving > 0) {
        return Verdict::InFlight;
    }
    let share = i64::from(spec.max_share_percent.clamp(1, 100));
    let sheds: Vec<Shed> = pods
        .iter()
        .filter_map(|p| {
            let excess = (p.connections as f64 - mean).floor() as i64;
            let cap = (p.connections * share / 100).max(1);
            let n = excess.min(cap);
            (n > 0).then(|| Shed {
                pod: p.name.clone(),
                connections: n,
                of: p.connections,
            })
        })
        .collect();
    if sheds.is_empty() {
        // Out of tolerance by less than one connection (a small mean): as balanced as whole
        // connections can be.
        return Verdict::Balanced;
    }
    Verdict::Shed(sheds)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn spec(tolerance: i32, share: i32) -> RebalanceSpec {
        RebalanceSpec {
            tolerance_percent: tolerance,
            max_share_percent: share,
            ..RebalanceSpec::default()
        }
    }

    fn loads(connections: &[i64]) -> Vec<PodLoad> {
        connections
            .iter()
            .enumerate()
            .map(|(i, &c)| PodLoad {
                name: format!("p{i}"),
                connections: c,
                moving: 0,
            })
            .collect()
    }

    #[test]
    fn a_fresh_pod_after_a_rollout_gets_a_paced_share() {
        let verdict = plan(&loads(&[150, 150, 0]), &spec(20, 10));
        assert_eq!(
            verdict,
            Verdict::Shed(vec![
                Shed {
                    pod: "p0".into(),
                    connections: 15,
                    of: 150
                },
                Shed {
                    pod: "p1".into(),
                    connections: 15,
                    of: 150
                },
            ])
        );
    }

    #[test]
    fn no_pod_sheds_below_the_mean() {
        // Mean 100: p0 sheds its 20 above it, though half its connections would be allowed.
        let verdict = plan(&loads(&[120, 130, 50]), &spec(20, 50));
        let Verdict::Shed(sheds) = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(
            sheds.iter().map(|s| s.connections).collect::<Vec<_>>(),
            [20, 30]
        );
    }

    #[test]
    fn within_tolerance_too_few_or_in_flight_nothing_moves() {
        assert_eq!(
            plan(&loads(&[110, 90, 100]), &spec(20, 10)),
            Verdict::Balanced
        );
        assert_eq!(plan(&loads(&[9, 0]), &spec(20, 10)), Verdict::TooFew);
        assert_eq!(plan(&[], &spec(20, 10)), Verdict::TooFew);
        let mut pods = loads(&[100, 0]);
        pods[0].moving = 5;
        assert_eq!(plan(&pods, &spec(20, 10)), Verdict::InFlight);
    }

    #[test]
    fn a_pod_low_by_more_than_the_tolerance_counts_too() {
        // Nobody is 20 % above the mean 100, but p3 is 45 % below it.
        let verdict = plan(&loads(&[115, 115, 115, 55]), &spec(20, 10));
        let Verdict::Shed(sheds) = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(sheds.len(), 3);
        assert!(sheds.iter().all(|s| s.connections == 11));
    }

    #[test]
    fn spread_is_the_farthest_pod_in_percent_of_the_mean() {
        assert_eq!(spread(&loads(&[150, 150, 0])), (100.0, 100));
        assert_eq!(spread(&loads(&[0, 0])), (0.0, 0));
    }

    proptest! {
        /// Whatever the loads, a step never takes a pod below the mean nor more than its share;
        /// and moving the shed connections to the emptiest pods (a least-connections Service)
        /// ends within the tolerance in a bounded number of steps.
        #[test]
        fn steps_are_bounded_and_converge(
            start in proptest::collection::vec(0_i64..5_000, 1..8),
            tolerance in 5_i32..50,
            share in 1_i32..100,
        ) {
            let spec = spec(tolerance, share);
            let mut pods = loads(&start);
            for _ in 0..2_000 {
                match plan(&pods, &spec) {
                    Verdict::TooFew | Verdict::Balanced => return Ok(()),
                    Verdict::InFlight => unreachable!("nothing is moving here"),
                    Verdict::Shed(sheds) => {
                        let (mean, _) = spread(&pods);
                        for shed in sheds {
                            let pod = pods.iter_mut().find(|p| p.name == shed.pod).unwrap();
                            prop_assert!(shed.connections >= 1);
                            prop_assert!(shed.connections <= (pod.connections * i64::from(share) / 100).max(1));
                            prop_assert!(pod.connections - shed.connections >= mean.floor() as i64);
                            pod.connections -= shed.connections;
                            for _ in 0..shed.connections {
                                let emptiest = pods.iter_mut().min_by_key(|p| p.connections).unwrap();
                                emptiest.connections += 1;
                            }
                        }
                    }
                }
            }
            prop_assert!(false, "no balance after 2000 steps from {start:?}");
        }
    }
}
