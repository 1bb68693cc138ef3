//! `ChatCluster.status` computed from what the reconciler observed: counts, connections,
//! revisions, the phase and the `Ready` / `Progressing` / `Degraded` conditions.
//!
//! [`compute`] is pure and stable: fed the same cluster twice it returns the same status, and a
//! condition keeps its `lastTransitionTime` until its status flips. Rewriting that time on every
//! reconcile would make each status write trigger the next reconcile, forever.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::crd::{ChatClusterStatus, Phase, RolloutStatus};
use crate::observed::{PodState, StatefulSetState};

/// How long a new pod may take to become Ready before it counts as failing. Above the gateway's
/// startup probe budget (2 s × 60) plus image pull and scheduling time.
pub const POD_START_GRACE: SignedDuration = SignedDuration::from_secs(180);

/// Condition type: every wanted pod is Ready.
pub const READY: &str = "Ready";
/// Condition type: pods are being rolled, added or removed.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: something is wrong that will not fix itself.
pub const DEGRADED: &str = "Degraded";

/// What [`compute`] works from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusInput {
    /// `metadata.generation` of the ChatCluster.
    pub generation: Option<i64>,
    /// `spec.replicas`.
    pub desired_replicas: i32,
    /// The live StatefulSet, if any.
    pub stateful_set: Option<StatefulSetState>,
    /// The gateway pods, terminating ones included.
    pub pods: Vec<PodState>,
    /// [`crate::rollout::Plan::rollout`] of this round.
    pub rollout: Option<RolloutStatus>,
    /// The provisioned inbox topics.
    pub topics: Vec<String>,
    /// Why the last reconcile failed, if it did (shown as `Degraded` / `ReconcileFailed`).
    pub error: Option<String>,
    /// The gateway pods' label selector ([`crate::builders::Blueprint::selector_string`]).
    pub selector: String,
}

/// One condition's verdict, before [`merge_condition`] gives it its transition time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Condition type.
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human-readable detail; kept free of fast-changing numbers so it does not churn.
    pub message: String,
}

/// The status for `input`, given the conditions of the current status (`old`) and the time.
pub fn compute(input: &StatusInput, old: &[Condition], now: Timestamp) -> ChatClusterStatus {
    let view = View::new(input, now);
    let ready = view.ready_verdict();
    let progressing = view.progressing_verdict();
    let degraded = view.degraded_verdict();
    let phase = if degraded.status {
        Phase::Degraded
    } else if progressing.status && progressing.reason != "ScalingUp" {
        Phase::RollingOut
    } else if ready.status {
        Phase::Running
    } else {
        Phase::Pending
    };
    let conditions = [ready, progressing, degraded]
        .into_iter()
        .map(|verdict| merge_condition(old, verdict, input.generation, now))
        .collect();
    let live = || input.pods.iter().filter(|p| !p.deleting);
    ChatClusterStatus {
        replicas: count(live()),
        ready_replicas: count(live().filter(|p| p.ready)),
        connections: input.pods.iter().filter_map(|p| p.connections).sum(),
        phase,
        observed_generation: input.generation,
        current_revision: input
            .stateful_set
            .as_ref()
            .and_then(|s| s.current_revision.clone()),
        update_revision: input
            .stateful_set
            .as_ref()
            .and_then(|s| s.update_revision.clone()),
        conditions,
        topics: input.topics.clone(),
        rollout: input.rollout.clone(),
        selector: Some(input.selector.clone()),
        // The reconciler's rebalancing step fills it in after the rollout's plan.
        rebalance: None,
    }
}

/// The condition for `verdict`: its `lastTransitionTime` is the old one when the old condition of
/// that type had the same status, else `now`.
pub fn merge_condition(
    old: &[Condition],
    verdict: Verdict,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if verdict.status { "True" } else { "False" };
    let last_transition_time = old
        .iter()
        .find(|c| c.type_ == verdict.type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: verdict.type_.to_owned(),
        status: status.to_owned(),
        reason: verdict.reason.to_owned(),
        message: verdict.message,
        observed_generation: generation,
        last_transition_time,
    }
}

fn count<'a>(pods: impl Iterator<Item = &'a PodState>) -> i32 {
    pods.count().try_into().unwrap_or(i32::MAX)
}

/// The facts the conditions are read from.
struct View<'a> {
    input: &'a StatusInput,
    now: Timestamp,
}

impl<'a> View<'a> {
    fn new(input: &'a StatusInput, now: Timestamp) -> Self {
        Self { input, now }
    }

    /// Pods that stay after scaling, not terminating.
    fn survivors(&self) -> impl Iterator<Item = &'a PodState> + '_ {
        let desired = self.input.desired_replicas;
        self.input
            .pods
            .iter()
            .filter(move |p| !p.deleting && p.ordinal < desired)
    }

    fn outdated(&self, p: &PodState) -> bool {
        let update = self
            .input
            .stateful_set
            .as_ref()
            .and_then(|s| s.update_revision.as_ref());
        update.is_some_and(|update| p.revision.as_ref() != Some(update))
    }

    /// Not Ready although nobody is draining, deleting or still starting it.
    fn failing(&self, p: &PodState) -> bool {
        let started = p
            .created
            .is_some_and(|created| self.now.duration_since(created) >= POD_START_GRACE);
        !p.ready && !p.deleting && !p.drain_started() && started
    }

    fn ready_verdict(&self) -> Verdict {
        let desired = self.input.desired_replicas.max(0);
        let ready = count(self.survivors().filter(|p| p.ready));
        Verdict {
            type_: READY,
            status: ready >= desired,
            reason: if ready >= desired {
                "AllPodsReady"
            } else {
                "PodsNotReady"
            },
            message: format!("{ready} of {desired} pods ready"),
        }
    }

    fn progressing_verdict(&self) -> Verdict {
        let desired = self.input.desired_replicas.max(0);
        let survivors: Vec<&PodState> = self.survivors().collect();
        let outdated = survivors
            .iter()
            .filter(|p| self.outdated(p) || p.drain_started())
            .count();
        let sts_replicas = self.input.stateful_set.as_ref().map_or(0, |s| s.replicas);
        let doomed = self
            .input
            .pods
            .iter()
            .any(|p| p.ordinal >= self.input.desired_replicas);
        let starting = count(survivors.iter().copied()) < desired
            || survivors.iter().any(|p| !p.ready && !self.failing(p));
        let rollout = self.input.rollout.as_ref();
        let (status, reason, message) = if outdated > 0 {
            let updated = survivors.len() - outdated;
            let step = rollout.map_or(String::new(), |r| format!("; {} {:?}", r.pod, r.step));
            (
                true,
                "RollingOut",
                format!("{updated} of {desired} pods updated{step}"),
            )
        } else if doomed || sts_replicas > self.input.desired_replicas {
            let step = rollout.map_or(String::new(), |r| format!("; removing {}", r.pod));
            (
                true,
                "ScalingDown",
                format!("scaling down to {desired}{step}"),
            )
        } else if starting {
            (true, "ScalingUp", format!("starting pods for {desired}"))
        } else {
            (false, "UpToDate", format!("{desired} pods up to date"))
        };
        Verdict {
            type_: PROGRESSING,
            status,
            reason,
            message,
        }
    }

    fn degraded_verdict(&self) -> Verdict {
        if let Some(error) = &self.input.error {
            return Verdict {
                type_: DEGRADED,
                status: true,
                reason: "ReconcileFailed",
                message: error.clone(),
            };
        }
        let failing: Vec<&str> = self
            .input
            .pods
            .iter()
            .filter(|p| self.failing(p))
            .map(|p| p.name.as_str())
            .collect();
        if failing.is_empty() {
            Verdict {
                type_: DEGRADED,
                status: false,
                reason: "AsExpected",
                message: "no pod is failing".to_owned(),
            }
        } else {
            Verdict {
                type_: DEGRADED,
                status: true,
                reason: "PodsFailing",
                message: format!(
                    "not Ready for more than {}s: {}",
                    POD_START_GRACE.as_secs(),
                    failing.join(", ")
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests;
