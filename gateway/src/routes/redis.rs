//! The route table in Redis (cluster mode). Keys, all under the cluster's prefix `{p}`:
//!
//! | key | value | TTL |
//! |---|---|---|
//! | `{p}:route:{user}:{device}` | `{pod}\|{epoch}` | 1800 s, refreshed by heartbeat/renew |
//! | `{p}:online:{user}` | SET of devices | 3600 s |
//! | `{p}:pod:{pod}` | SET of `user:device` held by that pod | none (the operator deletes it) |
//! | `{p}:servers` | ZSET pod → last-seen ms | none (the operator trims it; pods reap silent ones) |
//! | `{p}:seen:{user}` | ms when the user's last device left (`lastSeen`) | 90 days |
//! | `{p}:watchers:{user}` | HASH pod → count: pods watching the user's presence | none (reaped with the pod) |
//! | `{p}:watching:{pod}` | SET of users the pod watches | none (reaped with the pod) |
//!
//! Presence comes from the same scripts: registering into an empty online set is the user's
//! first device (online), removing the last member its last (offline, and `{p}:seen:{user}`
//! is set). A pod that stops heartbeating for [`POD_STALE_MS`] is reaped by whichever live pod
//! looks first ([`REAP`]): its routes go, its users' last devices with them.
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

use super::{Departed, Registered, Removed, RouteTable, UserPresence};
use crate::delivery::DeviceRoute;
use crate::error::{Error, Result};
use crate::model::now_ms;

/// Route lifetime; refreshed by heartbeats (every 30 s by default) and RENEW.
pub const ROUTE_TTL_SECONDS: u64 = 1800;
/// Lifetime of a user's set of online devices.
pub const ONLINE_TTL_SECONDS: u64 = 3600;
/// A pod not seen for this long is left out of `sendToAll` fan-out, and reaped: its routes
/// removed, its users offline (DESIGN §11: within 60 s of its death, with pods beating every
/// 5 s and looking for silent ones as often).
pub const POD_STALE_MS: i64 = 30_000;
/// How long `{p}:seen:{user}` is kept: a user away longer reads as never seen.
const SEEN_TTL_SECONDS: u64 = 90 * 24 * 3600;
/// Routes one reap step removes (one script call: Redis does nothing else meanwhile).
const REAP_CHUNK: usize = 500;
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

/// KEYS: route, online, pod set, seen (unused), watchers. ARGV: value, device, member, route
/// ttl, online ttl. Returns the value it replaced (or `''`), `'1'` when the online set was
/// empty (the user's first device) and then the pods watching the user, else `'0'`.
const REGISTER: &str = r#"
local old = redis.call('GET', KEYS[1])
local out = {old or '', '0'}
if redis.call('SCARD', KEYS[2]) == 0 then
  out[2] = '1'
  for _, pod in ipairs(redis.call('HKEYS', KEYS[5])) do out[#out + 1] = pod end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[3])
return out
"#;

/// KEYS: route, online, pod set, seen, watchers. ARGV: value, device, member, -, -, now, seen
/// ttl. Compare-and-delete on the value (a route that expired counts as ours: its device
/// leaves the online set too). `{'0'}`: a newer connection holds the route; `{'1'}`: removed;
/// `{'2', pods…}`: removed, and it was the user's last device (seen set to now), with the pods
/// watching the user; `{'3', pods…}`: the route had expired, last device.
const UNREGISTER: &str = r#"
redis.call('SREM', KEYS[3], ARGV[3])
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  return {'0'}
end
if cur then
  redis.call('DEL', KEYS[1])
end
if redis.call('SREM', KEYS[2], ARGV[2]) == 1 and redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[7])
  local out = {cur and '2' or '3'}
  for _, pod in ipairs(redis.call('HKEYS', KEYS[5])) do out[#out + 1] = pod end
  return out
end
return {cur and '1' or '0'}
"#;

/// KEYS: route, online, pod set, seen (unused), watchers. ARGV: value, device, member, route
/// ttl, online ttl. Extends the route if it is ours, re-creates it if it expired (or Redis lost
/// it), leaves a newer connection's route alone. `{'2', pods…}`: the device came back into an
/// empty online set (the user is online again), with the pods watching the user; `{'1'}`:
/// refreshed; `{'0'}`: not ours.
const REFRESH: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
elseif not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
  redis.call('SADD', KEYS[3], ARGV[3])
else
  return {'0'}
end
local back = redis.call('SADD', KEYS[2], ARGV[2]) == 1 and redis.call('SCARD', KEYS[2]) == 1
redis.call('EXPIRE', KEYS[2], ARGV[5])
if not back then
  return {'1'}
end
local out = {'2'}
for _, pod in ipairs(redis.call('HKEYS', KEYS[5])) do out[#out + 1] = pod end
return out
"#;

/// KEYS: the users' watchers hashes, then the pod's watching set. ARGV: pod, each user's
/// delta, then the users, in KEYS' order. A count at or below 0 is deleted, so a -1 that
/// overtook its +1 can only leave a count too high, never too low.
const WATCH: &str = r#"
local n = #KEYS - 1
for i = 1, n do
  local user = ARGV[n + 1 + i]
  if redis.call('HINCRBY', KEYS[i], ARGV[1], ARGV[i + 1]) <= 0 then
    redis.call('HDEL', KEYS[i], ARGV[1])
    redis.call('SREM', KEYS[n + 1], user)
  else
    redis.call('SADD', KEYS[n + 1], user)
  end
end
return n
"#;

/// KEYS: the users' online sets. ARGV: the seen keys' prefix (`{p}:seen:`), then the users in
/// KEYS' order. For each user: -1 online, else its `lastSeen` (0: never seen).
const PRESENCE: &str = r#"
local out = {}
for i, online in ipairs(KEYS) do
  if redis.call('SCARD', online) > 0 then
    out[i] = -1
  else
    out[i] = tonumber(redis.call('GET', ARGV[1] .. ARGV[i + 1]) or '0')
  end
end
return out
"#;

/// KEYS: the pod's set, servers, the pod's watching set. ARGV: pod, key prefix, now, chunk,
/// seen ttl, silent-before (or `''`). Pops up to a chunk of the pod's `user:device` members;
/// each route still the pod's is deleted, and a device whose route is gone leaves its user's
/// online set (the last one: seen set to now, the user returned with the other pods watching
/// it). Pops up to a chunk of the users the pod watched and drops its counts. Once both sets
/// are empty, the pod is dropped from servers if its last beat is still before silent-before.
/// Returns {members left, {{user, pods…}…}}.
const REAP: &str = r#"
for _, user in ipairs(redis.call('SPOP', KEYS[3], ARGV[4])) do
  redis.call('HDEL', ARGV[2] .. ':watchers:' .. user, ARGV[1])
end
local left = {}
local mine = ARGV[1] .. '|'
for _, m in ipairs(redis.call('SPOP', KEYS[1], ARGV[4])) do
  local user, device = string.match(m, '^(.*):([^:]*)$')
  if user then
    local route = ARGV[2] .. ':route:' .. m
    local cur = redis.call('GET', route)
    if cur and string.sub(cur, 1, #mine) == mine then
      redis.call('DEL', route)
      cur = false
    end
    local online = ARGV[2] .. ':online:' .. user
    if not cur and redis.call('SREM', online, device) == 1 and redis.call('SCARD', online) == 0 then
      redis.call('SET', ARGV[2] .. ':seen:' .. user, ARGV[3], 'EX', ARGV[5])
      local gone = {user}
      for _, pod in ipairs(redis.call('HKEYS', ARGV[2] .. ':watchers:' .. user)) do
        if pod ~= ARGV[1] then gone[#gone + 1] = pod end
      end
      left[#left + 1] = gone
    end
  end
end
local more = redis.call('SCARD', KEYS[1]) + redis.call('SCARD', KEYS[3])
if more == 0 and ARGV[6] ~= '' then
  local beat = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if beat and tonumber(beat) < tonumber(ARGV[6]) then
    redis.call('ZREM', KEYS[2], ARGV[1])
  end
end
return {more, left}
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
    presence: Script,
    reap: Script,
    watch: Script,
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
            presence: Script::new(PRESENCE),
            reap: Script::new(REAP),
            watch: Script::new(WATCH),
        })
    }

    /// Runs one of the three route scripts with the keys and arguments they share (the
    /// current time and the seen key's lifetime for UNREGISTER).
    async fn run<T: redis::FromRedisValue>(&self, script: &Script, r: &DeviceRoute) -> Result<T> {
        let mut conn = self.conn.clone();
        script
            .key(self.keys.route(&r.user, &r.device))
            .key(self.keys.online(&r.user))
            .key(self.keys.pod(&r.pod))
            .key(self.keys.seen(&r.user))
            .key(self.keys.watchers(&r.user))
            .arg(format!("{}|{}", r.pod, r.epoch))
            .arg(&r.device)
            .arg(format!("{}:{}", r.user, r.device))
            .arg(ROUTE_TTL_SECONDS)
            .arg(ONLINE_TTL_SECONDS)
            .arg(now_ms())
            .arg(SEEN_TTL_SECONDS)
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
    async fn register(&self, route: &DeviceRoute) -> Result<Registered> {
        let mut out: Vec<String> = self.run(&self.register, route).await?;
        let watchers = out.split_off(2.min(out.len()));
        let first = out.get(1).is_some_and(|f| f == "1");
        let replaced = parse_value(out.first().map_or("", String::as_str))
            .filter(|(pod, epoch)| !(pod == &route.pod && *epoch == route.epoch))
            .map(|(pod, epoch)| DeviceRoute {
                user: route.user.clone(),
                device: route.device.clone(),
                pod,
                epoch,
            });
        Ok(Registered {
            replaced,
            first,
            watchers,
        })
    }

    async fn unregister(&self, route: &DeviceRoute) -> Result<Removed> {
        let at = now_ms();
        let mut out: Vec<String> = self.run(&self.unregister, route).await?;
        let watchers = out.split_off(1.min(out.len()));
        let outcome = out.first().map_or("0", String::as_str);
        Ok(Removed {
            removed: matches!(outcome, "1" | "2"),
            last_seen: matches!(outcome, "2" | "3").then_some(at),
            watchers,
        })
    }

    async fn refresh(&self, route: &DeviceRoute) -> Result<Option<Vec<String>>> {
        let mut out: Vec<String> = self.run(&self.refresh, route).await?;
        let watchers = out.split_off(1.min(out.len()));
        Ok((out.first().map(String::as_str) == Some("2")).then_some(watchers))
    }

    async fn watch(&self, pod: &str, deltas: &[(String, i64)]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut call = self.watch.prepare_invoke();
        call.arg(pod);
        for (user, delta) in deltas {
            call.key(self.keys.watchers(user)).arg(*delta);
        }
        call.key(self.keys.watching(pod));
        for (user, _) in deltas {
            call.arg(user);
        }
        let _: i64 = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok(())
    }

    async fn presence(&self, users: &[String]) -> Result<Vec<UserPresence>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut call = self.presence.prepare_invoke();
        call.arg(self.keys.seen(""));
        for u in users {
            call.key(self.keys.online(u)).arg(u);
        }
        let found: Vec<i64> = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok(found
            .into_iter()
            .map(|v| UserPresence {
                online: v < 0,
                last_seen: (v > 0).then_some(v),
            })
            .collect())
    }

    async fn silent_pods(&self, before_ms: i64) -> Result<Vec<String>> {
        let mut conn = self.conn.clone();
        conn.zrangebyscore(self.keys.servers(), "-inf", format!("({before_ms}"))
            .await
            .map_err(unavailable)
    }

    async fn reap(&self, pod: &str, silent_before: Option<i64>) -> Result<Vec<Departed>> {
        let mut left = Vec::new();
        loop {
            let mut conn = self.conn.clone();
            let now = now_ms();
            let (more, users): (i64, Vec<Vec<String>>) = self
                .reap
                .key(self.keys.pod(pod))
                .key(self.keys.servers())
                .key(self.keys.watching(pod))
                .arg(pod)
                .arg(self.keys.prefix())
                .arg(now)
                .arg(REAP_CHUNK)
                .arg(SEEN_TTL_SECONDS)
                .arg(silent_before.map_or_else(String::new, |t| t.to_string()))
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            left.extend(users.into_iter().filter_map(|mut gone| {
                let watchers = gone.split_off(1.min(gone.len()));
                Some(Departed {
                    user: gone.pop()?,
                    last_seen: now,
                    watchers,
                })
            }));
            if more == 0 {
                return Ok(left);
            }
        }
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
