//! `--procs K`: K child processes of this binary (`chat-load child`), each running one share of
//! the clients under its own user prefix. The parent hands each its configuration on stdin,
//! waits until all are connected, starts them together (`go`), prints the summed progress, samples
//! the server, and merges their tallies — histograms bucket by bucket, so percentiles are those
//! of all the clients, never averages.
//!
//! The children speak one JSON object per line on stdout ([`FromChild`]); their stderr is ours.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::Command;
use crate::live::{progress_line, Second, Snapshot};
use crate::probe::Targets;
use crate::runner::{sample_marks, watch_live};
use crate::scenario::{sum, Scenario, Share, Watched};

/// What a child is told on stdin.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildConfig {
    pub command: Command,
    pub share: Share,
    /// Apart from the arguments, which are written without it.
    pub jwt_secret: String,
}

/// One line a child writes on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromChild<T> {
    /// Every connection is up; waiting for `go`.
    Ready,
    /// The live counters, cumulative.
    Progress(Snapshot),
    /// The tally; the child exits.
    Done(T),
    /// The share failed; the child exits.
    Failed(String),
}

/// Writes one line to the parent.
pub fn tell_parent<T: Serialize>(message: &FromChild<T>) {
    println!(
        "{}",
        serde_json::to_string(message).expect("child messages serialise")
    );
}

/// A child's stdout line, or `None` when it ended.
type Event = (usize, Option<String>);

/// Runs `scenario` in `procs` children and merges their tallies.
pub async fn parent<S: Scenario>(
    scenario: &S,
    config: (&Command, &str),
    procs: usize,
    worker_threads: Option<usize>,
    targets: &Targets,
) -> anyhow::Result<(S::Tally, Watched)> {
    let t0 = Instant::now();
    let mut targets = targets.clone();
    let before = targets.sample();
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let mut children = Vec::with_capacity(procs);
    let mut stdins = Vec::with_capacity(procs);
    for index in 0..procs {
        let share = Share {
            index,
            count: procs,
        };
        let (child, stdin) = spawn(config, share, worker_threads, events_tx.clone()).await?;
        targets.own.extend(child.id());
        children.push(child);
        stdins.push(stdin);
    }
    drop(events_tx);
    let latest = Arc::new(Mutex::new(vec![Snapshot::default(); procs]));
    let stop = CancellationToken::new();
    let units = scenario.units();
    let marks = scenario.marks();
    let control = async {
        let result = async {
            let mut tallies: Vec<Option<S::Tally>> = (0..procs).map(|_| None).collect();
            until_all(&mut events, &latest, &mut tallies, |ready, _| {
                ready == procs
            })
            .await?;
            for stdin in &mut stdins {
                stdin.write_all(b"go\n").await.context("starting a child")?;
            }
            let start = Instant::now();
            let collect = async {
                let done = until_all(&mut events, &latest, &mut tallies, |_, done| done == procs);
                let done = done.await;
                stop.cancel();
                done
            };
            let (done, marks) = tokio::join!(collect, sample_marks(&targets, start, &marks, &stop));
            done?;
            let mut tallies = tallies.into_iter().flatten();
            let mut tally = tallies.next().ok_or_else(|| anyhow!("no child reported"))?;
            for other in tallies {
                S::merge(&mut tally, other);
            }
            Ok::<_, anyhow::Error>((tally, start, marks))
        }
        .await;
        stop.cancel();
        result
    };
    let monitor = watch_live(
        || sum(&latest.lock().expect("snapshots lock")),
        t0,
        &stop,
        |now: &Snapshot, step: &Second| eprintln!("{}", progress_line(&units, now, step)),
    );
    let (result, timeline) = tokio::join!(control, monitor);
    for child in &mut children {
        let _ = child.wait().await;
    }
    let (tally, start, marks) = result?;
    let watched = Watched {
        before,
        marks,
        end: targets.sample(),
        start_at_s: (start - t0).as_secs_f64(),
        timeline,
        procs,
        server_watched: !targets.is_empty(),
    };
    Ok((tally, watched))
}

/// Starts child `share` with its configuration; its stdout lines go to `events`.
async fn spawn(
    (command, secret): (&Command, &str),
    share: Share,
    worker_threads: Option<usize>,
    events: mpsc::UnboundedSender<Event>,
) -> anyhow::Result<(Child, ChildStdin)> {
    let exe = std::env::current_exe().context("finding chat-load's own binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("child");
    if let Some(threads) = worker_threads {
        cmd.args(["--worker-threads", &threads.to_string()]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting a chat-load child process")?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let config = ChildConfig {
        command: command.clone(),
        share,
        jwt_secret: secret.to_owned(),
    };
    let mut line = serde_json::to_string(&config)?;
    line.push('\n');
    stdin.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if events.send((share.index, Some(line))).is_err() {
                return;
            }
        }
        let _ = events.send((share.index, None));
    });
    Ok((child, stdin))
}

/// Handles the children's lines until `enough(ready, done)` holds.
async fn until_all<T: DeserializeOwned>(
    events: &mut mpsc::UnboundedReceiver<Event>,
    latest: &Mutex<Vec<Snapshot>>,
    tallies: &mut [Option<T>],
    enough: impl Fn(usize, usize) -> bool,
) -> anyhow::Result<()> {
    let mut ready = 0;
    loop {
        let done = tallies.iter().filter(|t| t.is_some()).count();
        if enough(ready, done) {
            return Ok(());
        }
        let Some((i, line)) = events.recv().await else {
            bail!("the child processes ended before reporting");
        };
        let Some(line) = line else {
            if tallies[i].is_none() {
                bail!("child process {i} ended without a result (see its errors above)");
            }
            continue;
        };
        let message: FromChild<T> = serde_json::from_str(&line)
            .with_context(|| format!("child process {i} wrote {line:?}"))?;
        match message {
            FromChild::Ready => ready += 1,
            FromChild::Progress(snapshot) => latest.lock().expect("snapshots lock")[i] = snapshot,
            FromChild::Done(tally) => tallies[i] = Some(tally),
            FromChild::Failed(e) => bail!("child process {i} failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_parent_follows_ready_progress_and_done() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let line = |m: &FromChild<u32>| serde_json::to_string(m).unwrap();
        let progress = Snapshot {
            completed: 7,
            ..Snapshot::default()
        };
        for (i, m) in [
            (0, FromChild::Ready),
            (1, FromChild::Progress(progress)),
            (1, FromChild::Ready),
            (1, FromChild::Done(5)),
            (0, FromChild::Done(6)),
        ] {
            tx.send((i, Some(line(&m)))).unwrap();
        }
        let latest = Mutex::new(vec![Snapshot::default(); 2]);
        let mut tallies = vec![None, None];
        until_all(&mut rx, &latest, &mut tallies, |ready, _| ready == 2)
            .await
            .unwrap();
        assert_eq!(latest.lock().unwrap()[1].completed, 7);
        until_all(&mut rx, &latest, &mut tallies, |_, done| done == 2)
            .await
            .unwrap();
        assert_eq!(tallies, vec![Some(6), Some(5)]);
        tx.send((0, Some(line(&FromChild::Failed("no route".into())))))
            .unwrap();
        let err = until_all(&mut rx, &latest, &mut tallies, |_, _| false)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "child process 0 failed: no route");
    }
}
