//! Gateways for tests: in-process servers bound to port 0, and real `chat-gateway` processes.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chat_gateway::config::ServeConfig;
use chat_gateway::server::{Backends, Running};

use crate::fixtures::{self, free_port, test_config, TempDir, SECRET};
use crate::Client;

/// An in-process gateway on port 0 with its own data dir, its backends assembled from its config
/// as `chat-gateway serve` does: embedded (SQLite, in-process routes and bus) unless a test's
/// `tune` sets backend URLs.
pub struct TestGateway {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: Arc<TempDir>,
}

impl TestGateway {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with a config adjusted by `tune` (timers, limits, or backend URLs).
    pub async fn start_with(tune: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = Arc::new(TempDir::new("gw"));
        Self::start_in(dir, tune).await
    }

    /// Starts on an existing data dir (restart tests).
    pub async fn start_in(dir: Arc<TempDir>, tune: impl FnOnce(&mut ServeConfig)) -> Self {
        crate::init_logging();
        let mut cfg = test_config(dir.path());
        tune(&mut cfg);
        let backends = Backends::from_config(&cfg).await.expect("backends");
        let running = Running::start(cfg, backends).await.expect("start gateway");
        Self {
            addr: running.addr,
            admin: running.admin_addr,
            running: Some(running),
            dir,
        }
    }

    pub fn token(&self, user: &str) -> String {
        fixtures::user_token(user)
    }

    pub fn service_token(&self) -> String {
        fixtures::service_token()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Connects `user` on `device` and reads WELCOME.
    pub async fn connect(&self, user: &str, device: &str) -> Client {
        fixtures::connect(&self.ws_url(), user, device).await
    }

    /// Drains and stops the gateway.
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
    }
}

/// How long a gateway process may take to start (a loaded machine, a first migration).
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A `chat-gateway serve` child process (killed on drop).
pub struct GatewayProcess {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl GatewayProcess {
    /// Spawns `binary serve` on `data_dir` with the test secret plus `extra` args, waits for /readyz.
    pub async fn spawn(binary: &str, data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn_named(binary, data_dir, "proc-0", extra).await
    }

    /// [`GatewayProcess::spawn`] as pod `pod_name` (cluster tests run several, each with its name).
    pub async fn spawn_named(
        binary: &str,
        data_dir: &Path,
        pod_name: &str,
        extra: &[&str],
    ) -> Self {
        let mut me = Self::spawn_unready(binary, data_dir, pod_name, extra);
        me.wait_ready().await;
        me
    }

    /// [`GatewayProcess::spawn_named`] without waiting for readiness (start-up while a backend
    /// is down).
    pub fn spawn_unready(binary: &str, data_dir: &Path, pod_name: &str, extra: &[&str]) -> Self {
        let (port, admin_port) = (free_port(), free_port());
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let child = tokio::process::Command::new(binary)
            .arg("serve")
            .args([
                "--listen",
                &addr.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .args([
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--jwt-secret",
                SECRET,
                "--pod-name",
                pod_name,
            ])
            .args(extra)
            // Children log warnings and errors unless the test run asks for more.
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn gateway process");
        Self { child, addr, admin }
    }

    /// Waits for /readyz to answer 200; fails at once if the process exited.
    pub async fn wait_ready(&mut self) {
        let url = self.admin_url("/readyz");
        let child = &mut self.child;
        let ready = fixtures::wait_until(READY_WITHIN, Duration::from_millis(50), async || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("gateway process exited with {status} before becoming ready at {url}");
            }
            fixtures::status_of(&url, READY_WITHIN).await == 200
        })
        .await;
        assert!(ready, "gateway process did not become ready at {url}");
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Sends `signal` (a `kill` name: `STOP`, `CONT`, `TERM`…) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    /// SIGKILL: no drain, no flush — what a crash looks like.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }
}
