//! The message store: durable messages with per-conversation sequences, memberships, acks.
//!
//! One trait, two backends: [`sqlite`] (embedded default) and [`postgres`] (cluster mode, several
//! pods on one database). Both are a [`SqlStore`]: every mutation goes through the process's one
//! writer task (`writer.rs`), which batches whatever is queued into one transaction (group commit)
//! so throughput does not collapse to one fsync per message; a caller's future resolves only
//! after the transaction that holds its change committed. Reads go to a pool of readers.
//!
//! This file is the contract: [`Store`] and its value types. Below it, dependencies point one way:
//!
//! - `sql_store.rs`: [`SqlStore`], which turns writes into typed commands (`command.rs`: each
//!   with a reply channel of its answer's type) for the writer (`writer.rs`: group commit, retries).
//! - `segment.rs` stores a run of SEND/ACK commands in a constant number of statements,
//!   `groups.rs` runs the rare commands; both decide purely (`plan.rs`, [`acks`]) and keep what
//!   they learn in the writer-local cache (`cache.rs`).
//! - `backend.rs`: the one `Backend` trait, every round trip the store makes, implemented by
//!   [`sqlite`] and [`postgres`]. Statements over sqlx are plain functions in `sql/` (the
//!   readers of both, PostgreSQL's writer); SQLite's writer calls SQLite in place
//!   (`sqlite/writer.rs`), PostgreSQL's hot path binds arrays (`postgres/arrays.rs`).

pub mod acks;
mod backend;
mod blocks;
mod cache;
mod command;
mod groups;
mod lifecycle;
mod marks;
mod plan;
pub mod postgres;
pub mod recent;
mod segment;
mod sql;
mod sql_store;
pub mod sqlite;
mod writer;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;
use crate::model::StoredMessage;
pub(crate) use groups::too_many_members;
pub use sql_store::SqlStore;

/// A message to store, as the sender asked for it. The sender is always the token's user.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The sender's user id (always the token's user).
    pub from: String,
    /// The sender's display name now, stored with the message so pushes show it as it was.
    pub from_name: String,
    /// Recipient user id (1:1) or group id (group).
    pub to: String,
    /// The text as the sender wrote it (`message` on the wire).
    pub body: String,
    /// The client's `fileType`, stored and pushed back as given.
    pub file_type: i64,
    /// The sender's upload the message carries, as the file index has it (checked by the
    /// caller: [`crate::files::Files::attach`]); only its id is stored with the message.
    pub file: Option<Box<chat_protocol::envelope::FileInfo>>,
    /// The sender's idempotency key: a repeat with it returns the first result.
    pub client_msg_id: Option<String>,
    /// The sender's `requestId` (or a fresh one), carried into every push of the message.
    pub request_id: String,
}

/// The result of storing a message.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The message as committed (the first one, for a duplicate).
    pub message: StoredMessage,
    /// True when `(sender, clientMsgId)` was stored before: reply with the first result, deliver nothing.
    pub duplicate: bool,
    /// Group messages: the active members to deliver to (the sender included, for its other devices).
    pub members: Vec<String>,
}

/// The result of an ACK.
#[derive(Debug, Clone)]
pub struct Acked {
    /// The acked message.
    pub message: StoredMessage,
    /// True for the first ack of a 1:1 message by its recipient: the sender gets DELIVERED (17).
    pub first_delivery: bool,
}

/// The result of READ (18).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    /// The user's `readSeq` in the conversation now.
    pub read_seq: i64,
    /// Whether READ moved it (a lower or equal seq changes nothing; no notice then).
    pub moved: bool,
}

/// What erasing a user did (`DELETE /api/users/{id}`).
#[derive(Debug, Clone)]
pub struct Erased {
    /// Its messages made tombstones.
    pub messages: u64,
    /// The conversations those messages are in (caches of them are stale).
    pub conversations: Vec<String>,
    /// The groups it left (with the `left` events to deliver, and ownership handed over).
    pub groups: Vec<Group>,
}

/// The result of RECALL (32).
#[derive(Debug, Clone)]
pub struct Recalled {
    /// The message as it reads now: a tombstone.
    pub message: StoredMessage,
    /// False when it had been recalled before (RECALL again is 200; nobody is told twice).
    pub newly: bool,
}

/// A group as its replies show it after a change, with the events the change stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// The group's id, made by the server at creation ([`crate::model::new_id`]).
    pub group_id: String,
    /// Its name now.
    pub name: String,
    /// The active members' user ids, sorted.
    pub members: Vec<String>,
    /// Each active member's role (`owner`, `admin`, `member`).
    pub roles: BTreeMap<String, String>,
    /// Its conversation (`grp:{group_id}`), where its messages are sequenced; not in the reply.
    #[serde(skip)]
    pub conversation_id: String,
    /// The group events the change stored (v1.1), each with the users to deliver it to.
    #[serde(skip)]
    pub events: Vec<Announcement>,
}

/// A stored group event and who gets it: the members when it happened, and the members it
/// removed (they receive their removal, and nothing after it).
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    /// The event, as the message that stores it.
    pub message: StoredMessage,
    /// The users whose devices get it.
    pub users: Vec<String>,
}

/// A change to a group (v1.1 group administration, and v1's ADD and LEAVE).
#[derive(Debug, Clone, PartialEq)]
pub enum GroupChange {
    /// ADD MEMBERS (11): any member, as long as the group stays within `max_size` members
    /// (413 otherwise).
    Add {
        /// The users to add; members already are left as they are.
        members: Vec<String>,
        /// The most members the group may have after the change (`--max-group-members`).
        max_size: usize,
    },
    /// REMOVE MEMBERS (28): owner or admin (an admin removes neither the owner nor an admin).
    Remove(Vec<String>),
    /// LEAVE GROUP (12): an owner hands ownership to the longest-standing admin, else member.
    Leave,
    /// UPDATE GROUP (29): owner or admin.
    Rename(String),
    /// DISSOLVE GROUP (30): owner.
    Dissolve,
    /// SET ROLE (31): owner; `owner` hands ownership over (the old owner becomes admin).
    SetRole(String, chat_protocol::Role),
}

/// One row of SYNC's conversation list.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConversationSummary {
    /// The conversation; SYNC's pages name it.
    pub conversation_id: String,
    /// Its newest message's seq.
    pub last_seq: i64,
    /// The user's `ackedSeq`: every seq up to it was acked by one of its devices (or sent by it).
    pub acked_seq: i64,
    /// "direct" or "group".
    pub kind: String,
    /// The other user of a 1:1 conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The group of a group conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    /// The group's name, to list it by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's `readSeq` (v1.1).
    pub read_seq: i64,
    /// Messages from others above `readSeq` (and the join point).
    pub unread: i64,
    /// 1:1: the peer's `ackedSeq` ("delivered" marks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_acked_seq: Option<i64>,
    /// 1:1: the peer's `readSeq` ("read" marks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_read_seq: Option<i64>,
}

/// Messages a user still has to receive in one conversation: seqs in `(after_seq, last_seq]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Backlog {
    /// The conversation with messages to deliver.
    pub conversation_id: String,
    /// The user's `ackedSeq` there: delivery resumes above it.
    pub after_seq: i64,
    /// The newest seq when the backlog was read: catch-up reads up to it.
    pub last_seq: i64,
}

/// Where a participant stands in one conversation: which of its messages it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The user sees only messages above this seq (0 unless it joined a group late).
    pub joined_seq: i64,
    /// The conversation's last committed seq. Sequences are gapless: every seq from 1 to it
    /// is a stored message.
    pub last_seq: i64,
}

/// A page of one conversation.
#[derive(Debug, Clone)]
pub struct Page {
    /// The messages, oldest first.
    pub messages: Vec<StoredMessage>,
    /// Whether messages follow the last one: the reader asks again from its seq.
    pub has_more: bool,
}

/// The message store's contract, implemented by [`SqlStore`] on SQLite or PostgreSQL and by
/// [`recent::RecentCache`] in front of one. Every write resolves only after it committed.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a user's display name (on connect / REGISTER) so 1:1 pushes can show it.
    async fn upsert_user(&self, id: &str, name: &str) -> Result<()>;

    /// Stores a 1:1 message: allocates the conversation's next seq in the storing transaction,
    /// counts it as acked by its sender, and resolves after commit. Idempotent on
    /// `(from, clientMsgId)`.
    async fn send_direct(&self, msg: NewMessage) -> Result<Sent>;

    /// Stores a group message (sender must be an active member: 403; unknown group: 404).
    async fn send_group(&self, msg: NewMessage) -> Result<Sent>;

    /// Records that one of `user`'s devices received `message_id`, advancing the user's
    /// contiguous `ackedSeq`. Only a recipient (or the sender, for its other devices) may ack: 403.
    async fn ack(&self, user: &str, message_id: &str) -> Result<Acked>;

    /// Creates a group owned by `owner` (also a member) with `members`.
    async fn create_group(&self, owner: &str, name: &str, members: &[String]) -> Result<Group>;

    /// ADD MEMBERS: `user` (an active member) adds `members`; they see only later messages,
    /// from the event that added them. No size limit: the handler's [`GroupChange::Add`] has it.
    async fn add_members(&self, user: &str, group_id: &str, members: &[String]) -> Result<Group> {
        let add = GroupChange::Add {
            members: members.to_vec(),
            max_size: usize::MAX,
        };
        self.change_group(user, group_id, add).await
    }

    /// LEAVE GROUP: `user` leaves (receiving its own `left` event).
    async fn leave_group(&self, user: &str, group_id: &str) -> Result<Group> {
        self.change_group(user, group_id, GroupChange::Leave).await
    }

    /// Changes a group as `user` asks (which changes `user` may make depends on its role: 403),
    /// storing each change as a group event in its conversation. No such group (or dissolved):
    /// 404; not a member: 403.
    async fn change_group(&self, user: &str, group_id: &str, change: GroupChange) -> Result<Group>;

    /// RECALL: makes `user`'s message `message_id` a tombstone, if it was sent no longer than
    /// `window` ago. Unknown: 404; someone else's or too late: 403; recalled before: as it is.
    async fn recall(
        &self,
        user: &str,
        message_id: &str,
        window: std::time::Duration,
    ) -> Result<Recalled>;

    /// Retention: deletes up to `limit` messages stored before `before_ms` (ms since the epoch),
    /// oldest first; returns how many (0: nothing older is left).
    async fn purge(&self, before_ms: i64, limit: u32) -> Result<u64>;

    /// Erasure: `user` leaves its groups (as LEAVE does, ownership handed over), its messages
    /// become tombstones, its memberships and acks go.
    async fn erase_user(&self, user: &str) -> Result<Erased>;

    /// READ: raises `user`'s `readSeq` in the conversation to `seq` (clamped to its last seq,
    /// never lowered). Not a participant: 403.
    async fn mark_read(&self, user: &str, conversation_id: &str, seq: i64) -> Result<ReadMark>;

    /// Messages of a conversation `user` takes part in, with seq above `after_seq` (and above
    /// the user's join point), oldest first. Not a participant: 403.
    async fn read(
        &self,
        user: &str,
        conversation_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page>;

    /// Messages of a conversation above `after_seq`, oldest first, whoever takes part (the
    /// backend API, with a service token). No such conversation: 404.
    async fn history(&self, conversation_id: &str, after_seq: i64, limit: u32) -> Result<Page>;

    /// Where `user` stands in a conversation it takes part in (its join point, the last seq),
    /// in one indexed lookup: lets a reader know the exact range a `read` would return before
    /// reading it. Not a participant: 403, as `read`.
    async fn position(&self, user: &str, conversation_id: &str) -> Result<Position>;

    /// The active members of a conversation `user` takes part in, `user` included. Not a
    /// participant: 403.
    async fn participants(&self, user: &str, conversation_id: &str) -> Result<Vec<String>>;

    /// BLOCK (`on`) or UNBLOCK `other` for `user`: idempotent. While blocked, `other`'s 1:1
    /// sends to `user` are refused (403).
    async fn block(&self, user: &str, other: &str, on: bool) -> Result<()>;

    /// The users `user` blocks, sorted (SYNC's conversation list).
    async fn blocked(&self, user: &str) -> Result<Vec<String>>;

    /// Those of `users` whose presence `viewer` may see: they share an active conversation with
    /// it and do not block it.
    async fn visible(&self, viewer: &str, users: &[String]) -> Result<Vec<String>>;

    /// The user's conversations with their last, acked and read seqs.
    async fn conversations(&self, user: &str) -> Result<Vec<ConversationSummary>>;

    /// Conversations where the user has messages above its `ackedSeq` (catch-up on connect).
    async fn backlog(&self, user: &str) -> Result<Vec<Backlog>>;

    /// Is the store reachable? (readiness)
    async fn ping(&self) -> Result<()>;
}
