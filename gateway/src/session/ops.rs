//! What the connection core asks of the store side, and what comes back: requests that touch
//! the store run outside the core (by a [`super::Backend`]) and their results come back in
//! request order.

use chat_protocol::{ConversationId, GroupId, MessageId, RequestId, UserId};

use crate::error::Result;
use crate::store::Backlog;

/// A request that needs the store (and maybe the fan-out).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// 7: record the display name.
    Register { name: String },
    /// 1 or 9: store, fan out, reply 0.
    Send {
        /// 9 (true) or 1.
        group: bool,
        /// The recipient user or group.
        to: String,
        message: String,
        file_type: i64,
        client_msg_id: Option<String>,
    },
    /// 15: record the ack (and tell the sender DELIVERED on the first one).
    Ack { msgid: MessageId },
    /// 8.
    CreateGroup { name: String, members: Vec<UserId> },
    /// 11.
    AddMembers {
        group_id: GroupId,
        members: Vec<UserId>,
    },
    /// 12.
    LeaveGroup { group_id: GroupId },
    /// 13 without a conversation: the list.
    Conversations,
    /// 13 with a conversation: a page.
    Read {
        conversation_id: ConversationId,
        after_seq: i64,
        limit: u32,
    },
    /// The user's backlog (catch-up): on connect and after a resync. The client did not ask:
    /// its failure is logged, not answered.
    Backlog,
}

/// An [`Op`] with the request id its reply echoes.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub op: Op,
    pub request_id: Option<RequestId>,
}

/// What a finished call hands back to the core.
#[derive(Debug)]
pub enum Done {
    /// The reply frame, ready to write.
    Frame(String),
    /// The backlog: conversations to pull.
    Backlog(Vec<Backlog>),
}

/// A finished [`Call`].
#[derive(Debug)]
pub struct Finished {
    pub request_id: Option<RequestId>,
    /// The client did not ask (the backlog): an error is not answered.
    pub silent: bool,
    pub result: Result<Done>,
}
