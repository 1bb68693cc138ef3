//! The group result: sends, the deliveries they fanned out to, latency percentiles, lost
//! deliveries and CPU per 1,000 deliveries.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli::GroupArgs;
use crate::cost::Cost;
use crate::direct::recipient::RecipientReport;
use crate::direct::sender::SenderReport;
use crate::direct::Run;
use crate::histogram::Histogram;
use crate::live::Second;
use crate::scenario::Watched;
use crate::stats::{Counts, Summary};

pub const WINDOW_START: &str = "window_start";
pub const WINDOW_END: &str = "window_end";

/// What the run counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupTally {
    pub sent_total: u64,
    pub stored_total: u64,
    pub sent_in_window: u64,
    pub stored_in_window: u64,
    /// Distinct (member, message) deliveries.
    pub deliveries_total: u64,
    pub deliveries_in_window: u64,
    /// Stored messages × the members each should reach.
    pub expected_deliveries: u64,
    /// Expected but never delivered by the end of the drain.
    pub lost: u64,
    pub unanswered: u64,
    pub duplicates: u64,
    pub retries: u64,
    pub uncorrelated: u64,
    pub unparsed_frames: u64,
    pub send_errors: Counts<u16>,
    pub ack_errors: Counts<u16>,
    pub disconnects: Counts<String>,
    pub send_to_stored: Histogram,
    pub send_to_delivered: Histogram,
    pub drain_seconds: f64,
}

impl GroupTally {
    /// Folds the senders (members 0..S, whose own deliveries are in `member`) and the other
    /// members.
    pub fn build(
        run: &Run,
        drained: Duration,
        senders: Vec<SenderReport>,
        others: Vec<RecipientReport>,
    ) -> Self {
        let mut t = GroupTally {
            send_to_stored: run.store_latency.snapshot(),
            send_to_delivered: run.deliver_latency.snapshot(),
            drain_seconds: drained.as_secs_f64(),
            ..GroupTally::default()
        };
        let mut stored: Vec<Vec<bool>> = Vec::with_capacity(senders.len());
        let mut members: Vec<RecipientReport> = Vec::with_capacity(senders.len() + others.len());
        for mut s in senders {
            t.sent_total += s.sent;
            t.sent_in_window += s.sent_in_window;
            t.stored_in_window += s.stored_in_window;
            t.unanswered += s.unanswered;
            t.unparsed_frames += s.unparsed;
            t.send_errors.merge(std::mem::take(&mut s.errors));
            if let Some(reason) = s.ended.take() {
                t.disconnects.add(reason);
            }
            members.push(s.member.take().unwrap_or_default());
            stored.push(s.stored);
        }
        members.extend(others);
        t.stored_total = stored
            .iter()
            .map(|v| v.iter().filter(|&&x| x).count() as u64)
            .sum();
        for (m, r) in members.into_iter().enumerate() {
            for (s, sent) in stored.iter().enumerate().filter(|&(s, _)| s != m) {
                let got = r.delivered.get(s).map_or(&[][..], Vec::as_slice);
                let expected = sent.iter().filter(|&&x| x).count() as u64;
                let arrived = got.iter().filter(|&&x| x).count() as u64;
                let missing = sent
                    .iter()
                    .enumerate()
                    .filter(|&(n, &x)| x && !got.get(n).copied().unwrap_or(false))
                    .count() as u64;
                t.expected_deliveries += expected;
                t.deliveries_total += arrived;
                t.lost += missing;
            }
            t.deliveries_in_window += r.delivered_in_window;
            t.duplicates += r.duplicates;
            t.retries += r.retries;
            t.uncorrelated += r.uncorrelated;
            t.unparsed_frames += r.unparsed;
            t.ack_errors.merge(r.errors);
            if let Some(reason) = r.ended {
                t.disconnects.add(reason);
            }
        }
        t
    }

    /// Adds another tally (the group runs in one process; kept for the runner's contract).
    pub fn merge(&mut self, o: GroupTally) {
        self.sent_total += o.sent_total;
        self.stored_total += o.stored_total;
        self.sent_in_window += o.sent_in_window;
        self.stored_in_window += o.stored_in_window;
        self.deliveries_total += o.deliveries_total;
        self.deliveries_in_window += o.deliveries_in_window;
        self.expected_deliveries += o.expected_deliveries;
        self.lost += o.lost;
        self.unanswered += o.unanswered;
        self.duplicates += o.duplicates;
        self.retries += o.retries;
        self.uncorrelated += o.uncorrelated;
        self.unparsed_frames += o.unparsed_frames;
        self.send_errors.merge(o.send_errors);
        self.ack_errors.merge(o.ack_errors);
        self.disconnects.merge(o.disconnects);
        self.send_to_stored.merge(&o.send_to_stored);
        self.send_to_delivered.merge(&o.send_to_delivered);
        self.drain_seconds = self.drain_seconds.max(o.drain_seconds);
    }
}

#[derive(Debug, Serialize)]
pub struct GroupReport {
    pub mode: &'static str,
    pub user_prefix: String,
    pub members: usize,
    pub senders: usize,
    pub rate: Option<f64>,
    pub window: Option<usize>,
    pub message_bytes: usize,
    pub warmup_seconds: u64,
    pub duration_seconds: u64,
    pub sent_total: u64,
    pub stored_total: u64,
    pub deliveries_total: u64,
    pub expected_deliveries: u64,
    /// Within the measured window.
    pub sent_per_second: f64,
    pub stored_per_second: f64,
    pub deliveries_per_second: f64,
    pub send_to_stored: Summary,
    pub send_to_delivered: Summary,
    pub lost: u64,
    pub unanswered: u64,
    pub duplicates: u64,
    pub retries: u64,
    pub uncorrelated: u64,
    pub unparsed_frames: u64,
    pub send_errors: Counts<u16>,
    pub ack_errors: Counts<u16>,
    pub disconnects: Counts<String>,
    pub drain_seconds: f64,
    /// Server and load-tool CPU over the measured window, per 1,000 deliveries in it.
    pub cost: Option<Cost>,
    pub start_at_s: f64,
    pub timeline: Vec<Second>,
    pub config: GroupArgs,
}

impl GroupReport {
    pub fn build(args: &GroupArgs, t: GroupTally, w: Watched) -> Self {
        let secs = args.run.duration().as_secs_f64().max(1e-9);
        let work = (t.deliveries_in_window, "deliveries");
        let cost = Cost::between(&w, (WINDOW_START, WINDOW_END), secs, work);
        GroupReport {
            mode: "group",
            user_prefix: args.connect.user_prefix.clone().unwrap_or_default(),
            members: args.members,
            senders: args.senders,
            rate: args.run.rate,
            window: args.run.rate.is_none().then_some(args.run.window),
            message_bytes: args.run.message_bytes,
            warmup_seconds: args.run.warmup_seconds,
            duration_seconds: args.run.duration_seconds,
            sent_total: t.sent_total,
            stored_total: t.stored_total,
            deliveries_total: t.deliveries_total,
            expected_deliveries: t.expected_deliveries,
            sent_per_second: t.sent_in_window as f64 / secs,
            stored_per_second: t.stored_in_window as f64 / secs,
            deliveries_per_second: t.deliveries_in_window as f64 / secs,
            send_to_stored: Summary::of(&t.send_to_stored),
            send_to_delivered: Summary::of(&t.send_to_delivered),
            lost: t.lost,
            unanswered: t.unanswered,
            duplicates: t.duplicates,
            retries: t.retries,
            uncorrelated: t.uncorrelated,
            unparsed_frames: t.unparsed_frames,
            send_errors: t.send_errors,
            ack_errors: t.ack_errors,
            disconnects: t.disconnects,
            drain_seconds: t.drain_seconds,
            cost,
            start_at_s: w.start_at_s,
            timeline: w.timeline,
            config: args.clone(),
        }
    }
}

impl fmt::Display for GroupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let load = match (self.rate, self.window) {
            (Some(rate), _) => format!("offered {rate} msg/s, paced"),
            (_, window) => format!("saturation, window {} per sender", window.unwrap_or(0)),
        };
        writeln!(
            f,
            "group: {} members, {} sender(s), {load}, {} B messages; {} s warm-up + {} s measured",
            self.members,
            self.senders,
            self.message_bytes,
            self.warmup_seconds,
            self.duration_seconds
        )?;
        writeln!(f, "  {:<11}{:>12}  {:>12}", "", "per second", "total")?;
        for (name, rate, total) in [
            ("sent", self.sent_per_second, self.sent_total),
            ("stored", self.stored_per_second, self.stored_total),
            (
                "deliveries",
                self.deliveries_per_second,
                self.deliveries_total,
            ),
        ] {
            writeln!(f, "  {name:<11}{rate:>12.1}  {total:>12}")?;
        }
        writeln!(f, "  send -> stored:    {}", self.send_to_stored)?;
        writeln!(f, "  send -> delivered: {}", self.send_to_delivered)?;
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
            "  lost deliveries: {} of {} expected (after a {:.1} s drain); unanswered sends: {}; \
             duplicates: {}; early disconnects: {}",
            self.lost,
            self.expected_deliveries,
            self.drain_seconds,
            self.unanswered,
            self.duplicates,
            self.disconnects
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_and_losses_per_member_and_sender() {
        let window = crate::direct::Window::new(Duration::ZERO, Duration::from_secs(1));
        let run = Run::new(tokio::time::Instant::now(), window, Default::default());
        // Two senders (members 0 and 1) and one other member (2). Sender 0 stored messages 0
        // and 1, sender 1 stored message 0.
        let s0 = SenderReport {
            sent: 2,
            stored: vec![true, true],
            member: Some(RecipientReport {
                delivered: vec![vec![], vec![true]],
                ..RecipientReport::default()
            }),
            ..SenderReport::default()
        };
        let s1 = SenderReport {
            sent: 1,
            stored: vec![true],
            // Got sender 0's message 0 only: message 1 is lost for member 1.
            member: Some(RecipientReport {
                delivered: vec![vec![true], vec![]],
                ..RecipientReport::default()
            }),
            ..SenderReport::default()
        };
        let m2 = RecipientReport {
            delivered: vec![vec![true, true], vec![true]],
            duplicates: 1,
            ..RecipientReport::default()
        };
        let t = GroupTally::build(&run, Duration::ZERO, vec![s0, s1], vec![m2]);
        assert_eq!((t.sent_total, t.stored_total), (3, 3));
        assert_eq!(
            (t.expected_deliveries, t.deliveries_total, t.lost),
            (6, 5, 1)
        );
        assert_eq!(t.duplicates, 1);
        let mut twice = t.clone();
        twice.merge(t);
        assert_eq!((twice.deliveries_total, twice.lost), (10, 2));
    }
}
