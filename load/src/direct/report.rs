//! The direct result: the merged tally as rates, percentiles, errors, lost messages and CPU per
//! 1,000 delivered, printable for people and serialisable for scripts. The field names of the
//! old `throughput` report stay (`delivered_per_second`, `delivered_total`, `lost`, …): the
//! bench scripts read them.

use std::fmt;

use serde::Serialize;

use super::tally::DirectTally;
use crate::cli::DirectArgs;
use crate::cost::Cost;
use crate::live::Second;
use crate::scenario::Watched;
use crate::stats::{Counts, Summary};

/// The mark where the measured window starts, and where it ends.
pub const WINDOW_START: &str = "window_start";
pub const WINDOW_END: &str = "window_end";

#[derive(Debug, Serialize)]
pub struct DirectReport {
    pub mode: &'static str,
    pub user_prefix: String,
    /// Gateways the pairs were spread over (several: every message crossed gateways).
    pub gateways: usize,
    pub pairs: usize,
    /// Client processes (`--procs`).
    pub procs: usize,
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
    /// Server and load-tool CPU over the measured window, per 1,000 delivered in it.
    pub cost: Option<Cost>,
    /// Seconds from the tool's start to the first send (connecting).
    pub start_at_s: f64,
    /// Per second since the tool started: sent, stored, delivered, errors, send -> deliver.
    pub timeline: Vec<Second>,
    pub config: DirectArgs,
}

impl DirectReport {
    pub fn build(args: &DirectArgs, mode: &'static str, t: DirectTally, w: Watched) -> Self {
        let secs = args.run.duration().as_secs_f64().max(1e-9);
        let cost = Cost::between(
            &w,
            (WINDOW_START, WINDOW_END),
            secs,
            (t.delivered_in_window, "delivered"),
        );
        DirectReport {
            mode,
            user_prefix: args.connect.user_prefix.clone().unwrap_or_default(),
            gateways: args.connect.url.len(),
            pairs: args.pairs,
            procs: w.procs,
            rate: args.run.rate,
            window: args.run.rate.is_none().then_some(args.run.window),
            message_bytes: args.run.message_bytes,
            warmup_seconds: args.run.warmup_seconds,
            duration_seconds: args.run.duration_seconds,
            sent_total: t.sent_total,
            stored_total: t.stored_total,
            delivered_total: t.delivered_total,
            sent_per_second: t.sent_in_window as f64 / secs,
            stored_per_second: t.stored_in_window as f64 / secs,
            delivered_per_second: t.delivered_in_window as f64 / secs,
            send_to_stored: Summary::of(&t.send_to_stored),
            send_to_delivered: Summary::of(&t.send_to_delivered),
            timeline_ms: args.timeline_ms,
            delivered_timeline: args
                .timeline_ms
                .map(|_| t.delivered_steps.iter().map(Summary::of).collect()),
            send_lag: args.run.rate.map(|_| Summary::of(&t.send_lag)),
            send_errors: t.send_errors,
            ack_errors: t.ack_errors,
            lost: t.lost,
            unanswered: t.unanswered,
            delivered_without_reply: t.delivered_without_reply,
            duplicates: t.duplicates,
            retries: t.retries,
            uncorrelated: t.uncorrelated,
            delivered_notices: t.delivered_notices,
            unparsed_frames: t.unparsed_frames,
            disconnects: t.disconnects,
            drain_seconds: t.drain_seconds,
            cost,
            start_at_s: w.start_at_s,
            timeline: w.timeline,
            config: args.clone(),
        }
    }
}

impl fmt::Display for DirectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let load = match (self.rate, self.window) {
            (Some(rate), _) => format!("offered {rate} msg/s, paced"),
            (None, Some(window)) => format!("saturation, window {window} per sender"),
            (None, None) => "saturation".to_owned(),
        };
        writeln!(
            f,
            "{}: {} pairs over {} gateway(s) from {} process(es), {load}, {} B messages; \
             {} s warm-up + {} s measured",
            self.mode,
            self.pairs,
            self.gateways,
            self.procs,
            self.message_bytes,
            self.warmup_seconds,
            self.duration_seconds
        )?;
        writeln!(f, "  {:<11}{:>12}  {:>12}", "", "msg/s", "total")?;
        for (name, rate, total) in [
            ("sent", self.sent_per_second, self.sent_total),
            ("stored", self.stored_per_second, self.stored_total),
            ("delivered", self.delivered_per_second, self.delivered_total),
        ] {
            writeln!(f, "  {name:<11}{rate:>12.1}  {total:>12}")?;
        }
        writeln!(f, "  send -> stored:    {}", self.send_to_stored)?;
        writeln!(f, "  send -> delivered: {}", self.send_to_delivered)?;
        let step = self.timeline_ms.unwrap_or(0) as f64 / 1000.0;
        for (i, part) in self.delivered_timeline.iter().flatten().enumerate() {
            writeln!(f, "    from {:>7.2} s: {part}", i as f64 * step)?;
        }
        if let Some(lag) = &self.send_lag {
            writeln!(f, "  send lag vs schedule: {lag}")?;
        }
        if let Some(cost) = &self.cost {
            write!(f, "{cost}")?;
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
    use crate::histogram::Histogram;

    fn args(extra: &[&str]) -> DirectArgs {
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
            crate::cli::Command::Direct(args) => args,
            _ => unreachable!("parsed a throughput command line"),
        }
    }

    #[test]
    fn report_keeps_the_throughput_field_names() {
        let mut t = DirectTally {
            sent_total: 4,
            delivered_total: 2,
            sent_in_window: 2,
            delivered_in_window: 2,
            lost: 2,
            ..DirectTally::default()
        };
        t.send_to_stored.record(2000);
        t.send_to_delivered.record(5000);
        t.send_errors.add(429);
        let report = DirectReport::build(
            &args(&["--duration-seconds", "2"]),
            "direct",
            t,
            Watched::default(),
        );
        assert_eq!(
            (report.sent_per_second, report.delivered_per_second),
            (1.0, 1.0)
        );
        assert_eq!(report.window, Some(16));
        assert_eq!(report.send_lag, None);
        assert_eq!(report.cost, None, "no marks: the window was not reached");
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        for field in [
            "delivered_per_second",
            "delivered_total",
            "lost",
            "unanswered",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(json["send_errors"]["429"], 1);
        assert_eq!(json["send_to_stored"]["p99_ms"], 2.0);
        assert_eq!(json["rate"], serde_json::Value::Null);
        assert!(json["config"].get("connect").is_some());
        assert!(!json.to_string().contains("jwt_secret"));
        assert!(report.to_string().contains("lost: 2"));
        assert!(
            json.get("delivered_timeline").is_none(),
            "only with --timeline-ms"
        );
    }

    #[test]
    fn timeline_steps_are_summarised() {
        let mut steps = vec![Histogram::default(), Histogram::default()];
        steps[0].record(10_000);
        steps[1].record(40_000);
        let t = DirectTally {
            delivered_steps: steps,
            ..DirectTally::default()
        };
        let report = DirectReport::build(
            &args(&["--timeline-ms", "500"]),
            "direct",
            t,
            Watched::default(),
        );
        let p99s: Vec<f64> = report
            .delivered_timeline
            .iter()
            .flatten()
            .map(|p| p.p99_ms)
            .collect();
        assert_eq!(p99s, vec![10.0, 40.0]);
        assert!(report.to_string().contains("from    0.50 s:"));
    }
}
