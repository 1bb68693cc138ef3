//! What one client may take of a pod: connection slots (`--max-connections`, taken atomically at
//! the upgrade), upgrades per client address (`--connect-rate-per-ip`, keyed on
//! `X-Forwarded-For` only behind `--trusted-proxies`), SENDs per user across its devices
//! (`--user-send-rate`), and the size limits the handlers check (`--max-group-members`). The
//! outbound side — a client that stops reading — is the session's (`--write-timeout-seconds`).
//!
//! Everything here is per pod: a user's devices on two pods have a bucket on each, and an
//! address spread over N pods by the ingress gets N times the rate. Counting across pods would
//! put a Redis round trip on every SEND; the per-pod bound is what keeps one pod whole.

mod gcra;
mod peer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use clap::Args;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

pub use gcra::{Gcra, SharedBucket};
pub use peer::{client_ip, Cidr, PerAddress};

use crate::error::{Error, Result};

/// The abuse limits' flags (each with its `CHAT_*` variable). Defaults fit the performance
/// scenarios (`scripts/bench*.sh` raise what a load test from a few addresses needs).
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Sustained SENDs (1, 9) per second one user may make across all its connections on this pod (0: no limit); above it SENDs get ERROR 429 and the connection stays.
    #[arg(long, env = "CHAT_USER_SEND_RATE", default_value_t = 100)]
    pub user_send_rate: u32,

    /// Burst of SENDs above the sustained per-user rate.
    #[arg(long, env = "CHAT_USER_SEND_BURST", default_value_t = 200)]
    pub user_send_burst: u32,

    /// Sustained WebSocket upgrades per second from one client address (0: no limit); above it the upgrade gets HTTP 429.
    #[arg(long, env = "CHAT_CONNECT_RATE_PER_IP", default_value_t = 100)]
    pub connect_rate_per_ip: u32,

    /// Burst of upgrades above the per-address rate (a NAT's users reconnecting after a drain).
    #[arg(long, env = "CHAT_CONNECT_BURST_PER_IP", default_value_t = 1000)]
    pub connect_burst_per_ip: u32,

    /// Proxies whose `X-Forwarded-For` names the client (comma-separated address blocks, e.g. `10.0.0.0/8,fd00::/8`); from any other peer the header is ignored and the peer's address is the client's.
    #[arg(long, env = "CHAT_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,

    /// Most members a group may have; CREATE GROUP or ADD MEMBERS that would pass it gets ERROR 413.
    #[arg(long, env = "CHAT_MAX_GROUP_MEMBERS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(2..))]
    pub max_group_members: u32,

    /// How long one write to a client may wait for the client to read (its socket buffers full) before the connection closes with 1013; stored messages come back by catch-up.
    #[arg(long, env = "CHAT_WRITE_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub write_timeout_seconds: u64,

    /// How long a new connection to the public port has to send its first complete HTTP request head (a WebSocket upgrade, an API call); slower ones, and ones that send nothing, are disconnected.
    #[arg(long, env = "CHAT_HEADER_TIMEOUT_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout_seconds: u64,
}

/// A connection slot under `--max-connections`, held for the connection's life.
pub type ConnectionSlot = OwnedSemaphorePermit;

/// The TCP peer of a request, as the public port's accept loop recorded it (none when the
/// request did not come through it).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(info.map(|ConnectInfo(addr)| *addr)))
    }
}

/// The process's counters for the limits above.
pub struct Limits {
    slots: Arc<Semaphore>,
    per_address: Option<PerAddress>,
    trusted_proxies: Vec<Cidr>,
    user_sends: UserSends,
}

impl Limits {
    /// Limits of `max_connections` slots and `args`.
    pub fn new(max_connections: usize, args: &LimitArgs) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            per_address: PerAddress::new(args.connect_rate_per_ip, args.connect_burst_per_ip),
            trusted_proxies: args.trusted_proxies.clone(),
            user_sends: UserSends::new(Gcra::new(args.user_send_rate, args.user_send_burst)),
        }
    }

    /// Counts an upgrade from `peer` (none: not a TCP peer, not counted) against its address's
    /// rate: 429 above it.
    pub fn check_address(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Result<()> {
        let (Some(limit), Some(peer)) = (&self.per_address, peer) else {
            return Ok(());
        };
        let ip = client_ip(peer.ip(), headers, &self.trusted_proxies);
        if limit.allow(ip, Instant::now()) {
            return Ok(());
        }
        metrics::counter!("chat_limited_total", "limit" => "connect_per_ip").increment(1);
        Err(Error::RateLimited(
            "too many connections from your address; wait and try again".into(),
        ))
    }

    /// Takes a connection slot, atomically: two upgrades never both take the last one. 503
    /// when every slot is taken.
    pub fn connection_slot(&self) -> Result<ConnectionSlot> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("chat_limited_total", "limit" => "max_connections").increment(1);
            Error::Unavailable("connection limit reached; try another server".into())
        })
    }

    /// The SEND bucket `user`'s connections on this pod share (none: no per-user limit).
    pub fn user_sends(&self, user: &str) -> Option<Arc<SharedBucket>> {
        self.user_sends.bucket(user)
    }
}

/// Each user's SEND bucket, shared by its connections here while one of them lives.
struct UserSends {
    limit: Option<Gcra>,
    base: Instant,
    buckets: Mutex<(HashMap<String, Weak<SharedBucket>>, usize)>,
}

impl UserSends {
    fn new(limit: Option<Gcra>) -> Self {
        Self {
            limit,
            base: Instant::now(),
            buckets: Mutex::new((HashMap::new(), 1024)),
        }
    }

    /// The user's bucket, made when none of its connections holds one. Entries of users gone
    /// are swept when the map doubles, so connecting stays O(1) amortised.
    fn bucket(&self, user: &str) -> Option<Arc<SharedBucket>> {
        let limit = self.limit?;
        let mut guard = self.buckets.lock().expect("user buckets lock");
        let (map, sweep_at) = &mut *guard;
        if let Some(bucket) = map.get(user).and_then(Weak::upgrade) {
            return Some(bucket);
        }
        if map.len() >= *sweep_at {
            map.retain(|_, b| b.strong_count() > 0);
            *sweep_at = (map.len() * 2).max(1024);
        }
        let bucket = Arc::new(SharedBucket::new(limit, self.base));
        map.insert(user.to_owned(), Arc::downgrade(&bucket));
        Some(bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> LimitArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            limits: LimitArgs,
        }
        Cli::parse_from(["test"]).limits
    }

    #[test]
    fn slots_are_taken_atomically_and_come_back() {
        let limits = Limits::new(2, &args());
        let a = limits.connection_slot().unwrap();
        let _b = limits.connection_slot().unwrap();
        assert_eq!(limits.connection_slot().unwrap_err().status(), 503);
        drop(a);
        assert!(limits.connection_slot().is_ok());
    }

    #[test]
    fn a_users_connections_share_one_bucket_while_one_lives() {
        let limits = Limits::new(10, &args());
        let a = limits.user_sends("alice").unwrap();
        let b = limits.user_sends("alice").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &limits.user_sends("bob").unwrap()));
        drop((a, b));
        let weak = Arc::downgrade(&limits.user_sends("alice").unwrap());
        assert_eq!(
            weak.strong_count(),
            0,
            "nobody holds it once its connections are gone"
        );
    }

    #[test]
    fn defaults_fit_the_performance_scenarios() {
        let a = args();
        assert!(
            a.max_group_members >= 10_000,
            "the group scenario's 10,000 members"
        );
        assert!(a.trusted_proxies.is_empty());
        assert!(a.write_timeout_seconds <= 10 && a.header_timeout_seconds <= 10);
    }
}
