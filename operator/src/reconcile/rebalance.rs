//! The rebalancing step of a reconcile: reads the spread from the pods' admin status, asks the
//! busiest pods to move connections ([`crate::rebalance::plan`]), and reports it in
//! `status.rebalance` and Events (`Rebalancing`, `Balanced`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use super::events::{event_action, publish, truncate};
use crate::builders::Blueprint;
use crate::context::Context;
use crate::crd::{ChatCluster, PodConnections, RebalancePhase, RebalanceStatus};
use crate::rebalance::{plan, spread, PodLoad, Verdict};
use crate::rollout::Observed;

/// How soon to look again while the last step's connections are still moving.
const IN_FLIGHT_POLL: Duration = Duration::from_secs(2);

/// What the step leaves: `status.rebalance`, and when to look again (`None`: the usual resync).
pub(super) struct Outcome {
    pub(super) status: Option<RebalanceStatus>,
    pub(super) requeue: Option<Duration>,
}

/// The cluster and where to reach its gateways.
pub(super) struct Cluster<'a> {
    pub(super) ctx: &'a Context,
    pub(super) cc: &'a ChatCluster,
    pub(super) bp: &'a Blueprint<'a>,
    pub(super) admin_token: Option<&'a str>,
}

/// One rebalancing step. `steady`: the rollout's plan had nothing to do (no rollout, scale or
/// drain running, nothing failed); only then do connections move. `moving`: each pod's
/// connections still moving from an earlier step, from its admin status.
pub(super) async fn step(
    cluster: &Cluster<'_>,
    observed: &Observed,
    moving: &BTreeMap<String, i64>,
    steady: bool,
) -> Outcome {
    let Cluster { cc, .. } = *cluster;
    let spec = &cc.spec.rebalance;
    if !spec.enabled {
        return Outcome {
            status: None,
            requeue: None,
        };
    }
    let previous = cc.status.as_ref().and_then(|s| s.rebalance.clone());
    let loads = serving(observed, moving);
    let shown = loads.clone().unwrap_or_else(|| {
        observed
            .pods
            .iter()
            .filter(|p| !p.deleting)
            .filter_map(|p| {
                Some(PodLoad {
                    name: p.name.clone(),
                    connections: p.connections?,
                    moving: 0,
                })
            })
            .collect()
    });
    let (mean, spread_percent) = spread(&shown);
    let mut status = RebalanceStatus {
        phase: RebalancePhase::Paused,
        spread_percent,
        pods: shown
            .iter()
            .map(|p| PodConnections {
                pod: p.name.clone(),
                connections: p.connections,
            })
            .collect(),
        last_step: previous.as_ref().and_then(|p| p.last_step.clone()),
        last_step_time: previous.as_ref().and_then(|p| p.last_step_time.clone()),
    };
    let Some(loads) = loads.filter(|_| steady) else {
        return Outcome {
            status: Some(status),
            requeue: None,
        };
    };
    let was_rebalancing = previous.is_some_and(|p| p.phase == RebalancePhase::Rebalancing);
    let verdict = plan(&loads, spec);
    let sheds = match verdict {
        Verdict::TooFew | Verdict::Balanced => {
            status.phase = RebalancePhase::Balanced;
            if was_rebalancing {
                let note = format!(
                    "every pod within {}% of the mean of {mean:.0} connections (spread {spread_percent}%)",
                    spec.tolerance_percent
                );
                info!(%note, "balanced");
                publish(cluster.ctx, cc, normal("Balanced", &note)).await;
            }
            return Outcome {
                status: Some(status),
                requeue: None,
            };
        }
        Verdict::InFlight => {
            status.phase = RebalancePhase::Rebalancing;
            return Outcome {
                status: Some(status),
                requeue: Some(IN_FLIGHT_POLL),
            };
        }
        Verdict::Shed(sheds) => sheds,
    };
    status.phase = RebalancePhase::Rebalancing;
    let interval = Duration::from_secs(u64::try_from(spec.interval_seconds.max(1)).unwrap_or(1));
    let since_last = status.last_step_time.as_ref().map(|t| {
        let elapsed = observed.now.duration_since(t.0);
        Duration::try_from(elapsed).unwrap_or(Duration::ZERO)
    });
    if let Some(since) = since_last.filter(|since| *since < interval) {
        return Outcome {
            status: Some(status),
            requeue: Some(interval - since),
        };
    }
    let pace = u64::try_from(cc.spec.gateway.drain_seconds.max(1)).unwrap_or(1);
    let mut asked = Vec::new();
    for shed in &sheds {
        let url = cluster.bp.admin_url(&shed.pod);
        let count = u64::try_from(shed.connections).unwrap_or(0);
        match cluster
            .ctx
            .backends
            .gateway
            .rebalance(&url, count, pace, cluster.admin_token)
            .await
        {
            Ok(told) => asked.push(format!(
                "asked {} to move {told} of {} connections",
                shed.pod, shed.of
            )),
            Err(err) => warn!(pod = %shed.pod, %err, "asking a pod to rebalance"),
        }
    }
    if asked.is_empty() {
        return Outcome {
            status: Some(status),
            requeue: Some(interval),
        };
    }
    let note = format!(
        "{} (mean {mean:.0}, spread {spread_percent}%)",
        asked.join("; ")
    );
    info!(%note, "rebalancing");
    publish(cluster.ctx, cc, normal("Rebalancing", &note)).await;
    status.last_step = Some(truncate(&note));
    status.last_step_time = Some(Time(observed.now));
    Outcome {
        status: Some(status),
        requeue: Some(interval),
    }
}

/// The pods' loads when the cluster is fully serving: exactly `spec.replicas` pods, each Ready,
/// not terminating, not draining and answering its admin status. `None` otherwise.
fn serving(observed: &Observed, moving: &BTreeMap<String, i64>) -> Option<Vec<PodLoad>> {
    let live: Vec<_> = observed.pods.iter().filter(|p| !p.deleting).collect();
    if live.len() != usize::try_from(observed.desired_replicas).unwrap_or(0) {
        return None;
    }
    live.into_iter()
        .map(|p| {
            let serving = p.ready && p.draining == Some(false) && p.drain_deadline.is_none();
            serving.then_some(())?;
            Some(PodLoad {
                name: p.name.clone(),
                connections: p.connections?,
                moving: moving.get(&p.name).copied().unwrap_or(0),
            })
        })
        .collect()
}

fn normal(reason: &str, note: &str) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(truncate(note)),
        // One action per note: the recorder folds Events of one action into a series that keeps
        // its first note.
        action: event_action(reason, note),
        secondary: None,
    }
}
