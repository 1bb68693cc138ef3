//! The Redis seam: the route-table keys (DESIGN §5) the operator reads and cleans up, named by
//! [`chat_protocol::names::Keys`] as the gateway names them.
//!
//! [`KeyStore`] is what the reconciler needs; [`RedisKeyStore`] is the one implementation, with
//! one `ConnectionManager` per [`RedisTarget`] (each ChatCluster may name its own Redis, with its
//! own credentials and CA).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::names::Keys;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

use crate::Result;

/// Longest wait for a connection or an answer: an unreachable Redis must not stall a reconcile
/// (the rollout does not need Redis; only cleanup does, and it is retried).
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(3);
/// Keys asked for per `SCAN` round when deleting a prefix: big enough to be quick, small enough
/// not to block Redis.
const SCAN_COUNT: usize = 500;

/// A ChatCluster's Redis: its URL (`rediss://` for TLS) and what its Secrets give besides
/// (`usernameSecretRef`, `passwordSecretRef`, `caSecretRef`), as the gateways use them.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct RedisTarget {
    /// The Redis URL.
    pub url: String,
    /// The ACL user, replacing the URL's.
    pub username: Option<String>,
    /// The password, replacing the URL's.
    pub password: Option<String>,
    /// A PEM CA replacing the public roots (`rediss://` only).
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("url", &"<redacted>")
            .field("username", &self.username)
            .field("ca", &self.ca_pem.is_some())
            .finish()
    }
}

impl RedisTarget {
    /// `url` alone.
    pub fn plain(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ..Self::default()
        }
    }

    /// A client with the credentials and CA applied.
    fn client(&self) -> Result<redis::Client> {
        use redis::IntoConnectionInfo;
        let mut info = self.url.as_str().into_connection_info()?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        info = info.set_redis_settings(settings);
        Ok(match &self.ca_pem {
            Some(ca) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            )?,
            None => redis::Client::open(info)?,
        })
    }
}

/// The cluster's keys in Redis. `redis` is the cluster's Redis, `prefix` its `keyPrefix`.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The pods registered in `{prefix}:servers`.
    async fn servers(&self, redis: &RedisTarget, prefix: &str) -> Result<Vec<String>>;

    /// Forgets pods that are gone for good: `DEL {prefix}:pod:{pod}` and
    /// `ZREM {prefix}:servers {pod}` for each. Idempotent.
    async fn remove_pods(&self, redis: &RedisTarget, prefix: &str, pods: &[String]) -> Result<()>;

    /// Deletes every key starting with `{prefix}:` (`SCAN MATCH` + `DEL`), for a deleted
    /// ChatCluster. Returns how many keys were deleted.
    async fn delete_prefix(&self, redis: &RedisTarget, prefix: &str) -> Result<u64>;
}

/// [`KeyStore`] on real Redis.
#[derive(Default)]
pub struct RedisKeyStore {
    connections: Mutex<HashMap<RedisTarget, ConnectionManager>>,
}

impl RedisKeyStore {
    /// A store that connects on first use of each URL.
    pub fn new() -> Self {
        Self::default()
    }

    async fn connection(&self, redis: &RedisTarget) -> Result<ConnectionManager> {
        let mut connections = self.connections.lock().await;
        if let Some(conn) = connections.get(redis) {
            return Ok(conn.clone());
        }
        let client = redis.client()?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        connections.insert(redis.clone(), conn.clone());
        Ok(conn)
    }
}

#[async_trait]
impl KeyStore for RedisKeyStore {
    async fn servers(&self, redis: &RedisTarget, prefix: &str) -> Result<Vec<String>> {
        let mut conn = self.connection(redis).await?;
        let pods: Vec<String> = redis::cmd("ZRANGE")
            .arg(Keys::new(prefix).servers())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        Ok(pods)
    }

    async fn remove_pods(&self, redis: &RedisTarget, prefix: &str, pods: &[String]) -> Result<()> {
        if pods.is_empty() {
            return Ok(());
        }
        let keys = Keys::new(prefix);
        let mut conn = self.connection(redis).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for pod in pods {
            pipe.cmd("DEL").arg(keys.pod(pod)).ignore();
        }
        pipe.cmd("ZREM").arg(keys.servers()).arg(pods).ignore();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn delete_prefix(&self, redis: &RedisTarget, prefix: &str) -> Result<u64> {
        let mut conn = self.connection(redis).await?;
        let pattern = Keys::new(prefix).all_pattern();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}
