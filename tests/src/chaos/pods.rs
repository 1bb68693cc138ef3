//! The chaos test's gateway pods: real `chat-gateway` processes, each in its own network
//! namespace (`ip netns exec` execs the gateway itself, so the child's pid is the gateway's),
//! listening on its namespace's address; SIGKILLed, drained and restarted by the fault schedule,
//! their RSS and open client connections sampled from `/proc`, their connections rebalanced as
//! the operator would.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::netns::{namespace, pod_ip};
use crate::fixtures::{self, SECRET};

/// Public port of every pod (each in its own namespace).
const PORT: u16 = 8080;
/// Admin port of every pod.
const ADMIN_PORT: u16 = 9090;
/// The admin token of every chaos pod (their admin ports are off loopback).
const ADMIN_TOKEN: &str = "chaos-admin-token";
/// How long a pod may take to become ready (a loaded machine; a backend recovering).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// One life of a pod's process: its pid, when it started, RSS samples (kB) with their times and
/// the client connections it held then.
#[derive(Debug, Clone)]
pub struct Incarnation {
    pub pid: u32,
    pub started: Instant,
    pub rss_kb: Vec<(Instant, u64)>,
    pub connections: Vec<u32>,
}

/// A pod: its index, its process while it runs, and every incarnation it had.
pub struct Pod {
    pub index: usize,
    child: Option<tokio::process::Child>,
    pub lives: Vec<Incarnation>,
}

impl Pod {
    pub fn name(&self) -> String {
        format!("pod-{}", self.index)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}:{PORT}/ws", pod_ip(self.index))
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}:{ADMIN_PORT}{path}", pod_ip(self.index))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Records the current process's RSS and client connections (nothing when it is not
    /// running).
    pub fn sample_rss(&mut self) {
        let Some(pid) = self.pid() else { return };
        let Some(kb) = rss_kb(pid) else { return };
        let connections = client_connections(pid);
        if let Some(life) = self.lives.last_mut().filter(|l| l.pid == pid) {
            life.rss_kb.push((Instant::now(), kb));
            life.connections.push(connections);
        }
    }

    /// `(connections, moving)` from `GET /admin/status`; `None` when the pod does not answer.
    pub async fn load(&self) -> Option<(i64, i64)> {
        let status: serde_json::Value = admin_http()
            .get(self.admin_url("/admin/status"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .json()
            .await
            .ok()?;
        Some((status["connections"].as_i64()?, status["moving"].as_i64()?))
    }

    /// `POST /admin/rebalance`: `connections` of this pod's move elsewhere over `pace`; the
    /// admin API's status.
    pub async fn shed(&self, connections: i64, pace: Duration) -> u16 {
        let body = serde_json::json!({ "connections": connections, "paceSeconds": pace.as_secs() });
        self.admin_post("/admin/rebalance", &body).await
    }

    /// `POST` of `body` to the admin API's `path`; its status (0 when it does not answer).
    async fn admin_post(&self, path: &str, body: &serde_json::Value) -> u16 {
        match admin_http()
            .post(self.admin_url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
        {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// SIGKILL: no drain, no flush.
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// SIGTERM (the gateway drains for `--drain-seconds`, then exits); SIGKILL if it has not
    /// exited within `within`.
    pub async fn terminate(&mut self, within: Duration) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Some(pid) = c.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(within, c.wait()).await.is_err() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// `POST /admin/drain` with a deadline of `seconds`; the admin API's status.
    pub async fn drain(&self, seconds: u64) -> u16 {
        let body = serde_json::json!({ "deadlineSeconds": seconds });
        self.admin_post("/admin/drain", &body).await
    }
}

/// Writes every RSS sample of every pod life as CSV (`pod,pid,seconds,rss_kb,connections`,
/// seconds since `origin`), for telling growth that follows the faults from growth that follows
/// the traffic or the connections.
pub fn write_rss_timeline(pods: &[Pod], origin: Instant, path: &std::path::Path) {
    let mut csv = String::from("pod,pid,seconds,rss_kb,connections\n");
    for p in pods {
        for life in &p.lives {
            for ((at, kb), n) in life.rss_kb.iter().zip(&life.connections) {
                let seconds = at.saturating_duration_since(origin).as_secs_f64();
                csv.push_str(&format!(
                    "{},{},{seconds:.1},{kb},{n}\n",
                    p.name(),
                    life.pid
                ));
            }
        }
    }
    if let Err(e) = std::fs::write(path, csv) {
        eprintln!(
            "chaos: cannot write the RSS timeline to {}: {e}",
            path.display()
        );
    }
}

/// How pods are started: the binary and the backend flags they share.
pub struct PodSpec {
    pub binary: String,
    /// A command (with its arguments) the binary runs under, e.g. a heap profiler.
    pub wrapper: Vec<String>,
    pub data_dir: PathBuf,
    pub args: Vec<String>,
}

impl PodSpec {
    /// Starts pod `index` in its namespace and waits until `/readyz` answers 200 (a pod started
    /// while a backend is down may take until it is back).
    pub async fn start(&self, pod: &mut Pod) {
        assert!(pod.child.is_none(), "{} already running", pod.name());
        let dir = self.data_dir.join(pod.name());
        std::fs::create_dir_all(&dir).expect("pod data dir");
        let ip = pod_ip(pod.index);
        let child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &namespace(pod.index)])
            .args(&self.wrapper)
            .arg(&self.binary)
            .arg("serve")
            .args(["--listen", &format!("{ip}:{PORT}")])
            .args(["--admin-listen", &format!("{ip}:{ADMIN_PORT}")])
            .args(["--data-dir", dir.to_str().expect("utf-8 path")])
            .args(["--jwt-secret", SECRET, "--pod-name", &pod.name()])
            // Off loopback, the admin port wants a token (issue 17, point 8).
            .args(["--admin-token", ADMIN_TOKEN])
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("CHAOS_POD_LOG").unwrap_or_else(|_| "error,pulsar=off".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn a gateway pod with ip netns exec");
        let pid = child.id().expect("pid");
        pod.child = Some(child);
        pod.lives.push(Incarnation {
            pid,
            started: Instant::now(),
            rss_kb: Vec::new(),
            connections: Vec::new(),
        });
        let url = pod.admin_url("/readyz");
        let child = pod.child.as_mut().expect("just spawned");
        let ready = fixtures::wait_until(READY_WITHIN, Duration::from_millis(100), async || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("gateway pod exited with {status} before becoming ready at {url}");
            }
            fixtures::status_of(&url, Duration::from_secs(2)).await == 200
        })
        .await;
        assert!(
            ready,
            "{} did not become ready within {READY_WITHIN:?}",
            pod.name()
        );
    }
}

/// A new pod, not started.
pub fn pod(index: usize) -> Pod {
    Pod {
        index,
        child: None,
        lives: Vec::new(),
    }
}

/// A client for the admin API, with a short timeout.
fn admin_http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// Established TCP connections on the public port in `pid`'s network namespace (the pod's own:
/// its clients), from `/proc/{pid}/net/tcp` and `tcp6`.
fn client_connections(pid: u32) -> u32 {
    let port = format!(":{PORT:04X}");
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|l| {
                    let mut fields = l.split_whitespace();
                    let local = fields.nth(1).unwrap_or("");
                    let state = fields.nth(1).unwrap_or("");
                    local.ends_with(&port) && state == "01"
                })
                .count() as u32
        })
        .sum()
}

/// Resident set size of `pid` in kB, from `/proc/{pid}/status`.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
