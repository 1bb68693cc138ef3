//! The fault schedule: every kind once in a random order, then kinds at random, one fault at a
//! time with a random pause between two; each fault logged with its target and when it was in
//! effect (from its start until what it broke was back: a restarted pod ready, a backend up, a
//! partition healed).

use std::fmt;
use std::time::{Duration, Instant};

use pulsar_test_broker::BrokerHandle;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::netns::{pod_ip, Network, BACKEND_IPS};
use super::pods::{Pod, PodSpec};
use super::proxy::Delays;
use crate::postgres::OwnPostgresServer;
use crate::redis::RedisServer;

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// SIGKILL a pod, start it again.
    PodKill,
    /// `POST /admin/drain`, then SIGTERM and start it again (a rolling restart's step).
    PodDrain,
    /// SIGKILL Redis, start it again empty.
    RedisRestart,
    /// The broker cuts every connection and refuses new ones for a while (a restart; its topics
    /// are kept, as Pulsar's storage keeps them).
    BrokerRestart,
    /// The broker cuts every connection.
    BrokerDrop,
    /// SIGSTOP PostgreSQL (every process of it) for a few seconds.
    PgFreeze,
    /// PostgreSQL crashes (SIGQUIT, immediate shutdown) and starts again (WAL recovery).
    PgRestart,
    /// A pod's packets to Redis are dropped.
    PartitionRedis,
    /// A pod's packets to PostgreSQL are dropped.
    PartitionPg,
    /// A pod's packets to the broker are dropped.
    PartitionBroker,
    /// Everything between a pod and its backends is delayed 100 ms each way.
    Latency,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::PodKill,
        Kind::PodDrain,
        Kind::RedisRestart,
        Kind::BrokerRestart,
        Kind::BrokerDrop,
        Kind::PgFreeze,
        Kind::PgRestart,
        Kind::PartitionRedis,
        Kind::PartitionPg,
        Kind::PartitionBroker,
        Kind::Latency,
    ];

    /// The kinds named in `list` (comma-separated, as [`Kind`]'s variants are spelled).
    pub fn parse_list(list: &str) -> Result<Vec<Kind>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                Kind::ALL
                    .into_iter()
                    .find(|k| format!("{k:?}").eq_ignore_ascii_case(name))
                    .ok_or_else(|| format!("{name}: not a fault kind (one of {:?})", Kind::ALL))
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|kinds| {
                if kinds.is_empty() {
                    Err("no fault kind named".into())
                } else {
                    Ok(kinds)
                }
            })
    }

    /// Whether it targets one pod.
    fn on_pod(self) -> bool {
        matches!(
            self,
            Kind::PodKill
                | Kind::PodDrain
                | Kind::PartitionRedis
                | Kind::PartitionPg
                | Kind::PartitionBroker
                | Kind::Latency
        )
    }
}

/// One fault as it happened.
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: Kind,
    pub pod: Option<usize>,
    pub start: Instant,
    /// When what it broke was back.
    pub end: Instant,
}

impl Fault {
    /// Its name with its target, and when it was in effect relative to `origin`.
    pub fn describe(&self, origin: Instant) -> String {
        format!(
            "{self} at {:.1}–{:.1} s",
            (self.start - origin).as_secs_f64(),
            (self.end - origin).as_secs_f64()
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pod {
            Some(p) => write!(f, "{:?}(pod-{p})", self.kind),
            None => write!(f, "{:?}", self.kind),
        }
    }
}

/// How long faults last and how long the pauses between them are.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// A fault that holds something down holds it this long (min, max).
    pub hold: (Duration, Duration),
    /// Pause between the end of a fault and the next one (min, max).
    pub gap: (Duration, Duration),
}

/// What the faults act on.
pub struct Targets<'a> {
    pub network: &'a Network,
    pub pods: &'a mut [Pod],
    pub spec: &'a PodSpec,
    pub redis: &'a mut RedisServer,
    pub postgres: &'a mut OwnPostgresServer,
    pub broker: &'a BrokerHandle,
    pub delays: &'a Delays,
}

/// Picks the next fault: the kinds of `ALL` once each (shuffled), then at random.
pub struct Schedule {
    kinds: Vec<Kind>,
    first: Vec<Kind>,
    rng: StdRng,
    /// Pods that pod faults pick from.
    pods: Vec<usize>,
    /// Pods that kills and drains pick from.
    restartable: Vec<usize>,
}

impl Schedule {
    /// A schedule drawing from `kinds` (normally [`Kind::ALL`]).
    pub fn new(mut rng: StdRng, kinds: &[Kind], pods: usize, spare_first: bool) -> Self {
        let mut first = kinds.to_vec();
        first.shuffle(&mut rng);
        first.reverse();
        let restartable = (usize::from(spare_first && pods > 1)..pods).collect();
        Self {
            kinds: kinds.to_vec(),
            first,
            rng,
            pods: (0..pods).collect(),
            restartable,
        }
    }

    pub fn next_fault(&mut self) -> (Kind, Option<usize>) {
        let kind = self
            .first
            .pop()
            .unwrap_or_else(|| self.kinds[self.rng.random_range(0..self.kinds.len())]);
        let pod = kind.on_pod().then(|| {
            let from = match kind {
                Kind::PodKill | Kind::PodDrain => &self.restartable,
                _ => &self.pods,
            };
            from[self.rng.random_range(0..from.len())]
        });
        (kind, pod)
    }

    /// A random duration in `range`.
    pub fn within(&mut self, (lo, hi): (Duration, Duration)) -> Duration {
        lo + (hi.saturating_sub(lo)).mul_f64(self.rng.random::<f64>())
    }
}

/// Injects one fault and undoes it; returns it as it happened.
pub async fn inject(kind: Kind, pod: Option<usize>, hold: Duration, t: &mut Targets<'_>) -> Fault {
    let start = Instant::now();
    let p = pod.unwrap_or(0);
    match kind {
        Kind::PodKill => {
            t.pods[p].kill9().await;
            tokio::time::sleep(hold.min(Duration::from_secs(2))).await;
            t.spec.start(&mut t.pods[p]).await;
        }
        Kind::PodDrain => {
            let status = t.pods[p].drain(2).await;
            assert_eq!(status, 202, "POST /admin/drain on pod-{p}");
            tokio::time::sleep(Duration::from_secs(3)).await;
            t.pods[p].terminate(Duration::from_secs(10)).await;
            t.spec.start(&mut t.pods[p]).await;
        }
        Kind::RedisRestart => {
            tokio::task::block_in_place(|| t.redis.stop());
            tokio::time::sleep(hold.min(Duration::from_secs(3))).await;
            tokio::task::block_in_place(|| t.redis.start());
        }
        Kind::BrokerRestart => {
            t.broker.set_refusing(true);
            t.broker.drop_all_connections();
            tokio::time::sleep(hold.min(Duration::from_secs(4))).await;
            t.broker.set_refusing(false);
        }
        Kind::BrokerDrop => {
            t.broker.drop_all_connections();
        }
        Kind::PgFreeze => {
            t.postgres.freeze(true);
            tokio::time::sleep(hold.min(Duration::from_secs(5))).await;
            t.postgres.freeze(false);
        }
        Kind::PgRestart => {
            tokio::task::block_in_place(|| {
                t.postgres.crash();
                t.postgres.start();
            });
        }
        Kind::PartitionRedis | Kind::PartitionPg | Kind::PartitionBroker => {
            let ip = match kind {
                Kind::PartitionRedis => BACKEND_IPS[0],
                Kind::PartitionPg => BACKEND_IPS[1],
                _ => BACKEND_IPS[2],
            };
            t.network.partition(p, ip);
            tokio::time::sleep(hold).await;
            t.network.heal(p, ip);
        }
        Kind::Latency => {
            let ip = pod_ip(p).parse().expect("pod address");
            t.delays
                .lock()
                .unwrap()
                .insert(ip, Duration::from_millis(100));
            tokio::time::sleep(hold).await;
            t.delays.lock().unwrap().remove(&ip);
        }
    }
    Fault {
        kind,
        pod,
        start,
        end: Instant::now(),
    }
}
