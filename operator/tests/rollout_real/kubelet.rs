//! The test's kubelet: runs a real gateway process for every pod of the fake API server, the
//! way a kubelet runs the pod's container, and reports it back.
//!
//! - **Start:** the container's environment is resolved as a kubelet would (`env` values,
//!   `fieldRef: metadata.name`, `secretKeyRef` from the Secret, `envFrom` the ConfigMap), so the
//!   gateway is configured by exactly what the operator built. Only the pod network differs: the
//!   ports 8080 and 9090 of the pod become free loopback ports, and the `data` emptyDir a temp dir.
//!   The container's command (`chat-gateway`) is this test binary, which is the gateway's CLI when
//!   its first argument is `serve` (see `main`).
//! - **Readiness:** the container's readiness probe (its path and `failureThreshold`) is run
//!   against the gateway's admin port every [`PROBE_PERIOD`] (time-scaled from the probe's 5 s),
//!   and the pod's Ready condition set from it.
//! - **Deletion:** a pod marked for deletion gets SIGTERM (the gateway's own drain runs), SIGKILL
//!   after `terminationGracePeriodSeconds`, and is removed from the API once its process exited.
//! - [`PodNetwork`] resolves `http://<pod>.<headless>.<ns>.svc:9090`, the operator's admin URL,
//!   to the current process of that pod: the real `HttpGatewayAdmin` calls reach real gateways.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_operator::gateway::{GatewayAdmin, HttpGatewayAdmin};
use chat_operator::observed::AdminStatus;
use chat_operator::{Error, Result};
use chat_protocol::names;
use chat_tests::fixtures::free_port;
use chat_tests::TempDir;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::support::fake_api::FakeApi;
use crate::support::journal::Journal;

/// How often the kubelet looks at the pods and probes the gateways: the pod template's 5 s
/// readiness period, scaled down so a test rollout takes seconds.
pub const PROBE_PERIOD: Duration = Duration::from_millis(200);
/// Timeout of one readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Start-up failures of one pod instance tolerated before they count as a failure.
const START_RETRIES: u32 = 2;
/// How long shutting the kubelet down waits for its gateways after SIGTERM.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Where a running pod's gateway listens.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The pod instance.
    pub uid: String,
    /// The WebSocket and HTTP port (the pod's 8080).
    pub public: SocketAddr,
    /// The admin port (the pod's 9090).
    pub admin: SocketAddr,
}

/// What the kubelet saw happen, with when, for the test's assertions.
#[derive(Clone, Debug)]
pub struct Happening {
    pub at: Instant,
    pub pod: String,
    pub what: What,
}

#[derive(Clone, Debug, PartialEq)]
pub enum What {
    Started,
    /// The pod was marked for deletion and its gateway got SIGTERM.
    Terminating,
    Exited(Option<i32>),
}

#[derive(Default)]
struct Shared {
    /// The current process of each pod name.
    endpoints: Mutex<HashMap<String, Endpoint>>,
    happenings: Mutex<Vec<Happening>>,
    /// What a real kubelet would report as a failed container: a crash, a non-zero exit, a
    /// gateway that outlived its grace period.
    failures: Mutex<Vec<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A handle on the running kubelet.
#[derive(Clone)]
pub struct Kubelet {
    shared: Arc<Shared>,
    api: FakeApi,
    namespace: String,
}

impl Kubelet {
    /// Starts the kubelet for the pods of `namespace`; it stops (its gateways with it) when
    /// `shutdown` fires — await the returned task.
    pub fn start(
        api: FakeApi,
        namespace: &str,
        journal: Journal,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let me = Self {
            shared: Arc::default(),
            api,
            namespace: namespace.to_owned(),
        };
        let node = Node {
            kubelet: me.clone(),
            journal,
            exe: std::env::current_exe().expect("the test binary's path"),
            dir: TempDir::new("kubelet"),
            running: HashMap::new(),
            start_failures: HashMap::new(),
            http: reqwest::Client::builder()
                .timeout(PROBE_TIMEOUT)
                .build()
                .expect("an HTTP client"),
        };
        let task = tokio::spawn(node.run(shutdown));
        (me, task)
    }

    /// The current process of pod `name`, if one runs.
    pub fn endpoint(&self, name: &str) -> Option<Endpoint> {
        lock(&self.shared.endpoints).get(name).cloned()
    }

    /// Everything seen so far, oldest first.
    pub fn happenings(&self) -> Vec<Happening> {
        lock(&self.shared.happenings).clone()
    }

    /// Container failures so far.
    pub fn failures(&self) -> Vec<String> {
        lock(&self.shared.failures).clone()
    }

    fn happened(&self, pod: &str, what: What) {
        lock(&self.shared.happenings).push(Happening {
            at: Instant::now(),
            pod: pod.to_owned(),
            what,
        });
    }

    fn failed(&self, failure: String) {
        eprintln!("kubelet: {failure}");
        lock(&self.shared.failures).push(failure);
    }
}

/// One pod's gateway process.
struct Process {
    uid: String,
    child: Child,
    endpoint: Endpoint,
    ip: String,
    probe_path: String,
    failure_threshold: u32,
    failures_in_a_row: u32,
    ready: bool,
    ever_ready: bool,
    grace: Duration,
    terminating_since: Option<Instant>,
    _data: TempDir,
}

/// The kubelet's loop and what it owns.
struct Node {
    kubelet: Kubelet,
    journal: Journal,
    exe: PathBuf,
    dir: TempDir,
    running: HashMap<String, Process>,
    /// Per pod instance (uid): how often its gateway exited before it was ever Ready.
    start_failures: HashMap<String, u32>,
    http: reqwest::Client,
}

impl Node {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(PROBE_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sync().await,
                () = shutdown.cancelled() => break,
            }
        }
        self.stop_all().await;
    }

    /// One look at the pods: start, probe, terminate, reap.
    async fn sync(&mut self) {
        let pods: BTreeMap<String, Value> = self
            .kubelet
            .api
            .list("v1", "Pod", &self.kubelet.namespace)
            .into_iter()
            .filter_map(|p| Some((p["metadata"]["name"].as_str()?.to_owned(), p)))
            .collect();
        for (name, pod) in &pods {
            if !self.running.contains_key(name) && !deleting(pod) {
                self.start(name, pod);
            }
        }
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            let pod = pods
                .get(&name)
                .filter(|p| p["metadata"]["uid"] == self.running[&name].uid.as_str());
            self.look_after(&name, pod).await;
        }
    }

    fn start(&mut self, name: &str, pod: &Value) {
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let container = &pod["spec"]["containers"][0];
        let env = match self.environment(name, container) {
            Ok(env) => env,
            Err(reason) => {
                self.kubelet
                    .failed(format!("{name}: CreateContainerConfigError: {reason}"));
                return;
            }
        };
        let data = TempDir::new(&format!("{name}-data"));
        let endpoint = Endpoint {
            uid: uid.clone(),
            public: loopback(free_port()),
            admin: loopback(free_port()),
        };
        let args: Vec<String> = container["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let child = Command::new(&self.exe)
            .args(&args)
            .env_clear()
            .envs(env)
            // The pod network: its ports are loopback ports here, its emptyDir a temp dir.
            .env(names::env::LISTEN, endpoint.public.to_string())
            .env(names::env::ADMIN_LISTEN, endpoint.admin.to_string())
            .env(names::env::DATA_DIR, data.path())
            // The pulsar client warns about every first connection attempt: noise here.
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,pulsar=error".into()),
            )
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(err) => {
                self.kubelet.failed(format!("{name}: spawn: {err}"));
                return;
            }
        };
        let probe = &container["readinessProbe"];
        let ordinal = name.rsplit('-').next().unwrap_or("0");
        self.journal.record(format!("kubelet start {name}"));
        self.kubelet.happened(name, What::Started);
        lock(&self.kubelet.shared.endpoints).insert(name.to_owned(), endpoint.clone());
        self.running.insert(
            name.to_owned(),
            Process {
                uid,
                child,
                endpoint,
                ip: format!("10.0.0.{ordinal}"),
                probe_path: probe["httpGet"]["path"]
                    .as_str()
                    .unwrap_or("/readyz")
                    .to_owned(),
                failure_threshold: probe["failureThreshold"]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(3),
                failures_in_a_row: 0,
                ready: false,
                ever_ready: false,
                grace: Duration::from_secs(
                    pod["spec"]["terminationGracePeriodSeconds"]
                        .as_u64()
                        .unwrap_or(30),
                ),
                terminating_since: None,
                _data: data,
            },
        );
    }

    /// The container's environment, resolved from the pod, its ConfigMap and its Secrets.
    fn environment(
        &self,
        pod: &str,
        container: &Value,
    ) -> std::result::Result<Vec<(String, String)>, String> {
        let api = &self.kubelet.api;
        let ns = &self.kubelet.namespace;
        let mut env = BTreeMap::new();
        for source in container["envFrom"].as_array().into_iter().flatten() {
            let name = source["configMapRef"]["name"]
                .as_str()
                .ok_or("envFrom without a configMapRef")?;
            let map = api
                .get("v1", "ConfigMap", ns, name)
                .ok_or(format!("configmap {name:?} not found"))?;
            for (key, value) in map["data"].as_object().into_iter().flatten() {
                env.insert(key.clone(), value.as_str().unwrap_or_default().to_owned());
            }
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let key = var["name"].as_str().ok_or("env without a name")?.to_owned();
            let from = &var["valueFrom"];
            let value = if let Some(value) = var["value"].as_str() {
                value.to_owned()
            } else if from["fieldRef"]["fieldPath"] == "metadata.name" {
                pod.to_owned()
            } else if let Some(secret) = from["secretKeyRef"]["name"].as_str() {
                let wanted = from["secretKeyRef"]["key"].as_str().unwrap_or_default();
                let object = api
                    .get("v1", "Secret", ns, secret)
                    .ok_or(format!("secret {secret:?} not found"))?;
                let secret: Secret =
                    serde_json::from_value(object).map_err(|e| format!("secret: {e}"))?;
                let bytes = secret
                    .data
                    .and_then(|mut data| data.remove(wanted))
                    .ok_or(format!("key {wanted:?} not in secret"))?;
                String::from_utf8(bytes.0).map_err(|e| e.to_string())?
            } else {
                return Err(format!("env {key}: unsupported source {from}"));
            };
            env.insert(key, value);
        }
        Ok(env.into_iter().collect())
    }

    /// Probes, terminates or reaps the process of `name`; `pod` is its pod instance, if it is
    /// still in the API.
    async fn look_after(&mut self, name: &str, pod: Option<&Value>) {
        let kubelet = self.kubelet.clone();
        let process = self.running.get_mut(name).expect("a running process");
        if let Ok(Some(status)) = process.child.try_wait() {
            self.reap(name, status, pod);
            return;
        }
        let marked = pod.is_none_or(deleting);
        match process.terminating_since {
            None if marked => {
                self.journal.record(format!("kubelet SIGTERM {name}"));
                kubelet.happened(name, What::Terminating);
                signal(&process.child, "-TERM");
                process.terminating_since = Some(Instant::now());
            }
            Some(since) if since.elapsed() > process.grace => {
                kubelet.failed(format!(
                    "{name}: still running {:?} after SIGTERM: SIGKILL",
                    process.grace
                ));
                let _ = process.child.start_kill();
            }
            Some(_) => {}
            None => {
                let url = format!("http://{}{}", process.endpoint.admin, process.probe_path);
                let ok = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                process.failures_in_a_row = if ok { 0 } else { process.failures_in_a_row + 1 };
                let ready = if ok {
                    true
                } else if process.failures_in_a_row >= process.failure_threshold {
                    false
                } else {
                    process.ready
                };
                if ready != process.ready {
                    self.journal.record(format!("kubelet {name} ready={ready}"));
                }
                process.ready = ready;
                process.ever_ready |= ready;
                kubelet.api.set_pod_ready(
                    &kubelet.namespace,
                    name,
                    &process.uid,
                    ready,
                    &process.ip,
                );
            }
        }
    }

    /// The process of `name` exited: a terminating pod is removed. A gateway that exits by itself
    /// is started again on the next look (`restartPolicy: Always`); that is a failure unless it
    /// never got Ready and did so less than [`START_RETRIES`] times (a loopback port another
    /// test took between `free_port` and the gateway's bind, say).
    fn reap(&mut self, name: &str, status: ExitStatus, pod: Option<&Value>) {
        let process = self.running.remove(name).expect("a running process");
        lock(&self.kubelet.shared.endpoints).remove(name);
        self.journal
            .record(format!("kubelet exited {name} code={:?}", status.code()));
        self.kubelet.happened(name, What::Exited(status.code()));
        if process.terminating_since.is_none() {
            let tries = self.start_failures.entry(process.uid.clone()).or_default();
            *tries += 1;
            if process.ever_ready || *tries > START_RETRIES {
                self.kubelet
                    .failed(format!("{name}: exited by itself ({status})"));
            }
        } else if !status.success() {
            self.kubelet
                .failed(format!("{name}: SIGTERM ended with {status}"));
        }
        if pod.is_some() {
            self.kubelet
                .api
                .finish_termination(&self.kubelet.namespace, name, &process.uid);
        }
    }

    /// SIGTERM to every gateway, then waits for them (SIGKILL after [`SHUTDOWN_WAIT`]).
    async fn stop_all(&mut self) {
        for process in self.running.values() {
            signal(&process.child, "-TERM");
        }
        for (_, mut process) in self.running.drain() {
            if tokio::time::timeout(SHUTDOWN_WAIT, process.child.wait())
                .await
                .is_err()
            {
                let _ = process.child.kill().await;
            }
        }
        lock(&self.kubelet.shared.endpoints).clear();
    }
}

fn deleting(pod: &Value) -> bool {
    pod["metadata"].get("deletionTimestamp").is_some()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn signal(child: &Child, sig: &str) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status();
    }
}

/// The operator's [`GatewayAdmin`] as it works in a cluster: `http://<pod>.<headless>.<ns>.svc:9090`
/// resolves (like the headless Service's DNS, unready pods included) to that pod's current gateway,
/// and the real [`HttpGatewayAdmin`] makes the call. Each call and its answer go in the journal.
pub struct PodNetwork {
    kubelet: Kubelet,
    http: HttpGatewayAdmin,
    journal: Journal,
    drains: Mutex<Vec<(Instant, String, u64)>>,
}

impl PodNetwork {
    pub fn new(kubelet: Kubelet, journal: Journal) -> Self {
        Self {
            kubelet,
            http: HttpGatewayAdmin::new().expect("an HTTP client"),
            journal,
            drains: Mutex::default(),
        }
    }

    /// The drain calls that reached a gateway: when, which pod, the deadline in seconds.
    pub fn drains(&self) -> Vec<(Instant, String, u64)> {
        lock(&self.drains).clone()
    }

    /// The pod named in `admin_url` and its gateway's real admin URL.
    fn resolve(&self, admin_url: &str) -> Result<(String, String)> {
        let unknown = |reason: &str| Error::Gateway {
            url: admin_url.to_owned(),
            reason: reason.to_owned(),
        };
        let host = admin_url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix(":9090"))
            .ok_or_else(|| unknown("not a pod admin URL"))?;
        let labels: Vec<&str> = host.split('.').collect();
        let [pod, _headless, namespace, "svc"] = labels.as_slice() else {
            return Err(unknown("not a pod admin URL"));
        };
        if *namespace != self.kubelet.namespace {
            return Err(unknown("no such host"));
        }
        let endpoint = self
            .kubelet
            .endpoint(pod)
            .ok_or_else(|| unknown("no such host"))?;
        Ok(((*pod).to_owned(), format!("http://{}", endpoint.admin)))
    }
}

#[async_trait]
impl GatewayAdmin for PodNetwork {
    async fn status(&self, admin_url: &str, token: Option<&str>) -> Result<AdminStatus> {
        let (pod, url) = self.resolve(admin_url)?;
        let status = self.http.status(&url, token).await?;
        self.journal.record(format!(
            "status {pod} connections={} draining={}",
            status.connections, status.draining
        ));
        Ok(status)
    }

    async fn drain(
        &self,
        admin_url: &str,
        deadline_seconds: u64,
        token: Option<&str>,
    ) -> Result<()> {
        let (pod, url) = self.resolve(admin_url)?;
        self.http.drain(&url, deadline_seconds, token).await?;
        self.journal
            .record(format!("drain {pod} deadlineSeconds={deadline_seconds}"));
        lock(&self.drains).push((Instant::now(), pod, deadline_seconds));
        Ok(())
    }

    async fn rebalance(
        &self,
        admin_url: &str,
        connections: u64,
        pace_seconds: u64,
        token: Option<&str>,
    ) -> Result<u64> {
        let (pod, url) = self.resolve(admin_url)?;
        let told = self
            .http
            .rebalance(&url, connections, pace_seconds, token)
            .await?;
        self.journal.record(format!(
            "rebalance {pod} connections={connections} told={told} paceSeconds={pace_seconds}"
        ));
        Ok(told)
    }
}
