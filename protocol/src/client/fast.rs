//! The frames that are most of the traffic — SEND, SEND to a group and ACK — read straight into
//! their fields, without the general path's `Map` of `Value`s (each key and value its own
//! allocation, then copied out). It accepts only a frame it can read completely and that meets
//! every rule; anything else — another type, a missing or mistyped parameter, a duplicate key, an
//! id that breaks its rule — returns `None`, and the general path reads the frame again and says
//! what is wrong. So both paths give every frame the same result (a test holds them to it).

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{request_id, ClientFrame, Request};
use crate::kind;
use crate::limits::MAX_CLIENT_MSG_ID;

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: u16,
    #[serde(borrow)]
    params: Option<Params<'a>>,
    #[serde(rename = "requestId", default)]
    request_id: Value,
}

#[derive(Deserialize)]
struct Params<'a> {
    /// Unknown parameters, read as the general path reads them (any value: a number out of
    /// range, `1e999`, is refused) rather than skipped unread, which let such a frame through
    /// here that the general path refuses (a fuzz crash, `fuzz/artifacts/client_frame/`).
    #[serde(flatten)]
    _unknown: std::collections::HashMap<String, serde::de::IgnoredAny>,
    #[serde(rename = "toMessageId")]
    to: Option<String>,
    message: Option<String>,
    #[serde(rename = "fileType", borrow)]
    file_type: Option<&'a RawValue>,
    #[serde(rename = "clientMsgId")]
    client_msg_id: Option<String>,
    /// A message with a file goes the general way: rarer, and its rules are written once there.
    #[serde(borrow)]
    file: Option<&'a RawValue>,
    msgid: Option<String>,
}

/// The frame, when it is a well-formed SEND (1 or 9) or ACK; `None` sends it the general way.
pub(crate) fn parse(text: &str) -> Option<ClientFrame> {
    let frame: Frame = serde_json::from_str(text).ok()?;
    let p = frame.params?;
    if p.file.is_some() {
        return None;
    }
    let request = match frame.kind {
        kind::SEND => Request::Send {
            to: p.to?.try_into().ok()?,
            message: p.message?,
            file_type: file_type(p.file_type)?,
            file: None,
            client_msg_id: client_msg_id(p.client_msg_id)?,
        },
        kind::SEND_GROUP => Request::SendGroup {
            group_id: p.to?.try_into().ok()?,
            message: p.message?,
            file_type: file_type(p.file_type)?,
            file: None,
            client_msg_id: client_msg_id(p.client_msg_id)?,
        },
        kind::ACK => Request::Ack {
            msgid: p.msgid?.try_into().ok()?,
        },
        _ => return None,
    };
    Some(ClientFrame {
        request_id: request_id(frame.request_id),
        request,
    })
}

/// Absent or null: 0; a plain non-negative integer up to `i32::MAX`; else `None` (numeric
/// strings too: the general path reads them).
fn file_type(raw: Option<&RawValue>) -> Option<i64> {
    let Some(raw) = raw else { return Some(0) };
    let n: i64 = serde_json::from_str(raw.get()).ok()?;
    (0..=i64::from(i32::MAX)).contains(&n).then_some(n)
}

fn client_msg_id(id: Option<String>) -> Option<Option<String>> {
    match id {
        Some(id) if id.is_empty() || id.len() > MAX_CLIENT_MSG_ID => None,
        id => Some(id),
    }
}
