//! A cluster of real `chat-gateway` processes on loopback: every pod its own process, all sharing
//! one PostgreSQL database, one Redis and the Pulsar-protocol test broker — a StatefulSet without
//! Kubernetes. Failure tests kill, freeze and starve these processes while the traffic helpers
//! ([`Sender`] in `sender`, [`Device`] in `device`) keep messages flowing and record what every
//! side saw, and `checks` holds what must be true of those records afterwards.

use std::time::Duration;

use pulsar_test_broker::BrokerHandle;
use serde_json::Value;

use crate::cluster::{NAMESPACE, TENANT};
use crate::fixtures::{self, TempDir};
use crate::gateway::GatewayProcess;
use crate::Client;

mod checks;
mod device;
mod sender;

pub use checks::{check_delivery, missing, stored_by_recipient, sync_all, wait_delivered};
pub use device::{stop_all, Device, DeviceLog, Pushed};
pub use sender::{SendLog, Sender, Stored, Traffic};

/// Pause before a sender or a device retries after an error or a failed connect.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// `n` gateway processes `pod-0` … `pod-{n-1}` in cluster mode.
pub struct ProcessCluster {
    pub pods: Vec<GatewayProcess>,
    pub broker: BrokerHandle,
    pub prefix: String,
    pub redis_url: String,
    pub database_url: String,
    binary: String,
    extra: Vec<String>,
    dir: TempDir,
}

impl ProcessCluster {
    /// Starts the broker (tenant and namespace provisioned as the operator does), a fresh
    /// database on the test PostgreSQL server and `n` pods on `redis_url`, each with `extra`
    /// flags.
    pub async fn start(binary: &str, n: usize, redis_url: &str, extra: &[&str]) -> Self {
        let database_url = crate::postgres::database("proc").await;
        Self::start_on(binary, n, redis_url, &database_url, extra).await
    }

    /// [`ProcessCluster::start`] on the database at `database_url`.
    pub async fn start_on(
        binary: &str,
        n: usize,
        redis_url: &str,
        database_url: &str,
        extra: &[&str],
    ) -> Self {
        crate::init_logging();
        let broker = crate::cluster::start_broker(TENANT, NAMESPACE).await;
        let mut me = Self {
            pods: Vec::new(),
            broker,
            prefix: crate::redis::unique_prefix("proc"),
            redis_url: redis_url.to_owned(),
            database_url: database_url.to_owned(),
            binary: binary.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: TempDir::new("proc-cluster"),
        };
        // One at a time: the first one migrates the database, the others find it done.
        for i in 0..n {
            let pod = me.spawn_pod(&Self::name(i)).await;
            me.pods.push(pod);
        }
        me
    }

    pub fn name(i: usize) -> String {
        format!("pod-{i}")
    }

    /// Spawns pod `name` with the cluster's backends and waits until it is ready.
    pub async fn spawn_pod(&self, name: &str) -> GatewayProcess {
        let data_dir = self.dir.path().join(name);
        std::fs::create_dir_all(&data_dir).expect("pod data dir");
        let mut args: Vec<&str> = vec![
            "--database-url",
            &self.database_url,
            "--redis-url",
            &self.redis_url,
            "--pulsar-url",
            self.broker.service_url(),
            "--pulsar-admin-url",
            self.broker.admin_url(),
            "--pulsar-tenant",
            TENANT,
            "--pulsar-namespace",
            NAMESPACE,
            "--key-prefix",
            &self.prefix,
            "--drain-seconds",
            "1",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        GatewayProcess::spawn_named(&self.binary, &data_dir, name, &args).await
    }

    pub fn ws_url(&self, i: usize) -> String {
        self.pods[i].ws_url()
    }

    /// Connects `user`'s `device` to pod `i` and reads WELCOME.
    pub async fn connect(&self, i: usize, user: &str, device: &str) -> Client {
        fixtures::connect(&self.ws_url(i), user, device).await
    }

    /// The Redis key of a device's route (`{pod}|{epoch}`).
    pub fn route_key(&self, user: &str, device: &str) -> String {
        format!("{}:route:{user}:{device}", self.prefix)
    }

    /// The HTTP status of pod `i`'s `/readyz` (0: no answer within `wait`).
    pub async fn readyz(&self, i: usize, wait: Duration) -> u16 {
        fixtures::status_of(&self.pods[i].admin_url("/readyz"), wait).await
    }

    /// Waits until every pod's `/readyz` answers 200, each for up to 20 s; `after` names what
    /// they are recovering from, for the failure message.
    pub async fn wait_all_ready(&self, after: &str) {
        for (i, pod) in self.pods.iter().enumerate() {
            let what = format!("pod-{i} {after}");
            fixtures::wait_ready(&pod.admin_url("/readyz"), Duration::from_secs(20), &what).await;
        }
    }
}

/// The connection epoch in a WELCOME: its `sessionId` is `{pod}_{user}_{epoch:x}`.
pub fn welcome_epoch(welcome: &Value) -> u64 {
    let session = welcome["params"]["sessionId"].as_str().expect("sessionId");
    let hex = session.rsplit('_').next().expect("epoch");
    u64::from_str_radix(hex, 16).expect("hex epoch")
}
