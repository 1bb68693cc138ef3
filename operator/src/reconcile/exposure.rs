//! The reconcile's optional extras around the core objects: the Gateway API `HTTPRoute` (whose
//! CRDs a cluster may lack) and the warning about `spec.pod.env` entries the operator overrides.

use kube::api::{Api, DynamicObject};
use kube::runtime::events::{Event, EventType};
use tracing::{info, warn};

use super::children::{apply_object, delete_ignoring_absent, owned_by};
use super::events::{publish, truncate};
use crate::builders::{http_route_resource, Blueprint};
use crate::context::Context;
use crate::crd::ChatCluster;
use crate::{Error, Result};

/// `reason` of the Warning Event published when the apiserver does not serve HTTPRoutes.
pub const HTTP_ROUTE_UNAVAILABLE: &str = "HTTPRouteUnavailable";

/// Applies the HTTPRoute `spec.httpRoute` asks for, or deletes the operator's own when it no
/// longer asks. The Gateway API CRDs are optional: when the apiserver does not serve HTTPRoutes
/// (404), a Warning Event says so and the reconcile carries on — the rest of the cluster does not
/// depend on the route.
pub(super) async fn reconcile_http_route(
    ctx: &Context,
    cc: &ChatCluster,
    bp: &Blueprint<'_>,
    route: Option<&DynamicObject>,
) -> Result<()> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), bp.namespace(), &http_route_resource());
    let result = match route {
        Some(route) => apply_object(&api, route).await,
        None => remove_unwanted(&api, cc, bp).await,
    };
    match result {
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 404 => {
            if route.is_some() {
                let note = format!(
                    "spec.httpRoute is set but the API server serves no \
                     gateway.networking.k8s.io/v1 HTTPRoute (install the Gateway API CRDs): \
                     {}; the cluster runs without the route",
                    status.message
                );
                warn!(%note);
                let event = Event {
                    type_: EventType::Warning,
                    reason: HTTP_ROUTE_UNAVAILABLE.into(),
                    note: Some(truncate(&note)),
                    action: "Reconcile".into(),
                    secondary: None,
                };
                publish(ctx, cc, event).await;
            }
            Ok(())
        }
        other => other,
    }
}

async fn remove_unwanted(
    api: &Api<DynamicObject>,
    cc: &ChatCluster,
    bp: &Blueprint<'_>,
) -> Result<()> {
    let name = bp.stateful_set_name();
    if let Some(live) = api.get_opt(&name).await? {
        if owned_by(&live, cc) {
            info!(route = %name, "deleting the HTTPRoute spec.httpRoute no longer asks for");
            delete_ignoring_absent(api, &name).await?;
        }
    }
    Ok(())
}

/// Logs the `spec.pod.env` names the operator's own variables replace (once per StatefulSet
/// apply, so a steady cluster does not repeat it).
pub(super) fn warn_ignored_env(bp: &Blueprint<'_>) {
    let ignored = bp.ignored_env();
    if !ignored.is_empty() {
        warn!(
            cluster = %bp.name(),
            names = ?ignored,
            "spec.pod.env names variables the operator sets; the operator's values are used"
        );
    }
}
