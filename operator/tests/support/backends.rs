//! Fakes of the operator's three backend seams, recording every call in the [`Journal`]:
//! Pulsar admin (a set of topics, journaled by [`JournaledPulsar`], which can wrap the real
//! adapter too), Redis (a map of key → members) and the gateways' admin API (each pod instance
//! holds connections until it is drained, then drops them at once).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chat_operator::gateway::GatewayAdmin;
use chat_operator::keys::{KeyStore, RedisTarget};
use chat_operator::observed::AdminStatus;
use chat_operator::pulsar::{AdminEndpoint, PulsarAdmin};
use chat_operator::{Error, Result};
use chat_protocol::names::Keys;

use super::fake_api::FakeApi;
use super::journal::Journal;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Pulsar: namespaces and topics in memory.
#[derive(Default)]
pub struct FakePulsar {
    /// While set, every call fails as an unreachable broker would.
    failing: std::sync::atomic::AtomicBool,
    namespaces: Mutex<BTreeSet<String>>,
    topics: Mutex<BTreeSet<String>>,
}

impl FakePulsar {
    /// Makes every call fail (`true`) or work again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::Relaxed);
    }

    fn check(&self, admin_url: &str) -> Result<()> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Pulsar {
                url: admin_url.to_owned(),
                reason: "connection refused".into(),
            });
        }
        Ok(())
    }

    /// The topics that exist.
    pub fn topics(&self) -> BTreeSet<String> {
        lock(&self.topics).clone()
    }

    /// The `tenant/namespace`s that exist.
    pub fn namespaces(&self) -> BTreeSet<String> {
        lock(&self.namespaces).clone()
    }
}

#[async_trait]
impl PulsarAdmin for FakePulsar {
    async fn ensure_namespace(
        &self,
        _admin: &AdminEndpoint,
        tenant: &str,
        namespace: &str,
    ) -> Result<()> {
        lock(&self.namespaces).insert(format!("{tenant}/{namespace}"));
        Ok(())
    }

    async fn create_topic(&self, admin: &AdminEndpoint, topic: &str) -> Result<()> {
        self.check(&admin.url)?;
        lock(&self.topics).insert(topic.to_owned());
        Ok(())
    }

    async fn delete_topic(&self, admin: &AdminEndpoint, topic: &str) -> Result<()> {
        self.check(&admin.url)?;
        lock(&self.topics).remove(topic);
        Ok(())
    }
}

/// A Pulsar admin whose successful calls are noted in the journal (`pulsar create {topic}`, …):
/// around [`FakePulsar`] in the harness, around the real `HttpPulsarAdmin` where a test puts that
/// in, so the order of side effects reads the same either way.
pub struct JournaledPulsar {
    admin: Arc<dyn PulsarAdmin>,
    journal: Journal,
}

impl JournaledPulsar {
    pub fn new(admin: Arc<dyn PulsarAdmin>, journal: Journal) -> Self {
        Self { admin, journal }
    }
}

#[async_trait]
impl PulsarAdmin for JournaledPulsar {
    async fn ensure_namespace(
        &self,
        admin: &AdminEndpoint,
        tenant: &str,
        namespace: &str,
    ) -> Result<()> {
        self.admin
            .ensure_namespace(admin, tenant, namespace)
            .await?;
        self.journal
            .record(format!("pulsar ensure {tenant}/{namespace}"));
        Ok(())
    }

    async fn create_topic(&self, admin: &AdminEndpoint, topic: &str) -> Result<()> {
        self.admin.create_topic(admin, topic).await?;
        self.journal.record(format!("pulsar create {topic}"));
        Ok(())
    }

    async fn delete_topic(&self, admin: &AdminEndpoint, topic: &str) -> Result<()> {
        self.admin.delete_topic(admin, topic).await?;
        self.journal.record(format!("pulsar delete {topic}"));
        Ok(())
    }
}

/// Redis: keys and their members (the ZSET `{p}:servers` and the SETs `{p}:pod:{pod}`).
pub struct FakeRedis {
    journal: Journal,
    keys: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl FakeRedis {
    pub fn new(journal: Journal) -> Self {
        Self {
            journal,
            keys: Mutex::default(),
        }
    }

    /// What a starting gateway writes: itself in `{p}:servers`, a session in `{p}:pod:{pod}`.
    pub fn register(&self, prefix: &str, pod: &str) {
        let names = Keys::new(prefix);
        let mut keys = lock(&self.keys);
        keys.entry(names.servers())
            .or_default()
            .insert(pod.to_owned());
        keys.entry(names.pod(pod))
            .or_default()
            .insert("alice:phone".to_owned());
        keys.entry(names.route("alice", "phone"))
            .or_default()
            .insert(pod.to_owned());
    }

    /// The keys that exist.
    pub fn keys(&self) -> BTreeSet<String> {
        lock(&self.keys).keys().cloned().collect()
    }

    /// The members of `key`.
    pub fn members(&self, key: &str) -> BTreeSet<String> {
        lock(&self.keys).get(key).cloned().unwrap_or_default()
    }
}

#[async_trait]
impl KeyStore for FakeRedis {
    async fn servers(&self, _redis: &RedisTarget, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .members(&Keys::new(prefix).servers())
            .into_iter()
            .collect())
    }

    async fn remove_pods(&self, _redis: &RedisTarget, prefix: &str, pods: &[String]) -> Result<()> {
        self.journal
            .record(format!("redis remove {}", pods.join(",")));
        let names = Keys::new(prefix);
        let mut keys = lock(&self.keys);
        for pod in pods {
            keys.remove(&names.pod(pod));
            if let Some(servers) = keys.get_mut(&names.servers()) {
                servers.remove(pod);
            }
        }
        Ok(())
    }

    async fn delete_prefix(&self, _redis: &RedisTarget, prefix: &str) -> Result<u64> {
        self.journal.record(format!("redis delete-prefix {prefix}"));
        let mut keys = lock(&self.keys);
        let before = keys.len();
        keys.retain(|k, _| !k.starts_with(&format!("{prefix}:")));
        Ok(u64::try_from(before - keys.len()).expect("few keys"))
    }
}

/// One gateway process: the pod instance (uid) it runs in.
#[derive(Clone, Copy, Debug)]
struct Gateway {
    connections: i64,
    draining: bool,
}

/// The gateways' admin API. A pod answers once it has an IP in the fake API server; each pod
/// instance starts with `connections` clients, registers itself in Redis on its first answer, and
/// loses its clients as soon as it is told to drain.
pub struct FakeGateway {
    api: FakeApi,
    redis: Arc<FakeRedis>,
    journal: Journal,
    key_prefix: String,
    connections: i64,
    gateways: Mutex<HashMap<String, Gateway>>,
}

impl FakeGateway {
    pub fn new(
        api: FakeApi,
        redis: Arc<FakeRedis>,
        journal: Journal,
        key_prefix: &str,
        connections: i64,
    ) -> Self {
        Self {
            api,
            redis,
            journal,
            key_prefix: key_prefix.to_owned(),
            connections,
            gateways: Mutex::default(),
        }
    }

    /// The pod instance behind `admin_url` (`http://<pod>.<headless>.<ns>.svc:9090`): its name and
    /// uid, if it exists and has an IP.
    fn pod(&self, admin_url: &str) -> Result<(String, String)> {
        let refused = || Error::Gateway {
            url: admin_url.to_owned(),
            reason: "connection refused".into(),
        };
        let (pod, namespace) = pod_of_admin_url(admin_url).ok_or_else(refused)?;
        let object = self
            .api
            .get("v1", "Pod", namespace, pod)
            .ok_or_else(refused)?;
        if object["status"]["podIP"].as_str().is_none() {
            return Err(refused());
        }
        let uid = object["metadata"]["uid"].as_str().unwrap_or_default();
        Ok((pod.to_owned(), uid.to_owned()))
    }

    /// As a gateway started with `CHAT_ADMIN_TOKEN` from its pod's env: the bearer token must be
    /// the one in the Secret the pod's container names (401 otherwise).
    fn check_token(&self, admin_url: &str, token: Option<&str>) -> Result<()> {
        let host = admin_url.trim_start_matches("http://");
        let labels: Vec<&str> = host.split(['.', ':']).collect();
        let (pod, namespace) = (labels[0], labels[2]);
        let object = self
            .api
            .get("v1", "Pod", namespace, pod)
            .unwrap_or_default();
        let reference = object["spec"]["containers"][0]["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "CHAT_ADMIN_TOKEN")
            .map(|e| e["valueFrom"]["secretKeyRef"].clone());
        let Some(reference) = reference else {
            return Ok(()); // a pod without the variable: no token required
        };
        let secret_name = reference["name"].as_str().unwrap_or_default();
        let key = reference["key"].as_str().unwrap_or_default();
        let secret = self
            .api
            .get("v1", "Secret", namespace, secret_name)
            .unwrap_or_default();
        let expected = secret["data"][key]
            .as_str()
            .and_then(decode_base64)
            .or_else(|| secret["stringData"][key].as_str().map(str::to_owned));
        if expected.is_some() && expected.as_deref() == token {
            return Ok(());
        }
        self.journal.record(format!("admin 401 {pod}"));
        Err(Error::Gateway {
            url: admin_url.to_owned(),
            reason: "HTTP status client error (401 Unauthorized)".into(),
        })
    }
}

/// Standard base64 (what `data` of a Secret holds).
fn decode_base64(s: &str) -> Option<String> {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        bits = (bits << 6) | ABC.iter().position(|a| *a == c)? as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    String::from_utf8(out).ok()
}

#[async_trait]
impl GatewayAdmin for FakeGateway {
    async fn status(&self, admin_url: &str, token: Option<&str>) -> Result<AdminStatus> {
        let (pod, uid) = self.pod(admin_url)?;
        self.check_token(admin_url, token)?;
        let mut gateways = lock(&self.gateways);
        let gateway = gateways.entry(uid).or_insert_with(|| {
            self.redis.register(&self.key_prefix, &pod);
            Gateway {
                connections: self.connections,
                draining: false,
            }
        });
        Ok(AdminStatus {
            connections: gateway.connections,
            draining: gateway.draining,
            moving: 0,
        })
    }

    async fn drain(
        &self,
        admin_url: &str,
        deadline_seconds: u64,
        token: Option<&str>,
    ) -> Result<()> {
        let (pod, uid) = self.pod(admin_url)?;
        self.check_token(admin_url, token)?;
        self.journal
            .record(format!("drain {pod} deadlineSeconds={deadline_seconds}"));
        let mut gateways = lock(&self.gateways);
        let gateway = gateways.entry(uid).or_insert(Gateway {
            connections: 0,
            draining: true,
        });
        gateway.draining = true;
        gateway.connections = 0;
        Ok(())
    }

    async fn rebalance(
        &self,
        admin_url: &str,
        connections: u64,
        pace_seconds: u64,
        token: Option<&str>,
    ) -> Result<u64> {
        let (pod, uid) = self.pod(admin_url)?;
        self.check_token(admin_url, token)?;
        self.journal.record(format!(
            "rebalance {pod} connections={connections} paceSeconds={pace_seconds}"
        ));
        let held = lock(&self.gateways)
            .get(&uid)
            .map_or(0, |g| u64::try_from(g.connections).unwrap_or(0));
        Ok(connections.min(held))
    }
}

/// The pod and namespace an admin URL the operator builds names
/// (`http://<pod>.<headless>.<ns>.svc:9090`); none for any other URL.
pub fn pod_of_admin_url(admin_url: &str) -> Option<(&str, &str)> {
    let host = admin_url.strip_prefix("http://")?.split(':').next()?;
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [pod, _headless, namespace, "svc"] => Some((pod, namespace)),
        _ => None,
    }
}
