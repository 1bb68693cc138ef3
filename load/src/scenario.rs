//! What every scenario has in common: it opens its share of the connections, says it is ready,
//! waits for the start (at once in one process; when every child is ready with `--procs`), runs,
//! and returns a tally that merges with the other processes' tallies. The runner around it
//! watches the server and the live counters; the scenario turns the merged tally and what was
//! watched into its report.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::live::{Live, Second, Snapshot, Units};
use crate::probe::Sample;

/// One scenario, run in one process or split over several.
pub trait Scenario {
    /// What one process found; merges exactly with the others'.
    type Tally: Serialize + DeserializeOwned;
    /// The result people and scripts read.
    type Report: fmt::Display + Serialize;

    /// How the live counters are named.
    fn units(&self) -> Units;

    /// Moments after the start when the server is sampled (window edges, the idle hold).
    fn marks(&self) -> Vec<(&'static str, Duration)>;

    /// Runs this process's share: connect, [`Gate::ready`], the scenario, its tally.
    async fn run(&self, share: Share, gate: &Gate, live: Arc<Live>) -> anyhow::Result<Self::Tally>;

    /// Adds another process's tally.
    fn merge(into: &mut Self::Tally, other: Self::Tally);

    /// The report from the merged tally and what the runner watched.
    fn report(&self, tally: Self::Tally, watched: Watched) -> Self::Report;
}

/// Which part of the clients a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub index: usize,
    pub count: usize,
}

impl Share {
    /// Everything, in one process.
    pub const WHOLE: Share = Share { index: 0, count: 1 };

    /// The items `[start, end)` of `n` this share takes: near-equal parts, the first ones one
    /// larger when `n` does not divide.
    pub fn range(&self, n: usize) -> Range<usize> {
        let count = self.count.max(1);
        let (base, extra) = (n / count, n % count);
        let start = self.index * base + self.index.min(extra);
        let len = base + usize::from(self.index < extra);
        start..start + len
    }

    /// This share's user prefix: the run's, plus `p<index>` when split.
    pub fn prefix(&self, run_prefix: &str) -> String {
        if self.count > 1 {
            format!("{run_prefix}p{}", self.index)
        } else {
            run_prefix.to_owned()
        }
    }
}

/// What the runner saw around a run.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// Before any connection.
    pub before: Sample,
    /// At the scenario's marks that came before it ended.
    pub marks: BTreeMap<&'static str, Sample>,
    /// After the run.
    pub end: Sample,
    /// Seconds from the runner's start to the scenario's start.
    pub start_at_s: f64,
    /// The live counters, second by second from the runner's start.
    pub timeline: Vec<Second>,
    /// Processes that ran the clients.
    pub procs: usize,
    /// Whether server pids were given.
    pub server_watched: bool,
}

/// Where a scenario says "all connected" and learns when to start.
pub struct Gate {
    start: watch::Sender<Option<Instant>>,
    /// A child's stdin, on which the parent writes `go`.
    parent: Option<Mutex<Lines<BufReader<Stdin>>>>,
}

impl Gate {
    /// A gate for one process: it opens as soon as the scenario is ready.
    pub fn local() -> (Self, watch::Receiver<Option<Instant>>) {
        let (start, rx) = watch::channel(None);
        (
            Self {
                start,
                parent: None,
            },
            rx,
        )
    }

    /// A child's gate: ready is told on stdout, the start read from stdin.
    pub fn child(stdin: Lines<BufReader<Stdin>>) -> (Self, watch::Receiver<Option<Instant>>) {
        let (mut gate, rx) = Self::local();
        gate.parent = Some(Mutex::new(stdin));
        (gate, rx)
    }

    /// Every connection of this process is up: waits for the start and returns it.
    pub async fn ready(&self) -> anyhow::Result<Instant> {
        if let Some(stdin) = &self.parent {
            crate::procs::tell_parent(&crate::procs::FromChild::<()>::Ready);
            let line = stdin.lock().await.next_line().await?;
            match line.as_deref() {
                Some("go") => {}
                other => bail!("expected `go` from the parent, got {other:?}"),
            }
        }
        let now = Instant::now();
        self.start.send_replace(Some(now));
        Ok(now)
    }
}

/// Waits until the gate opens; `None` if it is dropped first.
pub async fn started(rx: &mut watch::Receiver<Option<Instant>>) -> Option<Instant> {
    rx.wait_for(Option::is_some).await.ok().and_then(|v| *v)
}

/// Reads stdin's first line: a child's configuration.
pub async fn read_config<T: DeserializeOwned>() -> anyhow::Result<(T, Lines<BufReader<Stdin>>)> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let line = lines
        .next_line()
        .await?
        .context("no configuration on stdin (`child` is started by --procs)")?;
    let config = serde_json::from_str(&line).context("reading the child configuration")?;
    Ok((config, lines))
}

/// The sum of the latest snapshots (the parent's view of its children).
pub fn sum(snapshots: &[Snapshot]) -> Snapshot {
    let mut total = Snapshot::default();
    for s in snapshots {
        total.merge(s);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_everything_once() {
        for (n, count) in [(10, 3), (2, 2), (19_999, 4), (5, 1)] {
            let mut next = 0;
            for index in 0..count {
                let r = Share { index, count }.range(n);
                assert_eq!(r.start, next, "n={n} count={count}");
                assert!(r.len() == n / count || r.len() == n / count + 1);
                next = r.end;
            }
            assert_eq!(next, n);
        }
        assert_eq!(Share { index: 0, count: 3 }.range(10), 0..4);
        assert_eq!(Share { index: 2, count: 3 }.range(10), 7..10);
        assert_eq!(Share::WHOLE.prefix("load1"), "load1");
        assert_eq!(Share { index: 2, count: 3 }.prefix("load1"), "load1p2");
    }

    #[tokio::test]
    async fn a_local_gate_opens_when_ready() {
        let (gate, mut rx) = Gate::local();
        let at = gate.ready().await.unwrap();
        assert_eq!(started(&mut rx).await, Some(at));
    }
}
