//! Server → client frames other than pushes: replies `{"type", "status": 200, "params",
//! "requestId"}` (WELCOME, DRAIN and KICKED share the shape, without `requestId`) and ERROR
//! (500). [`ServerFrame`] is every frame a client can receive, pushes included: the server writes
//! it with [`ServerFrame::to_json`] (or the borrowing [`reply_json`] / [`error_json`] /
//! [`sync_page_json`]), a client reads it with [`ServerFrame::parse`].

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::client::{LoginStatus, RequestId};
use crate::envelope::{push_json_str, Envelope};
use crate::groups::Role;
use crate::ids::{ConversationId, DeviceId, GroupId, MessageId, UserId};
use crate::kind;

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

/// A reply's params, one variant per reply type.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// 20.
    Welcome(Welcome),
    /// 7.
    Register(Registered),
    /// 0.
    Received(Received),
    /// 8.
    CreateGroup(GroupInfo),
    /// 11.
    AddMembers(GroupInfo),
    /// 12.
    LeaveGroup(GroupLeft),
    /// 28.
    RemoveMembers(GroupInfo),
    /// 29.
    UpdateGroup(GroupInfo),
    /// 30.
    DissolveGroup(GroupLeft),
    /// 31.
    SetRole(GroupInfo),
    /// 16.
    AckReceived(AckReceived),
    /// 18.
    Read(ReadReply),
    /// 32.
    Recall(RecallReply),
    /// 26.
    Presence(PresenceReply),
    /// 34.
    Block(BlockReply),
    /// 35.
    Unblock(BlockReply),
    /// 14.
    Sync(SyncReply),
    /// 4.
    HeartbeatAck(HeartbeatAck),
    /// 21.
    Renew(Renewed),
    /// 22.
    Drain(Drain),
    /// 23.
    Kicked(Kicked),
}

impl Reply {
    /// The reply's type code.
    pub fn kind(&self) -> u16 {
        match self {
            Reply::Welcome(_) => kind::WELCOME,
            Reply::Register(_) => kind::REGISTER,
            Reply::Received(_) => kind::RECEIVED,
            Reply::CreateGroup(_) => kind::CREATE_GROUP,
            Reply::AddMembers(_) => kind::ADD_MEMBERS,
            Reply::LeaveGroup(_) => kind::LEAVE_GROUP,
            Reply::RemoveMembers(_) => kind::REMOVE_MEMBERS,
            Reply::UpdateGroup(_) => kind::UPDATE_GROUP,
            Reply::DissolveGroup(_) => kind::DISSOLVE_GROUP,
            Reply::SetRole(_) => kind::SET_ROLE,
            Reply::AckReceived(_) => kind::ACK_RECEIVED,
            Reply::Read(_) => kind::READ,
            Reply::Recall(_) => kind::RECALL,
            Reply::Presence(_) => kind::SUBSCRIBE_PRESENCE,
            Reply::Block(_) => kind::BLOCK,
            Reply::Unblock(_) => kind::UNBLOCK,
            Reply::Sync(_) => kind::SYNC_REPLY,
            Reply::HeartbeatAck(_) => kind::HEARTBEAT_ACK,
            Reply::Renew(_) => kind::RENEW,
            Reply::Drain(_) => kind::DRAIN,
            Reply::Kicked(_) => kind::KICKED,
        }
    }

    fn params(&self) -> &dyn erased::Params {
        match self {
            Reply::Welcome(p) => p,
            Reply::Register(p) => p,
            Reply::Received(p) => p,
            Reply::CreateGroup(p)
            | Reply::AddMembers(p)
            | Reply::RemoveMembers(p)
            | Reply::UpdateGroup(p)
            | Reply::SetRole(p) => p,
            Reply::LeaveGroup(p) | Reply::DissolveGroup(p) => p,
            Reply::AckReceived(p) => p,
            Reply::Read(p) => p,
            Reply::Recall(p) => p,
            Reply::Presence(p) => p,
            Reply::Block(p) | Reply::Unblock(p) => p,
            Reply::Sync(p) => p,
            Reply::HeartbeatAck(p) => p,
            Reply::Renew(p) => p,
            Reply::Drain(p) => p,
            Reply::Kicked(p) => p,
        }
    }

    fn parse(kind: u16, params: &str) -> serde_json::Result<Self> {
        use serde_json::from_str as p;
        Ok(match kind {
            kind::WELCOME => Reply::Welcome(p(params)?),
            kind::REGISTER => Reply::Register(p(params)?),
            kind::RECEIVED => Reply::Received(p(params)?),
            kind::CREATE_GROUP => Reply::CreateGroup(p(params)?),
            kind::ADD_MEMBERS => Reply::AddMembers(p(params)?),
            kind::LEAVE_GROUP => Reply::LeaveGroup(p(params)?),
            kind::REMOVE_MEMBERS => Reply::RemoveMembers(p(params)?),
            kind::UPDATE_GROUP => Reply::UpdateGroup(p(params)?),
            kind::DISSOLVE_GROUP => Reply::DissolveGroup(p(params)?),
            kind::SET_ROLE => Reply::SetRole(p(params)?),
            kind::ACK_RECEIVED => Reply::AckReceived(p(params)?),
            kind::READ => Reply::Read(p(params)?),
            kind::RECALL => Reply::Recall(p(params)?),
            kind::SUBSCRIBE_PRESENCE => Reply::Presence(p(params)?),
            kind::BLOCK => Reply::Block(p(params)?),
            kind::UNBLOCK => Reply::Unblock(p(params)?),
            kind::SYNC_REPLY => Reply::Sync(p(params)?),
            kind::HEARTBEAT_ACK => Reply::HeartbeatAck(p(params)?),
            kind::RENEW => Reply::Renew(p(params)?),
            kind::DRAIN => Reply::Drain(p(params)?),
            kind::KICKED => Reply::Kicked(p(params)?),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown reply type {other}"
                )))
            }
        })
    }
}

/// `dyn Serialize` for the reply params (serde's trait is not object safe).
mod erased {
    pub(super) trait Params {
        fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
    }

    impl<T: serde::Serialize> Params for T {
        fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
            serde_json::to_writer(out, self)
        }
    }
}

/// ERROR (500).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// HTTP-like: 400, 401, 403, 404, 409, 413, 429, 500, 503.
    pub status: u16,
    /// A stable machine-readable code (`bad_request`, `forbidden`, …).
    pub code: String,
    /// For people.
    pub message: String,
}

/// Every frame the server sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerFrame {
    /// A reply (or WELCOME/DRAIN/KICKED).
    Reply {
        /// What it says.
        reply: Reply,
        /// The request's id, echoed.
        request_id: Option<RequestId>,
    },
    /// An ERROR.
    Error {
        /// What went wrong.
        error: ErrorFrame,
        /// The request's id, when it could be read.
        request_id: Option<RequestId>,
    },
    /// A push.
    Push(Box<Envelope>),
}

impl ServerFrame {
    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        match self {
            ServerFrame::Reply { reply, request_id } => reply_json(reply, request_id.as_ref()),
            ServerFrame::Error { error, request_id } => error_json(error, request_id.as_ref()),
            // The server's way: the shared part prepared once, the device's fields around it.
            ServerFrame::Push(env) => match env.to.as_slice() {
                [to] => env.prepare().render(&env.session_id, to, env.retry, || {
                    unreachable!("ids are shared")
                }),
                _ => serde_json::to_string(env).expect("envelopes serialise"),
            },
        }
    }

    /// Reads one text frame from the server.
    pub fn parse(text: &str) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct Probe<'a> {
            #[serde(rename = "type")]
            kind: Option<u16>,
            #[serde(borrow)]
            msg: Option<&'a RawValue>,
        }
        let probe: Probe = serde_json::from_str(text)?;
        if probe.msg.is_some() {
            return Ok(ServerFrame::Push(Box::new(serde_json::from_str(text)?)));
        }
        #[derive(Deserialize)]
        struct Frame<'a> {
            status: u16,
            #[serde(borrow, default)]
            params: Option<&'a RawValue>,
            #[serde(rename = "requestId", default)]
            request_id: Option<RequestId>,
        }
        let kind = probe
            .kind
            .ok_or_else(|| serde::de::Error::missing_field("type"))?;
        let frame: Frame = serde_json::from_str(text)?;
        let params = frame.params.map(RawValue::get).unwrap_or("{}");
        if kind == kind::ERROR {
            #[derive(Deserialize)]
            struct ErrorParams {
                code: String,
                message: String,
            }
            let p: ErrorParams = serde_json::from_str(params)?;
            return Ok(ServerFrame::Error {
                error: ErrorFrame {
                    status: frame.status,
                    code: p.code,
                    message: p.message,
                },
                request_id: frame.request_id,
            });
        }
        Ok(ServerFrame::Reply {
            reply: Reply::parse(kind, params)?,
            request_id: frame.request_id,
        })
    }
}

fn frame_json(
    kind: u16,
    status: u16,
    params: &dyn erased::Params,
    request_id: Option<&RequestId>,
) -> String {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"type\":");
    out.extend_from_slice(kind.to_string().as_bytes());
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(status.to_string().as_bytes());
    out.extend_from_slice(b",\"params\":");
    params.write(&mut out).expect("reply params serialise");
    if let Some(id) = request_id {
        out.extend_from_slice(b",\"requestId\":");
        serde_json::to_writer(&mut out, id).expect("request ids serialise");
    }
    out.push(b'}');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// A reply frame as JSON text.
pub fn reply_json(reply: &Reply, request_id: Option<&RequestId>) -> String {
    frame_json(reply.kind(), 200, reply.params(), request_id)
}

/// An ERROR frame as JSON text.
pub fn error_json(error: &ErrorFrame, request_id: Option<&RequestId>) -> String {
    #[derive(Serialize)]
    struct ErrorParams<'a> {
        code: &'a str,
        message: &'a str,
    }
    let params = ErrorParams {
        code: &error.code,
        message: &error.message,
    };
    frame_json(kind::ERROR, error.status, &params, request_id)
}

/// A SYNC page (14) whose envelopes are already rendered for this session
/// ([`crate::PreparedPush::render`]): written around them, not re-serialised.
pub fn sync_page_json(
    request_id: Option<&RequestId>,
    conversation_id: &ConversationId,
    envelopes: &[String],
    has_more: bool,
) -> String {
    struct Page<'a> {
        conversation_id: &'a ConversationId,
        envelopes: &'a [String],
        has_more: bool,
    }
    impl Serialize for Page<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut messages = String::with_capacity(
                self.envelopes.iter().map(|e| e.len() + 1).sum::<usize>() + 2,
            );
            messages.push('[');
            for (i, e) in self.envelopes.iter().enumerate() {
                if i > 0 {
                    messages.push(',');
                }
                messages.push_str(e);
            }
            messages.push(']');
            let raw = RawValue::from_string(messages).map_err(serde::ser::Error::custom)?;
            let mut map = s.serialize_map(Some(3))?;
            map.serialize_entry("conversationId", self.conversation_id)?;
            map.serialize_entry("messages", &raw)?;
            map.serialize_entry("hasMore", &self.has_more)?;
            map.end()
        }
    }
    let page = Page {
        conversation_id,
        envelopes,
        has_more,
    };
    frame_json(kind::SYNC_REPLY, 200, &page, request_id)
}

/// Appends `s` as a JSON string (for callers writing frames around shared text).
pub fn push_json_string(out: &mut String, s: &str) {
    push_json_str(out, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip() {
        let frame = ServerFrame::Reply {
            reply: Reply::Kicked(Kicked {
                reason: KickReason::Replaced,
            }),
            request_id: None,
        };
        let text = frame.to_json();
        assert_eq!(
            text,
            r#"{"type":23,"status":200,"params":{"reason":"replaced"}}"#
        );
        assert_eq!(ServerFrame::parse(&text).unwrap(), frame);
    }

    #[test]
    fn errors_round_trip_with_numeric_request_ids() {
        let frame = ServerFrame::Error {
            error: ErrorFrame {
                status: 400,
                code: "bad_request".into(),
                message: "unknown frame type 77".into(),
            },
            request_id: Some(RequestId::from(1)),
        };
        let text = frame.to_json();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["requestId"], 1);
        assert_eq!(v["params"]["code"], "bad_request");
        assert_eq!(ServerFrame::parse(&text).unwrap(), frame);
    }

    #[test]
    fn kick_reasons_parse_from_their_text() {
        for r in [KickReason::Replaced, KickReason::Logout, KickReason::Admin] {
            assert_eq!(KickReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(KickReason::parse("other"), None);
    }
}
