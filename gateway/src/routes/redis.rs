//! The route table in Redis (cluster mode). Keys, all under the cluster's prefix `{p}`:
//!
//! | key | value | TTL |
//! |---|---|---|
//! | `{p}:route:{user}:{device}` | `{pod}\|{epoch}` | 1800 s, refreshed by heartbeat/renew |
//! | `{p}:online:{user}` | SET of devices | 3600 s |
//! | `{p}:pod:{pod}` | SET of `user:device` held by that pod | none (the operator deletes it) |
//! | `{p}:servers` | ZSET pod → last-seen ms | none (the operator trims it; pods reap silent ones) |
//! | `{p}:table` | `{random}\|{ms}`: the table's birth, set by the first pod beating into an empty Redis | none |
//! | `{p}:consuming` | ZSET pod → last ms its inbox consumer worked | none (a pod removes itself when its consumer is down) |
//! | `{p}:seen:{user}` | ms when the user's last device left (`lastSeen`) | 90 days |
//! | `{p}:watchers:{user}` | HASH pod → count: pods watching the user's presence | none (reaped with the pod) |
//! | `{p}:watching:{pod}` | SET of users the pod watches | none (reaped with the pod) |
//!
//! Presence comes from the same scripts: registering into an empty online set is the user's
//! first device (online), removing the last member its last (offline, and `{p}:seen:{user}`
//! is set). A pod that stops heartbeating for [`POD_STALE_MS`] is reaped by whichever live pod
//! looks first ([`REAP`]): its routes go, its users' last devices with them.
//!
//! A Redis that restarts empty loses every route at once, while every device stays connected:
//! until each pod has registered its connections again (at its next heartbeat), a lookup
//! would find recipients "offline" and a fan-out would reach nobody, without an error. So
//! every lookup also reads `{p}:table`, and one that finds a table other than the one this
//! pod registered into, or one rebuilt less than [`TABLE_SETTLE`] ago, fails: the router
//! delivers to this pod's own devices at once and holds the rest in its retry queue until
//! the table is whole again (issue 17: live delivery through a Redis restart).
//!
//! Every change is one Lua script, so a route and its sets never disagree half-way. Removal is a
//! compare-and-delete on the epoch: a device that reconnected elsewhere keeps its new route.
//! Device ids never contain `:` (the upgrade validates them), so `user:device` splits at the last
//! colon even when user ids contain colons.

mod scripts;
mod table;

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::names::Keys;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use self::scripts::{LOOKUP, PRESENCE, REAP, REFRESH, REGISTER, UNREGISTER, WATCH};
use self::table::Table;
use super::{Departed, Refreshed, Registered, Removed, RouteTable, UserPresence};
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
/// How long after the route table was rebuilt (Redis restarted empty) lookups wait for every
/// pod to have registered its connections again: every pod's next heartbeat (5 s apart), its
/// REFRESH of every connection, and some slack.
pub const TABLE_SETTLE: Duration = Duration::from_secs(8);
/// Readiness asks more impatiently: the probe must answer within its own timeout (2 s).
const PING_TIMEOUT: Duration = Duration::from_millis(500);

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
    /// The route table this pod registered into, as its heartbeats saw it.
    table: std::sync::Mutex<Table>,
}

fn unavailable(e: redis::RedisError) -> Error {
    Error::unavailable("route table", e)
}

impl RedisRoutes {
    /// Connects (with automatic reconnection) to `url`; every key is under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| Error::BadRequest(format!("--redis-url: {e}")))?;
        Self::connect_client(client, prefix).await
    }

    /// [`RedisRoutes::connect`] with a client already built (TLS, credentials: `crate::tls`).
    pub async fn connect_client(client: redis::Client, prefix: &str) -> Result<Self> {
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
            table: std::sync::Mutex::default(),
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

    async fn refresh(&self, route: &DeviceRoute) -> Result<Refreshed> {
        let mut out: Vec<String> = self.run(&self.refresh, route).await?;
        let watchers = out.split_off(2.min(out.len()));
        Ok(Refreshed {
            created: out.get(1).map(String::as_str) == Some("1"),
            back_online: (out.first().map(String::as_str) == Some("2")).then_some(watchers),
        })
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
        call.key(self.keys.table());
        let mut found: Vec<String> = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        let birth = found.pop().unwrap_or_default();
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(&birth, now_ms())?;
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
        let now = now_ms();
        let table = self.keys.table();
        // ZADD answers how many members it added: 1 when the pod was not in the set. The table's
        // birth is set by whichever pod beats first into an empty Redis.
        let (added, birth): (i64, String) = redis::pipe()
            .zadd(self.keys.servers(), pod, now)
            .cmd("SET")
            .arg(&table)
            .arg(format!("{:016x}|{now}", rand::random::<u64>()))
            .arg("NX")
            .ignore()
            .get(&table)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let replaced = self
            .table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .beat(birth);
        if replaced {
            tracing::warn!("the route table was emptied (Redis restarted?): registering this pod's connections again");
        }
        Ok(added == 1 || replaced)
    }

    async fn inbox_health(&self, pod: &str, consuming: bool) -> Result<()> {
        let mut conn = self.conn.clone();
        let key = self.keys.consuming();
        if consuming {
            conn.zadd::<_, _, _, ()>(key, pod, now_ms()).await
        } else {
            conn.zrem::<_, _, ()>(key, pod).await
        }
        .map_err(unavailable)
    }

    async fn consuming_peers(&self, pod: &str, since_ms: i64) -> Result<usize> {
        let mut conn = self.conn.clone();
        let pods: Vec<String> = conn
            .zrangebyscore(self.keys.consuming(), since_ms, "+inf")
            .await
            .map_err(unavailable)?;
        Ok(pods.iter().filter(|p| *p != pod).count())
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
