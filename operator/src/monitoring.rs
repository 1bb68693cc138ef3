//! The reconcile of `spec.monitoring`: the gateways' PodMonitor applied or deleted, and the
//! `Monitoring` condition saying how that went.
//!
//! Monitoring is an add-on, never a reason to stop running the chat: every failure here (the
//! Prometheus Operator's CRD absent, RBAC refusing the kind) becomes a `False` condition and one
//! Warning Event, and the reconcile goes on. The condition is absent while monitoring is off.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Client, ResourceExt};
use tracing::{debug, info, warn};

use crate::builders::{needs_apply, pod_monitor_resource, Blueprint};
use crate::context::FIELD_MANAGER;
use crate::status::Verdict;

/// Condition type: the PodMonitor of `spec.monitoring.podMonitor` is in place.
pub const MONITORING: &str = "Monitoring";
/// Reason of a `False` [`MONITORING`] condition when the cluster has no PodMonitor CRD.
pub const CRD_MISSING: &str = "PodMonitorCRDMissing";
/// Reason of a `False` [`MONITORING`] condition for any other failure (RBAC, say).
pub const APPLY_FAILED: &str = "PodMonitorFailed";
/// Reason of a `True` [`MONITORING`] condition.
pub const APPLIED: &str = "PodMonitorApplied";

/// Applies the PodMonitor the spec asks for, or deletes one the ChatCluster owns that it no
/// longer asks for. Returns the `Monitoring` verdict, `None` while monitoring is off.
pub async fn reconcile(client: &Client, bp: &Blueprint<'_>, uid: Option<&str>) -> Option<Verdict> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), bp.namespace(), &pod_monitor_resource());
    let name = bp.stateful_set_name();
    let Some(desired) = bp.pod_monitor() else {
        remove_owned(&api, &name, uid).await;
        return None;
    };
    Some(match apply(&api, &desired).await {
        Ok(()) => Verdict {
            type_: MONITORING,
            status: true,
            reason: APPLIED,
            message: format!("PodMonitor {name} scrapes the gateways' admin port /metrics"),
        },
        Err(kube::Error::Api(status)) if status.code == 404 => Verdict {
            type_: MONITORING,
            status: false,
            reason: CRD_MISSING,
            message: "the cluster has no monitoring.coreos.com/v1 PodMonitor kind (is the \
                      Prometheus Operator installed?); the gateways still serve /metrics"
                .into(),
        },
        Err(err) => Verdict {
            type_: MONITORING,
            status: false,
            reason: APPLY_FAILED,
            // Event notes are limited to 1 kB.
            message: format!("applying PodMonitor {name}: {err}")
                .chars()
                .take(900)
                .collect(),
        },
    })
}

async fn apply(api: &Api<DynamicObject>, desired: &DynamicObject) -> kube::Result<()> {
    let name = desired.name_any();
    let live = api.get_opt(&name).await?;
    if needs_apply(live.as_ref(), desired) {
        debug!(%name, "server-side apply of the PodMonitor");
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&name, &params, &Patch::Apply(desired)).await?;
    }
    Ok(())
}

/// Deletes the PodMonitor `name` if the ChatCluster (`uid`) owns it. Failures are only logged:
/// with monitoring off, a cluster without the CRD or without the RBAC for it is normal.
async fn remove_owned(api: &Api<DynamicObject>, name: &str, uid: Option<&str>) {
    let live = match api.get_opt(name).await {
        Ok(live) => live,
        Err(err) => {
            debug!(%err, "looking for a PodMonitor to delete");
            return;
        }
    };
    let owned = live.as_ref().is_some_and(|live| {
        live.owner_references()
            .iter()
            .any(|o| Some(o.uid.as_str()) == uid)
    });
    if owned {
        info!(podmonitor = %name, "deleting the PodMonitor no longer enabled");
        if let Err(err) = api.delete(name, &DeleteParams::background()).await {
            warn!(%err, podmonitor = %name, "deleting the PodMonitor");
        }
    }
}

/// The Warning Event for a failing `verdict`, only when it is news: the old conditions did not
/// already say the same, so a cluster without the CRD gets one Event, not one per reconcile.
pub fn event(old: &[Condition], verdict: Option<&Verdict>) -> Option<Event> {
    let verdict = verdict.filter(|v| !v.status)?;
    let known = old
        .iter()
        .any(|c| c.type_ == MONITORING && c.status == "False" && c.reason == verdict.reason);
    (!known).then(|| Event {
        type_: EventType::Warning,
        reason: verdict.reason.into(),
        note: Some(verdict.message.clone()),
        action: "ApplyPodMonitor".into(),
        secondary: None,
    })
}
