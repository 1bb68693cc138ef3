//! What the connection core asks of the store side, and what comes back: requests that touch
//! the store run outside the core (by a [`super::Backend`]) and their results come back in
//! request order.

use chat_protocol::{ConversationId, GroupId, MessageId, RequestId, TypingState, UserId};

use crate::error::Result;
use crate::store::{Backlog, GroupChange};

/// A request that needs the store (and maybe the fan-out).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// 7: record the display name.
    Register {
        /// The user's display name, stored so 1:1 pushes can show it.
        name: String,
    },
    /// 1 or 9: store, fan out, reply 0.
    Send {
        /// 9 (true) or 1.
        group: bool,
        /// The recipient user or group.
        to: String,
        /// The text to store and push (`message` on the wire).
        message: String,
        /// The client's `fileType`, stored and pushed back as given.
        file_type: i64,
        /// `file.fileId`: the sender's upload the message carries.
        file: Option<String>,
        /// Makes the send idempotent: a repeat is answered with the first result.
        client_msg_id: Option<String>,
    },
    /// 15: record the ack (and tell the sender DELIVERED on the first one).
    Ack {
        /// The acked message (`msgid` on the wire).
        msgid: MessageId,
    },
    /// 8.
    CreateGroup {
        /// The group's display name.
        name: String,
        /// The members besides the creator, who is always one.
        members: Vec<UserId>,
    },
    /// 11.
    AddMembers {
        /// The group to add to (the user must be a member).
        group_id: GroupId,
        /// The users to add.
        members: Vec<UserId>,
    },
    /// 12.
    LeaveGroup {
        /// The group the user leaves.
        group_id: GroupId,
    },
    /// 28, 29, 30, 31 (v1.1 group administration): the change, which says its reply.
    ChangeGroup {
        /// The group.
        group_id: GroupId,
        /// What to change.
        change: GroupChange,
    },
    /// 13 without a conversation: the list.
    Conversations,
    /// 13 with a conversation: a page.
    Read {
        /// The conversation to read; the user must take part in it.
        conversation_id: ConversationId,
        /// Read messages above this seq.
        after_seq: i64,
        /// The page size the client asked for, at most the protocol's maximum.
        limit: u32,
    },
    /// 18 READ: move the user's `readSeq` (and tell its other devices and a 1:1 peer).
    MarkRead {
        /// The conversation read.
        conversation_id: ConversationId,
        /// Read up to here.
        seq: i64,
    },
    /// 24 TYPING: tell the other participants' devices. Not stored, not answered (but a
    /// conversation the user is not in gets ERROR 403).
    Typing {
        /// Where.
        conversation_id: ConversationId,
        /// Started or stopped.
        state: TypingState,
    },
    /// 32 RECALL: make one of the user's messages a tombstone (and tell every participant).
    Recall {
        /// The message.
        message_id: MessageId,
    },
    /// 26 SUBSCRIBE PRESENCE: watch these users (replacing the connection's set) and answer
    /// with their presence now.
    SubscribePresence {
        /// The users, each once.
        users: Vec<UserId>,
    },
    /// 34 BLOCK (`on`) / 35 UNBLOCK `user_id`.
    Block {
        /// The other user (never the caller: the core refuses that with 400).
        user_id: UserId,
        /// BLOCK or UNBLOCK.
        on: bool,
    },
    /// The user's backlog (catch-up): on connect and after a resync. The client did not ask:
    /// its failure is logged, not answered.
    Backlog,
    /// 21 RENEW with `params.token`: verify it (same user, not revoked); its `exp` becomes the
    /// session's cap ([`Done::Token`]).
    Renew {
        /// The fresh token.
        token: Token,
    },
    /// 7 REGISTER with `loginStatus: "0"`: revoke the device's tokens, then answer and close
    /// ([`Done::LoggedOut`]).
    Logout,
}

/// A token on its way to verification: its `Debug` does not show it (logs must not carry it).
#[derive(Clone, PartialEq)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// An [`Op`] with the request id its reply echoes.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The request, parsed and validated.
    pub op: Op,
    /// The frame's `requestId`, echoed by the reply (none when it had none, or for the backlog).
    pub request_id: Option<RequestId>,
}

/// What a finished call hands back to the core.
#[derive(Debug)]
pub enum Done {
    /// The reply frame, ready to write.
    Frame(String),
    /// The backlog: conversations to pull.
    Backlog(Vec<Backlog>),
    /// Done; nothing to answer (TYPING).
    Quiet,
    /// RENEW's token verified: it expires at `expires_ms` (wall clock); the core answers.
    Token {
        /// The new token's `exp`, in ms.
        expires_ms: i64,
    },
    /// The logout is recorded: write this reply, then close (1000).
    LoggedOut(String),
}

/// A finished [`Call`].
#[derive(Debug)]
pub struct Finished {
    /// The call's request id, for the reply.
    pub request_id: Option<RequestId>,
    /// The client did not ask (the backlog): an error is not answered.
    pub silent: bool,
    /// What the call produced, or the error the client is answered with (unless `silent`).
    pub result: Result<Done>,
}
