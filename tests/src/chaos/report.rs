//! The soak's report: what was injected, checked and found, and each pod's RSS.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::check::{Evidence, Findings};
use super::pods::Pod;
use super::Config;

/// Longest a pod life must have run after warm-up for its RSS growth to be judged.
const RSS_JUDGED_AFTER: Duration = Duration::from_secs(240);
/// Most RSS growth from after warm-up to the end of a judged pod life.
const RSS_MAX_GROWTH: f64 = 0.05;
/// RSS is compared as the median of the samples in the first window after warm-up against the
/// median of the last window of the life: the allocator (mimalloc) takes and returns memory in
/// steps of tens of MB as faults come and go (a band of 89–136 MB over 150 s of broker faults,
/// with no trend), so two single samples differ by ±20 % by chance, while a leak raises the
/// median of the later window.
const RSS_WINDOW: Duration = Duration::from_secs(60);

/// What a run found.
#[derive(Debug)]
pub struct Report {
    /// Human-readable, for the log and docs/reliability.md.
    pub text: String,
    /// Lost, missing from the database, seq gaps, two contents: must be empty.
    pub safety: Vec<String>,
    /// Live-delivery violations, one line each: must be empty.
    pub late: Vec<String>,
    /// Pods whose RSS grew more than 5 % over a long enough life.
    pub rss_growth: Vec<String>,
    pub messages: usize,
    pub faults: usize,
}

impl Report {
    pub fn new(cfg: &Config, e: &Evidence, f: Findings, pods: &[Pod], origin: Instant) -> Self {
        let mut text = String::new();
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for x in &e.faults {
            *kinds.entry(format!("{:?}", x.kind)).or_default() += 1;
        }
        let _ = writeln!(
            text,
            "chaos soak: seed {}, fault phase {:?}, {} devices, {} faults: {kinds:?}",
            cfg.seed,
            cfg.fault_phase,
            e.devices.len(),
            e.faults.len()
        );
        let _ = writeln!(
            text,
            "messages with reply 0 checked: {}; lost: {}; missing from the database: {}; \
             seq gaps: {}; messageIds with two contents: {}",
            f.messages,
            f.lost.len(),
            f.not_in_db.len(),
            f.seq_gaps.len(),
            f.conflicts.len()
        );
        let _ = writeln!(
            text,
            "duplicates on the wire (removed by messageId): {}; reached a user only at the final \
             catch-up: {}; send ERRORs by status: {:?}",
            f.duplicates, f.only_at_catch_up, f.send_errors
        );
        let _ = writeln!(
            text,
            "live delivery: {} (message, online device) pairs judged, {} violations; {} pairs \
             not judged (device not online from commit until due), e.g. {:?}",
            f.live_judged,
            f.late.len(),
            f.live_offline,
            f.live_offline_example
        );
        let late: Vec<String> = f
            .late
            .iter()
            .map(|l| {
                format!(
                    "{} to {} (sender's pod {}): {} (due {:.1} s after commit); faults in effect: {:?}",
                    l.message_id,
                    l.device,
                    l.sender_pod,
                    l.delay.map_or("never arrived".to_owned(), |d| format!(
                        "arrived {:.1} s after commit",
                        d.as_secs_f64()
                    )),
                    l.due_after_commit.as_secs_f64(),
                    l.faults
                )
            })
            .collect();
        for l in late.iter().take(20) {
            let _ = writeln!(text, "  late: {l}");
        }
        let mut rss_growth = Vec::new();
        for p in pods {
            for life in &p.lives {
                let warm = origin + cfg.warm_up;
                let after: Vec<(Instant, u64)> = life
                    .rss_kb
                    .iter()
                    .copied()
                    .filter(|(at, _)| *at >= warm)
                    .collect();
                let (Some(&(t0, _)), Some(&(t1, _))) = (after.first(), after.last()) else {
                    continue;
                };
                let first = median(after.iter().filter(|(at, _)| *at <= t0 + RSS_WINDOW));
                let last = median(after.iter().filter(|(at, _)| *at + RSS_WINDOW >= t1));
                let connections = |within: &dyn Fn(Instant) -> bool| {
                    let mut n: Vec<u32> = life
                        .rss_kb
                        .iter()
                        .zip(&life.connections)
                        .filter(|((at, _), _)| *at >= warm && within(*at))
                        .map(|(_, n)| *n)
                        .collect();
                    n.sort_unstable();
                    n.get(n.len() / 2).copied().unwrap_or(0)
                };
                let (c0, c1) = (
                    connections(&|at| at <= t0 + RSS_WINDOW),
                    connections(&|at| at + RSS_WINDOW >= t1),
                );
                let (low, high) = after.iter().fold((u64::MAX, 0), |(lo, hi), (_, kb)| {
                    (lo.min(*kb), hi.max(*kb))
                });
                let growth = last as f64 / first.max(1) as f64 - 1.0;
                let _ = writeln!(
                    text,
                    "RSS {} (pid {}): median {} kB in the first {:.0} s after warm-up, {} kB in \
                     the last ({:+.1} % over {:.0} s; {}–{} kB in between); {} client \
                     connections, then {}",
                    p.name(),
                    life.pid,
                    first,
                    RSS_WINDOW.as_secs_f64(),
                    last,
                    growth * 100.0,
                    (t1 - t0).as_secs_f64(),
                    low,
                    high,
                    c0,
                    c1
                );
                if t1 - t0 >= RSS_JUDGED_AFTER && growth > RSS_MAX_GROWTH {
                    rss_growth.push(format!("{} grew {:+.1} %", p.name(), growth * 100.0));
                }
            }
        }
        Self {
            text,
            safety: f.safety_violations(),
            late,
            rss_growth,
            messages: f.messages,
            faults: e.faults.len(),
        }
    }
}

/// The median of the samples' kB (0 for none).
fn median<'a>(samples: impl Iterator<Item = &'a (Instant, u64)>) -> u64 {
    let mut kb: Vec<u64> = samples.map(|(_, kb)| *kb).collect();
    kb.sort_unstable();
    kb.get(kb.len() / 2).copied().unwrap_or(0)
}
