//! SQLite's writer connection: the database called in place, on the writer's own thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and hands it every statement,
//! and every row back, through channels: two thread switches a statement, more for its rows.
//! For the writer that was most of a message's cost (a batch's dozen statements came to ~130
//! context switches, and the two threads to about 60% of the gateway's CPU at 5,000 msg/s). The
//! writer already has a thread of its own, whose only work is the store's transactions, so here
//! it calls SQLite itself: a statement is a function call, prepared once and cached, and a list
//! is a loop over one single-row statement — as cheap as a `VALUES` list in process, with none
//! of the distinct statement texts a list's length makes (each was one more to prepare).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use crate::error::Result;
use crate::model::StoredMessage;
use crate::store::plan::{AckPosition, AckTarget, AckWrites};
use crate::store::sql::rows::{target_columns, MessageRow};

mod blocks;

/// Prepared statements kept: every statement the writer runs, with room to spare.
const STATEMENTS: usize = 64;

/// The writer's connection.
pub struct SqliteWriter(pub(super) Connection);

/// Opens the database at `path` for writing, with the settings of every connection of the store
/// (WAL, `synchronous=FULL`, a 64 MiB page cache) and no automatic checkpoints: a connection of
/// their own runs them.
pub(super) fn open(path: &Path) -> Result<SqliteWriter> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA cache_size = -65536;
         PRAGMA temp_store = MEMORY;
         PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 0;",
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    Ok(SqliteWriter(conn))
}

/// A `messages` row in [`MESSAGE_COLUMNS`](crate::store::sql::rows::MESSAGE_COLUMNS)' order,
/// from column `at`.
pub(super) fn message(row: &Row<'_>, at: usize) -> rusqlite::Result<StoredMessage> {
    Ok(MessageRow {
        conversation_id: row.get(at)?,
        seq: row.get(at + 1)?,
        message_id: row.get(at + 2)?,
        sender: row.get(at + 3)?,
        sender_name: row.get(at + 4)?,
        recipient: row.get(at + 5)?,
        recipient_name: row.get(at + 6)?,
        group_id: row.get(at + 7)?,
        body: row.get(at + 8)?,
        file_type: row.get(at + 9)?,
        client_msg_id: row.get(at + 10)?,
        request_id: row.get(at + 11)?,
        created_at: row.get(at + 12)?,
        recalled_at: None,
        system: None,
        file_id: None,
        file_name: None,
        file_size: None,
        file_mime: None,
    }
    .into())
}

impl SqliteWriter {
    /// Runs a statement without parameters (`BEGIN IMMEDIATE`, `COMMIT`, `ROLLBACK`).
    pub(super) fn execute(&mut self, sql: &str) -> Result<()> {
        self.0.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// The messages stored under any of the `(sender, clientMsgId)` keys, and for each acked
    /// `(user, message id)` the message, if it exists, and the user's `joined_seq` (none when
    /// the membership had ended before the message: a former member acks only what it could read).
    pub(super) fn look_up(
        &mut self,
        keys: &[(&str, &str)],
        acks: &[(&str, &str)],
    ) -> Result<(Vec<StoredMessage>, Vec<AckTarget>)> {
        let mut sent = self.0.prepare_cached(
            "SELECT conversation_id, seq, message_id, sender, sender_name, recipient,
                    recipient_name, group_id, body, file_type, client_msg_id, request_id, created_at
             FROM messages WHERE sender = ?1 AND client_msg_id = ?2",
        )?;
        let mut existing = Vec::new();
        for (sender, client_msg_id) in keys {
            let rows = sent.query_map(params![sender, client_msg_id], |row| message(row, 0))?;
            for m in rows {
                existing.push(m?);
            }
        }
        let mut acked = self.0.prepare_cached(
            "SELECT CASE WHEN ms.active = 1 OR m.seq <= ms.left_seq THEN ms.joined_seq END,
                    m.conversation_id, m.seq, m.message_id, m.sender,
                    m.sender_name, m.recipient, m.recipient_name, m.group_id, m.body, m.file_type,
                    m.client_msg_id, m.request_id, m.created_at
             FROM messages m LEFT JOIN memberships ms
               ON ms.conversation_id = m.conversation_id AND ms.user_id = ?1
             WHERE m.message_id = ?2",
        )?;
        let mut found = Vec::with_capacity(acks.len());
        for (acker, message_id) in acks {
            let target = acked
                .query_row(params![acker, message_id], |row| {
                    Ok((acker.to_string(), message(row, 1)?, row.get(0)?))
                })
                .optional()?;
            found.extend(target);
        }
        Ok((existing, found))
    }

    /// Runs `sql`, one parameter and two text columns, for each of `ids`.
    fn pairs(&mut self, sql: &str, ids: &[&str]) -> Result<Vec<(String, String)>> {
        let mut statement = self.0.prepare_cached(sql)?;
        let mut out = Vec::new();
        for id in ids {
            for pair in statement.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))? {
                out.push(pair?);
            }
        }
        Ok(out)
    }

    /// `(group id, conversation id)` of those of `ids` that exist.
    pub(super) fn find_groups(&mut self, ids: &[&str]) -> Result<Vec<(String, String)>> {
        self.pairs(
            "SELECT id, conversation_id FROM groups WHERE id = ?1 AND dissolved_at IS NULL",
            ids,
        )
    }

    /// `(conversation id, user id)` of the active members of the conversations.
    pub(super) fn active_members(
        &mut self,
        conversations: &[&str],
    ) -> Result<Vec<(String, String)>> {
        let sql = "SELECT conversation_id, user_id FROM memberships
                   WHERE active = 1 AND conversation_id = ?1";
        self.pairs(sql, conversations)
    }

    /// `(user id, display name)` of those of `ids` that have one.
    /// Creates the 1:1 conversations (id → its two users) that do not exist yet, with their
    /// memberships.
    pub(super) fn create_direct(
        &mut self,
        conversations: &BTreeMap<&str, (&str, &str)>,
        now: i64,
    ) -> Result<()> {
        let mut insert = self.0.prepare_cached(
            "INSERT INTO conversations (id, kind, last_seq, created_at) VALUES (?1, 'direct', 0, ?2)
             ON CONFLICT (id) DO NOTHING",
        )?;
        let mut created = Vec::new();
        for (id, users) in conversations {
            if insert.execute(params![id, now])? == 1 {
                created.push((*id, *users));
            }
        }
        drop(insert);
        for (id, (a, b)) in created {
            self.add_membership(a, id)?;
            if a != b {
                self.add_membership(b, id)?;
            }
        }
        Ok(())
    }

    /// Inserts a `(user, conversation)` membership that does not exist yet.
    pub(super) fn add_membership(&mut self, user: &str, conversation: &str) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO memberships (user_id, conversation_id) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![user, conversation])?;
        Ok(())
    }

    /// Raises each conversation's `last_seq` by its count; returns the new values.
    pub(super) fn allocate(&mut self, counts: &BTreeMap<&str, i64>) -> Result<Vec<(String, i64)>> {
        let mut bump = self.0.prepare_cached(
            "UPDATE conversations SET last_seq = last_seq + ?2 WHERE id = ?1 RETURNING last_seq",
        )?;
        let mut lasts = Vec::with_capacity(counts.len());
        for (id, n) in counts {
            let last: Option<i64> = bump
                .query_row(params![id, n], |row| row.get(0))
                .optional()?;
            lasts.extend(last.map(|last| (id.to_string(), last)));
        }
        Ok(lasts)
    }

    /// Inserts the run's new messages.
    pub(super) fn insert_messages(&mut self, messages: &[&StoredMessage]) -> Result<()> {
        messages
            .iter()
            .try_for_each(|m| self.insert_message(m, None))
    }

    /// Inserts one message; `system`: a group event's JSON (v1.1), `None` for a user's message.
    pub(super) fn insert_message(&mut self, m: &StoredMessage, system: Option<&str>) -> Result<()> {
        let (recipient, recipient_name, group_id) = target_columns(m);
        self.0
            .prepare_cached(
                "INSERT INTO messages (conversation_id, seq, message_id, sender, sender_name,
                    recipient, recipient_name, group_id, body, file_type, client_msg_id,
                    request_id, created_at, system, file_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?
            .execute(params![
                m.conversation_id,
                m.seq,
                m.message_id,
                m.from,
                m.from_name,
                recipient,
                recipient_name,
                group_id,
                m.body,
                m.file_type,
                m.client_msg_id,
                m.request_id,
                m.created_at,
                system,
                m.file.as_ref().map(|f| f.file_id.as_str()),
            ])?;
        Ok(())
    }

    /// The `ackedSeq` and parked acks of each `(user, conversation)` that has a membership.
    pub(super) fn positions(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<AckPosition>> {
        let mut read = self.0.prepare_cached(
            "SELECT ms.user_id, ms.conversation_id, ms.acked_seq, a.seq FROM memberships ms
             LEFT JOIN acks a ON a.user_id = ms.user_id AND a.conversation_id = ms.conversation_id
             WHERE ms.user_id = ?1 AND ms.conversation_id = ?2",
        )?;
        let mut out = Vec::new();
        for (user, conversation) in pairs {
            let rows = read.query_map(params![user, conversation], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?;
            for position in rows {
                out.push(position?);
            }
        }
        Ok(out)
    }

    /// Writes the folded acks (and the senders' `readSeq`).
    pub(super) fn settle(&mut self, writes: &AckWrites) -> Result<()> {
        let memberships = writes.memberships();
        if !memberships.is_empty() {
            let mut update = self.0.prepare_cached(
                "UPDATE memberships SET acked_seq = MAX(acked_seq, ?3), read_seq = MAX(read_seq, ?4)
                 WHERE user_id = ?1 AND conversation_id = ?2",
            )?;
            for (user, conversation, acked, read) in memberships {
                update.execute(params![user, conversation, acked, read])?;
            }
        }
        let statements = [
            (
                &writes.unpark,
                "DELETE FROM acks WHERE user_id = ?1 AND conversation_id = ?2 AND seq = ?3",
            ),
            (
                &writes.park,
                "INSERT INTO acks (user_id, conversation_id, seq) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            ),
        ];
        for (rows, sql) in statements {
            if rows.is_empty() {
                continue;
            }
            let mut statement = self.0.prepare_cached(sql)?;
            for (user, conversation, seq) in rows {
                statement.execute(params![user, conversation, seq])?;
            }
        }
        Ok(())
    }
}
