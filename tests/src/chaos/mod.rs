//! The chaos soak: 3 gateway processes, each in its own network namespace, on real Redis,
//! PostgreSQL and the Pulsar test broker; devices on the `chat-client` crate sending 1:1 and
//! group messages at a steady pace while a fault schedule ([`faults`]) kills, drains, restarts,
//! freezes, partitions and slows the parts one at a time; then the checker ([`check`]).
//!
//! Settings come from the environment (the bounded CI run uses the defaults):
//! `CHAOS_SECONDS` (fault phase, default 35), `CHAOS_USERS` (2 devices each, default 40),
//! `CHAOS_SEND_MS` (mean pause between two sends of one device, default 3000), `CHAOS_SEED`,
//! `CHAOS_RSS_CSV` (a file for every pod's RSS samples, every 500 ms, as CSV). For
//! investigations: `CHAOS_FAULTS` (the kinds to draw from, comma-separated, e.g.
//! `BrokerRestart,BrokerDrop`; default all), `CHAOS_POD_WRAPPER` (a command the pods run
//! under, given the gateway binary and its arguments, e.g. `heaptrack`) and `CHAOS_REBALANCE=1`
//! (every 30 s the harness rebalances connections as the operator does; off by default until
//! more seeds have run with it: it found the sweeper's moved-device gap, docs/reliability.md).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use pulsar_test_broker::{Broker, BrokerConfig, BrokerHandle};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod audit;
pub mod check;
pub mod device;
pub mod faults;
pub mod netns;
pub mod pods;
pub mod proxy;
mod rebalance;
mod report;

pub use report::Report;

use check::{DeviceRecord, Evidence};
use device::{Device, DeviceSpec};
use faults::{Kind, Pace, Schedule, Targets};
use netns::{Network, BACKEND_IPS, HOST_IP, SUBNET};
use pods::{Pod, PodSpec};

use crate::postgres::{OwnPostgresServer, PostgresServer};
use crate::redis::RedisServer;

/// Ports the backends listen on at [`HOST_IP`], and their proxies at [`BACKEND_IPS`]: fixed,
/// below the ephemeral range, away from the free ports other tests pick.
pub const REDIS_PORT: u16 = 17379;
/// See [`REDIS_PORT`].
pub const PG_PORT: u16 = 17432;
/// See [`REDIS_PORT`].
pub const BROKER_PORT: u16 = 17650;
/// See [`REDIS_PORT`].
const BROKER_ADMIN_PORT: u16 = 17651;
/// Number of pods.
const PODS: usize = 3;
/// Users per group (each user is in one group).
const GROUP_SIZE: usize = 6;

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Config {
    pub binary: String,
    /// How long the fault schedule runs.
    pub fault_phase: Duration,
    /// Traffic without faults before the schedule starts (the RSS baseline is taken at its end).
    pub warm_up: Duration,
    pub users: usize,
    pub send_interval: Duration,
    pub pace: Pace,
    pub seed: u64,
    /// The fault kinds the schedule draws from.
    pub kinds: Vec<Kind>,
    /// A command (with its arguments) the pods run under.
    pub wrapper: Vec<String>,
    /// Whether the harness rebalances connections as the operator would.
    pub rebalance: bool,
}

impl Config {
    /// The defaults, overridden by `CHAOS_*` variables.
    pub fn from_env(binary: &str) -> Self {
        let num = |name: &str, default: u64| -> u64 {
            std::env::var(name)
                .ok()
                .map(|v| {
                    v.parse()
                        .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
                })
                .unwrap_or(default)
        };
        let seconds = num("CHAOS_SECONDS", 35);
        let long = seconds >= 300;
        let s = Duration::from_secs;
        Self {
            binary: binary.to_owned(),
            fault_phase: s(seconds),
            warm_up: if long { s(30) } else { s(5) },
            users: num("CHAOS_USERS", if long { 100 } else { 40 }) as usize,
            send_interval: Duration::from_millis(num("CHAOS_SEND_MS", 3000)),
            pace: if long {
                Pace {
                    hold: (s(3), s(8)),
                    gap: (s(5), s(15)),
                }
            } else {
                Pace {
                    hold: (s(1), s(3)),
                    gap: (Duration::from_millis(500), s(1)),
                }
            },
            seed: num("CHAOS_SEED", rand::random::<u16>() as u64),
            kinds: std::env::var("CHAOS_FAULTS").map_or(Kind::ALL.to_vec(), |list| {
                Kind::parse_list(&list).unwrap_or_else(|e| panic!("CHAOS_FAULTS: {e}"))
            }),
            wrapper: std::env::var("CHAOS_POD_WRAPPER")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            rebalance: std::env::var("CHAOS_REBALANCE").is_ok_and(|v| v == "1"),
        }
    }
}

/// The backends and pods of a run.
struct Cluster {
    pods: Vec<Pod>,
    delays: proxy::Delays,
    _proxies: Vec<proxy::Proxy>,
    redis: RedisServer,
    postgres: OwnPostgresServer,
    broker: BrokerHandle,
    database_url: String,
    spec: PodSpec,
    _dir: crate::TempDir,
    /// Last: dropped after the pods and the backends.
    network: Network,
}

impl Cluster {
    async fn start(binary: &str, wrapper: &[String]) -> Self {
        crate::init_logging();
        let network = Network::create(PODS);
        let redis = tokio::task::block_in_place(|| RedisServer::start_own_at(HOST_IP, REDIS_PORT));
        let postgres = tokio::task::block_in_place(|| {
            PostgresServer::start_own_at(HOST_IP, PG_PORT, Some(SUBNET))
        });
        let database_url = postgres.url_of("postgres");
        let config = BrokerConfig {
            advertised_host: Some(BACKEND_IPS[2].to_owned()),
            ..BrokerConfig::default()
        };
        let broker =
            Broker::start_with(config, (HOST_IP, BROKER_PORT), (HOST_IP, BROKER_ADMIN_PORT))
                .await
                .expect("start the broker");
        crate::cluster::provision(&broker, crate::cluster::TENANT, crate::cluster::NAMESPACE).await;
        let delays = proxy::Delays::default();
        let mut proxies = Vec::new();
        for (ip, port) in BACKEND_IPS.iter().zip([REDIS_PORT, PG_PORT, BROKER_PORT]) {
            let listen = format!("{ip}:{port}").parse().expect("address");
            let upstream = format!("{HOST_IP}:{port}").parse().expect("address");
            proxies.push(proxy::Proxy::start(listen, upstream, delays.clone()).await);
        }
        let dir = crate::TempDir::new("chaos");
        let pod_database_url = format!("postgres://postgres@{}:{PG_PORT}/postgres", BACKEND_IPS[1]);
        let redis_url = format!("redis://{}:{REDIS_PORT}/", BACKEND_IPS[0]);
        let args = [
            "--database-url",
            &pod_database_url,
            "--redis-url",
            &redis_url,
            "--pulsar-url",
            broker.service_url(),
            "--pulsar-admin-url",
            broker.admin_url(),
            "--pulsar-tenant",
            crate::cluster::TENANT,
            "--pulsar-namespace",
            crate::cluster::NAMESPACE,
            "--key-prefix",
            "chaos",
            "--drain-seconds",
            "2",
        ];
        let spec = PodSpec {
            binary: binary.to_owned(),
            wrapper: wrapper.to_vec(),
            data_dir: dir.path().to_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        let mut pods: Vec<Pod> = (0..PODS).map(pods::pod).collect();
        // One at a time: the first one migrates the database.
        for p in &mut pods {
            spec.start(p).await;
        }
        Self {
            network,
            delays,
            _proxies: proxies,
            redis,
            postgres,
            broker,
            database_url,
            spec,
            pods,
            _dir: dir,
        }
    }

    fn urls_from(&self, first: usize) -> Vec<String> {
        (0..PODS)
            .map(|k| self.pods[(first + k) % PODS].ws_url())
            .collect()
    }

    fn sample_rss(&mut self) {
        for p in &mut self.pods {
            p.sample_rss();
        }
    }
}

/// Creates the groups (each user in one, `GROUP_SIZE` users each): group id → members.
async fn create_groups(c: &Cluster, users: &[String]) -> HashMap<String, Vec<String>> {
    let mut groups = HashMap::new();
    for (k, members) in users.chunks(GROUP_SIZE).enumerate() {
        let owner = &members[0];
        let options = chat_client::Options::new(crate::fixtures::user_token(owner)).device("setup");
        let mut client = chat_client::Client::connect(
            chat_client::RoundRobin::new(c.urls_from(k % PODS)),
            options,
        )
        .await
        .expect("setup connect");
        let others: Vec<&str> = members[1..].iter().map(String::as_str).collect();
        let g = client
            .create_group(&format!("chaos-{k}"), &others)
            .await
            .expect("create group");
        groups.insert(g.group_id.as_str().to_owned(), members.to_vec());
        client.close().await;
    }
    groups
}

/// Runs the soak and checks it.
pub async fn run(cfg: Config) -> Report {
    let origin = Instant::now();
    let origin_wall = SystemTime::now();
    let mut c = Cluster::start(&cfg.binary, &cfg.wrapper).await;
    let users: Vec<String> = (0..cfg.users).map(|i| format!("u{i:03}")).collect();
    let groups = create_groups(&c, &users).await;
    let group_of: HashMap<&str, String> = groups
        .iter()
        .flat_map(|(g, ms)| ms.iter().map(move |m| (m.as_str(), g.clone())))
        .collect();
    let mut devices = Vec::new();
    for (i, user) in users.iter().enumerate() {
        for (k, name) in ["a", "b"].into_iter().enumerate() {
            let spec = DeviceSpec {
                user: user.clone(),
                device: name.to_owned(),
                urls: c.urls_from(i + k),
                peers: users.iter().filter(|u| *u != user).cloned().collect(),
                groups: vec![group_of[user.as_str()].clone()],
                interval: cfg.send_interval,
                group_share: 0.3,
                seed: cfg.seed * 1000 + (i * 2 + k) as u64,
            };
            devices.push(Device::start(spec).await);
        }
    }
    eprintln!(
        "chaos: seed {}, {} devices of {} users in {} groups, warming up {:?}",
        cfg.seed,
        devices.len(),
        users.len(),
        groups.len(),
        cfg.warm_up
    );
    tokio::time::sleep(cfg.warm_up).await;
    c.sample_rss();

    let mut schedule = Schedule::new(StdRng::seed_from_u64(cfg.seed), &cfg.kinds, PODS, true);
    let mut faults = Vec::new();
    let fault_end = Instant::now() + cfg.fault_phase;
    let mut last_rebalance = Instant::now();
    while Instant::now() < fault_end {
        let (kind, pod) = schedule.next_fault();
        let hold = schedule.within(cfg.pace.hold);
        let mut targets = Targets {
            network: &c.network,
            pods: &mut c.pods,
            spec: &c.spec,
            redis: &mut c.redis,
            postgres: &mut c.postgres,
            broker: &c.broker,
            delays: &c.delays,
        };
        let fault = faults::inject(kind, pod, hold, &mut targets).await;
        eprintln!("chaos: {}", fault.describe(origin));
        faults.push(fault);
        let gap = schedule.within(cfg.pace.gap);
        let until = Instant::now() + gap;
        while Instant::now() < until {
            c.sample_rss();
            if cfg.rebalance && last_rebalance.elapsed() >= rebalance::INTERVAL {
                last_rebalance = Instant::now();
                rebalance::step(&c.pods).await;
            }
            tokio::time::sleep(Duration::from_millis(500).min(gap)).await;
        }
    }

    // Settle: no new sends; what is in flight gets its reply 0; what is due arrives.
    for d in &devices {
        d.quiet.cancel();
    }
    let settle = Instant::now();
    while devices.iter().any(Device::in_flight) && settle.elapsed() < Duration::from_secs(90) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last_fault = faults.last().map_or(origin, |f| f.end);
    let quiet_until = last_fault + check::LIVE_WITHIN + Duration::from_secs(5);
    while Instant::now() < quiet_until && !everything_arrived(&devices, &groups) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    c.sample_rss();
    if let Ok(path) = std::env::var("CHAOS_RSS_CSV") {
        pods::write_rss_timeline(&c.pods, origin, std::path::Path::new(&path));
    }
    let mut records = Vec::new();
    for d in devices {
        let (user, device) = (d.spec.user.clone(), d.spec.device.clone());
        let log = d.stop().await;
        let log = std::mem::take(&mut *log.lock().unwrap());
        records.push(DeviceRecord { user, device, log });
    }
    let audits = users.iter().enumerate().map(|(i, user)| {
        let urls = c.urls_from(i);
        async move { (user.clone(), audit::catch_up(urls, user).await) }
    });
    let catch_up: HashMap<_, _> = futures_util::future::join_all(audits)
        .await
        .into_iter()
        .collect();
    let db = audit::rows(&c.database_url, origin, origin_wall).await;
    let evidence = Evidence {
        origin,
        devices: records,
        groups,
        faults,
        catch_up,
        db,
    };
    let findings = check::check(&evidence);
    Report::new(&cfg, &evidence, findings, &c.pods, origin)
}

/// Whether every message sent so far reached every device of its participants (but the
/// sending one) that has been online since it was answered.
fn everything_arrived(devices: &[Device], groups: &HashMap<String, Vec<String>>) -> bool {
    let logs: Vec<_> = devices
        .iter()
        .map(|d| (&d.spec, d.log.lock().unwrap()))
        .collect();
    let now = Instant::now();
    for (spec, log) in &logs {
        for s in &log.sent {
            let users: Vec<&str> = match &s.target {
                device::Target::User(u) => vec![u.as_str(), spec.user.as_str()],
                device::Target::Group(g) => groups[g].iter().map(String::as_str).collect(),
            };
            let waiting = logs.iter().any(|(other, l)| {
                users.contains(&other.user.as_str())
                    && !(other.user == spec.user && other.device == spec.device)
                    && l.online_through(s.at, now)
                    && !l.got.contains_key(&s.message_id)
            });
            if waiting {
                return false;
            }
        }
    }
    true
}
