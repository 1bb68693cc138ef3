//! The general path's parameter rules: each request kind's params read from the frame's `params`
//! object, with what is wrong when one breaks its rule (the fast path, `fast.rs`, reads the common
//! frames without building the object).

use serde_json::Value;

use super::{LoginStatus, Params, Request, TypingState};
use crate::groups::Role;
use crate::ids::{ConversationId, IdError, UserId};
use crate::kind;
use crate::limits::{
    MAX_CLIENT_MSG_ID, MAX_FILE_ID, MAX_GROUP_MEMBERS, MAX_GROUP_NAME, MAX_PRESENCE_USERS,
    MAX_SYNC_LIMIT,
};

pub(super) fn parse_request(kind: u16, p: &Params) -> Result<Request, String> {
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
            file: file(p)?,
            client_msg_id: client_msg_id(p)?,
        },
        kind::SEND_GROUP => Request::SendGroup {
            group_id: req_id(p, "toMessageId")?,
            message: req_str(p, "message")?,
            file_type: file_type(p)?,
            file: file(p)?,
            client_msg_id: client_msg_id(p)?,
        },
        kind::CREATE_GROUP => Request::CreateGroup {
            name: group_name(p)?,
            members: members(p, false)?,
        },
        kind::REMOVE_MEMBERS => Request::RemoveMembers {
            group_id: req_id(p, "groupId")?,
            members: members(p, true)?,
        },
        kind::UPDATE_GROUP => Request::UpdateGroup {
            group_id: req_id(p, "groupId")?,
            name: group_name(p)?,
        },
        kind::DISSOLVE_GROUP => Request::DissolveGroup {
            group_id: req_id(p, "groupId")?,
        },
        kind::SET_ROLE => Request::SetRole {
            group_id: req_id(p, "groupId")?,
            user_id: req_id(p, "userId")?,
            role: match p.get("role") {
                Some(Value::String(s)) => Role::parse(s),
                _ => None,
            }
            .ok_or("\"role\" must be \"owner\", \"admin\" or \"member\"")?,
        },
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
        kind::READ => Request::Read {
            conversation_id: conversation_id(p)?,
            seq: non_negative(p, "seq")?,
        },
        kind::TYPING => Request::Typing {
            conversation_id: conversation_id(p)?,
            state: match p.get("state") {
                Some(Value::String(s)) if s == "start" => TypingState::Start,
                Some(Value::String(s)) if s == "stop" => TypingState::Stop,
                _ => return Err("\"state\" must be \"start\" or \"stop\"".into()),
            },
        },
        kind::RECALL => Request::Recall {
            message_id: req_id(p, "messageId")?,
        },
        kind::SUBSCRIBE_PRESENCE => Request::SubscribePresence {
            users: user_list(p, "users", true, MAX_PRESENCE_USERS)?,
        },
        kind::BLOCK => Request::Block {
            user_id: req_id(p, "userId")?,
        },
        kind::UNBLOCK => Request::Unblock {
            user_id: req_id(p, "userId")?,
        },
        kind::HEARTBEAT => Request::Heartbeat,
        kind::RENEW => Request::Renew {
            token: opt_str(p, "token")?.filter(|t| !t.is_empty()),
        },
        other => return Err(format!("unknown frame type {other}")),
    })
}

/// A group's `name`: 1–128 characters, not blank.
fn group_name(p: &Params) -> Result<String, String> {
    let name = req_str(p, "name")?;
    if name.trim().is_empty() || name.chars().count() > MAX_GROUP_NAME {
        return Err(format!("\"name\" must be 1-{MAX_GROUP_NAME} characters"));
    }
    Ok(name)
}

/// A required, non-empty `conversationId`.
fn conversation_id(p: &Params) -> Result<ConversationId, String> {
    let id = req_str(p, "conversationId")?;
    if id.is_empty() {
        return Err("\"conversationId\" must not be empty".into());
    }
    Ok(ConversationId::parse(id).expect("any string is a conversation id"))
}

/// A required non-negative integer.
fn non_negative(p: &Params, key: &str) -> Result<i64, String> {
    match p.get(key) {
        None | Some(Value::Null) => Err(format!("missing \"{key}\"")),
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("\"{key}\" must be a non-negative integer")),
    }
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

/// `file: {"fileId": "…"}`: absent or null is none; the id is 1-64 bytes of `[A-Za-z0-9._-]`.
fn file(p: &Params) -> Result<Option<String>, String> {
    let bad = || format!("\"file\" must be {{\"fileId\": \"<1-{MAX_FILE_ID} characters>\"}}");
    match p.get("file") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => match o.get("fileId") {
            Some(Value::String(id)) if valid_file_id(id) => Ok(Some(id.clone())),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

/// What a `fileId` may be: what the server makes (32 hex chars) fits with room to spare.
pub(crate) fn valid_file_id(id: &str) -> bool {
    (1..=MAX_FILE_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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
    user_list(p, "members", required, MAX_GROUP_MEMBERS)
}

/// An array of user ids under `key`, each kept once, at most `max` of them.
fn user_list(p: &Params, key: &str, required: bool, max: usize) -> Result<Vec<UserId>, String> {
    let list = match p.get(key) {
        None | Some(Value::Null) if !required => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        _ => return Err(format!("\"{key}\" must be an array of user ids")),
    };
    if list.len() > max {
        return Err(format!("at most {max} {key} at once"));
    }
    let mut out: Vec<UserId> = Vec::with_capacity(list.len());
    for m in list {
        let id = match m {
            Value::String(s) => UserId::parse(s.as_str()).ok(),
            _ => None,
        }
        .ok_or_else(|| format!("\"{key}\" must be an array of user ids (1-128 bytes)"))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}
