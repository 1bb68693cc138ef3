//! The finalizer's cleanup of a deleted ChatCluster: stop the gateways, then delete the topics and
//! the Redis keys, then release the finalizer.

use std::collections::BTreeSet;

use kube::runtime::controller::Action as Requeue;
use tracing::{info, warn};

use super::children::{delete_ignoring_absent, owned_by};
use super::events::{normal, publish};
use super::Objects;
use crate::builders::Blueprint;
use crate::context::Context;
use crate::crd::ChatCluster;
use crate::{metrics, secrets, Error, Result};

/// The finalizer's cleanup of a deleted ChatCluster (see the module docs).
pub(super) async fn cleanup(cc: &ChatCluster, ctx: &Context) -> Result<Requeue> {
    let bp = Blueprint::new(cc)?;
    let objects = Objects::new(ctx, bp.namespace());
    let sts_name = bp.stateful_set_name();
    if let Some(sts) = objects.stateful_sets.get_opt(&sts_name).await? {
        if sts.metadata.deletion_timestamp.is_none() && owned_by(&sts, cc) {
            info!(statefulset = %sts_name, "stopping the gateways before deleting topics and keys");
            delete_ignoring_absent(&objects.stateful_sets, &sts_name).await?;
            let note =
                format!("deleting {sts_name}; topics and Redis keys go once its pods stopped");
            publish(ctx, cc, normal("StoppingGateways", note)).await;
        }
    }
    let pods = objects.gateway_pods(&bp).await?;
    if !pods.is_empty() {
        return Err(Error::CleanupWaiting { pods: pods.len() });
    }
    let endpoint = match secrets::pulsar_admin(cc, &objects.secrets).await {
        Ok(endpoint) => Some(endpoint),
        // As with Redis below: a Secret that went first must not hold the ChatCluster forever.
        Err(err @ Error::SecretMissing { .. }) => {
            warn!(%err, "leaving the Pulsar topics");
            None
        }
        Err(err) => return Err(err),
    };
    let mut topics: BTreeSet<String> = cc
        .status
        .iter()
        .flat_map(|s| s.topics.iter().cloned())
        .collect();
    topics.extend(bp.topics(cc.spec.replicas));
    if let Some(endpoint) = &endpoint {
        for topic in &topics {
            ctx.backends.pulsar.delete_topic(endpoint, topic).await?;
        }
    } else {
        topics.clear();
    }
    let redis = match secrets::redis_target(cc, &objects.secrets).await {
        Err(Error::SecretMissing { .. }) => None,
        other => other?,
    };
    let keys = match redis {
        Some(redis) => {
            ctx.backends
                .keys
                .delete_prefix(&redis, bp.key_prefix())
                .await?
        }
        None => {
            // The Secret went first (a namespace being deleted): waiting for it would hold the
            // ChatCluster, and the namespace, forever.
            warn!("no Redis URL (its Secret is gone); leaving the Redis keys");
            0
        }
    };
    metrics::forget_cluster(bp.namespace(), bp.name());
    let note = format!(
        "deleted {} topics and {keys} Redis keys under {}:",
        topics.len(),
        bp.key_prefix()
    );
    info!(%note, "cleanup done; releasing the finalizer");
    publish(ctx, cc, normal("CleanedUp", note)).await;
    Ok(Requeue::await_change())
}
