//! The execution of the one [`Action`] a reconcile's plan chose.

use kube::api::{Patch, PatchParams};
use tracing::info;

use super::children::{delete_ignoring_absent, server_side_apply};
use super::Objects;
use crate::builders::Blueprint;
use crate::context::Context;
use crate::crd::ChatCluster;
use crate::keys::RedisTarget;
use crate::observed::drain_deadline_patch;
use crate::rollout::{drain_seconds_left, Action, Observed};
use crate::{metrics, secrets, Error, Result};

/// The execution of one planned action.
pub(super) struct Step<'a> {
    pub(super) ctx: &'a Context,
    pub(super) cc: &'a ChatCluster,
    pub(super) bp: &'a Blueprint<'a>,
    pub(super) objects: &'a Objects,
    pub(super) observed: &'a Observed,
    pub(super) redis: Option<&'a RedisTarget>,
    /// The gateways' admin token, sent on the drain calls.
    pub(super) admin_token: Option<&'a str>,
}

impl Step<'_> {
    /// Executes `action`, keeping `topics` (`status.topics`) up to date with what was done, even
    /// when a later part of the action fails.
    pub(super) async fn execute(&self, action: &Action, topics: &mut Vec<String>) -> Result<()> {
        if !action.is_wait() {
            info!(%action, "executing");
            ::metrics::counter!(metrics::ACTIONS, "action" => action.reason()).increment(1);
        }
        let pulsar = &self.cc.spec.pulsar;
        match action {
            Action::CreateTopics { ordinals } => {
                let admin = &self.ctx.backends.pulsar;
                let endpoint = secrets::pulsar_admin(self.cc, &self.objects.secrets).await?;
                admin
                    .ensure_namespace(&endpoint, &pulsar.tenant, &pulsar.namespace)
                    .await?;
                for &n in ordinals {
                    let topic = self.bp.topic(n);
                    admin.create_topic(&endpoint, &topic).await?;
                    if !topics.contains(&topic) {
                        topics.push(topic);
                    }
                    topics.sort_by_key(|t| (self.bp.topic_ordinal(t), t.clone()));
                }
            }
            Action::DeleteTopics { ordinals } => {
                let endpoint = secrets::pulsar_admin(self.cc, &self.objects.secrets).await?;
                for &n in ordinals {
                    let topic = self.bp.topic(n);
                    self.ctx
                        .backends
                        .pulsar
                        .delete_topic(&endpoint, &topic)
                        .await?;
                    topics.retain(|t| *t != topic);
                }
            }
            Action::ScaleStatefulSet { replicas } => {
                let sts = self.bp.stateful_set(*replicas);
                server_side_apply(&self.objects.stateful_sets, &sts).await?;
            }
            Action::DrainPod { pod, deadline } => {
                let recorded = self
                    .observed
                    .pods
                    .iter()
                    .find(|p| p.name == *pod)
                    .and_then(|p| p.drain_deadline);
                // The deadline goes on the pod first: a restarted operator reads it back and
                // carries on with the same drain.
                if recorded != Some(*deadline) {
                    self.objects
                        .pods
                        .patch(
                            pod,
                            &PatchParams::default(),
                            &Patch::Merge(drain_deadline_patch(*deadline)),
                        )
                        .await?;
                }
                let seconds = drain_seconds_left(*deadline, self.observed.now);
                self.ctx
                    .backends
                    .gateway
                    .drain(&self.bp.admin_url(pod), seconds, self.admin_token)
                    .await?;
            }
            Action::DeletePod { pod } => {
                delete_ignoring_absent(&self.objects.pods, pod).await?;
            }
            Action::CleanupRedisKeys { pods } => {
                let redis = self.redis.ok_or_else(|| Error::RedisUrl {
                    cluster: self.bp.name().to_owned(),
                })?;
                self.ctx
                    .backends
                    .keys
                    .remove_pods(redis, self.bp.key_prefix(), pods)
                    .await?;
            }
            Action::Steady
            | Action::WaitStatefulSet
            | Action::WaitDrained { .. }
            | Action::WaitDeleted { .. }
            | Action::WaitReady { .. } => {}
        }
        Ok(())
    }
}
