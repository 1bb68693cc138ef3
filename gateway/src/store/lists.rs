//! The writer's hot path: the statements a run of SEND and ACK commands costs ([`super::segment`]),
//! each over a list as long as the run.
//!
//! By default they are [`Sql`]'s, which spell each list out as a `VALUES` list or `IN` list built
//! for its length — what SQLite needs, and cheap in process. PostgreSQL overrides them
//! ([`super::postgres`]): there every statement is a round trip to another process, and one
//! statement per list length meant a prepared statement per shape and a plan per parameter.
//! Its versions bind each column as one array, so every statement has one fixed text, and they
//! fold what can share a round trip into one statement.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;

use super::plan::{AckPosition, AckTarget, AckWrites};
use super::sql::Sql;
use crate::error::Result;
use crate::model::StoredMessage;

#[async_trait]
pub trait Lists: Sql {
    /// Messages stored under any of the `(sender, clientMsgId)` keys.
    async fn sent_before(
        conn: &mut Self::Connection,
        keys: &[(&str, &str)],
    ) -> Result<Vec<StoredMessage>> {
        Self::find_sent(conn, keys).await
    }

    /// Raises each conversation's `last_seq` by its count and returns the new values, locking
    /// the rows in id order first (see [`Sql::allocate_seqs`]).
    async fn allocate(
        conn: &mut Self::Connection,
        counts: &BTreeMap<&str, i64>,
    ) -> Result<Vec<(String, i64)>> {
        Self::allocate_seqs(conn, counts).await
    }

    async fn insert(conn: &mut Self::Connection, messages: &[&StoredMessage]) -> Result<()> {
        Self::insert_messages(conn, messages).await
    }

    /// For each `(user, message id)`: the message, if it exists, and the user's `joined_seq`.
    async fn acked(conn: &mut Self::Connection, acks: &[(&str, &str)]) -> Result<Vec<AckTarget>> {
        Self::find_acked(conn, acks).await
    }

    /// The `ackedSeq` and parked acks of each `(user, conversation)`, its membership row locked
    /// until commit (see [`Sql::ack_positions`]).
    async fn positions(
        conn: &mut Self::Connection,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<AckPosition>> {
        Self::ack_positions(conn, pairs).await
    }

    /// Writes the folded acks and marks the 1:1 messages in `delivered` delivered; returns those
    /// delivered for the first time.
    async fn settle(
        conn: &mut Self::Connection,
        writes: &AckWrites,
        delivered: &[String],
        now: i64,
    ) -> Result<HashSet<String>> {
        if !writes.is_empty() {
            Self::write_acks(conn, writes).await?;
        }
        Self::mark_delivered(conn, delivered, now).await
    }
}

impl Lists for sqlx::Sqlite {}
