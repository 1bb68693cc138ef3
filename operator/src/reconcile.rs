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

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{finalizer, Error as FinalizerError, Event as Finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, info, instrument, warn};

use crate::builders::{needs_apply, Blueprint};
use crate::context::{Context, FIELD_MANAGER, FINALIZER};
use crate::crd::{ChatCluster, ChatClusterStatus};
use crate::keys::RedisTarget;
use crate::observed::{drain_deadline_patch, AdminStatus, PodState, StatefulSetState};
use crate::rollout::{self, drain_seconds_left, retry_backoff, Action, Observed, Plan, WAIT_POLL};
use crate::status::{self, StatusInput};
use crate::{metrics, secrets, Error, Result};

mod exposure;
pub use exposure::HTTP_ROUTE_UNAVAILABLE;

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
    let observed = observe(
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
    Ok(plan
        .action
        .requeue_after(now)
        .map_or_else(|| Requeue::requeue(RESYNC), Requeue::requeue))
}

/// Applies the objects that changed and deletes an Ingress no longer wanted. Returns the live
/// StatefulSet after the apply (`None` before it exists).
async fn apply_children(
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
async fn apply_object<K>(api: &Api<K>, desired: &K) -> Result<()>
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
async fn server_side_apply<K>(api: &Api<K>, desired: &K) -> Result<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = desired.name_any();
    debug!(kind = %std::any::type_name::<K>(), %name, "server-side apply");
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(desired)).await?)
}

async fn delete_ignoring_absent<K>(api: &Api<K>, name: &str) -> Result<()>
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
fn owned_by<K: Resource>(object: &K, cc: &ChatCluster) -> bool {
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

/// Everything [`rollout::plan`] decides on. `(redis, admin_token)`: how to reach Redis and
/// the gateways' admin ports.
async fn observe(
    cc: &ChatCluster,
    bp: &Blueprint<'_>,
    ctx: &Context,
    stateful_set: Option<&StatefulSet>,
    pods: &[Pod],
    (redis, admin_token): (Option<&RedisTarget>, Option<&str>),
    now: Timestamp,
) -> Observed {
    let sts_name = bp.stateful_set_name();
    let admin = join_all(
        pods.iter()
            .map(|pod| admin_status(ctx, bp, pod, admin_token)),
    )
    .await;
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
    Observed {
        desired_replicas: cc.spec.replicas,
        drain_seconds: cc.spec.gateway.drain_seconds,
        stateful_set_name: sts_name,
        stateful_set: stateful_set.map(StatefulSetState::from_stateful_set),
        pods,
        topic_ordinals,
        registered_pods,
        previous: status.rollout,
        now,
    }
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

/// The execution of one planned action.
struct Step<'a> {
    ctx: &'a Context,
    cc: &'a ChatCluster,
    bp: &'a Blueprint<'a>,
    objects: &'a Objects,
    observed: &'a Observed,
    redis: Option<&'a RedisTarget>,
    /// The gateways' admin token, sent on the drain calls.
    admin_token: Option<&'a str>,
}

impl Step<'_> {
    /// Executes `action`, keeping `topics` (`status.topics`) up to date with what was done, even
    /// when a later part of the action fails.
    async fn execute(&self, action: &Action, topics: &mut Vec<String>) -> Result<()> {
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

/// Publishes the Event for this round: the action executed, a rollout step reached, or the
/// failure. Waits that change nothing publish none, and neither does a steady cluster.
async fn tell(
    ctx: &Context,
    cc: &ChatCluster,
    plan: &Plan,
    observed: &Observed,
    outcome: &Result<()>,
) {
    let event = match outcome {
        Err(err) => Event {
            type_: EventType::Warning,
            reason: "ReconcileFailed".into(),
            note: Some(truncate(&err.to_string())),
            action: "Reconcile".into(),
            secondary: None,
        },
        Ok(()) if plan.action == Action::Steady => return,
        Ok(()) if plan.action.is_wait() && plan.rollout == observed.previous => return,
        Ok(()) => {
            let note = truncate(&plan.action.to_string());
            Event {
                type_: EventType::Normal,
                reason: plan.action.reason().into(),
                // The recorder folds Events of one action and reason into a series that keeps
                // its first note: "Scaling (x2): scaling the StatefulSet to 2" after a scale to
                // 5. The action names what this step does, so only repeats of it fold.
                action: event_action(plan.action.reason(), &note),
                note: Some(note),
                secondary: None,
            }
        }
    };
    publish(ctx, cc, event).await;
}

async fn publish(ctx: &Context, cc: &ChatCluster, event: Event) {
    if let Err(err) = ctx.recorder.publish(&event, &cc.object_ref(&())).await {
        warn!(%err, reason = %event.reason, "publishing an Event");
    }
}

/// An Event's `action` for a step: its reason and what it acts on, within the API's 128 bytes.
fn event_action(reason: &str, note: &str) -> String {
    const MAX: usize = 128;
    let mut action = format!("{reason}: {note}");
    if action.len() > MAX {
        let mut end = MAX;
        while !action.is_char_boundary(end) {
            end -= 1;
        }
        action.truncate(end);
    }
    action
}

/// Event notes are limited to 1 kB.
fn truncate(note: &str) -> String {
    const MAX: usize = 1000;
    if note.len() <= MAX {
        return note.to_owned();
    }
    let mut end = MAX;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &note[..end])
}

/// The finalizer's cleanup of a deleted ChatCluster (see the module docs).
async fn cleanup(cc: &ChatCluster, ctx: &Context) -> Result<Requeue> {
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

fn normal(reason: &str, note: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(truncate(&note)),
        action: reason.into(),
        secondary: None,
    }
}
