//! The SQLite writer: the database's only writing connection, on a thread of its own.
//!
//! Commands queue up while a transaction commits; the next transaction takes all of them (group
//! commit). Runs of SEND/ACK commands go through [`super::segment`] in a constant number of
//! statements; the rare group-management commands run one by one, in order, between runs, so a
//! client's pipelined CREATE GROUP → SEND keeps its order.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::segment::{self, Hot};
use crate::error::{Error, Result};
use crate::model::{group_conversation_id, new_id, now_ms};
use crate::store::{Acked, Group, NewMessage, Sent};

/// Most commands folded into one transaction. 512 rows × 13 columns stays far below SQLite's
/// 32,766 bound parameters per statement.
pub(super) const MAX_BATCH: usize = 512;
/// Entries the writer-local cache holds before it starts over.
const CACHE_LIMIT: usize = 1 << 20;

pub(super) enum Command {
    UpsertUser {
        id: String,
        name: String,
        reply: oneshot::Sender<Result<()>>,
    },
    Send {
        msg: NewMessage,
        group: bool,
        reply: oneshot::Sender<Result<Sent>>,
    },
    Ack {
        user: String,
        message_id: String,
        reply: oneshot::Sender<Result<Acked>>,
    },
    CreateGroup {
        owner: String,
        name: String,
        members: Vec<String>,
        reply: oneshot::Sender<Result<Group>>,
    },
    AddMembers {
        user: String,
        group_id: String,
        members: Vec<String>,
        reply: oneshot::Sender<Result<Group>>,
    },
    LeaveGroup {
        user: String,
        group_id: String,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// A command's result, held until the batch's transaction commits.
pub(super) enum Done {
    Unit(oneshot::Sender<Result<()>>, Result<()>),
    Sent(oneshot::Sender<Result<Sent>>, Result<Sent>),
    Acked(oneshot::Sender<Result<Acked>>, Result<Acked>),
    Group(oneshot::Sender<Result<Group>>, Result<Group>),
}

impl Done {
    fn fail(self) {
        let err = || Error::Unavailable("store write failed; try again".into());
        match self {
            Done::Unit(tx, _) => drop(tx.send(Err(err()))),
            Done::Sent(tx, _) => drop(tx.send(Err(err()))),
            Done::Acked(tx, _) => drop(tx.send(Err(err()))),
            Done::Group(tx, _) => drop(tx.send(Err(err()))),
        }
    }

    fn deliver(self) {
        match self {
            Done::Unit(tx, r) => drop(tx.send(r)),
            Done::Sent(tx, r) => drop(tx.send(r)),
            Done::Acked(tx, r) => drop(tx.send(r)),
            Done::Group(tx, r) => drop(tx.send(r)),
        }
    }
}

/// Writer-local knowledge, sound because this writer is the database's only one: conversations
/// known to exist and users' display names. Cleared whenever a batch rolls back (it may hold what
/// the rollback undid) and when it grows past its limit.
#[derive(Default)]
pub(super) struct Cache {
    pub conversations: HashSet<String>,
    pub names: HashMap<String, String>,
}

impl Cache {
    fn trim(&mut self) {
        if self.conversations.len() > CACHE_LIMIT {
            self.conversations.clear();
        }
        if self.names.len() > CACHE_LIMIT {
            self.names.clear();
        }
    }
}

pub(super) async fn writer_loop(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Command>) {
    let mut cache = Cache::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let started = Instant::now();
        let size = batch.len();
        let (done, result) = run_batch(&mut conn, &mut cache, std::mem::take(&mut batch)).await;
        match result {
            Ok(()) => done.into_iter().for_each(Done::deliver),
            Err(e) => {
                tracing::error!(error = %e, size, "store batch failed; rolled back");
                let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
                cache = Cache::default();
                done.into_iter().for_each(Done::fail);
            }
        }
        metrics::histogram!("chat_store_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("chat_store_batch_size").record(size as f64);
    }
}

/// Runs a batch in one transaction. Client errors (403, 404, …) are found before a command
/// writes anything, so they fail alone; a database error fails the whole batch. Every command's
/// reply sender comes back in the first element, whatever happened.
async fn run_batch(
    conn: &mut SqliteConnection,
    cache: &mut Cache,
    batch: Vec<Command>,
) -> (Vec<Done>, Result<()>) {
    cache.trim();
    let mut done = Vec::with_capacity(batch.len());
    let mut failed: Option<Error> = None;
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        failed = Some(e.into());
    }
    let mut hot: Vec<Hot> = Vec::new();
    for cmd in batch {
        let cmd = match cmd {
            Command::Send { msg, group, reply } => {
                hot.push(Hot::Send { msg, group, reply });
                continue;
            }
            Command::Ack {
                user,
                message_id,
                reply,
            } => {
                hot.push(Hot::Ack {
                    user,
                    message_id,
                    reply,
                });
                continue;
            }
            other => other,
        };
        flush(conn, cache, &mut hot, &mut done, &mut failed).await;
        let d = if failed.is_some() {
            pending(cmd)
        } else {
            run_command(conn, cache, cmd).await
        };
        if failed.is_none() && d_is_internal(&d) {
            failed = Some(Error::Internal("a command of the batch failed".into()));
        }
        done.push(d);
    }
    flush(conn, cache, &mut hot, &mut done, &mut failed).await;
    if failed.is_none() {
        if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
            failed = Some(e.into());
        }
    }
    match failed {
        None => (done, Ok(())),
        Some(e) => (done, Err(e)),
    }
}

/// Runs the collected SEND/ACK run as one segment.
async fn flush(
    conn: &mut SqliteConnection,
    cache: &mut Cache,
    hot: &mut Vec<Hot>,
    done: &mut Vec<Done>,
    failed: &mut Option<Error>,
) {
    if hot.is_empty() {
        return;
    }
    let run = std::mem::take(hot);
    if failed.is_some() {
        done.extend(run.into_iter().map(Hot::pending));
        return;
    }
    let (results, outcome) = segment::run(conn, cache, run).await;
    done.extend(results);
    if let Err(e) = outcome {
        *failed = Some(e);
    }
}

fn d_is_internal(d: &Done) -> bool {
    match d {
        Done::Unit(_, r) => r.as_ref().is_err_and(Error::is_internal),
        Done::Sent(_, r) => r.as_ref().is_err_and(Error::is_internal),
        Done::Acked(_, r) => r.as_ref().is_err_and(Error::is_internal),
        Done::Group(_, r) => r.as_ref().is_err_and(Error::is_internal),
    }
}

/// A command not run because its batch already failed.
fn pending(cmd: Command) -> Done {
    fn e<T>() -> Result<T> {
        Err(Error::Unavailable("not run".into()))
    }
    match cmd {
        Command::UpsertUser { reply, .. } | Command::LeaveGroup { reply, .. } => {
            Done::Unit(reply, e())
        }
        Command::Send { reply, .. } => Done::Sent(reply, e()),
        Command::Ack { reply, .. } => Done::Acked(reply, e()),
        Command::CreateGroup { reply, .. } | Command::AddMembers { reply, .. } => {
            Done::Group(reply, e())
        }
    }
}

async fn run_command(conn: &mut SqliteConnection, cache: &mut Cache, cmd: Command) -> Done {
    match cmd {
        Command::UpsertUser { id, name, reply } => {
            Done::Unit(reply, upsert_user(conn, cache, id, name).await)
        }
        Command::CreateGroup {
            owner,
            name,
            members,
            reply,
        } => Done::Group(reply, create_group(conn, &owner, &name, &members).await),
        Command::AddMembers {
            user,
            group_id,
            members,
            reply,
        } => Done::Group(reply, add_members(conn, &user, &group_id, &members).await),
        Command::LeaveGroup {
            user,
            group_id,
            reply,
        } => Done::Unit(reply, leave_group(conn, &user, &group_id).await),
        Command::Send { .. } | Command::Ack { .. } => unreachable!("hot commands run in segments"),
    }
}

async fn upsert_user(
    conn: &mut SqliteConnection,
    cache: &mut Cache,
    id: String,
    name: String,
) -> Result<()> {
    if cache.names.get(&id) == Some(&name) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO users (id, name, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at WHERE users.name <> excluded.name",
    )
    .bind(&id)
    .bind(&name)
    .bind(now_ms())
    .execute(conn)
    .await?;
    cache.names.insert(id, name);
    Ok(())
}

async fn group_conversation(
    conn: &mut SqliteConnection,
    group_id: &str,
) -> Result<(String, String)> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT conversation_id, name FROM groups WHERE id = ?")
            .bind(group_id)
            .fetch_optional(conn)
            .await?;
    row.ok_or_else(|| Error::NotFound(format!("no group {group_id}")))
}

async fn require_member(
    conn: &mut SqliteConnection,
    user: &str,
    conversation_id: &str,
) -> Result<()> {
    let active: Option<(i64,)> =
        sqlx::query_as("SELECT active FROM memberships WHERE user_id = ? AND conversation_id = ?")
            .bind(user)
            .bind(conversation_id)
            .fetch_optional(conn)
            .await?;
    match active {
        Some((1,)) => Ok(()),
        _ => Err(Error::Forbidden("not a member of this group".into())),
    }
}

async fn load_group(conn: &mut SqliteConnection, group_id: &str) -> Result<Group> {
    let (conversation_id, name) = group_conversation(conn, group_id).await?;
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT user_id FROM memberships WHERE conversation_id = ? AND active = 1 ORDER BY user_id",
    )
    .bind(&conversation_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Group {
        group_id: group_id.to_owned(),
        name,
        members: rows.into_iter().map(|(u,)| u).collect(),
        conversation_id,
    })
}

async fn create_group(
    conn: &mut SqliteConnection,
    owner: &str,
    name: &str,
    members: &[String],
) -> Result<Group> {
    let group_id = new_id();
    let conversation_id = group_conversation_id(&group_id);
    let now = now_ms();
    sqlx::query(
        "INSERT INTO conversations (id, kind, last_seq, created_at) VALUES (?, 'group', 0, ?)",
    )
    .bind(&conversation_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO groups (id, name, owner, conversation_id, created_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&group_id)
    .bind(name)
    .bind(owner)
    .bind(&conversation_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for user in std::iter::once(owner).chain(members.iter().map(String::as_str)) {
        sqlx::query("INSERT INTO memberships (user_id, conversation_id) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(user)
            .bind(&conversation_id)
            .execute(&mut *conn)
            .await?;
    }
    load_group(conn, &group_id).await
}

async fn add_members(
    conn: &mut SqliteConnection,
    user: &str,
    group_id: &str,
    members: &[String],
) -> Result<Group> {
    let (conversation_id, _) = group_conversation(conn, group_id).await?;
    require_member(conn, user, &conversation_id).await?;
    for member in members {
        // A (re)joining member starts at the current seq: older messages stay invisible to them.
        sqlx::query(
            "INSERT INTO memberships (user_id, conversation_id, joined_seq, acked_seq, active)
             SELECT ?, id, last_seq, last_seq, 1 FROM conversations WHERE id = ?
             ON CONFLICT (user_id, conversation_id) DO UPDATE
             SET joined_seq = excluded.joined_seq, acked_seq = excluded.acked_seq, active = 1
             WHERE memberships.active = 0",
        )
        .bind(member)
        .bind(&conversation_id)
        .execute(&mut *conn)
        .await?;
    }
    load_group(conn, group_id).await
}

async fn leave_group(conn: &mut SqliteConnection, user: &str, group_id: &str) -> Result<()> {
    let (conversation_id, _) = group_conversation(conn, group_id).await?;
    require_member(conn, user, &conversation_id).await?;
    sqlx::query("UPDATE memberships SET active = 0 WHERE user_id = ? AND conversation_id = ?")
        .bind(user)
        .bind(&conversation_id)
        .execute(conn)
        .await?;
    Ok(())
}
