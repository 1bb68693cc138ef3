//! One process's direct run, folded from its connections into totals and histograms that merge
//! exactly with the other processes' (`--procs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::recipient::RecipientReport;
use super::sender::SenderReport;
use super::Run;
use crate::histogram::Histogram;
use crate::stats::{merge_steps, Counts, Timeline};

/// What one process counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectTally {
    pub sent_total: u64,
    pub stored_total: u64,
    pub delivered_total: u64,
    pub sent_in_window: u64,
    pub stored_in_window: u64,
    pub delivered_in_window: u64,
    pub lost: u64,
    pub unanswered: u64,
    pub delivered_without_reply: u64,
    pub duplicates: u64,
    pub retries: u64,
    pub uncorrelated: u64,
    pub delivered_notices: u64,
    pub unparsed_frames: u64,
    pub send_errors: Counts<u16>,
    pub ack_errors: Counts<u16>,
    pub disconnects: Counts<String>,
    pub send_to_stored: Histogram,
    pub send_to_delivered: Histogram,
    pub send_lag: Histogram,
    /// With `--timeline-ms`: send → delivered by send time, one histogram per step.
    pub delivered_steps: Vec<Histogram>,
    /// The longest drain.
    pub drain_seconds: f64,
}

/// `(lost, delivered_without_reply)` of one pair: stored but not delivered, and the reverse.
pub fn reconcile(stored: &[bool], delivered: &[bool]) -> (u64, u64) {
    let len = stored.len().max(delivered.len());
    let at = |v: &[bool], i: usize| v.get(i).copied().unwrap_or(false);
    (0..len).fold((0, 0), |(lost, unconfirmed), i| {
        match (at(stored, i), at(delivered, i)) {
            (true, false) => (lost + 1, unconfirmed),
            (false, true) => (lost, unconfirmed + 1),
            _ => (lost, unconfirmed),
        }
    })
}

impl DirectTally {
    /// Folds the pairs (sender `i` sent to recipient `i`) and the run's histograms.
    pub fn build(
        run: &Run,
        timeline_ms: Option<u64>,
        drained: Duration,
        senders: Vec<SenderReport>,
        recipients: Vec<RecipientReport>,
    ) -> Self {
        let mut t = DirectTally {
            send_to_stored: run.store_latency.snapshot(),
            send_to_delivered: run.deliver_latency.snapshot(),
            send_lag: run.send_lag.snapshot(),
            drain_seconds: drained.as_secs_f64(),
            ..DirectTally::default()
        };
        let mut by_send_time = Timeline::default();
        for (s, r) in senders.into_iter().zip(recipients) {
            let delivered = r.delivered.first().map_or(&[][..], Vec::as_slice);
            let (lost, unconfirmed) = reconcile(&s.stored, delivered);
            t.lost += lost;
            t.delivered_without_reply += unconfirmed;
            t.sent_total += s.sent;
            t.stored_total += s.stored.iter().filter(|&&x| x).count() as u64;
            t.delivered_total += delivered.iter().filter(|&&x| x).count() as u64;
            t.sent_in_window += s.sent_in_window;
            t.stored_in_window += s.stored_in_window;
            t.delivered_in_window += r.delivered_in_window;
            by_send_time.extend(r.by_send_time);
            t.send_errors.merge(s.errors);
            t.ack_errors.merge(r.errors);
            t.unanswered += s.unanswered;
            t.duplicates += r.duplicates;
            t.retries += r.retries;
            t.uncorrelated += r.uncorrelated;
            t.delivered_notices += s.notices;
            t.unparsed_frames += s.unparsed + r.unparsed;
            for reason in [s.ended, r.ended].into_iter().flatten() {
                t.disconnects.add(reason);
            }
        }
        if let Some(ms) = timeline_ms {
            t.delivered_steps = by_send_time.by_step(run.window.start_us, ms * 1000);
        }
        t
    }

    /// Adds another process's tally.
    pub fn merge(&mut self, o: DirectTally) {
        self.sent_total += o.sent_total;
        self.stored_total += o.stored_total;
        self.delivered_total += o.delivered_total;
        self.sent_in_window += o.sent_in_window;
        self.stored_in_window += o.stored_in_window;
        self.delivered_in_window += o.delivered_in_window;
        self.lost += o.lost;
        self.unanswered += o.unanswered;
        self.delivered_without_reply += o.delivered_without_reply;
        self.duplicates += o.duplicates;
        self.retries += o.retries;
        self.uncorrelated += o.uncorrelated;
        self.delivered_notices += o.delivered_notices;
        self.unparsed_frames += o.unparsed_frames;
        self.send_errors.merge(o.send_errors);
        self.ack_errors.merge(o.ack_errors);
        self.disconnects.merge(o.disconnects);
        self.send_to_stored.merge(&o.send_to_stored);
        self.send_to_delivered.merge(&o.send_to_delivered);
        self.send_lag.merge(&o.send_lag);
        merge_steps(&mut self.delivered_steps, &o.delivered_steps);
        self.drain_seconds = self.drain_seconds.max(o.drain_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_counts_both_directions() {
        let stored = [true, true, false, true];
        let delivered = [true, false, true];
        assert_eq!(reconcile(&stored, &delivered), (2, 1));
        assert_eq!(reconcile(&[], &[]), (0, 0));
        assert_eq!(reconcile(&[], &[false, true]), (0, 1));
    }

    #[test]
    fn build_folds_pairs_into_totals_and_losses() {
        let run = super::super::tests::run(0, 2);
        run.store_latency.record(2000);
        run.deliver_latency.record(5000);
        let mut s0 = SenderReport {
            sent: 3,
            sent_in_window: 2,
            stored_in_window: 2,
            stored: vec![true, true, true],
            ..SenderReport::default()
        };
        s0.errors.add(429);
        let s1 = SenderReport {
            sent: 1,
            stored: vec![true],
            ended: Some("close 1012".into()),
            ..SenderReport::default()
        };
        let mut r0 = RecipientReport {
            delivered: vec![vec![true, false, true]],
            delivered_in_window: 2,
            ..RecipientReport::default()
        };
        r0.by_send_time.record(100, 5000);
        r0.by_send_time.record(1_500_000, 7000);
        let t = DirectTally::build(
            &run,
            Some(1000),
            Duration::from_millis(500),
            vec![s0, s1],
            vec![r0, RecipientReport::default()],
        );
        assert_eq!((t.sent_total, t.stored_total, t.delivered_total), (4, 4, 2));
        assert_eq!((t.lost, t.delivered_without_reply), (2, 0));
        assert_eq!(t.send_errors.to_string(), "429: 1");
        assert_eq!(t.disconnects.to_string(), "close 1012: 1");
        assert_eq!(t.send_to_delivered.max(), 5000);
        let steps: Vec<u64> = t.delivered_steps.iter().map(Histogram::max).collect();
        assert_eq!(steps, vec![5000, 7000]);
    }

    #[test]
    fn tallies_of_processes_merge_exactly_and_round_trip_as_json() {
        let mut a = DirectTally {
            delivered_total: 10,
            lost: 1,
            drain_seconds: 0.5,
            ..DirectTally::default()
        };
        a.send_to_delivered.record(1000);
        a.send_errors.add(429);
        let mut b = DirectTally {
            delivered_total: 5,
            drain_seconds: 2.0,
            delivered_steps: vec![Histogram::default(), Histogram::default()],
            ..DirectTally::default()
        };
        b.send_to_delivered.record(90_000);
        b.send_errors.add(429);
        let b: DirectTally = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        a.merge(b);
        assert_eq!((a.delivered_total, a.lost, a.drain_seconds), (15, 1, 2.0));
        assert_eq!(a.send_errors.to_string(), "429: 2");
        assert_eq!(a.send_to_delivered.count(), 2);
        assert_eq!(a.send_to_delivered.percentile(100.0), 90_000);
        assert_eq!(a.delivered_steps.len(), 2);
    }
}
