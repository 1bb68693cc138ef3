//! An in-process, stateful fake Kubernetes API server: a tower service handed to
//! `kube::Client::new`, so the real `kube::runtime::Controller` (watchers, reflectors, finalizer
//! helper, Event recorder, Lease manager) runs against it unchanged. DESIGN §9, level 2.
//!
//! What it keeps and does, and how it differs from a real apiserver — each part in its own file:
//! - [`kinds`]: the kinds it serves and the key objects are stored under.
//! - [`routing`]: requests to verbs (get, list, watch, create, replace, patch, delete), and every
//!   write recorded in a [`Journal`] shared with the backend fakes, so tests check the order of
//!   side effects across Kubernetes, Pulsar, Redis and the gateways.
//! - [`wire`]: HTTP plumbing — query strings, label selectors, JSON bodies, `metav1.Status` errors.
//! - [`objects`]: the store — `uid`, `resourceVersion` (one global counter), `generation`,
//!   finalizers, deletion and garbage collection. No schema validation, defaulting or admission.
//! - [`apply`]: patches — server-side apply and strategic merge as JSON merges, merge patch and
//!   JSON patch exact.
//! - [`ownership`]: field managers, only as far as Lease-based leader election needs them.
//! - [`status`]: the status subresource.
//! - [`watch`]: watch streams, replayed from a full history so no watch ever gets 410 Gone.
//! - [`statefulset`] and [`kubelet`]: a minimal StatefulSet controller (`OnDelete` only) and
//!   kubelet, timed by [`Settings`] or driven by the test.
//!
//! For the real kubectl (`tests/kubectl`, which runs this server as a process of its own):
//! - [`serve`]: the same requests over HTTP/1.1, on a TCP listener.
//! - [`discovery`] and [`openapi`]: `/version`, `/api`, `/apis`, the resource lists, OpenAPI v3.
//! - [`custom`]: what the ChatCluster CRD says (short names, printer columns, scale paths).
//! - [`table`]: Table output with the printer columns; [`scale`]: the scale subresource;
//!   [`events`]: `events.k8s.io/v1` Events listed through `v1`, as `kubectl describe` reads them;
//!   [`validation`]: `fieldValidation=Strict` refuses fields the CRD does not declare.
//!
//! It speaks JSON only: kubectl's typed writes of built-in kinds (`kubectl create secret`) send
//! protobuf and are refused with 415; `kubectl apply` of any kind sends JSON.
//!
//! This file holds the server's state and the handle tests use to read it.

mod apply;
mod custom;
mod discovery;
mod events;
mod kinds;
mod kubelet;
mod objects;
mod openapi;
mod ownership;
mod routing;
mod scale;
mod serve;
mod statefulset;
mod status;
mod table;
mod validation;
mod watch;
mod wire;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Request;
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};

use super::journal::Journal;
use kinds::{Key, Kind};
pub use kubelet::is_ready;
use watch::Change;

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
    /// The Prometheus Operator's CRDs are installed: PodMonitors are served (404 otherwise).
    pub monitoring_crd: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pod_ready_after: Duration::from_millis(150),
            pod_terminate_after: Duration::from_millis(100),
            external_kubelet: false,
            monitoring_crd: false,
        }
    }
}

/// Everything the server holds.
#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    /// Every change ever made, for watches starting at an old resourceVersion.
    history: Vec<Arc<Change>>,
    resource_version: u64,
    next_uid: u64,
    /// Field manager → leaf paths it set, per object (see [`ownership`]).
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

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
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
        tokio::spawn(statefulset::controllers(
            Arc::downgrade(&inner),
            inner.wake.clone(),
        ));
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

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock()
    }
}
