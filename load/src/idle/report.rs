//! The idle result: connections up, handshake percentiles and the server's memory per idle
//! connection.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::cli::IdleArgs;
use crate::histogram::Histogram;
use crate::live::Second;
use crate::stats::{Counts, Summary};

/// What one process counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdleTally {
    pub requested: u64,
    pub connected: u64,
    pub failed: Counts<String>,
    /// TCP connect to WELCOME, µs.
    pub handshake: Histogram,
    /// The longest time a process took to open its share.
    pub connect_seconds: f64,
    /// Connections still open when the hold ended.
    pub held: u64,
    /// Connections the server ended during the hold, by reason.
    pub dropped: Counts<String>,
    /// The load processes' summed RSS.
    pub client_rss_kib: Option<u64>,
}

impl IdleTally {
    pub fn merge(&mut self, o: IdleTally) {
        self.requested += o.requested;
        self.connected += o.connected;
        self.failed.merge(o.failed);
        self.handshake.merge(&o.handshake);
        self.connect_seconds = self.connect_seconds.max(o.connect_seconds);
        self.held += o.held;
        self.dropped.merge(o.dropped);
        self.client_rss_kib = match (self.client_rss_kib, o.client_rss_kib) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
}

#[derive(Debug, Serialize)]
pub struct IdleReport {
    pub mode: &'static str,
    pub user_prefix: String,
    pub procs: usize,
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
    /// Per second since the tool started: attempts, connections up, handshake percentiles.
    pub timeline: Vec<Second>,
    pub config: IdleArgs,
}

/// Server memory per connection, KiB; `None` without both readings or connections.
pub fn per_connection_kib(
    before: Option<u64>,
    after: Option<u64>,
    connections: u64,
) -> Option<f64> {
    let (before, after) = (before?, after?);
    (connections > 0).then(|| (after as f64 - before as f64) / connections as f64)
}

impl fmt::Display for IdleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "idle: {} of {} connections up from {} process(es) in {:.1} s ({:.0}/s); failed: {}",
            self.connected,
            self.requested,
            self.procs,
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
            _ => writeln!(
                f,
                "  server RSS: not measured (give --server-pid or --server-pgrep)"
            )?,
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
    fn tallies_merge() {
        let mut a = IdleTally {
            requested: 10,
            connected: 9,
            client_rss_kib: Some(100),
            connect_seconds: 2.0,
            ..IdleTally::default()
        };
        a.failed.add("timeout".to_owned());
        a.handshake.record(3_000);
        let mut b = IdleTally {
            requested: 10,
            connected: 10,
            client_rss_kib: Some(50),
            connect_seconds: 3.0,
            ..IdleTally::default()
        };
        b.handshake.record(9_000);
        let b: IdleTally = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        a.merge(b);
        assert_eq!(
            (a.requested, a.connected, a.client_rss_kib),
            (20, 19, Some(150))
        );
        assert_eq!((a.connect_seconds, a.handshake.count()), (3.0, 2));
        assert_eq!(a.failed.total(), 1);
    }

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
