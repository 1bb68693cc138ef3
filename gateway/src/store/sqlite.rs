//! SQLite store (embedded default): WAL mode, `synchronous=FULL`, one writer connection fed by a
//! bounded queue (group commit), a small pool of readers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{Acked, Backlog, ConversationSummary, Group, NewMessage, Page, Sent, Store};
use crate::error::{Error, Result};
use crate::model::{
    direct_conversation_id, group_conversation_id, new_id, now_ms, StoredMessage, Target,
};

/// Commands queued for the writer; past this, senders wait (backpressure instead of memory growth).
const WRITE_QUEUE: usize = 8192;
/// Most commands folded into one transaction.
const MAX_BATCH: usize = 512;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

pub struct SqliteStore {
    writer: mpsc::Sender<Command>,
    readers: SqlitePool,
}

enum Command {
    UpsertUser {
        id: String,
        name: String,
        reply: oneshot::Sender<Result<()>>,
    },
    SendDirect {
        msg: NewMessage,
        reply: oneshot::Sender<Result<Sent>>,
    },
    SendGroup {
        msg: NewMessage,
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

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed transaction survives power loss, not only a process crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/chat.db`, applies migrations and starts the writer.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Internal(format!("creating {}: {e}", data_dir.display())))?;
        let path = data_dir.join("chat.db");
        let mut conn = SqliteConnection::connect_with(&options(&path)).await?;
        MIGRATOR.run(&mut conn).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options(&path).read_only(true))
            .await?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        // The writer gets a thread and runtime of its own: each statement is a round trip to
        // sqlx's SQLite worker thread, and queueing behind hundreds of session tasks on the shared
        // runtime for every one of them would cap throughput.
        std::thread::Builder::new()
            .name("chat-store-writer".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("writer runtime");
                rt.block_on(writer_loop(conn, rx));
            })
            .map_err(|e| Error::Internal(format!("starting the store writer: {e}")))?;
        Ok(Self {
            writer: tx,
            readers,
        })
    }

    /// Applies migrations and returns (the `migrate` command).
    pub async fn migrate(data_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Internal(format!("creating {}: {e}", data_dir.display())))?;
        let mut conn = SqliteConnection::connect_with(&options(&data_dir.join("chat.db"))).await?;
        MIGRATOR.run(&mut conn).await?;
        Ok(())
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(make(tx))
            .await
            .map_err(|_| Error::Unavailable("store writer stopped".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("store writer stopped".into()))?
    }
}

async fn writer_loop(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Command>) {
    let mut cache = Cache::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let started = Instant::now();
        let size = batch.len();
        run_batch(&mut conn, &mut cache, &mut batch).await;
        metrics::histogram!("chat_store_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("chat_store_batch_size").record(size as f64);
    }
}

/// A command's result, held until the batch's transaction commits.
enum Done {
    Unit(oneshot::Sender<Result<()>>, Result<()>),
    Sent(oneshot::Sender<Result<Sent>>, Result<Sent>),
    Acked(oneshot::Sender<Result<Acked>>, Result<Acked>),
    Group(oneshot::Sender<Result<Group>>, Result<Group>),
}

impl Done {
    fn fail(self, why: &str) {
        let err = || Error::Unavailable(why.to_owned());
        match self {
            Done::Unit(tx, _) => drop(tx.send(Err(err()))),
            Done::Sent(tx, _) => drop(tx.send(Err(err()))),
            Done::Acked(tx, _) => drop(tx.send(Err(err()))),
            Done::Group(tx, _) => drop(tx.send(Err(err()))),
        }
    }

    fn is_internal(&self) -> bool {
        match self {
            Done::Unit(_, r) => r.as_ref().is_err_and(Error::is_internal),
            Done::Sent(_, r) => r.as_ref().is_err_and(Error::is_internal),
            Done::Acked(_, r) => r.as_ref().is_err_and(Error::is_internal),
            Done::Group(_, r) => r.as_ref().is_err_and(Error::is_internal),
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
/// known to exist and users' display names. Saves two round trips per message; cleared whenever
/// a batch rolls back (it may hold what the rollback undid) and when it grows past its limit.
#[derive(Default)]
struct Cache {
    conversations: HashSet<String>,
    names: HashMap<String, String>,
}

const CACHE_LIMIT: usize = 1 << 20;

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

/// Runs every queued command in one transaction. Client errors (403, 404, …) are detected before a
/// command writes anything, so they fail alone; a database error rolls the whole batch back.
async fn run_batch(conn: &mut SqliteConnection, cache: &mut Cache, batch: &mut Vec<Command>) {
    let mut done = Vec::with_capacity(batch.len());
    match run_commands(conn, cache, batch, &mut done).await {
        Ok(()) => done.into_iter().for_each(Done::deliver),
        Err(e) => {
            tracing::error!(error = %e, "store batch failed; rolled back");
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            *cache = Cache::default();
            // Commands not yet run are dropped with the batch: their callers see the writer gone.
            batch.clear();
            done.into_iter()
                .for_each(|d| d.fail("store write failed; try again"));
        }
    }
}

async fn run_commands(
    conn: &mut SqliteConnection,
    cache: &mut Cache,
    batch: &mut Vec<Command>,
    done: &mut Vec<Done>,
) -> Result<()> {
    cache.trim();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    for cmd in batch.drain(..) {
        let d = run_command(conn, cache, cmd).await;
        let internal = d.is_internal();
        done.push(d);
        if internal {
            return Err(Error::Internal("a command of the batch failed".into()));
        }
    }
    sqlx::query("COMMIT").execute(&mut *conn).await?;
    Ok(())
}

async fn run_command(conn: &mut SqliteConnection, cache: &mut Cache, cmd: Command) -> Done {
    match cmd {
        Command::UpsertUser { id, name, reply } => {
            Done::Unit(reply, upsert_user(conn, cache, id, name).await)
        }
        Command::SendDirect { msg, reply } => {
            Done::Sent(reply, send_direct(conn, cache, msg).await)
        }
        Command::SendGroup { msg, reply } => Done::Sent(reply, send_group(conn, msg).await),
        Command::Ack {
            user,
            message_id,
            reply,
        } => Done::Acked(reply, ack(conn, &user, &message_id).await),
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
    }
}

type Row = (
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<String>,
    String,
    i64,
);

/// The same columns qualified with the `m` alias, for joins.
const MESSAGE_COLUMNS_M: &str = "m.conversation_id, m.seq, m.message_id, m.sender, m.sender_name, m.recipient, m.recipient_name, m.group_id, m.body, m.file_type, m.client_msg_id, m.request_id, m.created_at";
const MESSAGE_COLUMNS: &str = "conversation_id, seq, message_id, sender, sender_name, recipient, recipient_name, group_id, body, file_type, client_msg_id, request_id, created_at";

fn from_row(r: Row) -> StoredMessage {
    let (
        conversation_id,
        seq,
        message_id,
        from,
        from_name,
        recipient,
        recipient_name,
        group_id,
        body,
        file_type,
        client_msg_id,
        request_id,
        created_at,
    ) = r;
    let target = match group_id {
        Some(group_id) => Target::Group { group_id },
        None => {
            let to = recipient.unwrap_or_default();
            Target::Direct {
                to_name: recipient_name.unwrap_or_else(|| to.clone()),
                to,
            }
        }
    };
    StoredMessage {
        message_id,
        conversation_id,
        seq,
        from,
        from_name,
        target,
        body,
        file_type,
        client_msg_id,
        created_at,
        request_id,
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
    sqlx::query("INSERT INTO users (id, name, updated_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at WHERE users.name <> excluded.name")
        .bind(&id)
        .bind(&name)
        .bind(now_ms())
        .execute(conn)
        .await?;
    cache.names.insert(id, name);
    Ok(())
}

/// A user's display name (the id itself for users never seen).
async fn user_name(conn: &mut SqliteConnection, cache: &mut Cache, id: &str) -> Result<String> {
    if let Some(name) = cache.names.get(id) {
        return Ok(name.clone());
    }
    let row: Option<(String,)> = sqlx::query_as("SELECT name FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    let name = row.map(|(n,)| n).unwrap_or_else(|| id.to_owned());
    cache.names.insert(id.to_owned(), name.clone());
    Ok(name)
}

async fn find_duplicate(
    conn: &mut SqliteConnection,
    msg: &NewMessage,
) -> Result<Option<StoredMessage>> {
    let Some(cid) = &msg.client_msg_id else {
        return Ok(None);
    };
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = ? AND client_msg_id = ?"
    ))
    .bind(&msg.from)
    .bind(cid)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(from_row))
}

async fn next_seq(conn: &mut SqliteConnection, conversation_id: &str) -> Result<i64> {
    let (seq,): (i64,) = sqlx::query_as(
        "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
    )
    .bind(conversation_id)
    .fetch_one(conn)
    .await?;
    Ok(seq)
}

async fn insert_message(conn: &mut SqliteConnection, m: &StoredMessage) -> Result<()> {
    let (recipient, recipient_name, group_id) = match &m.target {
        Target::Direct { to, to_name } => (Some(to.as_str()), Some(to_name.as_str()), None),
        Target::Group { group_id } => (None, None, Some(group_id.as_str())),
    };
    sqlx::query(&format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&m.conversation_id)
    .bind(m.seq)
    .bind(&m.message_id)
    .bind(&m.from)
    .bind(&m.from_name)
    .bind(recipient)
    .bind(recipient_name)
    .bind(group_id)
    .bind(&m.body)
    .bind(m.file_type)
    .bind(&m.client_msg_id)
    .bind(&m.request_id)
    .bind(m.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn send_direct(
    conn: &mut SqliteConnection,
    cache: &mut Cache,
    msg: NewMessage,
) -> Result<Sent> {
    if let Some(message) = find_duplicate(conn, &msg).await? {
        return Ok(Sent {
            message,
            duplicate: true,
            members: Vec::new(),
        });
    }
    let conversation_id = direct_conversation_id(&msg.from, &msg.to);
    if !cache.conversations.contains(&conversation_id) {
        let created = sqlx::query("INSERT INTO conversations (id, kind, last_seq, created_at) VALUES (?, 'direct', 0, ?) ON CONFLICT (id) DO NOTHING")
            .bind(&conversation_id)
            .bind(now_ms())
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1;
        if created {
            for user in [&msg.from, &msg.to] {
                sqlx::query("INSERT INTO memberships (user_id, conversation_id) VALUES (?, ?) ON CONFLICT DO NOTHING")
                    .bind(user)
                    .bind(&conversation_id)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        cache.conversations.insert(conversation_id.clone());
    }
    let seq = next_seq(conn, &conversation_id).await?;
    let to_name = user_name(conn, cache, &msg.to).await?;
    let message = StoredMessage {
        message_id: new_id(),
        conversation_id,
        seq,
        target: Target::Direct {
            to_name,
            to: msg.to,
        },
        from: msg.from,
        from_name: msg.from_name,
        body: msg.body,
        file_type: msg.file_type,
        client_msg_id: msg.client_msg_id,
        created_at: now_ms(),
        request_id: msg.request_id,
    };
    insert_message(conn, &message).await?;
    mark_acked(conn, &message.from, &message.conversation_id, seq).await?;
    Ok(Sent {
        message,
        duplicate: false,
        members: Vec::new(),
    })
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

async fn active_members(conn: &mut SqliteConnection, conversation_id: &str) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT user_id FROM memberships WHERE conversation_id = ? AND active = 1 ORDER BY user_id",
    )
    .bind(conversation_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(u,)| u).collect())
}

async fn send_group(conn: &mut SqliteConnection, msg: NewMessage) -> Result<Sent> {
    if let Some(message) = find_duplicate(conn, &msg).await? {
        return Ok(Sent {
            message,
            duplicate: true,
            members: Vec::new(),
        });
    }
    let (conversation_id, _) = group_conversation(conn, &msg.to).await?;
    require_member(conn, &msg.from, &conversation_id).await?;
    let seq = next_seq(conn, &conversation_id).await?;
    let message = StoredMessage {
        message_id: new_id(),
        conversation_id,
        seq,
        target: Target::Group { group_id: msg.to },
        from: msg.from,
        from_name: msg.from_name,
        body: msg.body,
        file_type: msg.file_type,
        client_msg_id: msg.client_msg_id,
        created_at: now_ms(),
        request_id: msg.request_id,
    };
    insert_message(conn, &message).await?;
    mark_acked(conn, &message.from, &message.conversation_id, seq).await?;
    let members = active_members(conn, &message.conversation_id).await?;
    Ok(Sent {
        message,
        duplicate: false,
        members,
    })
}

/// Advances `user`'s contiguous acked seq in a conversation past `seq` when it closes the gap,
/// else parks `seq` in `acks` until it does.
async fn mark_acked(
    conn: &mut SqliteConnection,
    user: &str,
    conversation_id: &str,
    seq: i64,
) -> Result<()> {
    // Fast path, one round trip: `seq` extends the contiguous prefix and nothing is parked above it.
    let advanced = sqlx::query(
        "UPDATE memberships SET acked_seq = ?1 WHERE user_id = ?2 AND conversation_id = ?3 AND acked_seq = ?1 - 1
         AND NOT EXISTS (SELECT 1 FROM acks WHERE user_id = ?2 AND conversation_id = ?3 AND seq = ?1 + 1)",
    )
    .bind(seq)
    .bind(user)
    .bind(conversation_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if advanced {
        return Ok(());
    }
    let acked: Option<(i64,)> = sqlx::query_as(
        "SELECT acked_seq FROM memberships WHERE user_id = ? AND conversation_id = ?",
    )
    .bind(user)
    .bind(conversation_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((acked,)) = acked else { return Ok(()) };
    if seq > acked + 1 {
        // A gap below: park it until the gap closes.
        sqlx::query("INSERT INTO acks (user_id, conversation_id, seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
            .bind(user)
            .bind(conversation_id)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        return Ok(());
    }
    if seq <= acked {
        return Ok(());
    }
    // `seq` closes the gap: fold the parked acks right above it into the mark.
    let mut mark = seq;
    loop {
        let parked =
            sqlx::query("DELETE FROM acks WHERE user_id = ? AND conversation_id = ? AND seq = ?")
                .bind(user)
                .bind(conversation_id)
                .bind(mark + 1)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        if parked == 0 {
            break;
        }
        mark += 1;
    }
    sqlx::query("UPDATE memberships SET acked_seq = ? WHERE user_id = ? AND conversation_id = ?")
        .bind(mark)
        .bind(user)
        .bind(conversation_id)
        .execute(conn)
        .await?;
    Ok(())
}

async fn ack(conn: &mut SqliteConnection, user: &str, message_id: &str) -> Result<Acked> {
    type AckRow = (
        String,
        i64,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        i64,
        Option<String>,
        String,
        i64,
        Option<i64>,
    );
    let row: Option<AckRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS_M}, ms.joined_seq FROM messages m
         LEFT JOIN memberships ms ON ms.conversation_id = m.conversation_id AND ms.user_id = ?
         WHERE m.message_id = ?"
    ))
    .bind(user)
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((
        c,
        seq,
        id,
        from,
        from_name,
        rcpt,
        rcpt_name,
        group,
        body,
        ft,
        cmid,
        rid,
        at,
        joined,
    )) = row
    else {
        return Err(Error::NotFound(format!("no message {message_id}")));
    };
    let message = from_row((
        c, seq, id, from, from_name, rcpt, rcpt_name, group, body, ft, cmid, rid, at,
    ));
    match joined {
        Some(joined) if message.seq > joined => {}
        _ => {
            return Err(Error::Forbidden(
                "only a recipient may ack a message".into(),
            ))
        }
    }
    if message.from == user {
        // The sender's other devices ack their copies; the sender counted as acked when it sent.
        return Ok(Acked {
            message,
            first_delivery: false,
        });
    }
    mark_acked(conn, user, &message.conversation_id, message.seq).await?;
    let first_delivery = message.is_direct_recipient(user)
        && sqlx::query(
            "UPDATE messages SET delivered_at = ? WHERE message_id = ? AND delivered_at IS NULL",
        )
        .bind(now_ms())
        .bind(message_id)
        .execute(conn)
        .await?
        .rows_affected()
            == 1;
    Ok(Acked {
        message,
        first_delivery,
    })
}

async fn load_group(conn: &mut SqliteConnection, group_id: &str) -> Result<Group> {
    let (conversation_id, name) = group_conversation(conn, group_id).await?;
    let members = active_members(conn, &conversation_id).await?;
    Ok(Group {
        group_id: group_id.to_owned(),
        name,
        members,
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

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_user(&self, id: &str, name: &str) -> Result<()> {
        self.call(|reply| Command::UpsertUser {
            id: id.to_owned(),
            name: name.to_owned(),
            reply,
        })
        .await
    }

    async fn send_direct(&self, msg: NewMessage) -> Result<Sent> {
        self.call(|reply| Command::SendDirect { msg, reply }).await
    }

    async fn send_group(&self, msg: NewMessage) -> Result<Sent> {
        self.call(|reply| Command::SendGroup { msg, reply }).await
    }

    async fn ack(&self, user: &str, message_id: &str) -> Result<Acked> {
        self.call(|reply| Command::Ack {
            user: user.to_owned(),
            message_id: message_id.to_owned(),
            reply,
        })
        .await
    }

    async fn create_group(&self, owner: &str, name: &str, members: &[String]) -> Result<Group> {
        self.call(|reply| Command::CreateGroup {
            owner: owner.to_owned(),
            name: name.to_owned(),
            members: members.to_vec(),
            reply,
        })
        .await
    }

    async fn add_members(&self, user: &str, group_id: &str, members: &[String]) -> Result<Group> {
        self.call(|reply| Command::AddMembers {
            user: user.to_owned(),
            group_id: group_id.to_owned(),
            members: members.to_vec(),
            reply,
        })
        .await
    }

    async fn leave_group(&self, user: &str, group_id: &str) -> Result<()> {
        self.call(|reply| Command::LeaveGroup {
            user: user.to_owned(),
            group_id: group_id.to_owned(),
            reply,
        })
        .await
    }

    async fn read(
        &self,
        user: &str,
        conversation_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        let mut conn = self.readers.acquire().await?;
        let joined: Option<(i64, i64)> = sqlx::query_as(
            "SELECT joined_seq, active FROM memberships WHERE user_id = ? AND conversation_id = ?",
        )
        .bind(user)
        .bind(conversation_id)
        .fetch_optional(&mut *conn)
        .await?;
        let joined = match joined {
            Some((joined, 1)) => joined,
            _ => {
                return Err(Error::Forbidden(
                    "not a participant of this conversation".into(),
                ))
            }
        };
        let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?"))
            .bind(conversation_id)
            .bind(after_seq.max(joined))
            .bind(limit as i64 + 1)
            .fetch_all(&mut *conn)
            .await?;
        let has_more = rows.len() > limit as usize;
        Ok(Page {
            messages: rows
                .into_iter()
                .take(limit as usize)
                .map(from_row)
                .collect(),
            has_more,
        })
    }

    async fn conversations(&self, user: &str) -> Result<Vec<ConversationSummary>> {
        let rows: Vec<(
            String,
            i64,
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT c.id, c.last_seq, m.acked_seq, m.joined_seq, c.kind, g.id, g.name
             FROM memberships m JOIN conversations c ON c.id = m.conversation_id
             LEFT JOIN groups g ON g.conversation_id = c.id
             WHERE m.user_id = ? AND m.active = 1 ORDER BY c.id",
        )
        .bind(user)
        .fetch_all(&self.readers)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (conversation_id, last_seq, acked, joined, kind, group_id, name) in rows {
            let peer = if kind == "direct" {
                let members: Vec<(String,)> = sqlx::query_as("SELECT user_id FROM memberships WHERE conversation_id = ? AND user_id <> ? LIMIT 1")
                    .bind(&conversation_id)
                    .bind(user)
                    .fetch_all(&self.readers)
                    .await?;
                Some(
                    members
                        .into_iter()
                        .next()
                        .map(|(u,)| u)
                        .unwrap_or_else(|| user.to_owned()),
                )
            } else {
                None
            };
            out.push(ConversationSummary {
                conversation_id,
                last_seq,
                acked_seq: acked.max(joined),
                kind,
                peer,
                group_id,
                name,
            });
        }
        Ok(out)
    }

    async fn backlog(&self, user: &str) -> Result<Vec<Backlog>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT c.id, MAX(m.acked_seq, m.joined_seq), c.last_seq
             FROM memberships m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.user_id = ? AND m.active = 1 AND c.last_seq > MAX(m.acked_seq, m.joined_seq) ORDER BY c.id",
        )
        .bind(user)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(conversation_id, after_seq, last_seq)| Backlog {
                conversation_id,
                after_seq,
                last_seq,
            })
            .collect())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        if self.writer.is_closed() {
            return Err(Error::Unavailable("store writer stopped".into()));
        }
        Ok(())
    }
}
