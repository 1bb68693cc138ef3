//! The route table in Redis (cluster mode). Keys, all under the cluster's prefix `{p}`:
//!
//! | key | value | TTL |
//! |---|---|---|
//! | `{p}:route:{user}:{device}` | `{pod}\|{epoch}` | 1800 s, refreshed by heartbeat/renew |
//! | `{p}:online:{user}` | SET of devices | 3600 s |
//! | `{p}:pod:{pod}` | SET of `user:device` held by that pod | none (the operator deletes it) |
//! | `{p}:servers` | ZSET pod → last-seen ms | none (the operator trims it) |
//!
//! Every change is one Lua script, so a route and its sets never disagree half-way. Removal is a
//! compare-and-delete on the epoch: a device that reconnected elsewhere keeps its new route.
//! Device ids never contain `:` (the upgrade validates them), so `user:device` splits at the last
//! colon even when user ids contain colons.

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::names::Keys;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::RouteTable;
use crate::delivery::DeviceRoute;
use crate::error::{Error, Result};
use crate::model::now_ms;

/// Route lifetime; refreshed by heartbeats (every 30 s by default) and RENEW.
pub const ROUTE_TTL_SECONDS: u64 = 1800;
/// Lifetime of a user's set of online devices.
pub const ONLINE_TTL_SECONDS: u64 = 3600;
/// A pod not seen for this long is left out of `sendToAll` fan-out.
const POD_STALE_MS: i64 = 30_000;
/// Reconnect attempts after the first, when Redis is away. Every call waits for the current
/// reconnection; the client's default (six retries, backing off to seconds) made each send wait
/// out the whole series before its reply 0 and `/readyz` hang instead of answering 503. None: a
/// call fails as soon as one connect fails (the message is stored, the send replies, recipients
/// catch up), and the next call connects again — concurrent calls share one attempt.
const RECONNECT_RETRIES: usize = 0;
/// Longest wait for one TCP connect to Redis (an unreachable host must not stall calls either).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest wait for an answer from a connected Redis. The client's default (500 ms) was shorter
/// than a busy pod's queueing at saturation: lookups timed out and connected devices missed
/// live deliveries (stored, so they came only on reconnect). A slow Redis should slow delivery
/// down, not drop it; a Redis that is down still fails at once (connection refused).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Readiness asks more impatiently: the probe must answer within its own timeout (2 s).
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// KEYS: route, online, pod set. ARGV: value, device, member, route ttl, online ttl.
/// Returns the value it replaced (or nil).
const REGISTER: &str = r#"
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[3])
return old
"#;

/// KEYS: route, online, pod set. ARGV: value, device, member. Compare-and-delete on the value.
const UNREGISTER: &str = r#"
redis.call('SREM', KEYS[3], ARGV[3])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"#;

/// KEYS: route, online, pod set. ARGV: value, device, member, route ttl, online ttl.
/// Extends the route if it is ours, re-creates it if it expired (or Redis lost it), leaves a newer
/// connection's route alone.
const REFRESH: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
elseif not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
  redis.call('SADD', KEYS[3], ARGV[3])
else
  return 0
end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"#;

/// KEYS: the users' online sets. ARGV: the route keys' prefix (`{p}:route:`), then the users in
/// KEYS' order. Returns `index, device, value` triples (index into the users, from 1) for every
/// online device that has a route. One round trip for the whole lookup, where SMEMBERS then MGET
/// took two; it reads route keys it was not given, as a standalone Redis (or keys sharing one
/// hash slot) allows.
const LOOKUP: &str = r#"
local found = {}
for i, online in ipairs(KEYS) do
  for _, device in ipairs(redis.call('SMEMBERS', online)) do
    local value = redis.call('GET', ARGV[1] .. ARGV[i + 1] .. ':' .. device)
    if value then
      found[#found + 1] = tostring(i)
      found[#found + 1] = device
      found[#found + 1] = value
    end
  end
end
return found
"#;

/// The cluster route table in Redis, shared by every pod (keys above); each change is one script.
pub struct RedisRoutes {
    conn: ConnectionManager,
    keys: Keys,
    register: Script,
    unregister: Script,
    refresh: Script,
    lookup: Script,
}

fn unavailable(e: redis::RedisError) -> Error {
    Error::unavailable("route table", e)
}

impl RedisRoutes {
    /// Connects (with automatic reconnection) to `url`; every key is under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| Error::BadRequest(format!("--redis-url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            conn,
            keys: Keys::new(prefix),
            register: Script::new(REGISTER),
            unregister: Script::new(UNREGISTER),
            refresh: Script::new(REFRESH),
            lookup: Script::new(LOOKUP),
        })
    }

    /// Runs one of the three route scripts with the keys and arguments they share.
    async fn run<T: redis::FromRedisValue>(&self, script: &Script, r: &DeviceRoute) -> Result<T> {
        let mut conn = self.conn.clone();
        script
            .key(self.keys.route(&r.user, &r.device))
            .key(self.keys.online(&r.user))
            .key(self.keys.pod(&r.pod))
            .arg(format!("{}|{}", r.pod, r.epoch))
            .arg(&r.device)
            .arg(format!("{}:{}", r.user, r.device))
            .arg(ROUTE_TTL_SECONDS)
            .arg(ONLINE_TTL_SECONDS)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)
    }
}

/// Parses a `{pod}|{epoch}` value.
fn parse_value(v: &str) -> Option<(String, u64)> {
    let (pod, epoch) = v.rsplit_once('|')?;
    Some((pod.to_owned(), epoch.parse().ok()?))
}

#[async_trait]
impl RouteTable for RedisRoutes {
    async fn register(&self, route: &DeviceRoute) -> Result<Option<DeviceRoute>> {
        let old: Option<String> = self.run(&self.register, route).await?;
        Ok(old
            .as_deref()
            .and_then(parse_value)
            .filter(|(pod, epoch)| !(pod == &route.pod && *epoch == route.epoch))
            .map(|(pod, epoch)| DeviceRoute {
                user: route.user.clone(),
                device: route.device.clone(),
                pod,
                epoch,
            }))
    }

    async fn unregister(&self, route: &DeviceRoute) -> Result<bool> {
        let removed: i64 = self.run(&self.unregister, route).await?;
        Ok(removed == 1)
    }

    async fn refresh(&self, route: &DeviceRoute) -> Result<()> {
        let _: i64 = self.run(&self.refresh, route).await?;
        Ok(())
    }

    async fn lookup(&self, users: &[String]) -> Result<Vec<DeviceRoute>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut call = self.lookup.prepare_invoke();
        call.arg(self.keys.route_prefix());
        for u in users {
            call.key(self.keys.online(u)).arg(u);
        }
        let found: Vec<String> = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok(found
            .chunks_exact(3)
            .filter_map(|t| {
                let user = users.get(t[0].parse::<usize>().ok()?.checked_sub(1)?)?;
                let (pod, epoch) = parse_value(&t[2])?;
                Some(DeviceRoute {
                    user: user.clone(),
                    device: t[1].clone(),
                    pod,
                    epoch,
                })
            })
            .collect())
    }

    async fn pods(&self) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        conn.zrangebyscore(self.keys.servers(), now_ms() - POD_STALE_MS, "+inf")
            .await
            .map_err(unavailable)
    }

    async fn heartbeat(&self, pod: &str) -> Result<bool> {
        let mut conn = self.conn.clone();
        // ZADD answers how many members it added: 1 when the pod was not in the set.
        let added: i64 = conn
            .zadd(self.keys.servers(), pod, now_ms())
            .await
            .map_err(unavailable)?;
        Ok(added == 1)
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(PING_TIMEOUT, ping).await {
            Ok(answer) => answer.map(|_| ()).map_err(unavailable),
            Err(_) => Err(Error::Unavailable(format!(
                "route table: no answer to PING within {PING_TIMEOUT:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_with_pipes_in_pod_names() {
        assert_eq!(parse_value("pod-1|42"), Some(("pod-1".into(), 42)));
        assert_eq!(parse_value("a|b|7"), Some(("a|b".into(), 7)));
        assert_eq!(parse_value("garbage"), None);
    }
}
