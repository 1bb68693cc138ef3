//! The storm scenario: N clients connect and hold; after `--settle-seconds` all of them cut their
//! connection at the same instant (no WebSocket close: what a network blip or a crashed proxy
//! looks like to the server) and reconnect at once (or spread over `--spread-ms`). Measured: the
//! time from the drop until every client has its WELCOME again, each client's drop → WELCOME,
//! failed attempts by kind, and how often the kernel's listen queue overflowed meanwhile.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{anyhow, bail};
use chat_client::connect::close;
use chat_client::Connector;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::StormArgs;
use crate::client::{connectors, hold_until, Held};
use crate::histogram::Histogram;
use crate::identity::{User, Users, DEVICE};
use crate::live::{Live, Second, Units};
use crate::procfs;
use crate::scenario::{Gate, Scenario, Share, Watched};
use crate::stats::{Counts, Summary};

/// The mark at the drop, where the listen counters are read.
const DROP: &str = "drop";
/// Pause before retrying a failed reconnect: this plus up to as much again, by client.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// How long closing all connections may take at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// `storm`.
pub struct Storm {
    pub args: StormArgs,
}

/// What one process counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StormTally {
    pub clients: u64,
    /// Connected before the drop.
    pub up_before: u64,
    /// Clients whose first connection failed, by kind.
    pub never_up: Counts<String>,
    /// Connections the server ended before the drop.
    pub ended_before_drop: Counts<String>,
    /// Clients back with a WELCOME after the drop.
    pub back: u64,
    /// Failed reconnect attempts, by kind.
    pub failures: Counts<String>,
    pub attempts: u64,
    /// Drop → WELCOME per client, µs.
    pub back_after: Histogram,
}

impl StormTally {
    fn merge(&mut self, o: StormTally) {
        self.clients += o.clients;
        self.up_before += o.up_before;
        self.never_up.merge(o.never_up);
        self.ended_before_drop.merge(o.ended_before_drop);
        self.back += o.back;
        self.failures.merge(o.failures);
        self.attempts += o.attempts;
        self.back_after.merge(&o.back_after);
    }
}

#[derive(Debug, Serialize)]
pub struct StormReport {
    pub mode: &'static str,
    pub user_prefix: String,
    pub procs: usize,
    pub clients: u64,
    pub up_before: u64,
    pub never_up: Counts<String>,
    pub ended_before_drop: Counts<String>,
    pub back: u64,
    /// Up before the drop but not back after all attempts.
    pub not_back: u64,
    /// From the drop until the last client had its WELCOME; `None` unless all came back.
    pub all_back_seconds: Option<f64>,
    /// Drop → WELCOME per client.
    pub back_after: Summary,
    pub attempts: u64,
    pub failures: Counts<String>,
    /// `TcpExtListenOverflows` and `TcpExtListenDrops` from the drop to the end (the whole
    /// machine's, so other traffic counts too).
    pub listen_overflows: Option<u64>,
    pub listen_drops: Option<u64>,
    pub timeline: Vec<Second>,
    pub config: StormArgs,
}

/// What one client task tells the scenario.
enum Told {
    Up(bool),
    Back(Option<u64>),
}

/// What the client tasks share.
struct Shared {
    connector: Connector,
    live: Arc<Live>,
    permits: Semaphore,
    /// When every client cuts its connection (set just before `cut` fires).
    cut_at: OnceLock<Instant>,
    cut: CancellationToken,
    shutdown: CancellationToken,
    told: mpsc::UnboundedSender<Told>,
    tally: std::sync::Mutex<StormTally>,
    args: StormArgs,
    n: u64,
}

impl Scenario for Storm {
    type Tally = StormTally;
    type Report = StormReport;

    fn units(&self) -> Units {
        Units {
            sent: "attempts",
            completed: "up",
            latency: "handshake",
        }
    }

    fn marks(&self) -> Vec<(&'static str, Duration)> {
        vec![(DROP, Duration::from_secs(self.args.settle_seconds))]
    }

    async fn run(&self, share: Share, gate: &Gate, live: Arc<Live>) -> anyhow::Result<StormTally> {
        storm(&self.args, share, gate, live).await
    }

    fn merge(into: &mut StormTally, other: StormTally) {
        into.merge(other);
    }

    fn report(&self, t: StormTally, w: Watched) -> StormReport {
        let listen = |pick: fn((u64, u64)) -> u64| {
            let (from, to) = (w.marks.get(DROP)?.listen?, w.end.listen?);
            Some(pick(to).saturating_sub(pick(from)))
        };
        let not_back = t.up_before.saturating_sub(t.back);
        StormReport {
            mode: "storm",
            user_prefix: self.args.connect.user_prefix.clone().unwrap_or_default(),
            procs: w.procs,
            clients: t.clients,
            up_before: t.up_before,
            never_up: t.never_up,
            ended_before_drop: t.ended_before_drop,
            back: t.back,
            not_back,
            all_back_seconds: (not_back == 0 && t.back > 0)
                .then(|| t.back_after.max() as f64 / 1e6),
            back_after: Summary::of(&t.back_after),
            attempts: t.attempts,
            failures: t.failures,
            listen_overflows: listen(|(overflows, _)| overflows),
            listen_drops: listen(|(_, drops)| drops),
            timeline: w.timeline,
            config: self.args.clone(),
        }
    }
}

async fn storm(
    args: &StormArgs,
    share: Share,
    gate: &Gate,
    live: Arc<Live>,
) -> anyhow::Result<StormTally> {
    let mine = share.range(args.clients as usize);
    let n = mine.len() as u64;
    procfs::check_fd_budget(n, procfs::open_files_limit(), "--clients").map_err(|e| anyhow!(e))?;
    let connect = &args.connect;
    let connector = connectors(connect).await?.swap_remove(0);
    let prefix = share.prefix(connect.user_prefix.as_deref().unwrap_or("load"));
    let users = Users::new(Some(prefix), &connect.jwt_secret, connect.token_ttl_seconds);
    eprintln!("connecting {n} clients as {}-c*", users.prefix());
    let (told, mut heard) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        connector,
        live,
        permits: Semaphore::new(connect.concurrency.max(1)),
        cut_at: OnceLock::new(),
        cut: CancellationToken::new(),
        shutdown: CancellationToken::new(),
        told,
        tally: std::sync::Mutex::new(StormTally {
            clients: n,
            ..StormTally::default()
        }),
        args: args.clone(),
        n,
    });
    let tracker = TaskTracker::new();
    for (local, index) in mine.enumerate() {
        let (shared, user) = (shared.clone(), users.user("c", local));
        tracker.spawn(async move { client(&shared, user, local, index).await });
    }
    let up = wait_for(&mut heard, n, |t| matches!(t, Told::Up(true))).await;
    if up == 0 {
        bail!("no client connected before the storm");
    }
    eprintln!("{up} clients up; all drop in {} s", args.settle_seconds);
    let start = gate.ready().await?;
    sleep_until(start + Duration::from_secs(args.settle_seconds)).await;
    let _ = shared.cut_at.set(Instant::now());
    shared.cut.cancel();
    let back = wait_for(&mut heard, up, |t| matches!(t, Told::Back(Some(_)))).await;
    eprintln!("{back} of {up} back");
    shared.shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(CLOSE_GRACE, tracker.wait())
        .await
        .is_err()
    {
        eprintln!("warning: connections still closing after {CLOSE_GRACE:?}");
    }
    let tally = shared.tally.lock().expect("tally lock").clone();
    Ok(tally)
}

/// Reads `expected` messages; returns how many matched `good`.
async fn wait_for(
    heard: &mut mpsc::UnboundedReceiver<Told>,
    expected: u64,
    good: impl Fn(&Told) -> bool,
) -> u64 {
    let mut matched = 0;
    for _ in 0..expected {
        match heard.recv().await {
            Some(t) => matched += u64::from(good(&t)),
            None => break,
        }
    }
    matched
}

/// One client: connect, hold, cut at the drop, reconnect, hold until shutdown, close.
async fn client(shared: &Shared, user: User, local: usize, index: usize) {
    let heartbeat = shared.args.connect.heartbeat();
    let Some(conn) = attempt(shared, &user, index, false).await else {
        let _ = shared.told.send(Told::Up(false));
        return;
    };
    shared.tally.lock().expect("tally lock").up_before += 1;
    let _ = shared.told.send(Told::Up(true));
    match hold_until(conn, index, heartbeat, &shared.cut).await {
        Held::Ended(reason) => {
            shared
                .tally
                .lock()
                .expect("tally lock")
                .ended_before_drop
                .add(reason);
        }
        // Dropped, not closed: the socket is cut without a WebSocket close.
        Held::Stopped(sink, stream) => drop((sink, stream)),
    }
    let spread = Duration::from_millis(shared.args.spread_ms);
    sleep(spread.mul_f64(local as f64 / shared.n.max(1) as f64)).await;
    let mut back = None;
    for attempt_no in 0..shared.args.attempts {
        if attempt_no > 0 {
            let jitter = chat_client::keepalive::phase(index);
            sleep(RETRY_PAUSE.mul_f64(1.0 + jitter)).await;
        }
        if let Some(conn) = attempt(shared, &user, index, true).await {
            let cut_at = *shared.cut_at.get().expect("set before the cut");
            let after = cut_at.elapsed().as_micros() as u64;
            back = Some(after);
            {
                let mut tally = shared.tally.lock().expect("tally lock");
                tally.back += 1;
                tally.back_after.record(after);
            }
            let _ = shared.told.send(Told::Back(back));
            if let Held::Stopped(sink, stream) =
                hold_until(conn, index, heartbeat, &shared.shutdown).await
            {
                close(sink, stream).await;
            }
            return;
        }
    }
    let _ = shared.told.send(Told::Back(back));
}

/// One connect; failures are counted (as reconnect failures after the drop).
async fn attempt(
    shared: &Shared,
    user: &User,
    index: usize,
    after_drop: bool,
) -> Option<chat_client::Connection> {
    // Reconnects all go at once: the point is the burst, not --concurrency.
    let _permit = if after_drop {
        None
    } else {
        shared.permits.acquire().await.ok()
    };
    Live::add(&shared.live.sent, 1);
    let result = shared
        .connector
        .connect(index, &user.token, Some(DEVICE))
        .await;
    let mut tally = shared.tally.lock().expect("tally lock");
    if after_drop {
        tally.attempts += 1;
    }
    match result {
        Ok(conn) => {
            shared
                .live
                .latency
                .record(conn.handshake.as_micros() as u64);
            Live::add(&shared.live.completed, 1);
            Some(conn)
        }
        Err(e) => {
            Live::add(&shared.live.errors, 1);
            if after_drop {
                tally.failures.add(e.kind());
            } else {
                tally.never_up.add(e.kind());
            }
            None
        }
    }
}

impl fmt::Display for StormReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "storm: {} clients from {} process(es); {} up before the drop (never up: {}; \
             ended by the server before it: {})",
            self.clients, self.procs, self.up_before, self.never_up, self.ended_before_drop
        )?;
        match self.all_back_seconds {
            Some(s) => writeln!(
                f,
                "  all {} back with WELCOME {s:.3} s after the drop",
                self.back
            )?,
            None => writeln!(f, "  back: {}; NOT back: {}", self.back, self.not_back)?,
        }
        writeln!(f, "  drop -> WELCOME: {}", self.back_after)?;
        writeln!(
            f,
            "  reconnect attempts: {}; failed: {}",
            self.attempts, self.failures
        )?;
        let show = |v: Option<u64>| v.map_or("?".to_owned(), |v| v.to_string());
        writeln!(
            f,
            "  listen queue (TcpExt, whole machine): {} overflows, {} drops",
            show(self.listen_overflows),
            show(self.listen_drops)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_merge() {
        let mut a = StormTally {
            clients: 5,
            up_before: 5,
            back: 5,
            attempts: 6,
            ..StormTally::default()
        };
        a.failures.add("http 503".to_owned());
        a.back_after.record(200_000);
        let mut b = StormTally {
            clients: 5,
            up_before: 4,
            back: 3,
            attempts: 4,
            ..StormTally::default()
        };
        b.back_after.record(1_500_000);
        let b: StormTally = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        Storm::merge(&mut a, b);
        assert_eq!((a.clients, a.up_before, a.back, a.attempts), (10, 9, 8, 10));
        assert_eq!(a.back_after.max(), 1_500_000);
        assert_eq!(a.failures.to_string(), "http 503: 1");
    }
}
