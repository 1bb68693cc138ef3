//! The Redis seam: the route-table keys (DESIGN §5) the operator reads and cleans up, named by
//! [`chat_protocol::names::Keys`] as the gateway names them.
//!
//! [`KeyStore`] is what the reconciler needs; [`RedisKeyStore`] is the one implementation, with
//! one `ConnectionManager` per Redis URL (each ChatCluster may name its own Redis).

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

/// The cluster's keys in Redis. `url` is the cluster's Redis URL, `prefix` its `keyPrefix`.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The pods registered in `{prefix}:servers`.
    async fn servers(&self, url: &str, prefix: &str) -> Result<Vec<String>>;

    /// Forgets pods that are gone for good: `DEL {prefix}:pod:{pod}` and
    /// `ZREM {prefix}:servers {pod}` for each. Idempotent.
    async fn remove_pods(&self, url: &str, prefix: &str, pods: &[String]) -> Result<()>;

    /// Deletes every key starting with `{prefix}:` (`SCAN MATCH` + `DEL`), for a deleted
    /// ChatCluster. Returns how many keys were deleted.
    async fn delete_prefix(&self, url: &str, prefix: &str) -> Result<u64>;
}

/// [`KeyStore`] on real Redis.
#[derive(Default)]
pub struct RedisKeyStore {
    connections: Mutex<HashMap<String, ConnectionManager>>,
}

impl RedisKeyStore {
    /// A store that connects on first use of each URL.
    pub fn new() -> Self {
        Self::default()
    }

    async fn connection(&self, url: &str) -> Result<ConnectionManager> {
        let mut connections = self.connections.lock().await;
        if let Some(conn) = connections.get(url) {
            return Ok(conn.clone());
        }
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        connections.insert(url.to_owned(), conn.clone());
        Ok(conn)
    }
}

#[async_trait]
impl KeyStore for RedisKeyStore {
    async fn servers(&self, url: &str, prefix: &str) -> Result<Vec<String>> {
        let mut conn = self.connection(url).await?;
        let pods: Vec<String> = redis::cmd("ZRANGE")
            .arg(Keys::new(prefix).servers())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        Ok(pods)
    }

    async fn remove_pods(&self, url: &str, prefix: &str, pods: &[String]) -> Result<()> {
        if pods.is_empty() {
            return Ok(());
        }
        let keys = Keys::new(prefix);
        let mut conn = self.connection(url).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for pod in pods {
            pipe.cmd("DEL").arg(keys.pod(pod)).ignore();
        }
        pipe.cmd("ZREM").arg(keys.servers()).arg(pods).ignore();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn delete_prefix(&self, url: &str, prefix: &str) -> Result<u64> {
        let mut conn = self.connection(url).await?;
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
