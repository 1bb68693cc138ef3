//! Client → server frames: `{"type": N, "params": {...}, "requestId": "optional"}`.
//!
//! [`ClientFrame::parse`] turns one text frame into a typed [`Request`] once; every rule a
//! parameter must meet (DESIGN §3, docs/protocol.md) is checked here and nowhere else. A frame
//! that breaks one is a [`FrameError`] (status 400) that still carries the request id, so the
//! ERROR reply can echo it. [`ClientFrame`] also serialises, for clients.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub(crate) mod fast;
mod params;
mod write;

use crate::groups::Role;
use crate::ids::{ConversationId, GroupId, MessageId, UserId};
use crate::kind;

/// A request id as the client sent it (a string or a number), echoed verbatim in replies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A string id.
    Text(String),
    /// A numeric id, kept as written.
    Number(serde_json::Number),
}

impl RequestId {
    /// The id as the push envelope's `requestId` string: a number `7` becomes `"7"`.
    pub fn to_envelope_string(&self) -> String {
        match self {
            RequestId::Text(s) => s.clone(),
            RequestId::Number(n) => n.to_string(),
        }
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> Self {
        RequestId::Text(s.to_owned())
    }
}

impl From<u64> for RequestId {
    fn from(n: u64) -> Self {
        RequestId::Number(n.into())
    }
}

/// REGISTER's `loginStatus`: `"1"` logs in (the default), `"0"` logs this device out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginStatus {
    /// `"1"`.
    #[serde(rename = "1")]
    Online,
    /// `"0"`.
    #[serde(rename = "0")]
    Offline,
}

/// TYPING's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypingState {
    /// `"start"`.
    Start,
    /// `"stop"`.
    Stop,
}

impl TypingState {
    /// The state as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            TypingState::Start => "start",
            TypingState::Stop => "stop",
        }
    }
}

/// One parsed client frame.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientFrame {
    /// Echoed in the reply; `None` when absent or neither a string nor a number.
    pub request_id: Option<RequestId>,
    /// What the client asks for.
    pub request: Request,
}

/// The requests a client may make, one variant per client→server type code.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// 7: confirm the user, set the display name, or log this device out.
    Register {
        /// Must equal the token's user (checked by the server: 403).
        openid: String,
        /// A new display name, if given.
        user_name: Option<String>,
        /// Log in or out.
        login_status: LoginStatus,
    },
    /// 1: send to a user.
    Send {
        /// The recipient (`toMessageId`).
        to: UserId,
        /// The text.
        message: String,
        /// Stored as given; 0 by default.
        file_type: i64,
        /// `file.fileId`: an upload of the sender's (`POST /api/files`) the message carries.
        file: Option<String>,
        /// The idempotency key, unique per sender.
        client_msg_id: Option<String>,
    },
    /// 9: send to a group.
    SendGroup {
        /// The group (`toMessageId`).
        group_id: GroupId,
        /// The text.
        message: String,
        /// Stored as given; 0 by default.
        file_type: i64,
        /// `file.fileId`: an upload of the sender's (`POST /api/files`) the message carries.
        file: Option<String>,
        /// The idempotency key, unique per sender.
        client_msg_id: Option<String>,
    },
    /// 8: create a group.
    CreateGroup {
        /// 1–128 characters, not blank.
        name: String,
        /// Without duplicates, in the order given.
        members: Vec<UserId>,
    },
    /// 11: add members to a group.
    AddMembers {
        /// The group.
        group_id: GroupId,
        /// Without duplicates, in the order given.
        members: Vec<UserId>,
    },
    /// 12: leave a group.
    LeaveGroup {
        /// The group.
        group_id: GroupId,
    },
    /// 15: acknowledge a pushed message.
    Ack {
        /// The envelope's `messageId`.
        msgid: MessageId,
    },
    /// 13: read a conversation (with `conversation_id`) or list them (without).
    Sync {
        /// The conversation to read; `None` lists the user's conversations.
        conversation_id: Option<ConversationId>,
        /// Messages above this seq.
        after_seq: i64,
        /// At most this many (1–200).
        limit: u32,
    },
    /// 18: the user has read the conversation up to `seq` (v1.1).
    Read {
        /// The conversation read.
        conversation_id: ConversationId,
        /// Read up to here (clamped to the conversation's last seq; never moves back).
        seq: i64,
    },
    /// 24: the user started or stopped typing (v1.1): not stored, not answered.
    Typing {
        /// Where.
        conversation_id: ConversationId,
        /// Started or stopped.
        state: TypingState,
    },
    /// 28: remove members from a group (owner or admin; v1.1).
    RemoveMembers {
        /// The group.
        group_id: GroupId,
        /// Without duplicates, in the order given.
        members: Vec<UserId>,
    },
    /// 29: rename a group (owner or admin; v1.1).
    UpdateGroup {
        /// The group.
        group_id: GroupId,
        /// 1–128 characters, not blank.
        name: String,
    },
    /// 30: dissolve a group (owner; v1.1).
    DissolveGroup {
        /// The group.
        group_id: GroupId,
    },
    /// 31: set a member's role (owner; v1.1). `Owner` hands ownership over.
    SetRole {
        /// The group.
        group_id: GroupId,
        /// The member.
        user_id: UserId,
        /// Its new role.
        role: Role,
    },
    /// 32: recall one of the user's own messages (v1.1).
    Recall {
        /// The message.
        message_id: MessageId,
    },
    /// 26: report these users' presence to this connection from now on, replacing the set it
    /// had (v1.1; an empty list unsubscribes).
    SubscribePresence {
        /// The users, each once, at most [`crate::limits::MAX_PRESENCE_USERS`].
        users: Vec<UserId>,
    },
    /// 34: refuse `user_id`'s 1:1 messages and hide this user's presence from it (v1.1).
    Block {
        /// The user blocked.
        user_id: UserId,
    },
    /// 35: undo a BLOCK (v1.1).
    Unblock {
        /// The user unblocked.
        user_id: UserId,
    },
    /// 3: heartbeat.
    Heartbeat,
    /// 21: renew the timelife, perhaps with a fresh token (`params.token`) that moves the cap
    /// the token's `exp` puts on it.
    Renew {
        /// A fresh token of the same user, or none.
        token: Option<String>,
    },
}

impl Request {
    /// The frame type code of this request.
    pub fn kind(&self) -> u16 {
        match self {
            Request::Register { .. } => kind::REGISTER,
            Request::Send { .. } => kind::SEND,
            Request::SendGroup { .. } => kind::SEND_GROUP,
            Request::CreateGroup { .. } => kind::CREATE_GROUP,
            Request::AddMembers { .. } => kind::ADD_MEMBERS,
            Request::LeaveGroup { .. } => kind::LEAVE_GROUP,
            Request::Ack { .. } => kind::ACK,
            Request::Sync { .. } => kind::SYNC,
            Request::Read { .. } => kind::READ,
            Request::Typing { .. } => kind::TYPING,
            Request::Recall { .. } => kind::RECALL,
            Request::RemoveMembers { .. } => kind::REMOVE_MEMBERS,
            Request::UpdateGroup { .. } => kind::UPDATE_GROUP,
            Request::DissolveGroup { .. } => kind::DISSOLVE_GROUP,
            Request::SetRole { .. } => kind::SET_ROLE,
            Request::SubscribePresence { .. } => kind::SUBSCRIBE_PRESENCE,
            Request::Block { .. } => kind::BLOCK,
            Request::Unblock { .. } => kind::UNBLOCK,
            Request::Heartbeat => kind::HEARTBEAT,
            Request::Renew { .. } => kind::RENEW,
        }
    }

    /// Counted against the connection's rate limit? ACK, HEARTBEAT and RENEW without a token
    /// are not (a token costs a verification).
    pub fn is_rate_limited(&self) -> bool {
        !matches!(
            self,
            Request::Ack { .. } | Request::Heartbeat | Request::Renew { token: None }
        )
    }
}

/// A frame that breaks the protocol's rules: always status 400, the connection stays open.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    /// The request id, when it could be read.
    pub request_id: Option<RequestId>,
    /// What is wrong, for people.
    pub message: String,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FrameError {}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: Value,
    #[serde(default)]
    params: Value,
    #[serde(rename = "requestId", default)]
    request_id: Value,
}

type Params = Map<String, Value>;

impl ClientFrame {
    /// A frame for `request` with `request_id`.
    pub fn new(request: Request, request_id: Option<RequestId>) -> Self {
        Self {
            request_id,
            request,
        }
    }

    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        fast::parse(text).map_or_else(|| Self::parse_general(text), Ok)
    }

    /// Every frame, with what is wrong when it breaks a rule ([`fast`] reads the common ones).
    pub(crate) fn parse_general(text: &str) -> Result<ClientFrame, FrameError> {
        // A derived `Deserialize` also reads a struct from an array (`[1, {}, "r"]`); a frame
        // is an object, and only an object's `requestId` is one to echo.
        let parsed = if text.trim_start().starts_with('{') {
            serde_json::from_str::<RawFrame>(text)
        } else {
            serde_json::from_str::<serde::de::IgnoredAny>(text).and_then(|_| {
                Err(serde::de::Error::invalid_type(
                    serde::de::Unexpected::Other("a non-object"),
                    &"a JSON object",
                ))
            })
        };
        let raw: RawFrame = parsed.map_err(|e| {
            let message = if e.is_data() {
                "frame must be a JSON object with a numeric \"type\"".to_owned()
            } else {
                format!("invalid JSON: {e}")
            };
            FrameError {
                request_id: None,
                message,
            }
        })?;
        let request_id = request_id(raw.request_id);
        let fail = |message: String| FrameError {
            request_id: request_id.clone(),
            message,
        };
        let params = match raw.params {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            _ => return Err(fail("\"params\" must be an object".into())),
        };
        let kind = raw
            .kind
            .as_u64()
            .filter(|k| *k <= u64::from(u16::MAX))
            .ok_or_else(|| fail("\"type\" must be a small non-negative integer".into()))?;
        match params::parse_request(kind as u16, &params) {
            Ok(request) => Ok(ClientFrame {
                request_id,
                request,
            }),
            Err(message) => Err(fail(message)),
        }
    }

    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a client frame serialises")
    }
}

/// A `requestId` as sent: a string or a number; anything else is no id.
fn request_id(v: Value) -> Option<RequestId> {
    match v {
        Value::String(s) => Some(RequestId::Text(s)),
        Value::Number(n) => Some(RequestId::Number(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
