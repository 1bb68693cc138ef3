//! [`SqlStore`]: the [`Store`] over a sqlx driver, the one implementation both backends share.
//!
//! Writes become typed [`Command`]s queued to the process's one writer task ([`super::writer`]);
//! a caller's future resolves with its own reply, after the transaction that holds its change
//! committed. Reads go straight to a pool of readers.

use async_trait::async_trait;
use sqlx::{Database, Pool};
use tokio::sync::{mpsc, oneshot};

use super::backend::Backend;
use super::command::{Command, ManageCommand, MessageCommand, Pending, Reply};
use super::writer;
use super::{
    Acked, Backlog, ConversationSummary, Erased, Group, GroupChange, NewMessage, Page, Position,
    ReadMark, Recalled, Sent, Store,
};
use crate::error::{Error, Result};

/// How long `/readyz` waits for the database: an unreachable one would otherwise hold the probe
/// for the pool's whole acquire timeout, past the kubelet's 2 s probe timeout, and the pod's
/// reason for being unready would be lost.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// The store over a sqlx driver: [`sqlite::SqliteStore`] or [`postgres::PgStore`].
pub struct SqlStore<DB: Database> {
    writer: mpsc::Sender<Command>,
    readers: Pool<DB>,
}

impl<DB: Backend> SqlStore<DB> {
    /// Starts the writer (connecting with `writer`, transactions at least `commit_interval`
    /// apart) beside the `readers`; migrations have run.
    pub(super) fn start(
        writer: DB::WriterOptions,
        commit_interval: std::time::Duration,
        readers: Pool<DB>,
    ) -> Result<Self> {
        Ok(Self {
            writer: writer::spawn::<DB>(writer, commit_interval)?,
            readers,
        })
    }

    /// Queues the command `command` builds around a reply channel, and waits for its result,
    /// which comes after commit.
    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> Command,
    ) -> Result<T> {
        let unavailable = || Error::Unavailable("store write failed; try again".into());
        let (tx, rx) = oneshot::channel();
        let queued = std::time::Instant::now();
        self.writer
            .send(command(tx))
            .await
            .map_err(|_| unavailable())?;
        let value = rx.await.map_err(|_| unavailable())??;
        metrics::histogram!("chat_store_write_seconds").record(queued.elapsed().as_secs_f64());
        Ok(value)
    }

    async fn send(&self, msg: NewMessage, group: bool) -> Result<Sent> {
        self.call(|tx| {
            let reply = Reply::new(tx);
            Command::Message(MessageCommand::Send { msg, group, reply })
        })
        .await
    }

    async fn manage<T>(&self, command: impl FnOnce(Pending<T>) -> ManageCommand) -> Result<T> {
        self.call(|tx| Command::Manage(Box::new(command(Pending::new(tx)))))
            .await
    }
}

#[async_trait]
impl<DB: Backend> Store for SqlStore<DB> {
    async fn upsert_user(&self, id: &str, name: &str) -> Result<()> {
        let (id, name) = (id.to_owned(), name.to_owned());
        self.manage(|reply| ManageCommand::UpsertUser { id, name, reply })
            .await
    }

    async fn send_direct(&self, msg: NewMessage) -> Result<Sent> {
        self.send(msg, false).await
    }

    async fn send_group(&self, msg: NewMessage) -> Result<Sent> {
        self.send(msg, true).await
    }

    async fn ack(&self, user: &str, message_id: &str) -> Result<Acked> {
        let (user, message_id) = (user.to_owned(), message_id.to_owned());
        self.call(|tx| {
            let reply = Reply::new(tx);
            Command::Message(MessageCommand::Ack {
                user,
                message_id,
                reply,
            })
        })
        .await
    }

    async fn create_group(&self, owner: &str, name: &str, members: &[String]) -> Result<Group> {
        let (owner, name, members) = (owner.to_owned(), name.to_owned(), members.to_vec());
        self.manage(|reply| ManageCommand::CreateGroup {
            owner,
            name,
            members,
            reply,
        })
        .await
    }

    async fn change_group(&self, user: &str, group_id: &str, change: GroupChange) -> Result<Group> {
        let (user, group_id) = (user.to_owned(), group_id.to_owned());
        self.manage(|reply| ManageCommand::ChangeGroup {
            user,
            group_id,
            change,
            reply,
        })
        .await
    }

    async fn recall(
        &self,
        user: &str,
        message_id: &str,
        window: std::time::Duration,
    ) -> Result<Recalled> {
        let (user, message_id) = (user.to_owned(), message_id.to_owned());
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        self.manage(|reply| ManageCommand::Recall {
            user,
            message_id,
            window_ms,
            reply,
        })
        .await
    }

    async fn purge(&self, before_ms: i64, limit: u32) -> Result<u64> {
        let before_id = super::lifecycle::id_at(before_ms);
        let limit = i64::from(limit);
        self.manage(|reply| ManageCommand::Purge {
            before_id,
            limit,
            reply,
        })
        .await
    }

    async fn erase_user(&self, user: &str) -> Result<Erased> {
        let user = user.to_owned();
        self.manage(|reply| ManageCommand::EraseUser { user, reply })
            .await
    }

    async fn mark_read(&self, user: &str, conversation_id: &str, seq: i64) -> Result<ReadMark> {
        let (user, conversation_id) = (user.to_owned(), conversation_id.to_owned());
        self.manage(|reply| ManageCommand::MarkRead {
            user,
            conversation_id,
            seq,
            reply,
        })
        .await
    }

    async fn block(&self, user: &str, other: &str, on: bool) -> Result<()> {
        let (blocker, blocked) = (user.to_owned(), other.to_owned());
        self.manage(|reply| ManageCommand::Block {
            blocker,
            blocked,
            on,
            reply,
        })
        .await
    }

    async fn blocked(&self, user: &str) -> Result<Vec<String>> {
        DB::blocked_users(&self.readers, user).await
    }

    async fn visible(&self, viewer: &str, users: &[String]) -> Result<Vec<String>> {
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        DB::visible(&self.readers, viewer, &users).await
    }

    async fn read(
        &self,
        user: &str,
        conversation_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        DB::read(&self.readers, user, conversation_id, after_seq, limit).await
    }

    async fn history(&self, conversation_id: &str, after_seq: i64, limit: u32) -> Result<Page> {
        DB::history(&self.readers, conversation_id, after_seq, limit).await
    }

    async fn position(&self, user: &str, conversation_id: &str) -> Result<Position> {
        DB::position(&self.readers, user, conversation_id).await
    }

    async fn participants(&self, user: &str, conversation_id: &str) -> Result<Vec<String>> {
        DB::participants(&self.readers, user, conversation_id).await
    }

    async fn conversations(&self, user: &str) -> Result<Vec<ConversationSummary>> {
        DB::conversations(&self.readers, user).await
    }

    async fn backlog(&self, user: &str) -> Result<Vec<Backlog>> {
        DB::backlog(&self.readers, user).await
    }

    async fn ping(&self) -> Result<()> {
        match tokio::time::timeout(PING_TIMEOUT, DB::ping(&self.readers)).await {
            Ok(answer) => answer?,
            Err(_) => {
                return Err(Error::Unavailable(format!(
                    "no answer to a query within {PING_TIMEOUT:?}"
                )))
            }
        }
        if self.writer.is_closed() {
            return Err(Error::Unavailable("store writer stopped".into()));
        }
        Ok(())
    }
}
