//! [`Backend`]: the one seam between the store's logic and a database.
//!
//! The writer, the SEND/ACK runs, the group commands and the reads are written once, generic over
//! a `Backend`; [`super::sqlite`] and [`super::postgres`] implement it, each with every round
//! trip it makes. The reads, and PostgreSQL's writer outside its hot path, run the sqlx
//! statements of [`super::sql`]; the writer's hot path (a run's lookups, seq allocation, the
//! insert, ack folding) is each backend's own, written once where it belongs: SQLite's writer
//! calls SQLite in place on the writer's thread (rusqlite), looping over cached single-row
//! statements; PostgreSQL binds lists as arrays in fixed statements that take row locks, 7
//! round trips a run.
//!
//! The shared statements are not default methods here: their sqlx bounds would have to be
//! repeated wherever a `Backend` is used. So each implementation lists every round trip, and the
//! shared ones are one-line calls.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Database, Pool};

use super::plan::{AckPosition, AckTarget, AckWrites};
use super::{Backlog, ConversationSummary, Page, Position};
use crate::error::{Error, Result};
use crate::model::StoredMessage;

/// A database the store runs on. Writes take the writer's connection ([`Backend::Writer`]),
/// inside its transaction; reads take the readers' pool. (`pub` in a private module: the bound of the public
/// [`SqlStore`](super::SqlStore)'s impls, nameable only inside the store.)
#[async_trait]
pub trait Backend: Database {
    /// Starts the writer's transaction.
    const BEGIN: &'static str;
    /// How long the writer trusts display names it has read or written (`None`: as long as it
    /// runs, being the database's only writer).
    const NAMES_TTL: Option<Duration>;

    /// May a batch that failed with `e` succeed when run again from the start?
    fn retryable(e: &Error) -> bool;

    /// The writer's connection: PostgreSQL's is sqlx's; SQLite's is the database itself, called
    /// in place on the writer's thread (see [`super::sqlite`]).
    type Writer: Send + 'static;
    /// What the writer opens its connection with.
    type WriterOptions: Send + Sync + 'static;

    /// Opens the writer's connection, ready for its first transaction.
    async fn connect_writer(options: &Self::WriterOptions) -> Result<Self::Writer>;

    /// Runs a statement without parameters (`BEGIN`, `COMMIT`, `ROLLBACK`).
    async fn execute(conn: &mut Self::Writer, sql: &str) -> Result<()>;

    // A run of SEND and ACK commands (`segment.rs`), in this order.

    /// What a run's sends and acks need looked up first: the messages already stored under any
    /// of the `(sender, clientMsgId)` keys, and for each acked `(user, message id)` the message,
    /// if it exists, and the user's `joined_seq` — none when it never was a member, or its
    /// membership ended before the message (it may ack only what it may read).
    async fn look_up(
        conn: &mut Self::Writer,
        keys: &[(&str, &str)],
        acks: &[(&str, &str)],
    ) -> Result<(Vec<StoredMessage>, Vec<AckTarget>)>;

    /// `(group id, conversation id)` of those of `ids` that exist.
    async fn find_groups(conn: &mut Self::Writer, ids: &[&str]) -> Result<Vec<(String, String)>>;

    /// `(conversation id, user id)` of the active members of the conversations.
    async fn active_members(
        conn: &mut Self::Writer,
        conversations: &[&str],
    ) -> Result<Vec<(String, String)>>;

    /// `(user id, display name, blocks anyone)` of those of `ids` that have one.
    async fn names(conn: &mut Self::Writer, ids: &[&str]) -> Result<Vec<(String, String, bool)>>;

    /// Those of the `(blocker, blocked)` pairs that are blocks: asked only for sends to users
    /// who block someone.
    async fn blocked_pairs(
        conn: &mut Self::Writer,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>>;

    /// Creates the 1:1 conversations (id → its two users) that do not exist yet, with their
    /// memberships. One that another transaction is creating is waited for, not duplicated.
    async fn create_direct(
        conn: &mut Self::Writer,
        conversations: &BTreeMap<&str, (&str, &str)>,
        now: i64,
    ) -> Result<()>;

    /// Raises each conversation's `last_seq` by its count (ids sorted); returns the new values.
    /// Where other writers share the database, the rows are locked first, in id order: a
    /// concurrent writer waits for this transaction and then allocates after it — or, if it
    /// rolls back, where it started.
    async fn allocate(
        conn: &mut Self::Writer,
        counts: &BTreeMap<&str, i64>,
    ) -> Result<Vec<(String, i64)>>;

    /// Inserts the run's new messages. Where other writers share the database, also locks the
    /// membership rows of the `(user, conversation)` `pairs` (sorted) until commit, so that two
    /// pods folding acks of one user never overwrite each other.
    async fn insert_and_lock(
        conn: &mut Self::Writer,
        messages: &[&StoredMessage],
        pairs: &[(&str, &str)],
    ) -> Result<()>;

    /// The `ackedSeq` and parked acks of each `(user, conversation)` that has a membership, read
    /// in a statement after [`Backend::insert_and_lock`]'s: at READ COMMITTED, a statement that
    /// waited for a row lock sees the locked row as committed since, but everything it joins as
    /// it was when the statement began — parked acks another pod just wrote would be missed by
    /// a read in the locking statement.
    async fn positions(conn: &mut Self::Writer, pairs: &[(&str, &str)])
        -> Result<Vec<AckPosition>>;

    /// Writes the folded acks.
    async fn settle(conn: &mut Self::Writer, writes: &AckWrites) -> Result<()>;

    // Display names and group management (`groups.rs`), one command at a time.

    /// Records a display name, writing only when it changed.
    async fn upsert_user(conn: &mut Self::Writer, id: &str, name: &str, now: i64) -> Result<()>;

    /// One group's conversation id and name.
    async fn group(conn: &mut Self::Writer, id: &str) -> Result<Option<(String, String)>>;

    /// Creates a group `(id, name, owner)`, its conversation, and its members' memberships.
    async fn create_group(
        conn: &mut Self::Writer,
        group: (&str, &str, &str),
        conversation: &str,
        members: &[&str],
        now: i64,
    ) -> Result<()>;

    /// Makes `members` active members, starting at the conversation's current seq: older
    /// messages stay invisible to them. Active members are left as they are.
    async fn join(conn: &mut Self::Writer, conversation: &str, members: &[&str]) -> Result<()>;

    /// The active members of a conversation: `(user, role, joined_seq)`.
    async fn members_with_roles(
        conn: &mut Self::Writer,
        conversation: &str,
    ) -> Result<Vec<(String, String, i64)>>;

    /// Sets an active member's role.
    async fn set_role(
        conn: &mut Self::Writer,
        conversation: &str,
        user: &str,
        role: &str,
    ) -> Result<()>;

    /// Ends `users`' memberships at the event `left_seq` (which they may still read).
    async fn deactivate(
        conn: &mut Self::Writer,
        conversation: &str,
        users: &[&str],
        left_seq: i64,
    ) -> Result<()>;

    /// Changes what is given of a group's `(name, owner, dissolved_at)`.
    async fn update_group(
        conn: &mut Self::Writer,
        id: &str,
        change: (Option<&str>, Option<&str>, Option<i64>),
    ) -> Result<()>;

    /// Stores a group event's message with its `system` JSON (its seq allocated already).
    async fn insert_event(conn: &mut Self::Writer, m: &StoredMessage, system: &str) -> Result<()>;

    /// The message `message_id` and when it was recalled, for RECALL; the row is locked until
    /// the transaction ends (PostgreSQL).
    async fn message_for_recall(
        conn: &mut Self::Writer,
        message_id: &str,
    ) -> Result<Option<(StoredMessage, Option<i64>)>>;

    /// Makes the message a tombstone: recalled at `now`, its body emptied.
    async fn recall(conn: &mut Self::Writer, message_id: &str, now: i64) -> Result<()>;

    /// Retention: deletes up to `limit` messages whose id sorts before `before_id` (ids are
    /// time-ordered), oldest first; returns how many.
    async fn purge(conn: &mut Self::Writer, before_id: &str, limit: i64) -> Result<u64>;

    /// Erasure: the groups `user` is an active member of.
    async fn groups_of(conn: &mut Self::Writer, user: &str) -> Result<Vec<String>>;

    /// Erasure: `user`'s messages become tombstones; its memberships, parked acks and name go.
    /// Returns how many messages, and the conversations they are in.
    async fn erase_rows(
        conn: &mut Self::Writer,
        user: &str,
        now: i64,
    ) -> Result<(u64, Vec<String>)>;

    /// READ: raises `user`'s `readSeq` in the conversation to `seq`, clamped to the
    /// conversation's last seq; `(before, after)`, or `None` when it is not an active member.
    async fn mark_read(
        conn: &mut Self::Writer,
        user: &str,
        conversation: &str,
        seq: i64,
    ) -> Result<Option<(i64, i64)>>;

    /// BLOCK (`on`) or UNBLOCK: records or removes the block, and keeps `users.blocking` in
    /// step; returns whether `blocker` blocks anyone now.
    async fn set_block(
        conn: &mut Self::Writer,
        blocker: &str,
        blocked: &str,
        on: bool,
        now: i64,
    ) -> Result<bool>;

    // Reads.

    /// Messages above `after_seq` (and above the user's join point), oldest first. Not an
    /// active member: 403.
    async fn read(
        pool: &Pool<Self>,
        user: &str,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page>;

    /// Messages above `after_seq`, oldest first, whoever takes part. No such conversation: 404.
    async fn history(
        pool: &Pool<Self>,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page>;

    /// The user's join point and the conversation's last seq, read in one statement (so every
    /// message up to that seq is committed). Not an active member: 403.
    async fn position(pool: &Pool<Self>, user: &str, conversation: &str) -> Result<Position>;

    /// The user's active conversations, by id, with their last and acked seqs.
    async fn conversations(pool: &Pool<Self>, user: &str) -> Result<Vec<ConversationSummary>>;

    /// The active members of a conversation `user` takes part in (403 otherwise).
    async fn participants(pool: &Pool<Self>, user: &str, conversation: &str)
        -> Result<Vec<String>>;

    /// Conversations where the user has messages above its `ackedSeq` and its join point.
    async fn backlog(pool: &Pool<Self>, user: &str) -> Result<Vec<Backlog>>;

    /// The users `user` blocks, sorted.
    async fn blocked_users(pool: &Pool<Self>, user: &str) -> Result<Vec<String>>;

    /// Those of `users` that share an active conversation with `viewer` and do not block it.
    async fn visible(pool: &Pool<Self>, viewer: &str, users: &[&str]) -> Result<Vec<String>>;

    /// Does the database answer a query?
    async fn ping(pool: &Pool<Self>) -> Result<()>;
}
