//! The rollout and scaling state machine (DESIGN §8), as one pure function: [`plan`] looks at what
//! the cluster is ([`Observed`]) and says the one thing to do next ([`Action`]) and what to show in
//! `status.rollout`.
//!
//! Rules:
//! - **Topics before pods.** The inbox topic of every wanted ordinal exists before the StatefulSet
//!   grows to it.
//! - **Scale-up** just raises the StatefulSet's replicas.
//! - **Scale-down** drains the highest ordinal, then shrinks the StatefulSet by that one pod, and
//!   so on down to `spec.replicas`; the topics and Redis keys of an ordinal are deleted once its
//!   pod is gone.
//! - **Rollout:** pods not on the StatefulSet's update revision, highest ordinal first, one at a
//!   time: drain (`POST /admin/drain`) → wait for `connections == 0` or the deadline → delete →
//!   wait for the new pod to be Ready → next. Pods that are already unready go first and without
//!   waiting: taking them out costs no capacity, and it lets a fix roll over a broken revision.
//! - A pod whose drain has begun never serves again (a draining gateway stays unready), so it is
//!   replaced whatever its revision.
//!
//! The state lives in the cluster, not in the operator: the revision label and `deletionTimestamp`
//! of each pod, its drain deadline (the [`DRAIN_DEADLINE_ANNOTATION`] written before the drain
//! call) and its `/admin/status`. A restarted operator therefore carries on where the last one
//! stopped, and a step that failed is simply planned again; the reconciler retries it after
//! [`retry_backoff`].
//!
//! [`DRAIN_DEADLINE_ANNOTATION`]: crate::observed::DRAIN_DEADLINE_ANNOTATION

use std::fmt;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::crd::{RolloutStatus, RolloutStep};
use crate::observed::{ordinal_of, PodState, StatefulSetState};

/// How often a drain is polled (`/admin/status`) while connections move away.
pub const DRAIN_POLL: Duration = Duration::from_secs(2);
/// How often a wait for the StatefulSet controller or the kubelet is re-checked; pod and
/// StatefulSet watches usually wake the reconciler sooner.
pub const WAIT_POLL: Duration = Duration::from_secs(5);
/// How soon to look again after an action, to see its effect and plan the next one.
pub const ACTION_REQUEUE: Duration = Duration::from_secs(1);
/// First retry delay of a failed step; doubles with each further failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay: a minute keeps a rollout moving soon after a backend comes back.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What the reconciler observed this round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `spec.replicas` of the ChatCluster.
    pub desired_replicas: i32,
    /// `spec.gateway.drainSeconds`: the deadline given to a pod's drain.
    pub drain_seconds: i32,
    /// Name of the StatefulSet (`<cc>-gateway`), to recognise pod names in Redis.
    pub stateful_set_name: String,
    /// The live StatefulSet; `None` before it exists.
    pub stateful_set: Option<StatefulSetState>,
    /// The StatefulSet's pods, terminating ones included.
    pub pods: Vec<PodState>,
    /// Ordinals whose inbox topic is provisioned (from `status.topics`).
    pub topic_ordinals: Vec<i32>,
    /// Pods registered in Redis (members of `{prefix}:servers`).
    pub registered_pods: Vec<String>,
    /// `status.rollout` as last written.
    pub previous: Option<RolloutStatus>,
    /// The current time.
    pub now: Timestamp,
}

/// The next step. Executing one and planning again (immediately or after
/// [`Action::requeue_after`]) walks a rollout or a scale to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do: every pod is where it should be (or is starting on its own).
    Steady,
    /// Create the inbox topics of these ordinals (409 from Pulsar = already there), then add them
    /// to `status.topics`.
    CreateTopics {
        /// Ordinals without a topic, ascending.
        ordinals: Vec<i32>,
    },
    /// The StatefulSet is missing, or its status does not yet describe its spec: wait for the
    /// StatefulSet controller.
    WaitStatefulSet,
    /// Apply the StatefulSet with this many replicas.
    ScaleStatefulSet {
        /// The new `spec.replicas` of the StatefulSet.
        replicas: i32,
    },
    /// Annotate the pod with the deadline ([`crate::observed::DRAIN_DEADLINE_ANNOTATION`]), then
    /// `POST /admin/drain {"deadlineSeconds": …}` ([`drain_seconds_left`]). Both are idempotent:
    /// a gateway keeps the earlier of two deadlines.
    DrainPod {
        /// The pod to drain.
        pod: String,
        /// When the pod closes what is left.
        deadline: Timestamp,
    },
    /// The pod is draining and still has connections: poll again.
    WaitDrained {
        /// The draining pod.
        pod: String,
        /// Its drain deadline.
        deadline: Timestamp,
    },
    /// Delete the pod (its SIGTERM drain has nothing left to do); the StatefulSet controller
    /// recreates it on the update revision.
    DeletePod {
        /// The pod to delete.
        pod: String,
    },
    /// The pod is terminating: wait for it to be gone.
    WaitDeleted {
        /// The terminating pod.
        pod: String,
    },
    /// The pod (a replacement, or one that is missing) is not Ready yet: wait before taking
    /// another Ready pod out of service.
    WaitReady {
        /// The pod waited for.
        pod: String,
    },
    /// Delete the inbox topics of these removed ordinals, then drop them from `status.topics`.
    DeleteTopics {
        /// Ordinals whose pods are gone, ascending.
        ordinals: Vec<i32>,
    },
    /// Delete `{prefix}:pod:{pod}` and remove the pod from `{prefix}:servers`, for pods that are
    /// gone for good.
    CleanupRedisKeys {
        /// Names of the removed pods, by ordinal.
        pods: Vec<String>,
    },
}

impl Action {
    /// Whether this only waits: nothing to execute.
    pub fn is_wait(&self) -> bool {
        matches!(
            self,
            Self::Steady
                | Self::WaitStatefulSet
                | Self::WaitDrained { .. }
                | Self::WaitDeleted { .. }
                | Self::WaitReady { .. }
        )
    }

    /// When to plan again after this action succeeded. `None` for [`Action::Steady`]: the
    /// reconciler's periodic resync is enough.
    pub fn requeue_after(&self, now: Timestamp) -> Option<Duration> {
        match self {
            Self::Steady => None,
            Self::WaitDrained { deadline, .. } => {
                let left = Duration::try_from(deadline.duration_since(now)).unwrap_or_default();
                Some(left.clamp(Duration::from_millis(100), DRAIN_POLL))
            }
            Self::WaitStatefulSet | Self::WaitDeleted { .. } | Self::WaitReady { .. } => {
                Some(WAIT_POLL)
            }
            _ => Some(ACTION_REQUEUE),
        }
    }

    /// A CamelCase reason for the Kubernetes Event telling this step.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Steady => "Steady",
            Self::CreateTopics { .. } => "CreatingTopics",
            Self::WaitStatefulSet => "WaitingForStatefulSet",
            Self::ScaleStatefulSet { .. } => "Scaling",
            Self::DrainPod { .. } => "DrainingPod",
            Self::WaitDrained { .. } => "WaitingForDrain",
            Self::DeletePod { .. } => "DeletingPod",
            Self::WaitDeleted { .. } => "WaitingForPodDeletion",
            Self::WaitReady { .. } => "WaitingForPodReady",
            Self::DeleteTopics { .. } => "DeletingTopics",
            Self::CleanupRedisKeys { .. } => "CleaningRedisKeys",
        }
    }
}

impl fmt::Display for Action {
    /// A sentence for Events and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Steady => write!(f, "nothing to do"),
            Self::CreateTopics { ordinals } => {
                write!(f, "creating topics of ordinals {ordinals:?}")
            }
            Self::WaitStatefulSet => write!(f, "waiting for the StatefulSet controller"),
            Self::ScaleStatefulSet { replicas } => {
                write!(f, "scaling the StatefulSet to {replicas}")
            }
            Self::DrainPod { pod, deadline } => write!(f, "draining {pod} until {deadline}"),
            Self::WaitDrained { pod, deadline } => {
                write!(f, "waiting for {pod} to drain (deadline {deadline})")
            }
            Self::DeletePod { pod } => write!(f, "deleting pod {pod}"),
            Self::WaitDeleted { pod } => write!(f, "waiting for {pod} to terminate"),
            Self::WaitReady { pod } => write!(f, "waiting for {pod} to be Ready"),
            Self::DeleteTopics { ordinals } => {
                write!(f, "deleting topics of ordinals {ordinals:?}")
            }
            Self::CleanupRedisKeys { pods } => write!(f, "deleting Redis keys of {pods:?}"),
        }
    }
}

/// The outcome of [`plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The next step.
    pub action: Action,
    /// What `status.rollout` should say once the step is done; `None` when no pod is being
    /// replaced or removed.
    pub rollout: Option<RolloutStatus>,
}

/// Decides the next step. Pure and idempotent: planning twice over the same observation gives the
/// same plan, so a step that failed is retried by planning again.
pub fn plan(o: &Observed) -> Plan {
    let missing_topics: Vec<i32> = (0..o.desired_replicas.max(0))
        .filter(|n| !o.topic_ordinals.contains(n))
        .collect();
    if !missing_topics.is_empty() {
        return Plan {
            action: Action::CreateTopics {
                ordinals: missing_topics,
            },
            rollout: o.previous.clone(),
        };
    }
    let Some(sts) = o.stateful_set.as_ref().filter(|s| s.settled) else {
        return Plan {
            action: Action::WaitStatefulSet,
            rollout: o.previous.clone(),
        };
    };
    if o.desired_replicas > sts.replicas {
        return Plan {
            action: Action::ScaleStatefulSet {
                replicas: o.desired_replicas,
            },
            rollout: o.previous.clone(),
        };
    }
    let (action, rollout) = Round::new(o, sts).progress();
    if action.is_wait() {
        if let Some(cleanup) = cleanup(o, sts) {
            return Plan {
                action: cleanup,
                rollout,
            };
        }
    }
    Plan { action, rollout }
}

/// Seconds to put in `POST /admin/drain {"deadlineSeconds": …}` for a deadline: rounded up, at
/// least 1 (0 would mean "close everything now").
pub fn drain_seconds_left(deadline: Timestamp, now: Timestamp) -> u64 {
    let millis = deadline.duration_since(now).as_millis().max(1);
    u64::try_from((millis + 999) / 1000).unwrap_or(1)
}

/// Delay before retrying a step that failed `failures` times in a row (1 → [`BACKOFF_BASE`],
/// doubling, capped at [`BACKOFF_MAX`]).
pub fn retry_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

/// One planning round over the pods.
struct Round<'a> {
    o: &'a Observed,
    sts: &'a StatefulSetState,
    /// Survivors on the update revision, for `status.rollout.updated`.
    updated: i32,
}

impl<'a> Round<'a> {
    fn new(o: &'a Observed, sts: &'a StatefulSetState) -> Self {
        let updated = o
            .pods
            .iter()
            .filter(|p| !p.deleting && p.ordinal < o.desired_replicas && on_revision(sts, p))
            .count();
        Self {
            o,
            sts,
            updated: updated.try_into().unwrap_or(i32::MAX),
        }
    }

    /// A pod that is not terminating and stays after scaling.
    fn survivor(&self, p: &PodState) -> bool {
        !p.deleting && p.ordinal < self.o.desired_replicas
    }

    fn on_update_revision(&self, p: &PodState) -> bool {
        on_revision(self.sts, p)
    }

    fn record(&self, pod: &str, step: RolloutStep) -> Option<RolloutStatus> {
        Some(RolloutStatus {
            pod: pod.to_owned(),
            step,
            updated: self.updated,
        })
    }

    fn progress(&self) -> (Action, Option<RolloutStatus>) {
        let pods = &self.o.pods;
        // One pod out at a time: whatever is terminating finishes first.
        if let Some(p) = pods.iter().filter(|p| p.deleting).max_by_key(|p| p.ordinal) {
            return (
                Action::WaitDeleted {
                    pod: p.name.clone(),
                },
                self.record(&p.name, RolloutStep::Deleting),
            );
        }
        // Pods above the StatefulSet's replicas are the StatefulSet controller's to remove.
        if let Some(p) = pods
            .iter()
            .filter(|p| p.ordinal >= self.sts.replicas)
            .max_by_key(|p| p.ordinal)
        {
            return (
                Action::WaitDeleted {
                    pod: p.name.clone(),
                },
                self.record(&p.name, RolloutStep::Deleting),
            );
        }
        // A drain in flight (this operator's, a previous one's, or anyone's) is finished first.
        if let Some(p) = pods
            .iter()
            .filter(|p| self.survivor(p) && p.drain_started())
            .max_by_key(|p| p.ordinal)
        {
            return self.drain(
                p,
                Action::DeletePod {
                    pod: p.name.clone(),
                },
            );
        }
        if self.sts.replicas > self.o.desired_replicas {
            return self.scale_down();
        }
        self.roll()
    }

    /// The highest survivor that is not Ready and not itself being replaced (a fresh replacement,
    /// or a pod the StatefulSet controller has not created yet): taking a Ready pod out of service
    /// must wait for it.
    fn blocker(&self) -> Option<String> {
        let wanted = self.o.desired_replicas.min(self.sts.replicas);
        (0..wanted)
            .rev()
            .find_map(|n| match self.o.pods.iter().find(|p| p.ordinal == n) {
                None => Some(format!("{}-{n}", self.o.stateful_set_name)),
                Some(p) if !p.ready && self.on_update_revision(p) => Some(p.name.clone()),
                Some(_) => None,
            })
    }

    fn wait_ready(&self, pod: String) -> (Action, Option<RolloutStatus>) {
        let rollout = self.record(&pod, RolloutStep::WaitingReady);
        (Action::WaitReady { pod }, rollout)
    }

    /// Drains the highest doomed pod, then shrinks the StatefulSet past it.
    fn scale_down(&self) -> (Action, Option<RolloutStatus>) {
        let top = self
            .o
            .pods
            .iter()
            .filter(|p| p.ordinal >= self.o.desired_replicas)
            .max_by_key(|p| p.ordinal);
        let Some(p) = top else {
            // The doomed ordinals have no pods: nothing to drain.
            return (
                Action::ScaleStatefulSet {
                    replicas: self.o.desired_replicas,
                },
                None,
            );
        };
        if self.sts.replicas > p.ordinal + 1 {
            // Ordinals above it have no pods: drop them first.
            return (
                Action::ScaleStatefulSet {
                    replicas: p.ordinal + 1,
                },
                None,
            );
        }
        if p.ready && !p.drain_started() {
            if let Some(blocker) = self.blocker() {
                return self.wait_ready(blocker);
            }
        }
        self.drain(
            p,
            Action::ScaleStatefulSet {
                replicas: p.ordinal,
            },
        )
    }

    /// Replaces the next survivor that is not on the update revision.
    fn roll(&self) -> (Action, Option<RolloutStatus>) {
        let target = self
            .o
            .pods
            .iter()
            .filter(|p| self.survivor(p) && !self.on_update_revision(p))
            .max_by_key(|p| (!p.ready, p.ordinal));
        let blocker = self.blocker();
        match (target, blocker) {
            (Some(p), Some(blocker)) if p.ready => self.wait_ready(blocker),
            (Some(p), _) => self.drain(
                p,
                Action::DeletePod {
                    pod: p.name.clone(),
                },
            ),
            // The last replacement of a rollout still starting: the rollout ends when it is Ready.
            (None, Some(blocker)) if self.o.previous.is_some() => self.wait_ready(blocker),
            (None, _) => (Action::Steady, None),
        }
    }

    /// The drain of `p`, ending with `finish` (delete the pod, or shrink the StatefulSet past it).
    fn drain(&self, p: &PodState, finish: Action) -> (Action, Option<RolloutStatus>) {
        let finished = (finish, self.record(&p.name, RolloutStep::Deleting));
        let draining = |action| (action, self.record(&p.name, RolloutStep::Draining));
        if p.connections == Some(0) {
            // Nothing to move. A connection arriving after this observation still gets DRAIN
            // from the gateway's own SIGTERM handling.
            return finished;
        }
        match p.drain_deadline {
            // Not running or not answering, and not serving: nothing reachable to drain.
            None if !p.ready && p.connections.is_none() => finished,
            None => {
                let deadline = self.o.now + SignedDuration::from_secs(self.o.drain_seconds.into());
                draining(Action::DrainPod {
                    pod: p.name.clone(),
                    deadline,
                })
            }
            Some(deadline) if self.o.now >= deadline => finished,
            // The deadline is recorded but the gateway is not draining: the drain call was lost
            // or the container restarted. Ask again for the same deadline.
            Some(deadline) if p.draining == Some(false) => draining(Action::DrainPod {
                pod: p.name.clone(),
                deadline,
            }),
            Some(deadline) => draining(Action::WaitDrained {
                pod: p.name.clone(),
                deadline,
            }),
        }
    }
}

/// Whether `p` is on the StatefulSet's update revision. True when the StatefulSet has not said its
/// update revision yet: then no pod is rolled.
fn on_revision(sts: &StatefulSetState, p: &PodState) -> bool {
    match &sts.update_revision {
        Some(revision) => p.revision.as_ref() == Some(revision),
        None => true,
    }
}

/// Topics and Redis keys of ordinals that are gone for good: above the wanted replicas, above the
/// StatefulSet's replicas, and without a pod (not even a terminating one).
fn cleanup(o: &Observed, sts: &StatefulSetState) -> Option<Action> {
    let gone = |n: i32| {
        n >= o.desired_replicas && n >= sts.replicas && o.pods.iter().all(|p| p.ordinal != n)
    };
    let mut topics: Vec<i32> = o
        .topic_ordinals
        .iter()
        .copied()
        .filter(|&n| gone(n))
        .collect();
    if !topics.is_empty() {
        topics.sort_unstable();
        topics.dedup();
        return Some(Action::DeleteTopics { ordinals: topics });
    }
    let mut stale: Vec<(i32, &String)> = o
        .registered_pods
        .iter()
        .filter_map(|name| Some((ordinal_of(&o.stateful_set_name, name)?, name)))
        .filter(|&(n, _)| gone(n))
        .collect();
    if stale.is_empty() {
        return None;
    }
    stale.sort_unstable();
    Some(Action::CleanupRedisKeys {
        pods: stale.into_iter().map(|(_, name)| name.clone()).collect(),
    })
}

#[cfg(test)]
mod tests;
