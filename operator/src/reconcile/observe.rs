//! What one reconcile observes of the live cluster: the StatefulSet, the pods with their
//! `/admin/status`, the pods registered in Redis and the topics provisioned.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use tracing::{debug, warn};

use crate::builders::Blueprint;
use crate::context::Context;
use crate::crd::ChatCluster;
use crate::keys::RedisTarget;
use crate::observed::{AdminStatus, PodState, StatefulSetState};
use crate::rollout::Observed;

/// Everything [`crate::rollout::plan`] decides on, and each pod's connections still moving from a
/// rebalancing step. `(redis, admin_token)`: how to reach Redis and
/// the gateways' admin ports.
pub(super) async fn observe(
    cc: &ChatCluster,
    bp: &Blueprint<'_>,
    ctx: &Context,
    stateful_set: Option<&StatefulSet>,
    pods: &[Pod],
    (redis, admin_token): (Option<&RedisTarget>, Option<&str>),
    now: Timestamp,
) -> (Observed, BTreeMap<String, i64>) {
    let sts_name = bp.stateful_set_name();
    let admin = join_all(
        pods.iter()
            .map(|pod| admin_status(ctx, bp, pod, admin_token)),
    )
    .await;
    let moving = pods
        .iter()
        .zip(&admin)
        .filter_map(|(pod, admin)| Some((pod.name_any(), admin.as_ref()?.moving)))
        .collect();
    let pods = pods
        .iter()
        .zip(admin)
        .filter_map(|(pod, admin)| PodState::from_pod(&sts_name, pod, admin))
        .collect();
    let registered_pods = match redis {
        Some(redis) => ctx
            .backends
            .keys
            .servers(redis, bp.key_prefix())
            .await
            .unwrap_or_else(|err| {
                warn!(%err, "reading the registered pods from Redis; treating as none");
                Vec::new()
            }),
        None => Vec::new(),
    };
    let status = cc.status.clone().unwrap_or_default();
    let mut topic_ordinals: Vec<i32> = status
        .topics
        .iter()
        .filter_map(|t| bp.topic_ordinal(t))
        .collect();
    topic_ordinals.sort_unstable();
    topic_ordinals.dedup();
    let observed = Observed {
        desired_replicas: cc.spec.replicas,
        drain_seconds: cc.spec.gateway.drain_seconds,
        stateful_set_name: sts_name,
        stateful_set: stateful_set.map(StatefulSetState::from_stateful_set),
        pods,
        topic_ordinals,
        registered_pods,
        previous: status.rollout,
        now,
    };
    (observed, moving)
}

/// A pod's `/admin/status`, `None` when it has no IP yet or does not answer.
async fn admin_status(
    ctx: &Context,
    bp: &Blueprint<'_>,
    pod: &Pod,
    admin_token: Option<&str>,
) -> Option<AdminStatus> {
    let has_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_ref())
        .is_some();
    if !has_ip {
        return None;
    }
    let name = pod.name_any();
    let url = bp.admin_url(&name);
    match ctx.backends.gateway.status(&url, admin_token).await {
        Ok(status) => Some(status),
        Err(err) => {
            debug!(pod = %name, %err, "admin status unavailable");
            None
        }
    }
}
