//! A cluster of gateways in one process: N pods sharing one store, with the real Redis route
//! table (a real redis-server) and the real Pulsar bus (the `pulsar` crate against the
//! Pulsar-protocol test broker).

use std::sync::Arc;
use std::time::Duration;

use chat_gateway::server::{Backends, Running};
use chat_gateway::store::sqlite::SqliteStore;
use chat_gateway::store::Store;
use pulsar_test_broker::{Broker, BrokerHandle};

use crate::fixtures::{self, test_config, TempDir};
use crate::Client;

/// Pulsar tenant and namespace of the test clusters (created through the broker's admin API).
pub const TENANT: &str = "public";
/// See [`TENANT`].
pub const NAMESPACE: &str = "chat";

pub struct Pod {
    pub name: String,
    pub running: Running,
}

impl Pod {
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.running.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.running.addr, path)
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{}", self.running.admin_addr, path)
    }
}

pub struct TestCluster {
    pub pods: Vec<Option<Pod>>,
    /// Set: every pod opens its own PostgreSQL store on this database (cluster mode proper).
    /// Unset: the pods share one in-process SQLite store.
    pub database_url: Option<String>,
    pub broker: BrokerHandle,
    pub prefix: String,
    /// The Redis every pod uses: the shared test server unless a test brought its own.
    pub redis_url: String,
    pub store: Arc<dyn Store>,
    _dir: TempDir,
}

impl TestCluster {
    /// Starts `n` pods named `pod-0` … `pod-{n-1}` sharing one SQLite store.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, None).await
    }

    /// Starts `n` pods, each with its own PostgreSQL store on one fresh database.
    pub async fn start_postgres(n: usize) -> Self {
        let url = crate::postgres::database("cluster").await;
        Self::start_with(n, Some(url)).await
    }

    /// Starts `n` pods sharing one SQLite store, on a Redis of the test's own (outage tests).
    pub async fn start_on_redis(n: usize, redis_url: String) -> Self {
        Self::start_on(n, None, redis_url).await
    }

    async fn start_with(n: usize, database_url: Option<String>) -> Self {
        Self::start_on(n, database_url, crate::redis::server().url()).await
    }

    async fn start_on(n: usize, database_url: Option<String>, redis_url: String) -> Self {
        crate::init_logging();
        let dir = TempDir::new("cluster");
        let broker = start_broker(TENANT, NAMESPACE).await;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.expect("store"));
        let prefix = crate::redis::unique_prefix("cluster");
        let mut me = Self {
            pods: Vec::new(),
            database_url,
            broker,
            prefix,
            redis_url,
            store,
            _dir: dir,
        };
        for i in 0..n {
            let pod = me.start_pod(&format!("pod-{i}")).await;
            me.pods.push(Some(pod));
        }
        me
    }

    /// Starts one more pod (or restarts one) with the cluster's backends: the gateway's own
    /// `Backends` for its config (the Redis route table and recent cache, the Pulsar bus, and
    /// PostgreSQL when set), around the shared SQLite store otherwise.
    pub async fn start_pod(&self, name: &str) -> Pod {
        self.start_pod_with(name, |_| {}).await
    }

    /// [`TestCluster::start_pod`] with the config adjusted by `tune` (another broker, timers).
    pub async fn start_pod_with(
        &self,
        name: &str,
        tune: impl FnOnce(&mut chat_gateway::config::ServeConfig),
    ) -> Pod {
        let mut cfg = test_config(self._dir.path());
        cfg.pod_name = Some(name.to_owned());
        cfg.key_prefix = self.prefix.clone();
        cfg.redis_url = Some(self.redis_url.clone());
        cfg.pulsar_url = Some(self.broker.service_url().to_owned());
        cfg.pulsar_admin_url = Some(self.broker.admin_url().to_owned());
        cfg.pulsar_tenant = TENANT.into();
        cfg.pulsar_namespace = NAMESPACE.into();
        cfg.store.database_url = self.database_url.clone();
        tune(&mut cfg);
        let backends = match &self.database_url {
            Some(_) => Backends::from_config(&cfg).await,
            None => Backends::with_store(&cfg, self.store.clone()).await,
        };
        let running = Running::start(cfg, backends.expect("backends"))
            .await
            .expect("start pod");
        let pod = Pod {
            name: name.to_owned(),
            running,
        };
        wait_ready(&pod).await;
        pod
    }

    pub fn pod(&self, i: usize) -> &Pod {
        self.pods[i].as_ref().expect("pod is running")
    }

    /// Connects `user`'s `device` to pod `i` and reads WELCOME.
    pub async fn connect(&self, i: usize, user: &str, device: &str) -> Client {
        fixtures::connect(&self.pod(i).ws_url(), user, device).await
    }
}

/// Starts a Pulsar test broker on free ports with `tenant/namespace` created through its admin
/// API, as the operator provisions them.
pub async fn start_broker(tenant: &str, namespace: &str) -> BrokerHandle {
    let broker = Broker::start("127.0.0.1:0", "127.0.0.1:0")
        .await
        .expect("start the pulsar test broker");
    provision(&broker, tenant, namespace).await;
    broker
}

/// Creates `tenant/namespace` on `broker` through its admin API (an existing one is fine).
pub async fn provision(broker: &BrokerHandle, tenant: &str, namespace: &str) {
    let http = reqwest::Client::new();
    for path in [
        format!("/admin/v2/tenants/{tenant}"),
        format!("/admin/v2/namespaces/{tenant}/{namespace}"),
    ] {
        let status = http
            .put(format!("{}{path}", broker.admin_url()))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("broker admin")
            .status();
        assert!(
            status.is_success() || status.as_u16() == 409,
            "PUT {path}: {status}"
        );
    }
}

/// Waits until the pod's /readyz answers 200 (its inbox consumer is up).
pub async fn wait_ready(pod: &Pod) {
    fixtures::wait_ready(&pod.admin("/readyz"), Duration::from_secs(10), &pod.name).await;
}
