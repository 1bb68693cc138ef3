//! The writer's hot path: the statements a run of SEND and ACK commands costs ([`super::segment`]),
//! each over a list as long as the run.
//!
//! By default they are [`Sql`]'s, which spell each list out as a `VALUES` list or `IN` list built
//! for its length — what SQLite needs, and cheap in process. PostgreSQL overrides them
//! ([`super::postgres`]): there every statement is a round trip to another process, and one
//! statement per list length meant a prepared statement per shape and a plan per parameter.
//! Its versions bind each column as one array, so every statement has one fixed text, and they
//! fold what can share a round trip into one statement: the lookups of sends and acks; the
//! insert and the membership locks; the ack writes and the delivery marks.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;

use super::plan::{AckPosition, AckTarget, AckWrites};
use super::sql::Sql;
use crate::error::Result;
use crate::model::StoredMessage;

#[async_trait]
pub trait Lists: Sql {
    /// Runs once on each new writer connection, before its first transaction.
    async fn prepare_writer(_conn: &mut Self::Connection) -> Result<()> {
        Ok(())
    }

    /// What a run's sends and acks need looked up first: the messages already stored under any
    /// of the `(sender, clientMsgId)` keys, and for each acked `(user, message id)` the message,
    /// if it exists, and the user's `joined_seq`.
    async fn look_up(
        conn: &mut Self::Connection,
        keys: &[(&str, &str)],
        acks: &[(&str, &str)],
    ) -> Result<(Vec<StoredMessage>, Vec<AckTarget>)> {
        let existing = Self::find_sent(conn, keys).await?;
        Ok((existing, Self::find_acked(conn, acks).await?))
    }

    /// Raises each conversation's `last_seq` by its count and returns the new values, locking
    /// the rows in id order first (see [`Sql::allocate_seqs`]).
    async fn allocate(
        conn: &mut Self::Connection,
        counts: &BTreeMap<&str, i64>,
    ) -> Result<Vec<(String, i64)>> {
        Self::allocate_seqs(conn, counts).await
    }

    /// Inserts the run's new messages and, where rows are locked ([`super::sql::Dialect::ROW_LOCKS`]),
    /// locks the membership rows of `pairs` — sorted — until commit.
    async fn insert_and_lock(
        conn: &mut Self::Connection,
        messages: &[&StoredMessage],
        pairs: &[(&str, &str)],
    ) -> Result<()> {
        Self::insert_messages(conn, messages).await?;
        Self::lock_positions(conn, pairs).await
    }

    /// The `ackedSeq` and parked acks of each `(user, conversation)`, read after
    /// [`Lists::insert_and_lock`] locked its membership row.
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
