//! The reconciler `kube::runtime::Controller` calls for each ChatCluster: the I/O around the pure
//! core.
//!
//! One reconcile of a live ChatCluster:
//! 1. server-side-applies the objects of [`Blueprint::children`] whose
//!    [`needs_apply`] says so (the StatefulSet at its live replica count: the count is
//!    [`rollout::plan`]'s to change), and deletes an Ingress that `spec.ingress` no longer asks for;
//! 2. observes the StatefulSet, the pods, each pod's `/admin/status` and the pods registered in
//!    Redis;
//! 3. executes the one [`rollout::Action`] that [`rollout::plan`] returns;
//!    when that is [`rollout::Action::Steady`], takes one paced rebalancing step
//!    ([`crate::rebalance`]): the busiest pods move a share of their connections elsewhere;
//! 4. writes `status` from [`status::compute`] (plus the `Monitoring` condition of
//!    [`crate::monitoring`]) when it changed, and publishes an Event for the step;
//! 5. asks to be called again after [`rollout::Action::requeue_after`], or after
//!    [`rollout::retry_backoff`] when something failed.
//!
//! An unchanged cluster therefore costs reads only: no apply (same hash), no action, no status
//! write, no Event.
//!
//! A deleted ChatCluster (the [`FINALIZER`] holds it) is cleaned up: the StatefulSet is deleted and
//! its pods are awaited, so no gateway re-registers in Redis or keeps consuming its topic; then the
//! topics and every Redis key under the prefix are deleted, and the finalizer is released.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::finalizer::{finalizer, Error as FinalizerError, Event as Finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use tracing::{debug, instrument, warn};

use crate::builders::Blueprint;
use crate::context::{Context, FIELD_MANAGER, FINALIZER};
use crate::crd::{ChatCluster, ChatClusterStatus};
use crate::rollout::{self, retry_backoff, Action, WAIT_POLL};
use crate::status::{self, StatusInput};
use crate::{metrics, secrets, Error, Result};

mod children;
mod cleanup;
mod events;
mod exposure;
mod observe;
mod rebalance;
mod step;
use children::apply_children;
use cleanup::cleanup;
use events::{publish, tell};
pub use exposure::HTTP_ROUTE_UNAVAILABLE;
use observe::observe;
use step::Step;

/// How soon an unchanged cluster is looked at again. Watches bring every change sooner; this only
/// refreshes `status.connections` and catches what no watch reports (a gateway's admin status).
pub const RESYNC: Duration = Duration::from_secs(300);

/// Reconciles one ChatCluster: the entry point handed to `Controller::run`.
#[instrument(skip_all, fields(namespace = cc.namespace().as_deref().unwrap_or(""), name = %cc.name_any()))]
pub async fn reconcile(cc: Arc<ChatCluster>, ctx: Arc<Context>) -> Result<Requeue> {
    ctx.count_reconcile();
    ::metrics::counter!(metrics::RECONCILES).increment(1);
    let started = Instant::now();
    let key = ObjectRef::from_obj(&*cc);
    let namespace = cc.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<ChatCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let context = &*ctx;
    let result = finalizer(&api, FINALIZER, cc, |event| async move {
        match event {
            Finalizer::Apply(cc) => apply(&cc, context).await,
            Finalizer::Cleanup(cc) => cleanup(&cc, context).await,
        }
    })
    .await
    .map_err(|err| match err {
        FinalizerError::ApplyFailed(err) | FinalizerError::CleanupFailed(err) => err,
        other => Error::Finalizer(Box::new(other)),
    });
    ::metrics::histogram!(metrics::DURATION).record(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.clear_failures(&key);
    }
    result
}

/// What `Controller::run` does after a failed reconcile: retry after [`retry_backoff`] of the
/// failures in a row (waiting for a cleanup's pods to stop is no failure: it polls).
pub fn error_policy(cc: Arc<ChatCluster>, error: &Error, ctx: Arc<Context>) -> Requeue {
    if let Error::CleanupWaiting { pods } = error {
        debug!(name = %cc.name_any(), pods, "cleanup waits for the gateways to stop");
        return Requeue::requeue(WAIT_POLL);
    }
    let failures = ctx.record_failure(ObjectRef::from_obj(&*cc));
    ::metrics::counter!(metrics::FAILURES, "reason" => error.reason()).increment(1);
    let delay = retry_backoff(failures);
    warn!(name = %cc.name_any(), %error, failures, ?delay, "reconcile failed; retrying");
    Requeue::requeue(delay)
}

/// Typed APIs of the objects of one namespace.
struct Objects {
    clusters: Api<ChatCluster>,
    config_maps: Api<ConfigMap>,
    services: Api<Service>,
    stateful_sets: Api<StatefulSet>,
    pod_disruption_budgets: Api<PodDisruptionBudget>,
    ingresses: Api<Ingress>,
    network_policies: Api<NetworkPolicy>,
    pods: Api<Pod>,
    secrets: Api<Secret>,
}

impl Objects {
    fn new(ctx: &Context, namespace: &str) -> Self {
        let client = || ctx.client.clone();
        Self {
            clusters: Api::namespaced(client(), namespace),
            config_maps: Api::namespaced(client(), namespace),
            services: Api::namespaced(client(), namespace),
            stateful_sets: Api::namespaced(client(), namespace),
            pod_disruption_budgets: Api::namespaced(client(), namespace),
            ingresses: Api::namespaced(client(), namespace),
            network_policies: Api::namespaced(client(), namespace),
            pods: Api::namespaced(client(), namespace),
            secrets: Api::namespaced(client(), namespace),
        }
    }

    /// The cluster's gateway pods, terminating ones included.
    async fn gateway_pods(&self, bp: &Blueprint<'_>) -> Result<Vec<Pod>> {
        Ok(self
            .pods
            .list(&ListParams::default().labels(&bp.selector_string()))
            .await?
            .items)
    }
}

/// The reconcile of a live ChatCluster (see the module docs).
async fn apply(cached: &ChatCluster, ctx: &Context) -> Result<Requeue> {
    let namespace = cached
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let objects = Objects::new(ctx, &namespace);
    // The controller's cache may not have this operator's last status write yet; planning from it
    // would repeat the last step (`status.topics`, `status.rollout`). Read the object afresh.
    let Some(cc) = objects.clusters.get_opt(&cached.name_any()).await? else {
        return Ok(Requeue::await_change());
    };
    if cc.metadata.deletion_timestamp.is_some() {
        // Deleted since the controller saw it: the finalizer's cleanup comes with the next event.
        return Ok(Requeue::await_change());
    }
    let bp = Blueprint::new(&cc)?;
    // Before the pods, which read it from the Secret.
    let admin_token = crate::admin_token::ensure(&bp, &objects.secrets)
        .await
        .unwrap_or_else(|err| {
            warn!(%err, "reading or creating the admin token Secret; calling without it");
            None
        });
    let admin_token = admin_token.as_deref();
    // Read at each reconcile (the Secret watch brings a rotation here at once): a changed value
    // changes the pod template, hence a drained rollout.
    let secrets_hash = secrets::pod_secrets_hash(&bp, &objects.secrets).await?;
    let bp = bp.with_secrets_hash(secrets_hash);
    let applied = apply_children(&cc, &bp, &objects).await;
    let applied = match applied {
        Ok(sts) => {
            let route = bp.http_route();
            exposure::reconcile_http_route(ctx, &cc, &bp, route.as_ref())
                .await
                .map(|()| sts)
        }
        Err(err) => Err(err),
    };
    let monitoring = crate::monitoring::reconcile(&ctx.client, &bp, cc.uid().as_deref()).await;
    let stateful_set = match &applied {
        Ok(live) => live.clone(),
        Err(_) => {
            objects
                .stateful_sets
                .get_opt(&bp.stateful_set_name())
                .await?
        }
    };
    let pods = objects.gateway_pods(&bp).await?;
    let redis = secrets::redis_target(&cc, &objects.secrets)
        .await
        .unwrap_or_else(|err| {
            warn!(%err, "reading the Redis URL Secret; going on without Redis");
            None
        });
    let now = Timestamp::now();
    let (observed, moving) = observe(
        &cc,
        &bp,
        ctx,
        stateful_set.as_ref(),
        &pods,
        (redis.as_ref(), admin_token),
        now,
    )
    .await;
    let plan = rollout::plan(&observed);
    let mut topics = cc
        .status
        .as_ref()
        .map(|s| s.topics.clone())
        .unwrap_or_default();
    let outcome = match applied {
        Err(err) => Err(err),
        Ok(_) => {
            let step = Step {
                ctx,
                cc: &cc,
                bp: &bp,
                objects: &objects,
                observed: &observed,
                redis: redis.as_ref(),
                admin_token,
            };
            step.execute(&plan.action, &mut topics).await
        }
    };
    let old_conditions = cc
        .status
        .as_ref()
        .map_or(&[][..], |s| s.conditions.as_slice());
    let mut status = status::compute(
        &StatusInput {
            generation: cc.metadata.generation,
            desired_replicas: cc.spec.replicas,
            stateful_set: observed.stateful_set.clone(),
            pods: observed.pods.clone(),
            rollout: plan.rollout.clone(),
            topics,
            error: outcome.as_ref().err().map(ToString::to_string),
            selector: bp.selector_string(),
        },
        old_conditions,
        now,
    );
    let steady = plan.action == Action::Steady && outcome.is_ok();
    let cluster = rebalance::Cluster {
        ctx,
        cc: &cc,
        bp: &bp,
        admin_token,
    };
    let rebalanced = rebalance::step(&cluster, &observed, &moving, steady).await;
    status.rebalance = rebalanced.status;
    if let Some(verdict) = monitoring.clone() {
        let generation = cc.metadata.generation;
        status.conditions.push(status::merge_condition(
            old_conditions,
            verdict,
            generation,
            now,
        ));
    }
    metrics::record_cluster(&namespace, &cc.name_any(), cc.spec.replicas, &status);
    if cc.status.as_ref() != Some(&status) {
        write_status(&objects.clusters, &cc.name_any(), &status).await?;
    }
    tell(ctx, &cc, &plan, &observed, &outcome).await;
    if let Some(event) = crate::monitoring::event(old_conditions, monitoring.as_ref()) {
        publish(ctx, &cc, event).await;
    }
    outcome?;
    let after = match (plan.action.requeue_after(now), rebalanced.requeue) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(RESYNC),
    };
    Ok(Requeue::requeue(after))
}

/// Writes `status` with a merge patch. Absent optional fields are sent as `null`, so a field that
/// went away (the finished rollout, say) is removed rather than left behind by the merge.
async fn write_status(
    api: &Api<ChatCluster>,
    name: &str,
    status: &ChatClusterStatus,
) -> Result<()> {
    let mut value = serde_json::to_value(status)?;
    if let Some(fields) = value.as_object_mut() {
        for key in [
            "observedGeneration",
            "currentRevision",
            "updateRevision",
            "conditions",
            "topics",
            "rollout",
            "rebalance",
        ] {
            fields.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let patch = serde_json::json!({ "status": value });
    api.patch_status(name, &params, &Patch::Merge(&patch))
        .await?;
    Ok(())
}
