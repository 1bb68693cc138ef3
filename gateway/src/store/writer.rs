//! The writer: each process's only writing connection, on a thread of its own, fed by a bounded
//! queue.
//!
//! Commands queue up while a transaction commits; the next transaction takes all of them (group
//! commit). Runs of SEND/ACK commands go through [`super::segment`] in a constant number of
//! statements; the rare group-management commands run one by one, in order, between runs, so a
//! client's pipelined CREATE GROUP → SEND keeps its order. Replies go out only after COMMIT, and
//! a batch is computed from its requests alone: when it conflicts with another pod's writer
//! (deadlock, serialization failure, the same key inserted first elsewhere) it rolls back —
//! seq bumps included — and simply runs again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::mpsc;

use super::backend::Backend;
use super::cache::Cache;
use super::command::{Command, ManageCommand, MessageCommand};
use super::{groups, segment};
use crate::error::{Error, Result};

/// Most commands folded into one transaction. 512 rows × 13 columns stays far below SQLite's
/// 32,766 (and PostgreSQL's 65,535) bound parameters per statement.
const MAX_BATCH: usize = 512;
/// Commands queued for the writer; past this, senders wait (backpressure instead of memory growth).
const WRITE_QUEUE: usize = 8192;
/// Runs of one batch, the first included, before its commands fail: conflicts between pods are
/// rare and short, a batch that keeps conflicting is better failed back to the clients.
const MAX_ATTEMPTS: u32 = 5;
/// How long the writer waits for a new connection before failing a batch (database down).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the writer on a thread and runtime of its own, connecting with `options`. Each
/// statement is a round trip, and queueing behind hundreds of session tasks on the shared
/// runtime for every one of them would cap throughput. A transaction starts at least
/// `commit_interval` after the previous one started (zero: as soon as it committed). The writer
/// stops when every sender of the returned queue is dropped.
pub(super) fn spawn<DB: Backend>(
    options: DB::WriterOptions,
    commit_interval: Duration,
) -> Result<mpsc::Sender<Command>> {
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    std::thread::Builder::new()
        .name("chat-store-writer".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("writer runtime");
            rt.block_on(writer_loop::<DB>(options, commit_interval, rx));
        })
        .map_err(|e| Error::InternalFrom {
            context: "starting the store writer".into(),
            source: e.into(),
        })?;
    Ok(tx)
}

async fn writer_loop<DB: Backend>(
    options: DB::WriterOptions,
    commit_interval: Duration,
    mut rx: mpsc::Receiver<Command>,
) {
    // One connection, kept for its prepared statements; replaced when it breaks.
    let mut conn: Option<DB::Writer> = None;
    let mut cache = Cache::new(DB::NAMES_TTL);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_start: Option<Instant> = None;
    loop {
        // Under load, wait out the interval so that what queues meanwhile shares one transaction.
        // After a quiet spell the interval has long passed, and a write starts at once.
        if let Some(last) = last_start.filter(|_| !commit_interval.is_zero()) {
            tokio::time::sleep_until((last + commit_interval).into()).await;
        }
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let started = Instant::now();
        last_start = Some(started);
        let size = batch.len();
        let mut steps = steps(batch.drain(..));
        match commit::<DB>(&options, &mut conn, &mut cache, &mut steps).await {
            Ok(()) => steps.into_iter().for_each(Step::answer),
            Err(e) => {
                tracing::error!(error = %e, size, "store batch failed; rolled back");
                let cause = Arc::new(e);
                steps.into_iter().for_each(|step| step.fail(&cause));
            }
        }
        metrics::histogram!("chat_store_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("chat_store_batch_size").record(size as f64);
    }
}

/// What one transaction runs, in the order the commands came: runs of SEND/ACK commands stored
/// together, and the rare commands one by one between them, so a client's pipelined CREATE
/// GROUP → SEND keeps its order.
enum Step {
    /// The run's commands, and its results once stored.
    Run(Vec<MessageCommand>, segment::Results),
    /// The command holds its own result (boxed: a held result can be a whole message).
    One(Box<ManageCommand>),
}

impl Step {
    fn answer(self) {
        match self {
            Step::Run(run, results) => results.answer(run),
            Step::One(command) => command.answer(),
        }
    }

    fn fail(self, cause: &Arc<Error>) {
        match self {
            Step::Run(run, _) => run.into_iter().for_each(|c| c.fail(cause)),
            Step::One(command) => command.fail(cause),
        }
    }
}

/// A batch's commands as steps: consecutive SEND/ACK commands form one run.
fn steps(mut batch: impl ExactSizeIterator<Item = Command>) -> Vec<Step> {
    let mut steps = Vec::new();
    while let Some(command) = batch.next() {
        match (command, steps.last_mut()) {
            (Command::Message(m), Some(Step::Run(run, _))) => run.push(m),
            (Command::Message(m), _) => {
                // Room for the rest of the batch: a batch is mostly one long run.
                let mut run = Vec::with_capacity(batch.len() + 1);
                run.push(m);
                steps.push(Step::Run(run, Default::default()));
            }
            (Command::Manage(m), _) => steps.push(Step::One(m)),
        }
    }
    steps
}

/// Runs the batch in one transaction, again after a conflict with another writer. Each command
/// holds its result when this returns `Ok`; `Err` is what failed the whole batch.
async fn commit<DB: Backend>(
    options: &DB::WriterOptions,
    slot: &mut Option<DB::Writer>,
    cache: &mut Cache,
    steps: &mut [Step],
) -> Result<()> {
    let mut attempt = 1;
    loop {
        let conn = match slot {
            Some(conn) => conn,
            None => {
                let conn = tokio::time::timeout(CONNECT_TIMEOUT, DB::connect_writer(options))
                    .await
                    .map_err(|_| Error::Unavailable("store: connecting timed out".into()))??;
                slot.insert(conn)
            }
        };
        let Err(e) = transact::<DB>(conn, cache, steps).await else {
            return Ok(());
        };
        cache.clear();
        if DB::execute(conn, "ROLLBACK").await.is_err() {
            // The connection is gone or confused: the next attempt or batch opens a new one.
            *slot = None;
        }
        if attempt == MAX_ATTEMPTS || !DB::retryable(&e) {
            return Err(e);
        }
        metrics::counter!("chat_store_batch_retries_total").increment(1);
        tracing::debug!(error = %e, attempt, "store batch conflicted with another writer; running it again");
        // A little jitter, growing: two writers that just deadlocked should not meet again.
        let pause = rand::rng().random_range(1..=5 * u64::from(attempt));
        tokio::time::sleep(Duration::from_millis(pause)).await;
        attempt += 1;
    }
}

/// One transaction over the whole batch. Client errors (403, 404, …) are found before a command
/// writes anything, so they fail alone; a database error fails the whole batch.
async fn transact<DB: Backend>(
    conn: &mut DB::Writer,
    cache: &mut Cache,
    steps: &mut [Step],
) -> Result<()> {
    cache.trim();
    DB::execute(conn, DB::BEGIN).await?;
    for step in steps {
        match step {
            Step::Run(run, results) => *results = segment::run::<DB>(conn, cache, run).await?,
            Step::One(command) => groups::run::<DB>(conn, cache, command).await?,
        }
    }
    DB::execute(conn, "COMMIT").await
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::store::command::{Pending, Reply};

    fn ack() -> Command {
        let (tx, _) = oneshot::channel();
        Command::Message(MessageCommand::Ack {
            user: "bob".into(),
            message_id: "m".into(),
            reply: Reply::new(tx),
        })
    }

    fn leave() -> Command {
        let (tx, _) = oneshot::channel();
        Command::Manage(Box::new(ManageCommand::ChangeGroup {
            user: "bob".into(),
            group_id: "g".into(),
            change: crate::store::GroupChange::Leave,
            reply: Pending::new(tx),
        }))
    }

    #[test]
    fn consecutive_sends_and_acks_form_runs_between_rare_commands() {
        let batch = vec![ack(), ack(), leave(), leave(), ack()];
        let shape: Vec<usize> = steps(batch.into_iter())
            .iter()
            .map(|step| match step {
                Step::Run(run, _) => run.len(),
                Step::One(_) => 0,
            })
            .collect();
        assert_eq!(shape, [2, 0, 0, 1]);
    }
}
