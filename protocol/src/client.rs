//! Client → server frames: `{"type": N, "params": {...}, "requestId": "optional"}`.
//!
//! [`ClientFrame::parse`] turns one text frame into a typed [`Request`] once; every rule a
//! parameter must meet (DESIGN §3, docs/protocol.md) is checked here and nowhere else. A frame
//! that breaks one is a [`FrameError`] (status 400) that still carries the request id, so the
//! ERROR reply can echo it. [`ClientFrame`] also serialises, for clients.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

mod fast;

use crate::ids::{ConversationId, GroupId, IdError, MessageId, UserId};
use crate::kind;
use crate::limits::{MAX_CLIENT_MSG_ID, MAX_GROUP_MEMBERS, MAX_GROUP_NAME, MAX_SYNC_LIMIT};

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
    /// 3: heartbeat.
    Heartbeat,
    /// 21: renew the timelife.
    Renew,
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
            Request::Heartbeat => kind::HEARTBEAT,
            Request::Renew => kind::RENEW,
        }
    }

    /// Counted against the connection's rate limit? ACK, HEARTBEAT and RENEW are not.
    pub fn is_rate_limited(&self) -> bool {
        !matches!(
            self,
            Request::Ack { .. } | Request::Heartbeat | Request::Renew
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
    fn parse_general(text: &str) -> Result<ClientFrame, FrameError> {
        let raw: RawFrame = serde_json::from_str(text).map_err(|e| {
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
        match parse_request(kind as u16, &params) {
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

fn parse_request(kind: u16, p: &Params) -> Result<Request, String> {
    Ok(match kind {
        kind::REGISTER => Request::Register {
            openid: req_str(p, "openid")?,
            user_name: opt_str(p, "userName")?,
            login_status: login_status(p)?,
        },
        kind::SEND => Request::Send {
            to: req_id(p, "toMessageId")?,
            message: req_str(p, "message")?,
            file_type: file_type(p)?,
            client_msg_id: client_msg_id(p)?,
        },
        kind::SEND_GROUP => Request::SendGroup {
            group_id: req_id(p, "toMessageId")?,
            message: req_str(p, "message")?,
            file_type: file_type(p)?,
            client_msg_id: client_msg_id(p)?,
        },
        kind::CREATE_GROUP => {
            let name = req_str(p, "name")?;
            if name.trim().is_empty() || name.chars().count() > MAX_GROUP_NAME {
                return Err(format!("\"name\" must be 1-{MAX_GROUP_NAME} characters"));
            }
            Request::CreateGroup {
                name,
                members: members(p, false)?,
            }
        }
        kind::ADD_MEMBERS => Request::AddMembers {
            group_id: req_id(p, "groupId")?,
            members: members(p, true)?,
        },
        kind::LEAVE_GROUP => Request::LeaveGroup {
            group_id: req_id(p, "groupId")?,
        },
        kind::ACK => Request::Ack {
            msgid: req_id(p, "msgid")?,
        },
        kind::SYNC => Request::Sync {
            conversation_id: opt_str(p, "conversationId")?
                .map(|c| ConversationId::parse(c).expect("any string is a conversation id")),
            after_seq: after_seq(p)?,
            limit: sync_limit(p)?,
        },
        kind::HEARTBEAT => Request::Heartbeat,
        kind::RENEW => Request::Renew,
        other => return Err(format!("unknown frame type {other}")),
    })
}

fn req_str(p: &Params, key: &str) -> Result<String, String> {
    match p.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => Err(format!("missing \"{key}\"")),
        Some(_) => Err(format!("\"{key}\" must be a string")),
    }
}

fn opt_str(p: &Params, key: &str) -> Result<Option<String>, String> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("\"{key}\" must be a string")),
    }
}

/// A required id param, checked against its type's rule.
fn req_id<T: TryFrom<String, Error = IdError>>(p: &Params, key: &str) -> Result<T, String> {
    T::try_from(req_str(p, key)?).map_err(|e| format!("\"{key}\" {e}"))
}

fn login_status(p: &Params) -> Result<LoginStatus, String> {
    match p.get("loginStatus") {
        None | Some(Value::Null) => Ok(LoginStatus::Online),
        Some(Value::String(s)) if s == "1" => Ok(LoginStatus::Online),
        Some(Value::String(s)) if s == "0" => Ok(LoginStatus::Offline),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(LoginStatus::Online),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(LoginStatus::Offline),
        _ => Err("\"loginStatus\" must be \"0\" or \"1\"".into()),
    }
}

fn file_type(p: &Params) -> Result<i64, String> {
    let in_range = |n: &i64| (0..=i64::from(i32::MAX)).contains(n);
    let parsed = match p.get("fileType") {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Number(n)) => n.as_i64().filter(in_range),
        Some(Value::String(s)) => s.parse::<i64>().ok().filter(in_range),
        Some(_) => None,
    };
    parsed.ok_or_else(|| "\"fileType\" must be a small non-negative integer".into())
}

fn client_msg_id(p: &Params) -> Result<Option<String>, String> {
    let id = opt_str(p, "clientMsgId")?;
    if id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.len() > MAX_CLIENT_MSG_ID)
    {
        return Err(format!(
            "\"clientMsgId\" must be 1-{MAX_CLIENT_MSG_ID} bytes"
        ));
    }
    Ok(id)
}

fn after_seq(p: &Params) -> Result<i64, String> {
    match p.get("afterSeq") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .ok_or_else(|| "\"afterSeq\" must be a non-negative integer".into()),
    }
}

fn sync_limit(p: &Params) -> Result<u32, String> {
    match p.get("limit") {
        None | Some(Value::Null) => Ok(MAX_SYNC_LIMIT),
        Some(v) => match v.as_u64() {
            Some(0) | None => Err(format!(
                "\"limit\" must be an integer from 1 to {MAX_SYNC_LIMIT}"
            )),
            Some(n) => Ok(n.min(u64::from(MAX_SYNC_LIMIT)) as u32),
        },
    }
}

fn members(p: &Params, required: bool) -> Result<Vec<UserId>, String> {
    let list = match p.get("members") {
        None | Some(Value::Null) if !required => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        _ => return Err("\"members\" must be an array of user ids".into()),
    };
    if list.len() > MAX_GROUP_MEMBERS {
        return Err(format!("at most {MAX_GROUP_MEMBERS} members at once"));
    }
    let mut out: Vec<UserId> = Vec::with_capacity(list.len());
    for m in list {
        let id = match m {
            Value::String(s) => UserId::parse(s.as_str()).ok(),
            _ => None,
        }
        .ok_or("\"members\" must be an array of user ids (1-128 bytes)")?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

impl Serialize for ClientFrame {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", &self.request.kind())?;
        match &self.request {
            Request::Register {
                openid,
                user_name,
                login_status,
            } => map.serialize_entry(
                "params",
                &RegisterParams {
                    openid,
                    user_name: user_name.as_deref(),
                    login_status: *login_status,
                },
            )?,
            Request::Send {
                to,
                message,
                file_type,
                client_msg_id,
            } => map.serialize_entry(
                "params",
                &SendParams {
                    to_message_id: to.as_str(),
                    message,
                    file_type: *file_type,
                    client_msg_id: client_msg_id.as_deref(),
                },
            )?,
            Request::SendGroup {
                group_id,
                message,
                file_type,
                client_msg_id,
            } => map.serialize_entry(
                "params",
                &SendParams {
                    to_message_id: group_id.as_str(),
                    message,
                    file_type: *file_type,
                    client_msg_id: client_msg_id.as_deref(),
                },
            )?,
            Request::CreateGroup { name, members } => {
                map.serialize_entry("params", &CreateParams { name, members })?
            }
            Request::AddMembers { group_id, members } => {
                map.serialize_entry("params", &MembersParams { group_id, members })?
            }
            Request::LeaveGroup { group_id } => {
                map.serialize_entry("params", &GroupParams { group_id })?
            }
            Request::Ack { msgid } => map.serialize_entry(
                "params",
                &AckParams {
                    from: "client",
                    msgid,
                },
            )?,
            Request::Sync {
                conversation_id: Some(conversation_id),
                after_seq,
                limit,
            } => map.serialize_entry(
                "params",
                &SyncParams {
                    conversation_id,
                    after_seq: *after_seq,
                    limit: *limit,
                },
            )?,
            Request::Sync {
                conversation_id: None,
                ..
            }
            | Request::Heartbeat
            | Request::Renew => {}
        }
        if let Some(id) = &self.request_id {
            map.serialize_entry("requestId", id)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RegisterParams<'a> {
    openid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    login_status: LoginStatus,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendParams<'a> {
    to_message_id: &'a str,
    message: &'a str,
    file_type: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<&'a str>,
}

#[derive(Serialize)]
struct CreateParams<'a> {
    name: &'a str,
    members: &'a [UserId],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MembersParams<'a> {
    group_id: &'a GroupId,
    members: &'a [UserId],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupParams<'a> {
    group_id: &'a GroupId,
}

#[derive(Serialize)]
struct AckParams<'a> {
    from: &'static str,
    msgid: &'a MessageId,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncParams<'a> {
    conversation_id: &'a ConversationId,
    after_seq: i64,
    limit: u32,
}

#[cfg(test)]
mod tests;
