//! What a running scenario counts for the progress line and the per-second timeline: a few
//! shared counters and one latency histogram, cumulative since the start. A [`Snapshot`] of them
//! is taken once a second (in each child process too, then summed by the parent), and two
//! snapshots apart make one [`Second`] of the timeline.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::histogram::{AtomicHistogram, Histogram};

/// Shared live counters. What "sent" and "completed" count is the scenario's ([`Units`]).
#[derive(Debug, Default)]
pub struct Live {
    /// Sends (direct, group) or connection attempts (idle, storm).
    pub sent: AtomicU64,
    /// Reply 0 received (direct, group).
    pub stored: AtomicU64,
    /// Deliveries (direct, group) or connections up (idle, storm).
    pub completed: AtomicU64,
    /// Error frames and failed connections.
    pub errors: AtomicU64,
    /// Send → deliver (direct, group) or handshake (idle, storm), µs.
    pub latency: AtomicHistogram,
}

impl Live {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            sent: self.sent.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency: self.latency.snapshot(),
        }
    }
}

/// The live counters at one moment, cumulative.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub sent: u64,
    pub stored: u64,
    pub completed: u64,
    pub errors: u64,
    pub latency: Histogram,
}

impl Snapshot {
    /// Adds another process's snapshot.
    pub fn merge(&mut self, other: &Snapshot) {
        self.sent += other.sent;
        self.stored += other.stored;
        self.completed += other.completed;
        self.errors += other.errors;
        self.latency.merge(&other.latency);
    }
}

/// How a scenario names its counters in the progress line, the table and the plot.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Units {
    /// What "sent" counts: `sent` or `attempts`.
    pub sent: &'static str,
    /// What "completed" counts: `delivered` or `up`.
    pub completed: &'static str,
    /// What the latency measures: `send->deliver` or `handshake`.
    pub latency: &'static str,
}

/// One step of the timeline: what happened between two snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// End of the step, seconds since the start.
    pub t_s: f64,
    /// Length of the step, seconds (about 1).
    pub seconds: f64,
    pub sent: u64,
    pub stored: u64,
    pub completed: u64,
    pub errors: u64,
    /// `completed / seconds`.
    pub completed_per_second: f64,
    /// Latency of what completed in this step, ms.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Second {
    /// The step from `before` to `now`, which ends `t_s` seconds after the start.
    pub fn between(before: &Snapshot, now: &Snapshot, t_s: f64, seconds: f64) -> Self {
        let latency = now.latency.since(&before.latency);
        let completed = now.completed.saturating_sub(before.completed);
        let ms = |p: f64| latency.percentile(p) as f64 / 1000.0;
        Second {
            t_s,
            seconds,
            sent: now.sent.saturating_sub(before.sent),
            stored: now.stored.saturating_sub(before.stored),
            completed,
            errors: now.errors.saturating_sub(before.errors),
            completed_per_second: completed as f64 / seconds.max(1e-9),
            p50_ms: ms(50.0),
            p90_ms: ms(90.0),
            p99_ms: ms(99.0),
            max_ms: latency.max() as f64 / 1000.0,
        }
    }
}

/// The progress line for a step: elapsed, sent, rate, p99 so far, errors.
pub fn progress_line(units: &Units, now: &Snapshot, step: &Second) -> String {
    format!(
        "  {:>6.1} s  {} {:>9}  {}/s {:>8.0}  {} p99 so far {:>8.2} ms  errors {}",
        step.t_s,
        units.sent,
        now.sent,
        units.completed,
        step.completed_per_second,
        units.latency,
        now.latency.percentile(99.0) as f64 / 1000.0,
        now.errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_is_the_difference_of_two_snapshots() {
        let live = Live::default();
        Live::add(&live.sent, 10);
        Live::add(&live.completed, 8);
        live.latency.record(2_000);
        let before = live.snapshot();
        Live::add(&live.sent, 5);
        Live::add(&live.completed, 4);
        Live::add(&live.errors, 1);
        for us in [100, 100, 100, 90_000] {
            live.latency.record(us);
        }
        let now = live.snapshot();
        let step = Second::between(&before, &now, 2.0, 0.5);
        assert_eq!((step.sent, step.completed, step.errors), (5, 4, 1));
        assert_eq!(step.completed_per_second, 8.0);
        assert_eq!((step.p50_ms, step.max_ms), (0.1, 90.0));
        assert!((step.p99_ms - 90.0).abs() < 90.0 / 64.0, "{}", step.p99_ms);
        let units = Units {
            sent: "sent",
            completed: "delivered",
            latency: "send->deliver",
        };
        let line = progress_line(&units, &now, &step);
        assert!(line.contains("sent        15"), "{line}");
        assert!(line.contains("errors 1"), "{line}");
    }

    #[test]
    fn snapshots_of_processes_add_up() {
        let (a, b) = (Live::default(), Live::default());
        Live::add(&a.completed, 3);
        a.latency.record(10);
        Live::add(&b.completed, 4);
        b.latency.record(20);
        let mut sum = a.snapshot();
        sum.merge(&b.snapshot());
        assert_eq!(sum.completed, 7);
        assert_eq!(sum.latency.count(), 2);
        assert_eq!(sum.latency.percentile(100.0), 20);
    }
}
