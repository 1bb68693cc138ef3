//! An in-process, stateful fake Kubernetes API server: a tower service handed to
//! `kube::Client::new`, so the real `kube::runtime::Controller` (watchers, reflectors, finalizer
//! helper, Event recorder, Lease manager) runs against it unchanged. DESIGN §9, level 2.
//!
//! What it keeps and does, and how it differs from a real apiserver:
//! - **Objects** as JSON, keyed by (apiVersion, kind, namespace, name), with `uid`,
//!   `resourceVersion` (one global counter), `generation` (bumped when anything but metadata and
//!   status changes), `creationTimestamp`. No schema validation, no defaulting, no admission.
//! - **Verbs**: get, list (`labelSelector` with `=`, `==`, `!=` and bare keys), watch (`?watch=1`
//!   from a `resourceVersion`, JSON lines of ADDED/MODIFIED/DELETED, replayed from a full history so
//!   no watch ever gets 410 Gone), create, replace, delete, and patch: server-side apply is a JSON
//!   merge (fields left out of a later apply are not removed), strategic merge is a JSON merge too,
//!   merge patch and JSON patch are exact. A write that changes nothing is not stored and sends no
//!   event.
//! - **Field ownership** only as far as Lease-based leader election needs it: a non-forced apply
//!   that would change a field another manager set gets 409 Conflict.
//! - **Status subresource**: writes to `/status` change only `status`; writes to the object keep
//!   the stored `status` (Pods, Services, StatefulSets, PDBs, Ingresses, ChatClusters).
//! - **Deletion**: objects with finalizers get a `deletionTimestamp` and go when the last finalizer
//!   is removed; pods terminate gracefully (gone [`Settings::pod_terminate_after`] later); owned
//!   objects are garbage-collected (background propagation) when their owner goes.
//! - **A minimal StatefulSet controller and kubelet**: pods created (all at once, `Parallel`) and
//!   removed to match `spec.replicas`, from the template, labelled with `controller-revision-hash`
//!   (a hash of the template). `OnDelete` only: a pod keeps its revision until deleted, and its
//!   replacement gets the current `updateRevision`. Pods turn Ready
//!   [`Settings::pod_ready_after`] after creation (unless held back with [`FakeApi::hold_unready`]).
//!   With [`Settings::external_kubelet`] the test is the kubelet instead: pods turn Ready or unready
//!   by [`FakeApi::set_pod_ready`] and finish terminating by [`FakeApi::finish_termination`].
//!   The StatefulSet's status gets `replicas`, `readyReplicas`, `updatedReplicas`,
//!   `observedGeneration`, `currentRevision` and `updateRevision`.
//! - **Journal**: every write request (method, kind, name and, for StatefulSets, the replicas it
//!   sets) is recorded in a [`Journal`] shared with the backend fakes, so tests check the order of
//!   side effects across Kubernetes, Pulsar, Redis and the gateways.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::convert::Infallible;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};

use super::journal::Journal;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Timings of the emulated kubelet.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How long a new pod takes to become Ready.
    pub pod_ready_after: Duration,
    /// How long a deleted pod takes to terminate.
    pub pod_terminate_after: Duration,
    /// The test runs the pods (real processes behind them, say): the emulated kubelet leaves
    /// pods alone, and the two timings above do not apply.
    pub external_kubelet: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pod_ready_after: Duration::from_millis(150),
            pod_terminate_after: Duration::from_millis(100),
            external_kubelet: false,
        }
    }
}

/// How often the emulated controllers look again when nothing woke them.
const TICK: Duration = Duration::from_millis(25);

/// The kinds this server knows: (apiVersion, kind, plural, namespaced, has a status subresource).
const TYPES: &[(&str, &str, &str, bool, bool)] = &[
    ("v1", "Pod", "pods", true, true),
    ("v1", "Service", "services", true, true),
    ("v1", "ConfigMap", "configmaps", true, false),
    ("v1", "Secret", "secrets", true, false),
    ("v1", "Event", "events", true, false),
    ("v1", "Namespace", "namespaces", false, true),
    ("apps/v1", "StatefulSet", "statefulsets", true, true),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        true,
    ),
    ("networking.k8s.io/v1", "Ingress", "ingresses", true, true),
    ("events.k8s.io/v1", "Event", "events", true, false),
    ("coordination.k8s.io/v1", "Lease", "leases", true, false),
    (
        "chatcluster.dev/v1alpha1",
        "ChatCluster",
        "chatclusters",
        true,
        true,
    ),
];

/// One kind of object.
#[derive(Clone, Copy, Debug)]
struct Kind {
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    status_subresource: bool,
}

impl Kind {
    fn by_plural(api_version: &str, plural: &str) -> Option<Self> {
        TYPES
            .iter()
            .find(|t| t.0 == api_version && t.2 == plural)
            .map(Self::from)
    }

    fn by_kind(api_version: &str, kind: &str) -> Option<Self> {
        TYPES
            .iter()
            .find(|t| t.0 == api_version && t.1 == kind)
            .map(Self::from)
    }
}

impl From<&(&'static str, &'static str, &'static str, bool, bool)> for Kind {
    fn from(t: &(&'static str, &'static str, &'static str, bool, bool)) -> Self {
        Self {
            api_version: t.0,
            kind: t.1,
            plural: t.2,
            namespaced: t.3,
            status_subresource: t.4,
        }
    }
}

/// Where an object is stored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// `v1`, `apps/v1`, …
    pub api_version: String,
    /// `Pod`, `StatefulSet`, …
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl Key {
    fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Self {
            api_version: kind.api_version.into(),
            kind: kind.kind.into(),
            namespace: if kind.namespaced {
                namespace.into()
            } else {
                String::new()
            },
            name: name.into(),
        }
    }

    fn is(&self, kind: Kind) -> bool {
        self.api_version == kind.api_version && self.kind == kind.kind
    }
}

/// One change, as watches send it.
#[derive(Debug)]
struct Change {
    resource_version: u64,
    type_: &'static str,
    key: Key,
    object: Value,
}

/// An API error, sent as a `metav1.Status`.
#[derive(Debug)]
struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    fn not_found(key: &Key) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} {:?} not found", key.kind, key.name),
        )
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Everything the server holds.
#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    /// Every change ever made, for watches starting at an old resourceVersion.
    history: Vec<Arc<Change>>,
    resource_version: u64,
    next_uid: u64,
    /// Field manager → leaf paths it set, per object (see [`State::check_apply_conflicts`]).
    owners: HashMap<Key, BTreeMap<String, BTreeSet<String>>>,
    /// When each pod was created / deleted (the kubelet's clock).
    pod_created: HashMap<Key, Instant>,
    pod_deleted: HashMap<Key, Instant>,
    /// Pod names the kubelet keeps unready.
    held_unready: HashSet<String>,
    /// Write requests counted by [`FakeApi::writes`].
    writes: usize,
}

struct Inner {
    state: Mutex<State>,
    changes: broadcast::Sender<Arc<Change>>,
    wake: Arc<Notify>,
    settings: Settings,
    journal: Journal,
}

/// The fake API server. Cheap to clone; every clone is the same server.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Inner>,
}

impl FakeApi {
    /// A server with no objects, recording writes in `journal`. Starts the emulated StatefulSet
    /// controller and kubelet on the current tokio runtime; they stop when the server is dropped.
    pub fn new(journal: Journal, settings: Settings) -> Self {
        let (changes, _) = broadcast::channel(1 << 16);
        let inner = Arc::new(Inner {
            state: Mutex::default(),
            changes,
            wake: Arc::default(),
            settings,
            journal,
        });
        tokio::spawn(controllers(Arc::downgrade(&inner), inner.wake.clone()));
        Self { inner }
    }

    /// A `kube::Client` talking to this server, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        let inner = self.inner.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let inner = inner.clone();
            async move { Ok::<_, Infallible>(inner.handle(request).await) }
        });
        kube::Client::new(service, "default")
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let kind = Kind::by_kind(api_version, kind).expect("known kind");
        self.state()
            .objects
            .get(&Key::new(kind, namespace, name))
            .cloned()
    }

    /// The stored objects of a kind in a namespace, by name.
    pub fn list(&self, api_version: &str, kind: &str, namespace: &str) -> Vec<Value> {
        let kind = Kind::by_kind(api_version, kind).expect("known kind");
        self.state()
            .objects
            .iter()
            .filter(|(key, _)| key.is(kind) && key.namespace == namespace)
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// Write requests (POST, PUT, PATCH, DELETE) received so far.
    pub fn writes(&self) -> usize {
        self.state().writes
    }

    /// Changes an annotation of an object without a request (not counted in [`Self::writes`]):
    /// a MODIFIED event that wakes whatever watches it.
    pub fn touch(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let kind = Kind::by_kind(api_version, kind).expect("known kind");
        let key = Key::new(kind, namespace, name);
        let mut state = self.state();
        let mut object = state.objects.get(&key).cloned().expect("object to touch");
        let n = state.resource_version;
        object["metadata"]["annotations"]["test/touched"] = json!(n.to_string());
        self.inner.store(&mut state, &key, object, "MODIFIED");
    }

    /// Keeps pods named `name` that are not Ready yet (a replacement, say) from turning Ready until
    /// [`Self::release_unready`]. A pod that is Ready already stays Ready.
    pub fn hold_unready(&self, name: &str) {
        self.state().held_unready.insert(name.into());
    }

    /// Lets the kubelet make the pod `name` Ready again.
    pub fn release_unready(&self, name: &str) {
        self.state().held_unready.remove(name);
        self.inner.wake.notify_one();
    }

    /// As the kubelet of pod `name` (instance `uid`) with [`Settings::external_kubelet`]: sets its
    /// Ready condition (and phase `Running`, `podIP` `ip`). False when that instance is gone.
    pub fn set_pod_ready(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        ready: bool,
        ip: &str,
    ) -> bool {
        let key = Key::new(
            Kind::by_kind("v1", "Pod").expect("known kind"),
            namespace,
            name,
        );
        let mut state = self.state();
        let Some(pod) = state
            .objects
            .get(&key)
            .filter(|p| p["metadata"]["uid"] == uid)
        else {
            return false;
        };
        let status = json!({
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        });
        if pod["status"] != status {
            let mut new = pod.clone();
            new["status"] = status;
            self.inner.store(&mut state, &key, new, "MODIFIED");
            drop(state);
            self.inner.wake.notify_one();
        }
        true
    }

    /// As the kubelet of a deleted pod `name` (instance `uid`) whose containers exited: removes it
    /// (unless finalizers hold it), so the StatefulSet controller can create its replacement.
    pub fn finish_termination(&self, namespace: &str, name: &str, uid: &str) {
        let key = Key::new(
            Kind::by_kind("v1", "Pod").expect("known kind"),
            namespace,
            name,
        );
        let mut state = self.state();
        let terminated = state.objects.get(&key).is_some_and(|p| {
            p["metadata"]["uid"] == uid
                && p["metadata"].get("deletionTimestamp").is_some()
                && finalizers(p).is_empty()
        });
        if terminated {
            self.inner.remove(&mut state, &key);
            drop(state);
            self.inner.wake.notify_one();
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn handle(self: &Arc<Self>, request: Request<kube::client::Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                return error_response(&ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("reading the body: {err}"),
                ))
            }
        };
        let query = parse_query(parts.uri.query().unwrap_or(""));
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let result = match Route::parse(parts.uri.path()) {
            Some(route) => self.serve(&parts.method, &route, &query, &content_type, &body),
            None => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route for {}", parts.uri.path()),
            )),
        };
        match result {
            Ok(Reply::Object(code, value)) => json_response(code, &value),
            Ok(Reply::Watch(stream)) => Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(stream)
                .expect("valid response"),
            Err(err) => error_response(&err),
        }
    }

    fn serve(
        self: &Arc<Self>,
        method: &Method,
        route: &Route,
        query: &HashMap<String, String>,
        content_type: &str,
        body: &Bytes,
    ) -> ApiResult<Reply> {
        let kind = route.kind;
        if *method != Method::GET {
            let mut state = self.lock();
            state.writes += 1;
            let mut entry = format!(
                "{method} {}/{}",
                kind.kind,
                route.name.as_deref().unwrap_or("")
            );
            if let Some(sub) = &route.subresource {
                entry.push_str(&format!("/{sub}"));
            }
            if kind.kind == "StatefulSet" {
                if let Some(replicas) = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v["spec"]["replicas"].as_i64())
                {
                    entry.push_str(&format!(" replicas={replicas}"));
                }
            }
            self.journal.record(entry);
        }
        let namespace = route.namespace.as_deref().unwrap_or("");
        match (method.clone(), &route.name) {
            (Method::GET, Some(name)) => {
                let key = Key::new(kind, namespace, name);
                let state = self.lock();
                let object = state
                    .objects
                    .get(&key)
                    .ok_or_else(|| ApiError::not_found(&key))?;
                Ok(Reply::Object(StatusCode::OK, object.clone()))
            }
            (Method::GET, None) => {
                let selector =
                    Selector::parse(query.get("labelSelector").map_or("", String::as_str));
                let watch = matches!(query.get("watch").map(String::as_str), Some("1" | "true"));
                if watch {
                    let since = query
                        .get("resourceVersion")
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|&rv| rv > 0);
                    let timeout = query
                        .get("timeoutSeconds")
                        .and_then(|v| v.parse::<u64>().ok())
                        .map_or(Duration::from_secs(300), Duration::from_secs);
                    Ok(Reply::Watch(self.watch(
                        kind,
                        route.namespace.clone(),
                        selector,
                        since,
                        timeout,
                    )))
                } else {
                    Ok(Reply::Object(
                        StatusCode::OK,
                        self.list(kind, route.namespace.as_deref(), &selector),
                    ))
                }
            }
            (Method::POST, None) => {
                let object: Value = parse_body(body)?;
                let name = object["metadata"]["name"]
                    .as_str()
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            "metadata.name is required",
                        )
                    })?
                    .to_owned();
                let mut state = self.lock();
                let created =
                    self.create(&mut state, &Key::new(kind, namespace, &name), object, true)?;
                Ok(Reply::Object(StatusCode::CREATED, created))
            }
            (Method::PUT, Some(name)) => {
                let object: Value = parse_body(body)?;
                let key = Key::new(kind, namespace, name);
                let mut state = self.lock();
                let old = state
                    .objects
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| ApiError::not_found(&key))?;
                let expected = object["metadata"]["resourceVersion"].as_str();
                if expected
                    .is_some_and(|rv| Some(rv) != old["metadata"]["resourceVersion"].as_str())
                {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "Conflict",
                        "the object has been modified",
                    ));
                }
                let manager = query.get("fieldManager").cloned();
                let updated = self.update(
                    &mut state,
                    &key,
                    old,
                    object,
                    route.subresource.as_deref(),
                    manager,
                )?;
                Ok(Reply::Object(StatusCode::OK, updated))
            }
            (Method::PATCH, Some(name)) => {
                let key = Key::new(kind, namespace, name);
                let mut state = self.lock();
                let patched = self.patch(
                    &mut state,
                    &key,
                    route.subresource.as_deref(),
                    query,
                    content_type,
                    body,
                )?;
                Ok(Reply::Object(StatusCode::OK, patched))
            }
            (Method::DELETE, Some(name)) => {
                let key = Key::new(kind, namespace, name);
                let mut state = self.lock();
                let deleted = self.delete(&mut state, &key)?;
                Ok(Reply::Object(StatusCode::OK, deleted))
            }
            (method, _) => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not supported here"),
            )),
        }
    }

    fn list(&self, kind: Kind, namespace: Option<&str>, selector: &Selector) -> Value {
        let state = self.lock();
        let items: Vec<Value> = state
            .objects
            .iter()
            .filter(|(key, object)| {
                key.is(kind)
                    && namespace.is_none_or(|ns| key.namespace == ns)
                    && selector.matches(object)
            })
            .map(|(_, object)| object.clone())
            .collect();
        json!({
            "apiVersion": kind.api_version,
            "kind": format!("{}List", kind.kind),
            "metadata": {"resourceVersion": state.resource_version.to_string()},
            "items": items,
        })
    }

    /// The changes after `since` (or the current objects as ADDED when `None`), then every new
    /// change, as JSON lines, until `timeout`.
    fn watch(
        &self,
        kind: Kind,
        namespace: Option<String>,
        selector: Selector,
        since: Option<u64>,
        timeout: Duration,
    ) -> Body {
        let matches = move |change: &Change| {
            change.key.is(kind)
                && namespace
                    .as_ref()
                    .is_none_or(|ns| change.key.namespace == *ns)
                && selector.matches(&change.object)
        };
        // Snapshot and subscribe under the lock, so no change falls between the two.
        let (backlog, receiver) = {
            let state = self.lock();
            let receiver = self.changes.subscribe();
            let backlog: Vec<Arc<Change>> = match since {
                Some(rv) => state
                    .history
                    .iter()
                    .filter(|c| c.resource_version > rv)
                    .cloned()
                    .collect(),
                None => state
                    .objects
                    .iter()
                    .map(|(key, object)| {
                        Arc::new(Change {
                            resource_version: state.resource_version,
                            type_: "ADDED",
                            key: key.clone(),
                            object: object.clone(),
                        })
                    })
                    .collect(),
            };
            (backlog, receiver)
        };
        let live = stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(change) => return Some((change, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let lines = stream::iter(backlog)
            .chain(live)
            .filter(move |change| std::future::ready(matches(change)))
            .map(|change| {
                let mut line =
                    serde_json::to_vec(&json!({"type": change.type_, "object": change.object}))
                        .expect("JSON values serialize");
                line.push(b'\n');
                Ok::<_, Infallible>(Frame::data(Bytes::from(line)))
            })
            .take_until(tokio::time::sleep(timeout));
        StreamBody::new(lines).boxed_unsync()
    }

    /// Stores `object` at the next resourceVersion and tells the watches.
    fn store(&self, state: &mut State, key: &Key, mut object: Value, type_: &'static str) -> Value {
        state.resource_version += 1;
        let rv = state.resource_version;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if type_ == "DELETED" {
            state.objects.remove(key);
            state.owners.remove(key);
        } else {
            state.objects.insert(key.clone(), object.clone());
        }
        let change = Arc::new(Change {
            resource_version: rv,
            type_,
            key: key.clone(),
            object: object.clone(),
        });
        state.history.push(change.clone());
        let _ = self.changes.send(change);
        self.wake.notify_one();
        object
    }

    fn create(
        &self,
        state: &mut State,
        key: &Key,
        mut object: Value,
        from_client: bool,
    ) -> ApiResult<Value> {
        if state.objects.contains_key(key) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} {:?} already exists", key.kind, key.name),
            ));
        }
        let kind = Kind::by_kind(&key.api_version, &key.kind).expect("known kind");
        if from_client && kind.status_subresource {
            if let Some(fields) = object.as_object_mut() {
                fields.remove("status");
            }
        }
        state.next_uid += 1;
        object["apiVersion"] = json!(key.api_version);
        object["kind"] = json!(key.kind);
        let metadata = &mut object["metadata"];
        metadata["name"] = json!(key.name);
        if kind.namespaced {
            metadata["namespace"] = json!(key.namespace);
        }
        metadata["uid"] = json!(format!("uid-{:06}", state.next_uid));
        metadata["generation"] = json!(1);
        metadata["creationTimestamp"] = json!(now());
        if key.kind == "Pod" {
            state.pod_created.insert(key.clone(), Instant::now());
        }
        Ok(self.store(state, key, object, "ADDED"))
    }

    /// Replaces the stored `old` with `new` (the whole object, or only its status for the
    /// `status` subresource), keeping what clients cannot change.
    fn update(
        &self,
        state: &mut State,
        key: &Key,
        old: Value,
        mut new: Value,
        subresource: Option<&str>,
        manager: Option<String>,
    ) -> ApiResult<Value> {
        let kind = Kind::by_kind(&key.api_version, &key.kind).expect("known kind");
        if subresource == Some("status") {
            let status = new.get("status").cloned().unwrap_or(Value::Null);
            new = old.clone();
            set_or_remove(&mut new, "status", status);
        } else if kind.status_subresource {
            set_or_remove(
                &mut new,
                "status",
                old.get("status").cloned().unwrap_or(Value::Null),
            );
        }
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "resourceVersion",
        ] {
            set_or_remove(
                &mut new["metadata"],
                field,
                old["metadata"].get(field).cloned().unwrap_or(Value::Null),
            );
        }
        if new == old {
            return Ok(old);
        }
        if without_metadata_and_status(&new) != without_metadata_and_status(&old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        if let Some(manager) = manager {
            state.take_ownership(key, &manager, &old, &new);
        }
        state.prune_ownership(key, &new);
        let stored = self.store(state, key, new, "MODIFIED");
        if stored["metadata"].get("deletionTimestamp").is_some()
            && finalizers(&stored).is_empty()
            && key.kind != "Pod"
        {
            self.remove(state, key);
        }
        Ok(stored)
    }

    fn patch(
        &self,
        state: &mut State,
        key: &Key,
        subresource: Option<&str>,
        query: &HashMap<String, String>,
        content_type: &str,
        body: &Bytes,
    ) -> ApiResult<Value> {
        let manager = query.get("fieldManager").cloned();
        let old = state.objects.get(key).cloned();
        let content_type = content_type.split(';').next().unwrap_or("").trim();
        let patch: Value = parse_body(body)?;
        match content_type {
            "application/apply-patch+yaml" => {
                let manager = manager.ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        "fieldManager is required for apply",
                    )
                })?;
                let force = query.get("force").is_some_and(|v| v == "true");
                let Some(old) = old else {
                    let created = self.create(state, key, patch.clone(), subresource.is_none())?;
                    state.record_apply(key, &manager, &patch);
                    return Ok(created);
                };
                state.check_apply_conflicts(key, &manager, &old, &patch, force)?;
                let mut new = old.clone();
                json_patch::merge(&mut new, &patch);
                let updated = self.update(state, key, old, new, subresource, None)?;
                state.record_apply(key, &manager, &patch);
                Ok(updated)
            }
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                let old = old.ok_or_else(|| ApiError::not_found(key))?;
                let mut new = old.clone();
                json_patch::merge(&mut new, &patch);
                self.update(state, key, old, new, subresource, manager)
            }
            "application/json-patch+json" => {
                let old = old.ok_or_else(|| ApiError::not_found(key))?;
                let mut operations: json_patch::Patch =
                    serde_json::from_value(patch).map_err(|err| {
                        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", err.to_string())
                    })?;
                // As the apiserver does, a `test` for `null` passes on a missing path.
                operations.0.retain(|op| match op {
                    json_patch::PatchOperation::Test(test) => {
                        !(test.value.is_null() && old.pointer(test.path.as_str()).is_none())
                    }
                    _ => true,
                });
                let mut new = old.clone();
                json_patch::patch(&mut new, &operations).map_err(|err| {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", err.to_string())
                })?;
                self.update(state, key, old, new, subresource, manager)
            }
            other => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("content type {other:?}"),
            )),
        }
    }

    /// DELETE: marks the object as deleting when finalizers (or a pod's graceful termination)
    /// hold it, else removes it.
    fn delete(&self, state: &mut State, key: &Key) -> ApiResult<Value> {
        let object = state
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key))?;
        let held = !finalizers(&object).is_empty() || key.kind == "Pod";
        if !held {
            return Ok(self.remove(state, key));
        }
        if object["metadata"].get("deletionTimestamp").is_some() {
            return Ok(object);
        }
        let mut marked = object;
        marked["metadata"]["deletionTimestamp"] = json!(now());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if key.kind == "Pod" {
            state.pod_deleted.insert(key.clone(), Instant::now());
        }
        Ok(self.store(state, key, marked, "MODIFIED"))
    }

    /// Removes the object and, like the garbage collector, deletes what it owned.
    fn remove(&self, state: &mut State, key: &Key) -> Value {
        let Some(object) = state.objects.get(key).cloned() else {
            return Value::Null;
        };
        state.pod_created.remove(key);
        state.pod_deleted.remove(key);
        let removed = self.store(state, key, object, "DELETED");
        let uid = removed["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let owned: Vec<Key> = state
            .objects
            .iter()
            .filter(|(k, o)| {
                k.namespace == key.namespace
                    && o["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|owners| owners.iter().any(|r| r["uid"] == uid.as_str()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for child in owned {
            let _ = self.delete(state, &child);
        }
        removed
    }

    /// One pass of the emulated StatefulSet controller and kubelet.
    fn reconcile_workloads(&self) {
        let mut state = self.lock();
        let sets: Vec<Key> = state
            .objects
            .keys()
            .filter(|k| k.kind == "StatefulSet")
            .cloned()
            .collect();
        for key in sets {
            self.sync_stateful_set(&mut state, &key);
        }
        self.run_kubelet(&mut state);
    }

    fn sync_stateful_set(&self, state: &mut State, key: &Key) {
        let Some(sts) = state.objects.get(key).cloned() else {
            return;
        };
        if sts["metadata"].get("deletionTimestamp").is_some() {
            return;
        }
        let template = &sts["spec"]["template"];
        let mut hasher = DefaultHasher::new();
        template.to_string().hash(&mut hasher);
        let update_revision = format!("{}-{:010x}", key.name, hasher.finish() & 0xff_ffff_ffff);
        let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1);
        let uid = sts["metadata"]["uid"].clone();
        let pod_kind = Kind::by_kind("v1", "Pod").expect("known kind");
        let pods: Vec<(i64, Value)> = state
            .objects
            .iter()
            .filter(|(k, o)| {
                k.is(pod_kind)
                    && k.namespace == key.namespace
                    && o["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|owners| owners.iter().any(|r| r["uid"] == uid))
            })
            .filter_map(|(k, o)| {
                let ordinal = k
                    .name
                    .strip_prefix(&format!("{}-", key.name))?
                    .parse()
                    .ok()?;
                Some((ordinal, o.clone()))
            })
            .collect();
        for ordinal in 0..replicas {
            if !pods.iter().any(|(n, _)| *n == ordinal) {
                let name = format!("{}-{ordinal}", key.name);
                let pod = new_pod(&sts, &name, &update_revision);
                let _ = self.create(
                    state,
                    &Key::new(pod_kind, &key.namespace, &name),
                    pod,
                    false,
                );
            }
        }
        for (ordinal, pod) in &pods {
            if *ordinal >= replicas && pod["metadata"].get("deletionTimestamp").is_none() {
                let name = pod["metadata"]["name"].as_str().unwrap_or_default();
                let _ = self.delete(state, &Key::new(pod_kind, &key.namespace, name));
            }
        }
        let live: Vec<&Value> = pods
            .iter()
            .filter(|(_, p)| p["metadata"].get("deletionTimestamp").is_none())
            .map(|(_, p)| p)
            .collect();
        let revision = |p: &Value| {
            p["metadata"]["labels"]["controller-revision-hash"]
                .as_str()
                .map(str::to_owned)
        };
        let updated = live
            .iter()
            .filter(|p| revision(p).as_deref() == Some(&update_revision))
            .count();
        let ready = live.iter().filter(|p| pod_ready(p)).count();
        let current_revision = if updated == live.len() && i64::try_from(live.len()) == Ok(replicas)
        {
            update_revision.clone()
        } else {
            sts["status"]["currentRevision"]
                .as_str()
                .map_or_else(|| update_revision.clone(), str::to_owned)
        };
        let status = json!({
            "replicas": live.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": updated,
            "currentReplicas": live.iter().filter(|p| revision(p).as_deref() == Some(&current_revision)).count(),
            "observedGeneration": sts["metadata"]["generation"],
            "currentRevision": current_revision,
            "updateRevision": update_revision,
        });
        if sts.get("status") != Some(&status) {
            let mut new = sts;
            new["status"] = status;
            self.store(state, key, new, "MODIFIED");
        }
    }

    /// Pods turn Ready after a while and terminate a while after they were deleted.
    fn run_kubelet(&self, state: &mut State) {
        let settings = self.settings;
        if settings.external_kubelet {
            return;
        }
        let gone: Vec<Key> = state
            .pod_deleted
            .iter()
            .filter(|(_, at)| at.elapsed() >= settings.pod_terminate_after)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            let holds = state
                .objects
                .get(&key)
                .is_some_and(|p| !finalizers(p).is_empty());
            if !holds {
                self.remove(state, &key);
            }
        }
        let starting: Vec<Key> = state
            .pod_created
            .iter()
            .filter(|(k, at)| {
                at.elapsed() >= settings.pod_ready_after
                    && !state.pod_deleted.contains_key(*k)
                    && !state.held_unready.contains(&k.name)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in starting {
            let Some(pod) = state.objects.get(&key).cloned() else {
                continue;
            };
            if pod_ready(&pod) {
                continue;
            }
            let ip = format!("10.0.{}.{}", state.next_uid / 250, state.next_uid % 250 + 1);
            state.next_uid += 1;
            let mut ready = pod;
            ready["status"] = json!({
                "phase": "Running",
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True"}],
            });
            self.store(state, &key, ready, "MODIFIED");
        }
    }
}

impl State {
    /// A non-forced apply conflicts when it would change a field another manager set.
    fn check_apply_conflicts(
        &self,
        key: &Key,
        manager: &str,
        old: &Value,
        patch: &Value,
        force: bool,
    ) -> ApiResult<()> {
        if force {
            return Ok(());
        }
        let Some(owners) = self.owners.get(key) else {
            return Ok(());
        };
        for (path, value) in leaves(patch) {
            if lookup(old, &path) == Some(&value) {
                continue;
            }
            if let Some((other, _)) = owners
                .iter()
                .find(|(m, paths)| m.as_str() != manager && paths.contains(&path))
            {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Apply failed with 1 conflict: conflict with \"{other}\": {}",
                        path.replace(SEP, ".")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// After an apply, the manager owns exactly the fields it applied, and nobody else does.
    fn record_apply(&mut self, key: &Key, manager: &str, patch: &Value) {
        let paths: BTreeSet<String> = leaves(patch).into_iter().map(|(p, _)| p).collect();
        let owners = self.owners.entry(key.clone()).or_default();
        for (other, owned) in owners.iter_mut() {
            if other != manager {
                owned.retain(|p| !paths.contains(p));
            }
        }
        owners.insert(manager.to_owned(), paths);
    }

    /// After an update, the manager owns the fields it changed.
    fn take_ownership(&mut self, key: &Key, manager: &str, old: &Value, new: &Value) {
        let changed: BTreeSet<String> = leaves(new)
            .into_iter()
            .filter(|(path, value)| lookup(old, path) != Some(value))
            .map(|(path, _)| path)
            .collect();
        let owners = self.owners.entry(key.clone()).or_default();
        for (other, owned) in owners.iter_mut() {
            if other != manager {
                owned.retain(|p| !changed.contains(p));
            }
        }
        owners
            .entry(manager.to_owned())
            .or_default()
            .extend(changed);
    }

    /// Fields that no longer exist have no owner.
    fn prune_ownership(&mut self, key: &Key, object: &Value) {
        if let Some(owners) = self.owners.get_mut(key) {
            for owned in owners.values_mut() {
                owned.retain(|p| lookup(object, p).is_some());
            }
        }
    }
}

/// A new pod of `sts`, from its template, on `revision`.
fn new_pod(sts: &Value, name: &str, revision: &str) -> Value {
    let template = &sts["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels["controller-revision-hash"] = json!(revision);
    labels["statefulset.kubernetes.io/pod-name"] = json!(name);
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(name);
    spec["subdomain"] = sts["spec"]["serviceName"].clone();
    json!({
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": template["metadata"]["annotations"].clone(),
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": sts["metadata"]["name"],
                "uid": sts["metadata"]["uid"],
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
        "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]},
    })
}

/// Runs the emulated controllers until the server is dropped.
async fn controllers(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.reconcile_workloads();
        drop(strong);
        let _ = tokio::time::timeout(TICK, wake.notified()).await;
    }
}

/// A parsed request path.
#[derive(Debug)]
struct Route {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl Route {
    /// `/api/v1/...` or `/apis/{group}/{version}/...`, then `namespaces/{ns}/` (namespaced) and
    /// `{plural}[/{name}[/{subresource}]]`.
    fn parse(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (api_version, rest) = match segments.as_slice() {
            ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
            ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, plural, rest @ ..]
                if Kind::by_plural(&api_version, plural).is_some_and(|k| k.namespaced) =>
            {
                (Some((*ns).to_owned()), [&[*plural][..], rest].concat())
            }
            rest => (None, rest.to_vec()),
        };
        let kind = Kind::by_plural(&api_version, rest.first()?)?;
        Some(Self {
            kind,
            namespace,
            name: rest.get(1).map(|s| (*s).to_owned()),
            subresource: rest.get(2).map(|s| (*s).to_owned()),
        })
    }
}

enum Reply {
    Object(StatusCode, Value),
    Watch(Body),
}

/// A label selector: `k=v`, `k==v`, `k!=v` and bare `k` (exists), comma-separated.
#[derive(Clone, Debug, Default)]
struct Selector(Vec<(String, Option<String>, bool)>);

impl Selector {
    fn parse(text: &str) -> Self {
        Self(
            text.split(',')
                .filter(|s| !s.is_empty())
                .map(|term| {
                    if let Some((k, v)) = term.split_once("!=") {
                        (k.trim().to_owned(), Some(v.trim().to_owned()), false)
                    } else if let Some((k, v)) = term.split_once('=') {
                        (
                            k.trim().to_owned(),
                            Some(v.trim_start_matches('=').trim().to_owned()),
                            true,
                        )
                    } else {
                        (term.trim().to_owned(), None, true)
                    }
                })
                .collect(),
        )
    }

    fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.0.iter().all(|(key, value, equal)| {
            let actual = labels.get(key).and_then(Value::as_str);
            match value {
                None => actual.is_some(),
                Some(v) => (actual == Some(v.as_str())) == *equal,
            }
        })
    }
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(u8::try_from(byte).expect("two hex digits"));
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_body(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("body is not JSON: {err}"),
        )
    })
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("JSON values serialize");
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .expect("valid response")
}

fn error_response(err: &ApiError) -> Response<Body> {
    json_response(
        err.code,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": err.message,
            "reason": err.reason,
            "code": err.code.as_u16(),
        }),
    )
}

fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn finalizers(object: &Value) -> Vec<Value> {
    object["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn set_or_remove(object: &mut Value, field: &str, value: Value) {
    if let Some(fields) = object.as_object_mut() {
        if value.is_null() {
            fields.remove(field);
        } else {
            fields.insert(field.to_owned(), value);
        }
    }
}

fn without_metadata_and_status(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(fields) = copy.as_object_mut() {
        fields.remove("metadata");
        fields.remove("status");
    }
    copy
}

/// The leaves of a JSON object as (`a.b.c` path, value); arrays are leaves. `apiVersion`, `kind`
/// and the object's identity are nobody's fields.
fn leaves(value: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(fields) => {
                for (k, v) in fields {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}{SEP}{k}")
                    };
                    walk(&path, v, out);
                }
            }
            Value::Null => {}
            leaf => out.push((prefix.to_owned(), leaf.clone())),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    let identity = ["name", "namespace", "resourceVersion"].map(|f| format!("metadata{SEP}{f}"));
    out.retain(|(path, _)| path != "apiVersion" && path != "kind" && !identity.contains(path));
    out
}

/// Separates the keys of a [`leaves`] path: label and annotation keys hold dots and slashes.
const SEP: char = '\u{1f}';

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split(SEP)
        .try_fold(value, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}
