//! SQLite's writer: the rare commands' statements (display names, groups and their
//! administration, READ, RECALL), run one by one between SEND/ACK runs. The hot path's are in
//! `writer.rs`.

use rusqlite::{params, OptionalExtension};

use super::writer::{message, SqliteWriter};
use crate::error::Result;
use crate::model::StoredMessage;

impl SqliteWriter {
    /// The message `message_id` and when it was recalled.
    pub(super) fn message_for_recall(
        &mut self,
        message_id: &str,
    ) -> Result<Option<(StoredMessage, Option<i64>)>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT recalled_at, conversation_id, seq, message_id, sender, sender_name,
                        recipient, recipient_name, group_id, body, file_type, client_msg_id,
                        request_id, created_at
                 FROM messages WHERE message_id = ?1",
            )?
            .query_row([message_id], |row| Ok((message(row, 1)?, row.get(0)?)))
            .optional()?)
    }

    /// Makes the message a tombstone.
    pub(super) fn recall(&mut self, message_id: &str, now: i64) -> Result<()> {
        self.0
            .prepare_cached(
                "UPDATE messages SET recalled_at = ?2, body = '' WHERE message_id = ?1",
            )?
            .execute(params![message_id, now])?;
        Ok(())
    }

    /// READ: raises `user`'s `readSeq` in the conversation to `seq`, clamped to its last seq.
    /// `(before, after)`, or `None` when the user is not an active member.
    pub(super) fn mark_read(
        &mut self,
        user: &str,
        conversation: &str,
        seq: i64,
    ) -> Result<Option<(i64, i64)>> {
        let found: Option<(i64, i64)> = self
            .0
            .prepare_cached(
                "SELECT m.read_seq, c.last_seq FROM memberships m
                 JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.user_id = ?1 AND m.conversation_id = ?2 AND m.active = 1",
            )?
            .query_row(params![user, conversation], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let Some((before, last)) = found else {
            return Ok(None);
        };
        let after = before.max(seq.min(last));
        if after != before {
            self.0
                .prepare_cached(
                    "UPDATE memberships SET read_seq = ?3 WHERE user_id = ?1 AND conversation_id = ?2",
                )?
                .execute(params![user, conversation, after])?;
        }
        Ok(Some((before, after)))
    }

    /// Records a display name, writing only when it changed.
    pub(super) fn upsert_user(&mut self, id: &str, name: &str, now: i64) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO users (id, name, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at
                 WHERE users.name <> excluded.name",
            )?
            .execute(params![id, name, now])?;
        Ok(())
    }

    /// One group's conversation id and name.
    pub(super) fn group(&mut self, id: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT conversation_id, name FROM groups WHERE id = ?1 AND dissolved_at IS NULL",
            )?
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?)
    }

    /// Creates a group `(id, name, owner)`, its conversation, and its members' memberships.
    pub(super) fn create_group(
        &mut self,
        (id, name, owner): (&str, &str, &str),
        conversation: &str,
        members: &[&str],
        now: i64,
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "INSERT INTO conversations (id, kind, last_seq, created_at) VALUES (?1, 'group', 0, ?2)",
            )?
            .execute(params![conversation, now])?;
        self.0
            .prepare_cached(
                "INSERT INTO groups (id, name, owner, conversation_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, name, owner, conversation, now])?;
        for user in members {
            self.add_membership(user, conversation)?;
        }
        Ok(())
    }

    /// Makes `members` active members, starting at the conversation's current seq. Active
    /// members are left as they are.
    pub(super) fn join(&mut self, conversation: &str, members: &[&str]) -> Result<()> {
        let mut join = self.0.prepare_cached(
            "INSERT INTO memberships (user_id, conversation_id, joined_seq, acked_seq, active)
             SELECT ?1, c.id, c.last_seq, c.last_seq, 1 FROM conversations c WHERE c.id = ?2
             ON CONFLICT (user_id, conversation_id) DO UPDATE
             SET joined_seq = excluded.joined_seq, acked_seq = excluded.acked_seq, active = 1,
                 role = 'member', left_seq = NULL
             WHERE memberships.active = 0",
        )?;
        for user in members {
            join.execute(params![user, conversation])?;
        }
        Ok(())
    }

    /// The active members of a conversation: `(user, role, joined_seq)`.
    pub(super) fn members_with_roles(
        &mut self,
        conversation: &str,
    ) -> Result<Vec<(String, String, i64)>> {
        let mut select = self.0.prepare_cached(
            "SELECT user_id, role, joined_seq FROM memberships
             WHERE conversation_id = ?1 AND active = 1",
        )?;
        let rows = select.query_map([conversation], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sets an active member's role.
    pub(super) fn set_role(&mut self, conversation: &str, user: &str, role: &str) -> Result<()> {
        self.0
            .prepare_cached(
                "UPDATE memberships SET role = ?3 WHERE conversation_id = ?1 AND user_id = ?2",
            )?
            .execute(params![conversation, user, role])?;
        Ok(())
    }

    /// Ends `users`' memberships at the event `left_seq`, which they may still read.
    pub(super) fn deactivate(
        &mut self,
        conversation: &str,
        users: &[&str],
        left_seq: i64,
    ) -> Result<()> {
        let mut update = self.0.prepare_cached(
            "UPDATE memberships SET active = 0, left_seq = ?3
             WHERE conversation_id = ?1 AND user_id = ?2 AND active = 1",
        )?;
        for user in users {
            update.execute(params![conversation, user, left_seq])?;
        }
        Ok(())
    }

    /// Changes what is given of a group's name, owner and dissolution time.
    pub(super) fn update_group(
        &mut self,
        id: &str,
        (name, owner, dissolved_at): (Option<&str>, Option<&str>, Option<i64>),
    ) -> Result<()> {
        self.0
            .prepare_cached(
                "UPDATE groups SET name = COALESCE(?2, name), owner = COALESCE(?3, owner),
                     dissolved_at = COALESCE(?4, dissolved_at)
                 WHERE id = ?1",
            )?
            .execute(params![id, name, owner, dissolved_at])?;
        Ok(())
    }

    /// Stores a group event: the message, with its `system` JSON.
    pub(super) fn insert_event(&mut self, m: &StoredMessage, system: &str) -> Result<()> {
        self.insert_message(m, Some(system))
    }

    /// Retention: deletes up to `limit` messages whose id sorts before `before_id`.
    pub(super) fn purge(&mut self, before_id: &str, limit: i64) -> Result<u64> {
        let n = self
            .0
            .prepare_cached(
                "DELETE FROM messages WHERE message_id IN
                     (SELECT message_id FROM messages WHERE message_id < ?1
                      ORDER BY message_id LIMIT ?2)",
            )?
            .execute(params![before_id, limit])?;
        Ok(n as u64)
    }

    /// Erasure: the groups `user` is an active member of.
    pub(super) fn groups_of(&mut self, user: &str) -> Result<Vec<String>> {
        let mut select = self.0.prepare_cached(
            "SELECT g.id FROM memberships m JOIN groups g ON g.conversation_id = m.conversation_id
             WHERE m.user_id = ?1 AND m.active = 1 AND g.dissolved_at IS NULL ORDER BY g.id",
        )?;
        let rows = select.query_map([user], |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Erasure: `user`'s messages become tombstones; its memberships, parked acks and name go.
    pub(super) fn erase_rows(&mut self, user: &str, now: i64) -> Result<(u64, Vec<String>)> {
        let conversations: Vec<String> = {
            let mut select = self.0.prepare_cached(
                "SELECT DISTINCT conversation_id FROM messages WHERE sender = ?1",
            )?;
            let rows = select.query_map([user], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let n = self
            .0
            .prepare_cached(
                "UPDATE messages SET body = '', recalled_at = COALESCE(recalled_at, ?2)
                 WHERE sender = ?1",
            )?
            .execute(params![user, now])?;
        for sql in [
            "DELETE FROM acks WHERE user_id = ?1",
            "DELETE FROM blocks WHERE blocker = ?1 OR blocked = ?1",
            "DELETE FROM memberships WHERE user_id = ?1",
            "DELETE FROM users WHERE id = ?1",
        ] {
            self.0.prepare_cached(sql)?.execute([user])?;
        }
        Ok((n as u64, conversations))
    }
}
