//! The idle scenario: open N authenticated connections (one distinct user each), wait for WELCOME
//! on every one, keep them alive with heartbeats, and price an idle connection in server memory:
//! `(VmRSS after all are up and settled − VmRSS before) / connections`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::IdleArgs;
use chat_client::connect::{classify, close, Event};
use chat_client::keepalive::{phase, Keepalive};
use chat_client::{Connection, Connector};

use crate::identity::Users;
use crate::identity::DEVICE;
use crate::procfs;
use crate::stats::{Counts, Samples, Summary};

/// tungstenite's read buffer for idle clients: they read only heartbeat acks.
const IDLE_READ_BUFFER: usize = 4096;
/// How often connection progress is printed while opening.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How long closing all connections may take at the end.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub struct IdleReport {
    pub mode: &'static str,
    pub user_prefix: String,
    pub requested: u64,
    pub connected: u64,
    pub failed: Counts<String>,
    pub connect_seconds: f64,
    pub connects_per_second: f64,
    /// TCP connect to WELCOME.
    pub handshake: Summary,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
    pub server_rss_per_connection_kib: Option<f64>,
    pub server_rss_end_of_hold_kib: Option<u64>,
    pub hold_seconds: u64,
    /// Connections still open when the hold ended.
    pub held: u64,
    /// Connections the server ended during the hold, by reason.
    pub dropped: Counts<String>,
    pub client_rss_kib: Option<u64>,
}

/// State the connection tasks share with the scenario.
#[derive(Default)]
struct Shared {
    alive: AtomicU64,
    dropped: Mutex<Counts<String>>,
    shutdown: CancellationToken,
}

type Outcome = Result<Duration, (String, String)>;

pub async fn run(args: IdleArgs) -> anyhow::Result<IdleReport> {
    let n = args.connections;
    procfs::check_fd_budget(n, procfs::open_files_limit(), "--connections")
        .map_err(|e| anyhow!(e))?;
    let connect = &args.connect;
    if let Some(warning) =
        procfs::port_warning(n, connect.source_ips.len(), procfs::ephemeral_ports())
    {
        eprintln!("{warning}");
    }
    let [url] = connect.url.as_slice() else {
        bail!("idle measures one gateway: give one --url");
    };
    let endpoint = Arc::new(
        Connector::resolve_with(url, connect.source_ips.clone())
            .await?
            .read_buffer(connect.read_buffer_bytes.unwrap_or(IDLE_READ_BUFFER))
            .timeout(connect.connect_timeout()),
    );
    let users = Arc::new(Users::new(
        connect.user_prefix.clone(),
        &connect.jwt_secret,
        connect.token_ttl_seconds,
    ));
    let rss_before = args.server_pid.map(procfs::rss_kib).transpose()?;
    eprintln!(
        "opening {n} connections to {} as {}-i*",
        endpoint.addr(),
        users.prefix()
    );

    let shared = Arc::new(Shared::default());
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(connect.concurrency.max(1)));
    let (outcomes, mut results) = mpsc::unbounded_channel::<Outcome>();
    let start = Instant::now();
    for index in 0..n as usize {
        let (endpoint, users, permits, outcomes, shared) = (
            endpoint.clone(),
            users.clone(),
            permits.clone(),
            outcomes.clone(),
            shared.clone(),
        );
        let heartbeat = connect.heartbeat();
        tracker.spawn(async move {
            let user = users.user("i", index);
            let permit = permits.acquire_owned().await;
            let result = endpoint.connect(index, &user.token, Some(DEVICE)).await;
            drop(permit);
            match result {
                Ok(conn) => {
                    shared.alive.fetch_add(1, Ordering::Relaxed);
                    let _ = outcomes.send(Ok(conn.handshake));
                    drop(outcomes);
                    hold(conn, index, heartbeat, &shared).await;
                }
                Err(e) => {
                    let _ = outcomes.send(Err((e.kind(), e.to_string())));
                }
            }
        });
    }
    drop(outcomes);

    let (handshakes, failed) = collect(&mut results, n).await;
    let connect_seconds = start.elapsed().as_secs_f64();
    let connected = handshakes.len() as u64;
    if connected == 0 {
        bail!("no connection came up (failed: {failed})");
    }
    eprintln!(
        "{connected} up, {} failed in {connect_seconds:.1} s; settling",
        failed.total()
    );

    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    let rss_after = args.server_pid.map(procfs::rss_kib).transpose()?;
    let rest = args.hold_seconds.saturating_sub(args.settle_seconds);
    tokio::time::sleep(Duration::from_secs(rest)).await;
    let rss_end = args.server_pid.map(procfs::rss_kib).transpose()?;
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

    Ok(IdleReport {
        mode: "idle",
        user_prefix: users.prefix().to_owned(),
        requested: n,
        connected,
        failed,
        connect_seconds,
        connects_per_second: connected as f64 / connect_seconds.max(1e-9),
        handshake: handshakes.summary(),
        server_rss_before_kib: rss_before,
        server_rss_after_kib: rss_after,
        server_rss_per_connection_kib: per_connection_kib(rss_before, rss_after, connected),
        server_rss_end_of_hold_kib: rss_end,
        hold_seconds: args.hold_seconds.max(args.settle_seconds),
        held,
        dropped,
        client_rss_kib,
    })
}

/// Gathers every connection's outcome, printing progress and the first error of each kind.
async fn collect(
    results: &mut mpsc::UnboundedReceiver<Outcome>,
    n: u64,
) -> (Samples, Counts<String>) {
    let mut handshakes = Samples::default();
    let mut failed = Counts::default();
    let mut seen_kinds = std::collections::BTreeSet::new();
    let mut done = 0u64;
    let mut progress = tokio::time::interval(PROGRESS_EVERY);
    progress.tick().await;
    while done < n {
        tokio::select! {
            outcome = results.recv() => {
                let Some(outcome) = outcome else { break };
                done += 1;
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
            _ = progress.tick() => eprintln!("  {done}/{n} done, {} failed", failed.total()),
        }
    }
    (handshakes, failed)
}

/// Server memory per connection, KiB; `None` without both readings or connections.
fn per_connection_kib(before: Option<u64>, after: Option<u64>, connections: u64) -> Option<f64> {
    let (before, after) = (before?, after?);
    (connections > 0).then(|| (after as f64 - before as f64) / connections as f64)
}

/// Keeps one connection alive until shutdown, reading (and dropping) whatever the server sends.
async fn hold(conn: Connection, index: usize, heartbeat: Option<Duration>, shared: &Shared) {
    let (mut sink, mut stream) = conn.ws.split();
    let mut keepalive = Keepalive::new(&conn.welcome, heartbeat, phase(index));
    let reason = loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => {
                close(sink, stream).await;
                return;
            }
            item = stream.next() => {
                if let Event::Ended(reason) = classify(item) {
                    break reason;
                }
            }
            frame = keepalive.next() => {
                if let Err(e) = sink.send(Message::text(frame)).await {
                    break format!("send failed: {e}");
                }
            }
        }
    };
    shared.alive.fetch_sub(1, Ordering::Relaxed);
    shared
        .dropped
        .lock()
        .expect("dropped counts lock")
        .add(reason);
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "idle: {} of {} connections up in {:.1} s ({:.0}/s); failed: {}",
            self.connected,
            self.requested,
            self.connect_seconds,
            self.connects_per_second,
            self.failed
        )?;
        writeln!(
            f,
            "  handshake (TCP connect -> WELCOME): {}",
            self.handshake
        )?;
        match (self.server_rss_before_kib, self.server_rss_after_kib) {
            (Some(before), Some(after)) => {
                writeln!(
                    f,
                    "  server RSS: {before} KiB before, {after} KiB with all connections up"
                )?;
                if let Some(per) = self.server_rss_per_connection_kib {
                    writeln!(f, "  server RSS per idle connection: {per:.2} KiB")?;
                }
                if let Some(end) = self.server_rss_end_of_hold_kib {
                    writeln!(f, "  server RSS at the end of the hold: {end} KiB")?;
                }
            }
            _ => writeln!(f, "  server RSS: not measured (give --server-pid)")?,
        }
        writeln!(
            f,
            "  held {} s: {} still open; dropped by the server: {}",
            self.hold_seconds, self.held, self.dropped
        )?;
        if let Some(rss) = self.client_rss_kib {
            writeln!(f, "  client RSS: {rss} KiB")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_per_connection() {
        assert_eq!(
            per_connection_kib(Some(1000), Some(41_000), 10_000),
            Some(4.0)
        );
        assert_eq!(per_connection_kib(Some(1000), Some(900), 100), Some(-1.0));
        assert_eq!(per_connection_kib(Some(1000), Some(2000), 0), None);
        assert_eq!(per_connection_kib(None, Some(2000), 10), None);
    }
}
