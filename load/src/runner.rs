//! Running a scenario in this process: alongside it, a progress line once a second (the live
//! counters, which also make the per-second timeline) and the server's samples at the start, at
//! the scenario's marks and at the end. A child of `--procs` runs the same way but sends its
//! snapshots to the parent instead of printing them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{interval_at, sleep_until, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::live::{progress_line, Live, Second, Snapshot};
use crate::probe::{Sample, Targets};
use crate::procs::{tell_parent, FromChild};
use crate::scenario::{started, Gate, Scenario, Share, Watched};

/// How often the live counters are read: the progress line and the timeline's step.
const STEP: Duration = Duration::from_secs(1);
/// A last step shorter than this is left out of the timeline.
const MIN_LAST_STEP: Duration = Duration::from_millis(100);

/// Runs the whole scenario here.
pub async fn local<S: Scenario>(
    scenario: &S,
    targets: &Targets,
) -> anyhow::Result<(S::Tally, Watched)> {
    let t0 = Instant::now();
    let before = targets.sample();
    let live = Arc::new(Live::default());
    let (gate, mut start_rx) = Gate::local();
    let stop = CancellationToken::new();
    let units = scenario.units();
    let marks = scenario.marks();
    let run = async {
        let tally = scenario.run(Share::WHOLE, &gate, live.clone()).await;
        stop.cancel();
        tally
    };
    let monitor = watch_live(
        || live.snapshot(),
        t0,
        &stop,
        |now: &Snapshot, step: &Second| eprintln!("{}", progress_line(&units, now, step)),
    );
    let server = watch_server(targets, &mut start_rx, &marks, &stop);
    let (tally, timeline, (start, marks)) = tokio::join!(run, monitor, server);
    let tally = tally?;
    let watched = Watched {
        before,
        marks,
        end: targets.sample(),
        start_at_s: start.map_or(0.0, |s| (s - t0).as_secs_f64()),
        timeline,
        procs: 1,
        server_watched: !targets.is_empty(),
    };
    Ok((tally, watched))
}

/// Runs one share as a child of `--procs`: snapshots and the tally go to the parent on stdout.
pub async fn child<S: Scenario>(scenario: &S, share: Share, gate: Gate) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let live = Arc::new(Live::default());
    let stop = CancellationToken::new();
    let run = async {
        let tally = scenario.run(share, &gate, live.clone()).await;
        stop.cancel();
        tally
    };
    let emit = watch_live(
        || live.snapshot(),
        t0,
        &stop,
        |now: &Snapshot, _: &Second| tell_parent(&FromChild::<()>::Progress(now.clone())),
    );
    let (tally, _) = tokio::join!(run, emit);
    match tally {
        Ok(tally) => tell_parent(&FromChild::Done(tally)),
        Err(e) => tell_parent(&FromChild::<()>::Failed(format!("{e:#}"))),
    }
    Ok(())
}

/// Reads `source` every [`STEP`] from `t0` until `stop`, handing each snapshot and step to
/// `on_step`; returns the steps (the timeline).
pub async fn watch_live(
    source: impl Fn() -> Snapshot,
    t0: Instant,
    stop: &CancellationToken,
    mut on_step: impl FnMut(&Snapshot, &Second),
) -> Vec<Second> {
    let mut ticks = interval_at(t0 + STEP, STEP);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut last, mut last_at) = (source(), t0);
    let mut timeline = Vec::new();
    loop {
        let stopped = tokio::select! {
            _ = ticks.tick() => false,
            _ = stop.cancelled() => true,
        };
        let (now, at) = (source(), Instant::now());
        if !stopped || at - last_at >= MIN_LAST_STEP {
            let step = Second::between(
                &last,
                &now,
                (at - t0).as_secs_f64(),
                (at - last_at).as_secs_f64(),
            );
            on_step(&now, &step);
            timeline.push(step);
        }
        if stopped {
            return timeline;
        }
        (last, last_at) = (now, at);
    }
}

/// Waits for the run's start, then samples the server at each mark after it, until `stop`.
pub async fn watch_server(
    targets: &Targets,
    start_rx: &mut watch::Receiver<Option<Instant>>,
    marks: &[(&'static str, Duration)],
    stop: &CancellationToken,
) -> (Option<Instant>, BTreeMap<&'static str, Sample>) {
    let start = tokio::select! {
        start = started(start_rx) => start,
        _ = stop.cancelled() => None,
    };
    match start {
        Some(start) => (Some(start), sample_marks(targets, start, marks, stop).await),
        None => (None, BTreeMap::new()),
    }
}

/// Samples at `start + offset` for each mark, in time order, until `stop`.
pub async fn sample_marks(
    targets: &Targets,
    start: Instant,
    marks: &[(&'static str, Duration)],
    stop: &CancellationToken,
) -> BTreeMap<&'static str, Sample> {
    let mut order = marks.to_vec();
    order.sort_by_key(|&(_, at)| at);
    let mut taken = BTreeMap::new();
    for (label, at) in order {
        tokio::select! {
            _ = sleep_until(start + at) => {}
            _ = stop.cancelled() => break,
        }
        taken.insert(label, targets.sample());
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[tokio::test(start_paused = true)]
    async fn the_timeline_has_a_step_a_second_and_the_last_part() {
        let live = Live::default();
        let stop = CancellationToken::new();
        let t0 = Instant::now();
        let work = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                live.completed.fetch_add(10, Ordering::Relaxed);
            }
            stop.cancel();
        };
        let mut lines = 0;
        let watch = watch_live(|| live.snapshot(), t0, &stop, |_, _| lines += 1);
        let ((), timeline) = tokio::join!(work, watch);
        let per_second: Vec<u64> = timeline.iter().map(|s| s.completed).collect();
        assert_eq!(per_second, vec![30, 20]);
        assert_eq!(timeline[1].t_s, 1.5);
        assert_eq!(lines, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn marks_after_the_end_are_not_sampled() {
        let stop = CancellationToken::new();
        let start = Instant::now();
        let marks = [("late", Duration::from_secs(10)), ("early", Duration::ZERO)];
        let stopper = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.cancel();
        };
        let targets = Targets::default();
        let ((), taken) = tokio::join!(stopper, sample_marks(&targets, start, &marks, &stop));
        assert_eq!(taken.keys().copied().collect::<Vec<_>>(), vec!["early"]);
    }
}
