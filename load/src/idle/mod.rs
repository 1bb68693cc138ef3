//! The idle scenario: open N authenticated connections (one distinct user each), wait for WELCOME
//! on every one, keep them alive with heartbeats, and price an idle connection in server memory:
//! `(VmRSS after all are up and settled − VmRSS before) / connections`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod report;

use crate::cli::IdleArgs;
use chat_client::connect::close;
use chat_client::{Connection, Connector};

use crate::client::{connectors, hold_until, Held};
use crate::histogram::Histogram;
use crate::identity::{Users, DEVICE};
use crate::live::{Live, Units};
use crate::procfs;
use crate::scenario::{Gate, Scenario, Share, Watched};
use crate::stats::{Counts, Summary};
use report::per_connection_kib;
pub use report::{IdleReport, IdleTally};

/// How long closing all connections may take at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// The connections stay up this long past the hold, so the server's end-of-hold reading is
/// taken while all are still open.
const HOLD_GRACE: Duration = Duration::from_millis(500);
/// The marks at which the server's memory is read.
const SETTLED: &str = "settled";
const END_OF_HOLD: &str = "end_of_hold";

/// `idle`.
pub struct Idle {
    pub args: IdleArgs,
}

/// State the connection tasks share with the scenario.
#[derive(Default)]
struct Shared {
    alive: AtomicU64,
    dropped: Mutex<Counts<String>>,
    shutdown: CancellationToken,
}

type Outcome = Result<Duration, (String, String)>;

impl Scenario for Idle {
    type Tally = IdleTally;
    type Report = IdleReport;

    fn units(&self) -> Units {
        Units {
            sent: "attempts",
            completed: "up",
            latency: "handshake",
        }
    }

    fn marks(&self) -> Vec<(&'static str, Duration)> {
        let (settle, hold) = (self.args.settle_seconds, self.hold_seconds());
        vec![
            (SETTLED, Duration::from_secs(settle)),
            (END_OF_HOLD, Duration::from_secs(hold)),
        ]
    }

    async fn run(&self, share: Share, gate: &Gate, live: Arc<Live>) -> anyhow::Result<IdleTally> {
        open_and_hold(self, share, gate, live).await
    }

    fn merge(into: &mut IdleTally, other: IdleTally) {
        into.merge(other);
    }

    fn report(&self, t: IdleTally, w: Watched) -> IdleReport {
        let before = w.before.server_rss_kib;
        let after = w.marks.get(SETTLED).and_then(|s| s.server_rss_kib);
        IdleReport {
            mode: "idle",
            user_prefix: self.args.connect.user_prefix.clone().unwrap_or_default(),
            procs: w.procs,
            requested: t.requested,
            connected: t.connected,
            failed: t.failed,
            connect_seconds: t.connect_seconds,
            connects_per_second: t.connected as f64 / t.connect_seconds.max(1e-9),
            handshake: Summary::of(&t.handshake),
            server_rss_before_kib: before,
            server_rss_after_kib: after,
            server_rss_per_connection_kib: per_connection_kib(before, after, t.connected),
            server_rss_end_of_hold_kib: w.marks.get(END_OF_HOLD).and_then(|s| s.server_rss_kib),
            hold_seconds: self.hold_seconds(),
            held: t.held,
            dropped: t.dropped,
            client_rss_kib: t.client_rss_kib,
            timeline: w.timeline,
            config: self.args.clone(),
        }
    }
}

impl Idle {
    fn hold_seconds(&self) -> u64 {
        self.args.hold_seconds.max(self.args.settle_seconds)
    }
}

/// Opens this share's connections, holds them, closes them.
async fn open_and_hold(
    idle: &Idle,
    share: Share,
    gate: &Gate,
    live: Arc<Live>,
) -> anyhow::Result<IdleTally> {
    let args = &idle.args;
    let mine = share.range(args.connections as usize);
    let n = mine.len() as u64;
    procfs::check_fd_budget(n, procfs::open_files_limit(), "--connections")
        .map_err(|e| anyhow!(e))?;
    let connect = &args.connect;
    let [endpoint] = <[_; 1]>::try_from(connectors(connect).await?)
        .map_err(|_| anyhow!("idle measures one gateway: give one --url"))?;
    let prefix = share.prefix(connect.user_prefix.as_deref().unwrap_or("load"));
    let users = Users::new(Some(prefix), &connect.jwt_secret, connect.token_ttl_seconds);
    eprintln!(
        "opening {n} connections to {} as {}-i*",
        endpoint.addr(),
        users.prefix()
    );
    let clients = Arc::new(Clients {
        endpoint,
        users,
        permits: Semaphore::new(connect.concurrency.max(1)),
        heartbeat: connect.heartbeat(),
        live,
        shared: Shared::default(),
    });
    let tracker = TaskTracker::new();
    let (outcomes, mut results) = mpsc::unbounded_channel::<Outcome>();
    let started = tokio::time::Instant::now();
    for (local, index) in mine.enumerate() {
        let (clients, outcomes) = (clients.clone(), outcomes.clone());
        tracker.spawn(async move { clients.run(local, index, outcomes).await });
    }
    drop(outcomes);

    let (handshake, failed) = collect(&mut results, n).await;
    let connect_seconds = started.elapsed().as_secs_f64();
    let connected = handshake.count();
    if connected == 0 {
        bail!("no connection came up (failed: {failed})");
    }
    eprintln!(
        "{connected} up, {} failed in {connect_seconds:.1} s; holding",
        failed.total()
    );

    let start = gate.ready().await?;
    sleep_until(start + Duration::from_secs(idle.hold_seconds()) + HOLD_GRACE).await;
    let shared = &clients.shared;
    let held = shared.alive.load(Ordering::Relaxed);
    let client_rss_kib = procfs::own_rss_kib();
    shared.shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(CLOSE_GRACE, tracker.wait())
        .await
        .is_err()
    {
        eprintln!("warning: connections still closing after {CLOSE_GRACE:?}");
    }
    let dropped = std::mem::take(&mut *shared.dropped.lock().expect("dropped counts lock"));
    Ok(IdleTally {
        requested: n,
        connected,
        failed,
        handshake,
        connect_seconds,
        held,
        dropped,
        client_rss_kib,
    })
}

/// What the client tasks share.
struct Clients {
    endpoint: Connector,
    users: Users,
    permits: Semaphore,
    heartbeat: Option<Duration>,
    live: Arc<Live>,
    shared: Shared,
}

impl Clients {
    /// One client: connect (one of `--concurrency` at a time), tell how it went, hold.
    async fn run(&self, local: usize, index: usize, outcomes: mpsc::UnboundedSender<Outcome>) {
        let user = self.users.user("i", local);
        let permit = self.permits.acquire().await;
        Live::add(&self.live.sent, 1);
        let result = self
            .endpoint
            .connect(index, &user.token, Some(DEVICE))
            .await;
        drop(permit);
        match result {
            Ok(conn) => {
                self.shared.alive.fetch_add(1, Ordering::Relaxed);
                self.live.latency.record(conn.handshake.as_micros() as u64);
                Live::add(&self.live.completed, 1);
                let _ = outcomes.send(Ok(conn.handshake));
                drop(outcomes);
                hold(conn, index, self.heartbeat, &self.shared).await;
            }
            Err(e) => {
                Live::add(&self.live.errors, 1);
                let _ = outcomes.send(Err((e.kind(), e.to_string())));
            }
        }
    }
}

/// Gathers every connection's outcome, printing the first error of each kind.
async fn collect(
    results: &mut mpsc::UnboundedReceiver<Outcome>,
    n: u64,
) -> (Histogram, Counts<String>) {
    let mut handshakes = Histogram::default();
    let mut failed = Counts::default();
    let mut seen_kinds = std::collections::BTreeSet::new();
    for _ in 0..n {
        let Some(outcome) = results.recv().await else {
            break;
        };
        match outcome {
            Ok(handshake) => handshakes.record(handshake.as_micros() as u64),
            Err((kind, message)) => {
                if seen_kinds.insert(kind.clone()) {
                    eprintln!("connection failed ({kind}): {message}");
                }
                failed.add(kind);
            }
        }
    }
    (handshakes, failed)
}

/// Keeps one connection alive until shutdown, then closes it; counts it when the server ends it.
async fn hold(conn: Connection, index: usize, heartbeat: Option<Duration>, shared: &Shared) {
    match hold_until(conn, index, heartbeat, &shared.shutdown).await {
        Held::Stopped(sink, stream) => close(sink, stream).await,
        Held::Ended(reason) => {
            shared.alive.fetch_sub(1, Ordering::Relaxed);
            shared
                .dropped
                .lock()
                .expect("dropped counts lock")
                .add(reason);
        }
    }
}
