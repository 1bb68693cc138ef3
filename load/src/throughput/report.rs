//! The throughput result: per-connection reports folded into rates, percentiles, errors and the
//! lost-message count, printable for people and serializable for `docs/benchmarks.md`.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::recipient::RecipientReport;
use super::sender::SenderReport;
use crate::cli::ThroughputArgs;
use crate::stats::{Counts, Samples, Summary, Timeline};

#[derive(Debug, Serialize)]
pub struct ThroughputReport {
    pub mode: &'static str,
    pub user_prefix: String,
    /// Gateways the pairs were spread over (several: every message crossed gateways).
    pub gateways: usize,
    pub pairs: usize,
    /// Offered msgs/s; `None` at saturation.
    pub rate: Option<f64>,
    /// Outstanding sends per sender at saturation; `None` when paced.
    pub window: Option<usize>,
    pub message_bytes: usize,
    pub warmup_seconds: u64,
    pub duration_seconds: u64,
    /// Whole run, warm-up included.
    pub sent_total: u64,
    pub stored_total: u64,
    pub delivered_total: u64,
    /// Within the measured window.
    pub sent_per_second: f64,
    pub stored_per_second: f64,
    pub delivered_per_second: f64,
    pub send_to_stored: Summary,
    pub send_to_delivered: Summary,
    /// With `--timeline-ms`: the step, and send -> delivered for each step of the measured
    /// window, by send time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_timeline: Option<Vec<Summary>>,
    /// Paced runs: how late sends left against their schedule (large = the client fell behind).
    pub send_lag: Option<Summary>,
    pub send_errors: Counts<u16>,
    pub ack_errors: Counts<u16>,
    /// Got reply 0 but never delivered by the end of the drain.
    pub lost: u64,
    /// Sends with neither reply 0 nor an error by the end of the drain.
    pub unanswered: u64,
    /// Delivered although the sender never saw its reply 0.
    pub delivered_without_reply: u64,
    pub duplicates: u64,
    pub retries: u64,
    pub uncorrelated: u64,
    pub delivered_notices: u64,
    pub unparsed_frames: u64,
    /// Connections that ended before the run did, by reason.
    pub disconnects: Counts<String>,
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

impl ThroughputReport {
    pub fn build(
        args: &ThroughputArgs,
        user_prefix: &str,
        duration: Duration,
        drained: Duration,
        senders: Vec<SenderReport>,
        recipients: Vec<RecipientReport>,
    ) -> Self {
        let secs = duration.as_secs_f64().max(1e-9);
        let mut report = Self {
            mode: "throughput",
            gateways: args.connect.url.len(),
            user_prefix: user_prefix.to_owned(),
            pairs: args.pairs,
            rate: args.rate,
            window: args.rate.is_none().then_some(args.window),
            message_bytes: args.message_bytes,
            warmup_seconds: args.warmup_seconds,
            duration_seconds: args.duration_seconds,
            sent_total: 0,
            stored_total: 0,
            delivered_total: 0,
            sent_per_second: 0.0,
            stored_per_second: 0.0,
            delivered_per_second: 0.0,
            send_to_stored: Samples::default().summary(),
            send_to_delivered: Samples::default().summary(),
            timeline_ms: args.timeline_ms,
            delivered_timeline: None,
            send_lag: None,
            send_errors: Counts::default(),
            ack_errors: Counts::default(),
            lost: 0,
            unanswered: 0,
            delivered_without_reply: 0,
            duplicates: 0,
            retries: 0,
            uncorrelated: 0,
            delivered_notices: 0,
            unparsed_frames: 0,
            disconnects: Counts::default(),
            drain_seconds: drained.as_secs_f64(),
        };
        let (mut stored_latency, mut lag) = (Samples::default(), Samples::default());
        let mut delivered_latency = Timeline::default();
        let (mut sent_in_window, mut stored_in_window, mut delivered_in_window) = (0, 0, 0);
        for (s, r) in senders.into_iter().zip(recipients) {
            let (lost, unconfirmed) = reconcile(&s.stored, &r.delivered);
            report.lost += lost;
            report.delivered_without_reply += unconfirmed;
            report.sent_total += s.sent;
            report.stored_total += s.stored.iter().filter(|&&x| x).count() as u64;
            report.delivered_total += r.delivered.iter().filter(|&&x| x).count() as u64;
            sent_in_window += s.sent_in_window;
            stored_in_window += s.stored_in_window;
            delivered_in_window += r.delivered_in_window;
            stored_latency.merge(s.store_latency);
            delivered_latency.merge(r.deliver_latency);
            lag.merge(s.lag);
            report.send_errors.merge(s.errors);
            report.ack_errors.merge(r.errors);
            report.unanswered += s.unanswered;
            report.duplicates += r.duplicates;
            report.retries += r.retries;
            report.uncorrelated += r.uncorrelated;
            report.delivered_notices += s.notices;
            report.unparsed_frames += s.unparsed + r.unparsed;
            for reason in [s.ended, r.ended].into_iter().flatten() {
                report.disconnects.add(reason);
            }
        }
        report.sent_per_second = sent_in_window as f64 / secs;
        report.stored_per_second = stored_in_window as f64 / secs;
        report.delivered_per_second = delivered_in_window as f64 / secs;
        report.send_to_stored = stored_latency.summary();
        report.send_to_delivered = delivered_latency.summary();
        report.send_lag = args.rate.map(|_| lag.summary());
        let start_us = Duration::from_secs(args.warmup_seconds).as_micros() as u64;
        report.delivered_timeline = args
            .timeline_ms
            .map(|ms| delivered_latency.by_step(start_us, ms * 1000));
        report
    }
}

impl fmt::Display for ThroughputReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let load = match (self.rate, self.window) {
            (Some(rate), _) => format!("offered {rate} msg/s, paced"),
            (None, Some(window)) => format!("saturation, window {window} per sender"),
            (None, None) => "saturation".to_owned(),
        };
        writeln!(
            f,
            "throughput: {} pairs over {} gateway(s), {load}, {} B messages; {} s warm-up + {} s measured",
            self.pairs, self.gateways, self.message_bytes, self.warmup_seconds, self.duration_seconds
        )?;
        writeln!(
            f,
            "  sent       {:>10.1} msg/s  ({} in total)",
            self.sent_per_second, self.sent_total
        )?;
        writeln!(
            f,
            "  stored     {:>10.1} msg/s  ({} in total, reply 0)",
            self.stored_per_second, self.stored_total
        )?;
        writeln!(
            f,
            "  delivered  {:>10.1} msg/s  ({} in total)",
            self.delivered_per_second, self.delivered_total
        )?;
        writeln!(f, "  send -> stored:    {}", self.send_to_stored)?;
        writeln!(f, "  send -> delivered: {}", self.send_to_delivered)?;
        let step = self.timeline_ms.unwrap_or(0) as f64 / 1000.0;
        for (i, part) in self.delivered_timeline.iter().flatten().enumerate() {
            writeln!(f, "    from {:>7.2} s: {part}", i as f64 * step)?;
        }
        if let Some(lag) = &self.send_lag {
            writeln!(f, "  send lag vs schedule: {lag}")?;
        }
        writeln!(
            f,
            "  errors: send {}; ack {}",
            self.send_errors, self.ack_errors
        )?;
        writeln!(
            f,
            "  lost: {} (reply 0 but not delivered after a {:.1} s drain); unanswered sends: {}; \
             delivered without reply 0: {}",
            self.lost, self.drain_seconds, self.unanswered, self.delivered_without_reply
        )?;
        writeln!(
            f,
            "  duplicates: {} (retry-flagged deliveries: {}); uncorrelated: {}; delivered notices: {}; \
             unparsed frames: {}",
            self.duplicates, self.retries, self.uncorrelated, self.delivered_notices, self.unparsed_frames
        )?;
        writeln!(f, "  early disconnects: {}", self.disconnects)
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

    fn args(extra: &[&str]) -> ThroughputArgs {
        use clap::Parser;
        let mut argv = vec![
            "chat-load",
            "throughput",
            "--jwt-secret",
            "s",
            "--pairs",
            "2",
        ];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Throughput(args) => args,
            crate::cli::Command::Idle(_) => unreachable!("parsed a throughput command line"),
        }
    }

    #[test]
    fn build_folds_pairs_into_rates_and_losses() {
        let mut s0 = SenderReport {
            sent: 3,
            sent_in_window: 2,
            stored_in_window: 2,
            stored: vec![true, true, true],
            ..SenderReport::default()
        };
        s0.store_latency.record(2000);
        s0.errors.add(429);
        let s1 = SenderReport {
            sent: 1,
            stored: vec![true],
            ended: Some("close 1012".into()),
            ..SenderReport::default()
        };
        let mut r0 = RecipientReport {
            delivered: vec![true, false, true],
            delivered_in_window: 2,
            ..RecipientReport::default()
        };
        r0.deliver_latency.record(0, 5000);
        let r1 = RecipientReport::default();
        let report = ThroughputReport::build(
            &args(&["--duration-seconds", "2"]),
            "p",
            Duration::from_secs(2),
            Duration::from_millis(500),
            vec![s0, s1],
            vec![r0, r1],
        );
        assert_eq!(
            (
                report.sent_total,
                report.stored_total,
                report.delivered_total
            ),
            (4, 4, 2)
        );
        assert_eq!(
            (report.sent_per_second, report.delivered_per_second),
            (1.0, 1.0)
        );
        assert_eq!(report.lost, 2);
        assert_eq!(report.window, Some(16));
        assert_eq!(report.send_lag, None);
        assert_eq!(report.send_to_delivered.p50_ms, 5.0);
        assert_eq!(report.disconnects.to_string(), "close 1012: 1");
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["send_errors"]["429"], 1);
        assert_eq!(json["send_to_stored"]["p99_ms"], 2.0);
        assert_eq!(json["rate"], serde_json::Value::Null);
        assert!(report.to_string().contains("lost: 2"));
        assert!(
            json.get("delivered_timeline").is_none(),
            "only with --timeline-ms"
        );
    }

    #[test]
    fn timeline_splits_the_measured_window_by_send_time() {
        let mut r = RecipientReport::default();
        // Sent during the 3 s warm-up: left out. Then one sample in each half of second 3.
        r.deliver_latency.record(2_900_000, 90_000);
        r.deliver_latency.record(3_100_000, 10_000);
        r.deliver_latency.record(3_600_000, 40_000);
        let report = ThroughputReport::build(
            &args(&["--warmup-seconds", "3", "--timeline-ms", "500"]),
            "p",
            Duration::from_secs(20),
            Duration::ZERO,
            vec![SenderReport::default()],
            vec![r],
        );
        let parts = report.delivered_timeline.as_ref().expect("asked for");
        let p99s: Vec<f64> = parts.iter().map(|p| p.p99_ms).collect();
        assert_eq!(p99s, vec![10.0, 40.0]);
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["timeline_ms"], 500);
        assert_eq!(json["delivered_timeline"][1]["max_ms"], 40.0);
        assert!(report.to_string().contains("from    0.50 s:"));
    }
}
