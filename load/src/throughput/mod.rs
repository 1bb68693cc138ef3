//! The throughput scenario: `pairs` sender/recipient users, each on its own connection. Senders
//! send 1:1 messages to their recipient, paced at a fixed total rate or at saturation with a
//! window of outstanding sends; recipients ack every delivery. After a warm-up the run measures
//! stored (reply 0) and delivered rates, send→stored and send→delivered latency percentiles and
//! errors by status; after sending stops it drains, then counts messages stored but never
//! delivered as lost.

mod recipient;
mod report;
mod sender;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::cli::ThroughputArgs;
use chat_client::{Connection, Connector};

use crate::client::connect_all;
use crate::identity::{User, Users};
use crate::pacing::Schedule;
use crate::procfs;
use crate::stats::Counts;
use recipient::{Recipient, RecipientReport};
pub use report::ThroughputReport;
use sender::{Mode, Sender, SenderReport};

/// tungstenite's read buffer for busy connections. tungstenite zero-fills the free part of it
/// (up to this size) before every socket read, including the reads that find nothing: at 64 KiB
/// that memset was 75 % of the load tool's instructions (callgrind: 7.7 reads per delivered
/// message). 4 KiB still takes several ~600-byte frames per read.
const BUSY_READ_BUFFER: usize = 4096;
/// How often the drain checks whether everything arrived.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// How often live rates are printed while sending.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The measured part of the run, in µs since its start: sends, replies and deliveries inside
/// `[start_us, end_us)` count; the warm-up before it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_us: u64,
    pub end_us: u64,
}

impl Window {
    pub fn contains(&self, us: u64) -> bool {
        (self.start_us..self.end_us).contains(&us)
    }
}

/// Live totals the drain watches.
#[derive(Debug, Default)]
pub struct Counters {
    /// Senders that have not stopped sending.
    pub sending: AtomicU64,
    /// Sends with neither reply 0 nor an error yet.
    pub outstanding: AtomicI64,
    /// Replies 0 received.
    pub stored: AtomicU64,
    /// Distinct messages delivered.
    pub delivered: AtomicU64,
}

/// What every connection task of a run shares.
pub struct Run {
    pub base: Instant,
    pub window: Window,
    pub counters: Counters,
    /// Senders stop sending (and keep reading replies).
    pub stop_sending: CancellationToken,
    /// Everyone closes and reports.
    pub shutdown: CancellationToken,
}

impl Run {
    /// A run starting now, measuring `duration` after `warmup`; sending ends with the window.
    pub fn new(warmup: Duration, duration: Duration) -> Self {
        Self {
            base: Instant::now(),
            window: Window {
                start_us: warmup.as_micros() as u64,
                end_us: (warmup + duration).as_micros() as u64,
            },
            counters: Counters::default(),
            stop_sending: CancellationToken::new(),
            shutdown: CancellationToken::new(),
        }
    }

    /// µs since the run started.
    pub fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }
}

pub async fn run(args: ThroughputArgs) -> anyhow::Result<ThroughputReport> {
    ensure!(args.pairs > 0, "--pairs must be at least 1");
    ensure!(
        args.duration_seconds > 0,
        "--duration-seconds must be at least 1"
    );
    ensure!(args.window > 0, "--window must be at least 1");
    if let Some(rate) = args.rate {
        ensure!(
            rate.is_finite() && rate > 0.0,
            "--rate must be a positive number"
        );
    }
    let sockets = 2 * args.pairs as u64;
    procfs::check_fd_budget(sockets, procfs::open_files_limit(), "--pairs")
        .map_err(|e| anyhow!(e))?;
    let connect = &args.connect;
    if let Some(warning) =
        procfs::port_warning(sockets, connect.source_ips.len(), procfs::ephemeral_ports())
    {
        eprintln!("{warning}");
    }
    ensure!(!connect.url.is_empty(), "--url needs at least one URL");
    let mut endpoints = Vec::with_capacity(connect.url.len());
    for url in &connect.url {
        endpoints.push(
            Connector::resolve_with(url, connect.source_ips.clone())
                .await?
                .read_buffer(connect.read_buffer_bytes.unwrap_or(BUSY_READ_BUFFER))
                .timeout(connect.connect_timeout()),
        );
    }
    let addrs: Vec<String> = endpoints.iter().map(|e| e.addr().to_string()).collect();
    let users = Users::new(
        connect.user_prefix.clone(),
        &connect.jwt_secret,
        connect.token_ttl_seconds,
    );
    let recipients: Vec<User> = (0..args.pairs).map(|i| users.user("r", i)).collect();
    let senders: Vec<User> = (0..args.pairs).map(|i| users.user("s", i)).collect();

    eprintln!(
        "connecting {} pairs to {} as {}-s*/-r*",
        args.pairs,
        addrs.join(", "),
        users.prefix()
    );
    // Recipients first, so every message has an online device to go to. With several gateways a
    // sender sits on the gateway after its recipient's, so each message crosses gateways.
    let recipient_conns =
        all_up(connect_all(&endpoints, 0, &recipients, 0, connect.concurrency).await)?;
    let sender_conns =
        all_up(connect_all(&endpoints, 1, &senders, args.pairs, connect.concurrency).await)?;

    let warmup = Duration::from_secs(args.warmup_seconds);
    let duration = Duration::from_secs(args.duration_seconds);
    let run = Arc::new(Run::new(warmup, duration));
    let heartbeat = connect.heartbeat();
    let mut recipient_tasks = Vec::with_capacity(args.pairs);
    for (i, conn) in recipient_conns.into_iter().enumerate() {
        let state = Recipient::new(senders[i].id.clone(), run.clone());
        recipient_tasks.push(tokio::spawn(recipient::drive(conn, state, i, heartbeat)));
    }
    let mut sender_tasks = Vec::with_capacity(args.pairs);
    for (i, conn) in sender_conns.into_iter().enumerate() {
        let mode = match args.rate {
            Some(rate) => Mode::Paced(Schedule::for_sender(rate, args.pairs, i)),
            None => Mode::Window(args.window),
        };
        let state = Sender::new(recipients[i].id.clone(), args.message_bytes, run.clone());
        sender_tasks.push(tokio::spawn(sender::drive(
            conn,
            state,
            mode,
            args.pairs + i,
            heartbeat,
        )));
    }
    match args.rate {
        Some(rate) => eprintln!("sending {rate} msg/s for {warmup:?} warm-up + {duration:?}"),
        None => eprintln!(
            "sending at saturation (window {}) for {warmup:?} warm-up + {duration:?}",
            args.window
        ),
    }

    progress_until(&run, run.base + warmup + duration).await;
    run.stop_sending.cancel();
    let drained = drain(&run, Duration::from_secs(args.drain_seconds)).await;
    run.shutdown.cancel();

    let mut senders_done: Vec<SenderReport> = Vec::with_capacity(args.pairs);
    for task in sender_tasks {
        senders_done.push(task.await.context("a sender task panicked")?);
    }
    let mut recipients_done: Vec<RecipientReport> = Vec::with_capacity(args.pairs);
    for task in recipient_tasks {
        recipients_done.push(task.await.context("a recipient task panicked")?);
    }
    Ok(ThroughputReport::build(
        &args,
        users.prefix(),
        duration,
        drained,
        senders_done,
        recipients_done,
    ))
}

/// The connections, or an error naming how many failed and why.
fn all_up(results: Vec<chat_client::Result<Connection>>) -> anyhow::Result<Vec<Connection>> {
    let total = results.len();
    let mut kinds = Counts::default();
    let mut first = None;
    let mut up = Vec::with_capacity(total);
    for result in results {
        match result {
            Ok(conn) => up.push(conn),
            Err(e) => {
                kinds.add(e.kind());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Some(first) = first {
        bail!(
            "{} of {total} connections failed ({kinds}); first error: {first}",
            kinds.total()
        );
    }
    Ok(up)
}

/// Prints live stored/delivered rates until `end`.
async fn progress_until(run: &Run, end: Instant) {
    let (mut last_stored, mut last_delivered, mut last_at) = (0, 0, Instant::now());
    while Instant::now() < end {
        sleep_until(end.min(Instant::now() + PROGRESS_EVERY)).await;
        let stored = run.counters.stored.load(Ordering::Relaxed);
        let delivered = run.counters.delivered.load(Ordering::Relaxed);
        let secs = last_at.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "  {:>5.1} s: {:.0} stored/s, {:.0} delivered/s, {} outstanding",
            run.base.elapsed().as_secs_f64(),
            (stored - last_stored) as f64 / secs,
            (delivered - last_delivered) as f64 / secs,
            run.counters.outstanding.load(Ordering::Relaxed),
        );
        (last_stored, last_delivered, last_at) = (stored, delivered, Instant::now());
    }
}

/// Waits until every sender has stopped, every send is answered and every stored message is
/// delivered, or `limit`; returns the time it took.
async fn drain(run: &Run, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let sending = run.counters.sending.load(Ordering::Relaxed);
        let outstanding = run.counters.outstanding.load(Ordering::Relaxed);
        let stored = run.counters.stored.load(Ordering::Relaxed);
        let delivered = run.counters.delivered.load(Ordering::Relaxed);
        let done = sending == 0 && outstanding <= 0 && delivered >= stored;
        if done || start.elapsed() >= limit {
            return start.elapsed();
        }
        sleep(DRAIN_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_half_open() {
        let run = Run::new(Duration::from_secs(3), Duration::from_secs(20));
        assert_eq!(
            run.window,
            Window {
                start_us: 3_000_000,
                end_us: 23_000_000
            }
        );
        assert!(!run.window.contains(2_999_999));
        assert!(run.window.contains(3_000_000));
        assert!(run.window.contains(22_999_999));
        assert!(!run.window.contains(23_000_000));
    }

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_deliveries_or_the_limit() {
        let run = Run::new(Duration::ZERO, Duration::from_secs(1));
        run.counters.stored.store(2, Ordering::Relaxed);
        run.counters.delivered.store(1, Ordering::Relaxed);
        assert_eq!(
            drain(&run, Duration::from_secs(2)).await,
            Duration::from_secs(2)
        );
        run.counters.delivered.store(2, Ordering::Relaxed);
        assert_eq!(drain(&run, Duration::from_secs(2)).await, Duration::ZERO);
        run.counters.outstanding.store(1, Ordering::Relaxed);
        assert_eq!(
            drain(&run, Duration::from_millis(100)).await,
            Duration::from_millis(100)
        );
    }
}
