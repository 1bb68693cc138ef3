//! The direct scenario (`direct`, alias `throughput`; `cross-pod` over several gateways):
//! `pairs` sender/recipient users, each on its own connection. Senders send 1:1 messages to their
//! recipient, paced at a fixed total rate or at saturation with a window of outstanding sends;
//! recipients ack every delivery. After a warm-up the run measures stored (reply 0) and
//! delivered rates, send→stored and send→delivered latency percentiles, errors by status and
//! the server's CPU per 1,000 delivered messages; after sending stops it drains, then counts
//! messages stored but never delivered as lost.

pub mod recipient;
mod report;
pub mod sender;
mod tally;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use chat_client::Connection;

use crate::cli::{DirectArgs, RunArgs};
use crate::client::{all_up, connect_all, connectors};
use crate::histogram::AtomicHistogram;
use crate::identity::{User, Users};
use crate::live::{Live, Units};
use crate::pacing::Schedule;
use crate::procfs;
use crate::scenario::{Gate, Scenario, Share, Watched};
use recipient::{Recipient, RecipientReport};
pub use report::DirectReport;
use sender::{Mode, Sender, SenderReport};
pub use tally::DirectTally;

/// How often the drain checks whether everything arrived.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// The measured part of the run, in µs since its start: sends, replies and deliveries inside
/// `[start_us, end_us)` count; the warm-up before it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_us: u64,
    pub end_us: u64,
}

impl Window {
    pub fn new(warmup: Duration, duration: Duration) -> Self {
        Window {
            start_us: warmup.as_micros() as u64,
            end_us: (warmup + duration).as_micros() as u64,
        }
    }

    pub fn contains(&self, us: u64) -> bool {
        (self.start_us..self.end_us).contains(&us)
    }
}

/// Totals the drain watches, besides the live ones.
#[derive(Debug, Default)]
pub struct Counters {
    /// Senders that have not stopped sending.
    pub sending: AtomicU64,
    /// Sends with neither reply 0 nor an error yet.
    pub outstanding: AtomicI64,
}

/// What every connection task of a run shares.
pub struct Run {
    pub base: Instant,
    pub window: Window,
    pub counters: Counters,
    pub live: Arc<Live>,
    /// Deliveries each stored message makes (1 for 1:1, members - 1 for a group).
    pub fanout: u64,
    /// Send → reply 0, µs, of messages sent in the window.
    pub store_latency: AtomicHistogram,
    /// Send → delivery, µs, of messages sent in the window.
    pub deliver_latency: AtomicHistogram,
    /// Paced runs: how late sends left against their schedule, µs.
    pub send_lag: AtomicHistogram,
    /// Senders stop sending (and keep reading replies).
    pub stop_sending: CancellationToken,
    /// Everyone closes and reports.
    pub shutdown: CancellationToken,
}

impl Run {
    /// A run starting at `base`, measuring `window`.
    pub fn new(base: Instant, window: Window, live: Arc<Live>) -> Self {
        Self {
            base,
            window,
            counters: Counters::default(),
            live,
            fanout: 1,
            store_latency: AtomicHistogram::default(),
            deliver_latency: AtomicHistogram::default(),
            send_lag: AtomicHistogram::default(),
            stop_sending: CancellationToken::new(),
            shutdown: CancellationToken::new(),
        }
    }

    /// µs since the run started.
    pub fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }
}

/// What a message scenario (direct, cross-pod, group) counts and times.
pub const MESSAGE_UNITS: Units = Units {
    sent: "sent",
    completed: "delivered",
    latency: "send->deliver",
};

/// The measured window's start and end, after the warm-up.
pub fn window_marks(run: &RunArgs) -> Vec<(&'static str, Duration)> {
    vec![
        (report::WINDOW_START, run.warmup()),
        (report::WINDOW_END, run.warmup() + run.duration()),
    ]
}

/// `direct` or `cross-pod`.
pub struct Direct {
    pub args: DirectArgs,
    pub name: &'static str,
}

impl Scenario for Direct {
    type Tally = DirectTally;
    type Report = DirectReport;

    fn units(&self) -> Units {
        MESSAGE_UNITS
    }

    fn marks(&self) -> Vec<(&'static str, Duration)> {
        window_marks(&self.args.run)
    }

    async fn run(&self, share: Share, gate: &Gate, live: Arc<Live>) -> anyhow::Result<DirectTally> {
        let args = &self.args;
        let pairs = share.range(args.pairs).len();
        let (recipients, senders) = self.connect_pairs(share).await?;
        let start = gate.ready().await?;
        let (warmup, duration) = (args.run.warmup(), args.run.duration());
        let run = Arc::new(Run::new(start, Window::new(warmup, duration), live));
        let heartbeat = args.connect.heartbeat();
        let ids =
            |pairs: &[Pair]| -> Vec<String> { pairs.iter().map(|(u, _)| u.id.clone()).collect() };
        let (recipient_ids, sender_ids) = (ids(&recipients), ids(&senders));
        let mut recipient_tasks = Vec::with_capacity(pairs);
        for (i, (_, conn)) in recipients.into_iter().enumerate() {
            let state = Recipient::new(&sender_ids[i..=i], args.timeline_ms, run.clone());
            recipient_tasks.push(tokio::spawn(recipient::drive(conn, state, i, heartbeat)));
        }
        let rate = args.run.rate.map(|r| r * pairs as f64 / args.pairs as f64);
        let mut sender_tasks = Vec::with_capacity(pairs);
        for (i, (_, conn)) in senders.into_iter().enumerate() {
            let mode = match rate {
                Some(rate) => Mode::Paced(Schedule::for_sender(rate, pairs, i)),
                None => Mode::Window(args.run.window),
            };
            let to = recipient_ids[i].clone();
            let state = Sender::new(to, args.run.message_bytes, run.clone());
            let task = sender::drive(conn, state, mode, pairs + i, heartbeat);
            sender_tasks.push(tokio::spawn(task));
        }
        announce(rate, &args.run);
        let limit = Duration::from_secs(args.run.drain_seconds);
        let (drained, senders, recipients) =
            run_out(&run, limit, sender_tasks, recipient_tasks).await?;
        let timeline_ms = args.timeline_ms;
        Ok(DirectTally::build(
            &run,
            timeline_ms,
            drained,
            senders,
            recipients,
        ))
    }

    fn merge(into: &mut DirectTally, other: DirectTally) {
        into.merge(other);
    }

    fn report(&self, tally: DirectTally, watched: Watched) -> DirectReport {
        DirectReport::build(&self.args, self.name, tally, watched)
    }
}

impl Direct {
    /// Opens this share's recipients, then its senders: `(user, connection)` each. Recipients
    /// first, so every message has an online device to go to; with several gateways a sender
    /// sits on the gateway after its recipient's, so every message crosses.
    async fn connect_pairs(&self, share: Share) -> anyhow::Result<(Vec<Pair>, Vec<Pair>)> {
        let args = &self.args;
        let mine = share.range(args.pairs);
        let pairs = mine.len();
        procfs::check_fd_budget(2 * pairs as u64, procfs::open_files_limit(), "--pairs")
            .map_err(|e| anyhow!(e))?;
        let connect = &args.connect;
        let endpoints = connectors(connect).await?;
        let prefix = share.prefix(connect.user_prefix.as_deref().unwrap_or("load"));
        let users = Users::new(Some(prefix), &connect.jwt_secret, connect.token_ttl_seconds);
        let recipients: Vec<User> = (0..pairs).map(|i| users.user("r", i)).collect();
        let senders: Vec<User> = (0..pairs).map(|i| users.user("s", i)).collect();
        eprintln!(
            "connecting {pairs} pairs to {} gateway(s) as {}-s*/-r*",
            endpoints.len(),
            users.prefix()
        );
        let (first, concurrency) = (mine.start, connect.concurrency);
        let r = connect_all(&endpoints, first, &recipients, first, concurrency).await;
        let recipients = recipients.into_iter().zip(all_up(r)?).collect();
        let first_sender = args.pairs + first;
        let s = connect_all(&endpoints, first + 1, &senders, first_sender, concurrency).await;
        let senders = senders.into_iter().zip(all_up(s)?).collect();
        Ok((recipients, senders))
    }
}

/// A user and its connection.
type Pair = (User, Connection);

/// Says how the senders send.
pub fn announce(rate: Option<f64>, run: &RunArgs) {
    let (warmup, duration) = (run.warmup(), run.duration());
    match rate {
        Some(rate) => eprintln!("sending {rate} msg/s for {warmup:?} warm-up + {duration:?}"),
        None => eprintln!(
            "sending at saturation (window {}) for {warmup:?} warm-up + {duration:?}",
            run.window
        ),
    }
}

/// Lets the senders send until the window ends, drains for up to `limit`, shuts down and
/// collects every connection's report: `(drain time, senders, recipients)`.
pub async fn run_out(
    run: &Run,
    limit: Duration,
    senders: Vec<JoinHandle<SenderReport>>,
    recipients: Vec<JoinHandle<RecipientReport>>,
) -> anyhow::Result<(Duration, Vec<SenderReport>, Vec<RecipientReport>)> {
    sleep_until(run.base + Duration::from_micros(run.window.end_us)).await;
    run.stop_sending.cancel();
    let drained = drain(run, limit).await;
    run.shutdown.cancel();
    let mut senders_done = Vec::with_capacity(senders.len());
    for task in senders {
        senders_done.push(task.await.context("a sender task panicked")?);
    }
    let mut recipients_done = Vec::with_capacity(recipients.len());
    for task in recipients {
        recipients_done.push(task.await.context("a recipient task panicked")?);
    }
    Ok((drained, senders_done, recipients_done))
}

/// Waits until every sender has stopped, every send is answered and every stored message is
/// delivered, or `limit`; returns the time it took.
pub async fn drain(run: &Run, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let sending = run.counters.sending.load(Ordering::Relaxed);
        let outstanding = run.counters.outstanding.load(Ordering::Relaxed);
        let stored = run.live.stored.load(Ordering::Relaxed);
        let delivered = run.live.completed.load(Ordering::Relaxed);
        let done = sending == 0 && outstanding <= 0 && delivered >= stored * run.fanout;
        if done || start.elapsed() >= limit {
            return start.elapsed();
        }
        sleep(DRAIN_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn run(warmup: u64, duration: u64) -> Arc<Run> {
        let window = Window::new(Duration::from_secs(warmup), Duration::from_secs(duration));
        Arc::new(Run::new(Instant::now(), window, Arc::default()))
    }

    #[test]
    fn window_is_half_open() {
        let run = run(3, 20);
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
        let run = run(0, 1);
        run.live.stored.store(2, Ordering::Relaxed);
        run.live.completed.store(1, Ordering::Relaxed);
        assert_eq!(
            drain(&run, Duration::from_secs(2)).await,
            Duration::from_secs(2)
        );
        run.live.completed.store(2, Ordering::Relaxed);
        assert_eq!(drain(&run, Duration::from_secs(2)).await, Duration::ZERO);
        run.counters.outstanding.store(1, Ordering::Relaxed);
        assert_eq!(
            drain(&run, Duration::from_millis(100)).await,
            Duration::from_millis(100)
        );
    }
}
