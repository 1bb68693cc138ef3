//! Server-side apply of the objects [`Blueprint::children`] builds, and the deletes of those the
//! spec no longer asks for.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, info};

use super::{exposure, Objects};
use crate::builders::{needs_apply, Blueprint};
use crate::context::FIELD_MANAGER;
use crate::crd::ChatCluster;
use crate::Result;

/// Applies the objects that changed and deletes an Ingress no longer wanted. Returns the live
/// StatefulSet after the apply (`None` before it exists).
pub(super) async fn apply_children(
    cc: &ChatCluster,
    bp: &Blueprint<'_>,
    objects: &Objects,
) -> Result<Option<StatefulSet>> {
    let live_sts = objects
        .stateful_sets
        .get_opt(&bp.stateful_set_name())
        .await?;
    let replicas = live_sts
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    let children = bp.children(replicas);
    apply_object(&objects.config_maps, &children.config_map).await?;
    apply_object(&objects.services, &children.headless_service).await?;
    apply_object(&objects.services, &children.service).await?;
    let sts = if needs_apply(live_sts.as_ref(), &children.stateful_set) {
        exposure::warn_ignored_env(bp);
        Some(server_side_apply(&objects.stateful_sets, &children.stateful_set).await?)
    } else {
        live_sts
    };
    apply_object(
        &objects.pod_disruption_budgets,
        &children.pod_disruption_budget,
    )
    .await?;
    match &children.ingress {
        Some(ingress) => {
            apply_object(&objects.ingresses, ingress).await?;
        }
        None => {
            let name = bp.stateful_set_name();
            if let Some(live) = objects.ingresses.get_opt(&name).await? {
                if owned_by(&live, cc) {
                    info!(ingress = %name, "deleting the Ingress spec.ingress no longer asks for");
                    delete_ignoring_absent(&objects.ingresses, &name).await?;
                }
            }
        }
    }
    match &children.network_policy {
        Some(policy) => apply_object(&objects.network_policies, policy).await?,
        None => {
            let name = bp.stateful_set_name();
            if let Some(live) = objects.network_policies.get_opt(&name).await? {
                if owned_by(&live, cc) {
                    info!(policy = %name, "deleting the NetworkPolicy no longer enabled");
                    delete_ignoring_absent(&objects.network_policies, &name).await?;
                }
            }
        }
    }
    Ok(sts)
}

/// Applies `desired` when [`needs_apply`] says the live object differs.
pub(super) async fn apply_object<K>(api: &Api<K>, desired: &K) -> Result<()>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let live = api.get_opt(&desired.name_any()).await?;
    if needs_apply(live.as_ref(), desired) {
        server_side_apply(api, desired).await?;
    }
    Ok(())
}

/// Server-side apply with the operator's field manager, forcing ownership: the operator is the
/// only writer of these objects' spec, and a conflict would only stall the cluster.
pub(super) async fn server_side_apply<K>(api: &Api<K>, desired: &K) -> Result<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = desired.name_any();
    debug!(kind = %std::any::type_name::<K>(), %name, "server-side apply");
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(desired)).await?)
}

pub(super) async fn delete_ignoring_absent<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// Whether `object` is owned by `cc` (never delete a user's object that only shares the name).
pub(super) fn owned_by<K: Resource>(object: &K, cc: &ChatCluster) -> bool {
    let Some(uid) = cc.uid() else {
        return false;
    };
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.uid == uid)
}
