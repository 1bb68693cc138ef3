//! The params of each reply type, and of WELCOME, DRAIN and KICKED: one struct per frame, with
//! SYNC's two shapes ([`SyncReply`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::client::LoginStatus;
use crate::envelope::Envelope;
use crate::groups::Role;
use crate::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};

/// Why a connection was kicked (KICKED's `reason`, and the 4001 close reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KickReason {
    /// The same (user, device) connected again.
    Replaced,
    /// The user was logged out through the HTTP API (the default).
    Logout,
    /// An operator closed it through the HTTP API.
    Admin,
}

impl KickReason {
    /// The reason as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            KickReason::Replaced => "replaced",
            KickReason::Logout => "logout",
            KickReason::Admin => "admin",
        }
    }

    /// Reads a reason from its text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "replaced" => Some(KickReason::Replaced),
            "logout" => Some(KickReason::Logout),
            "admin" => Some(KickReason::Admin),
            _ => None,
        }
    }
}

/// DRAIN's `reason`: there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrainReason {
    /// The server is going away.
    Drain,
}

/// 20 WELCOME.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    /// `{pod}_{user}_{epoch in hex}`.
    pub session_id: String,
    /// The token's user.
    pub user_id: UserId,
    /// This connection's device.
    pub device_id: DeviceId,
    /// The pod's name.
    pub server: String,
    /// Seconds until the connection ends unless renewed.
    pub timelife: u64,
    /// The heartbeat interval, seconds.
    pub heartbeat: u64,
    /// When the timelife ends, ms since the epoch.
    pub expires_at: i64,
}

/// 7 REGISTER's reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// The user.
    pub openid: String,
    /// The display name now in force (absent on logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// As asked.
    pub login_status: LoginStatus,
}

/// 0 RECEIVED: the message is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Received {
    /// When it was stored, as text.
    pub date: String,
    /// The text.
    pub message: String,
    /// Its id.
    pub message_id: String,
    /// Its seq.
    pub seq: i64,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// The sender's key, `null` when none.
    #[serde(default)]
    pub client_msg_id: Option<String>,
}

/// Replies 8, 11, 28, 29 and 31: a group, its active members and (v1.1) their roles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupInfo {
    /// The group.
    pub group_id: GroupId,
    /// Its name.
    pub name: String,
    /// Its active members, sorted.
    pub members: Vec<UserId>,
    /// (v1.1) Each active member's role: `{userId: role}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<UserId, Role>,
}

/// Replies 12 and (v1.1) 30.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupLeft {
    /// The group left.
    pub group_id: GroupId,
}

/// Reply 18 READ (v1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReply {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The user's `readSeq` there now.
    pub read_seq: i64,
}

/// Reply 32 RECALL (v1.1): the message recalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecallReply {
    /// The message.
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Its seq.
    pub seq: i64,
}

/// One user's presence, in reply 26 (v1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceInfo {
    /// The user.
    pub user_id: UserId,
    /// Whether one of its devices is connected.
    pub online: bool,
    /// When its last device left, in ms since the epoch; null while online, when never seen,
    /// and for users the caller may not see.
    pub last_seen: Option<i64>,
}

/// Reply 26 SUBSCRIBE PRESENCE (v1.1): the subscribed users' presence now, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceReply {
    /// One entry per subscribed user.
    pub presence: Vec<PresenceInfo>,
}

/// Reply 34 BLOCK and 35 UNBLOCK (v1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockReply {
    /// The user blocked or unblocked.
    pub user_id: UserId,
}

/// 16 ACK RECEIVED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckReceived {
    /// When, as text.
    pub date: String,
    /// The acked message id.
    pub message: String,
}

/// 4 HEARTBEAT ACK.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// When, as text.
    pub date: String,
}

/// Reply 21.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Renewed {
    /// Seconds until the connection ends.
    pub timelife: u64,
    /// When, ms since the epoch.
    pub expires_at: i64,
}

/// 22 DRAIN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drain {
    /// Seconds left until close 1012 (rounded up).
    pub timelife: u64,
    /// When this connection should reconnect.
    pub reconnect_after_ms: u64,
    /// Always `drain`.
    pub reason: DrainReason,
}

/// 23 KICKED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kicked {
    /// Why.
    pub reason: KickReason,
}

/// Whether a conversation is between two users or of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationKind {
    /// 1:1.
    Direct,
    /// A group's.
    Group,
}

/// One row of SYNC's conversation list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationInfo {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Its newest seq.
    pub last_seq: i64,
    /// The user's contiguous acked seq.
    pub acked_seq: i64,
    /// Direct or group.
    pub kind: ConversationKind,
    /// Direct: the other user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<UserId>,
    /// Group: its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<GroupId>,
    /// Group: its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's `readSeq` (v1.1): it read everything up to here.
    #[serde(default)]
    pub read_seq: i64,
    /// Messages from others (group events included) above `readSeq` (v1.1).
    #[serde(default)]
    pub unread: i64,
    /// Direct: the peer's `ackedSeq`, to restore "delivered" marks (v1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_acked_seq: Option<i64>,
    /// Direct: the peer's `readSeq`, to restore "read" marks (v1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_read_seq: Option<i64>,
}

/// 14: a page of one conversation, or the conversation list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SyncReply {
    /// SYNC with `conversationId`.
    #[serde(rename_all = "camelCase")]
    Page {
        /// The conversation read.
        conversation_id: ConversationId,
        /// Its messages, oldest first, as envelopes for this session.
        messages: Vec<Envelope>,
        /// More past this page?
        has_more: bool,
    },
    /// SYNC without `conversationId`.
    List {
        /// Active memberships, sorted by id.
        conversations: Vec<ConversationInfo>,
        /// The users the caller blocked, sorted (v1.1; empty from servers before it).
        blocked: Vec<UserId>,
    },
}

impl<'de> Deserialize<'de> for SyncReply {
    // Not derived: an untagged enum buffers its input, and envelopes read their `msg` raw.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Either {
            conversation_id: Option<ConversationId>,
            messages: Option<Vec<Envelope>>,
            has_more: Option<bool>,
            conversations: Option<Vec<ConversationInfo>>,
            #[serde(default)]
            blocked: Vec<UserId>,
        }
        let e = Either::deserialize(d)?;
        match (e.conversations, e.conversation_id, e.messages, e.has_more) {
            (Some(conversations), None, None, None) => Ok(SyncReply::List {
                conversations,
                blocked: e.blocked,
            }),
            (None, Some(conversation_id), Some(messages), Some(has_more)) => Ok(SyncReply::Page {
                conversation_id,
                messages,
                has_more,
            }),
            _ => Err(serde::de::Error::custom(
                "a SYNC reply has either conversations, or conversationId, messages and hasMore",
            )),
        }
    }
}
