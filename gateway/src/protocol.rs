//! Wire protocol v1: frame type codes, client request parsing, server replies and push envelopes.
//!
//! Field names follow the original system's frames (the seeds), so a client written for it keeps
//! working. This module is pure: it turns text into typed requests and typed values into JSON,
//! and never touches I/O. Every parse failure is an [`Error`] that the session turns into an
//! ERROR (500) frame without closing the connection.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::Error;

/// Frame type codes (the `type` field).
pub mod kind {
    pub const RECEIVED: u16 = 0;
    pub const SEND: u16 = 1;
    pub const DELIVER: u16 = 2;
    pub const HEARTBEAT: u16 = 3;
    pub const HEARTBEAT_ACK: u16 = 4;
    pub const REGISTER: u16 = 7;
    pub const CREATE_GROUP: u16 = 8;
    pub const SEND_GROUP: u16 = 9;
    pub const DELIVER_GROUP: u16 = 10;
    pub const ADD_MEMBERS: u16 = 11;
    pub const LEAVE_GROUP: u16 = 12;
    pub const SYNC: u16 = 13;
    pub const SYNC_REPLY: u16 = 14;
    pub const ACK: u16 = 15;
    pub const ACK_RECEIVED: u16 = 16;
    pub const DELIVERED: u16 = 17;
    pub const WELCOME: u16 = 20;
    pub const RENEW: u16 = 21;
    pub const DRAIN: u16 = 22;
    pub const KICKED: u16 = 23;
    pub const ERROR: u16 = 500;
}

/// Envelope `msgType` values (seed 002).
pub mod msg_type {
    pub const BUSINESS: i32 = 1;
}

/// Envelope `trigger` values: what caused the push.
pub mod trigger {
    pub const WEBSOCKET: i32 = 1;
    pub const HTTP: i32 = 2;
}

/// WebSocket close codes the server uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const UNSUPPORTED: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    pub const SERVICE_RESTART: u16 = 1012;
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    pub const KICKED: u16 = 4001;
    pub const TIMELIFE_EXPIRED: u16 = 4002;
}

/// Largest text frame accepted, the seeds' HTTP aggregator size. Larger frames close with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Most messages one SYNC returns.
pub const MAX_SYNC_LIMIT: u32 = 200;
/// Longest accepted `clientMsgId`.
pub const MAX_CLIENT_MSG_ID: usize = 64;
/// Longest accepted group name.
pub const MAX_GROUP_NAME: usize = 128;
/// Most members one CREATE GROUP / ADD MEMBERS may name.
pub const MAX_GROUP_MEMBERS: usize = 1000;

/// A request id as the client sent it (string or number), echoed verbatim in replies.
pub type RequestId = Option<Value>;

/// One parsed client frame.
#[derive(Debug)]
pub struct ClientFrame {
    pub request_id: RequestId,
    pub request: Request,
}

/// The requests a client may make, one variant per client→server type code.
#[derive(Debug, PartialEq)]
pub enum Request {
    Register {
        openid: String,
        user_name: Option<String>,
        login_status: String,
    },
    Send {
        to: String,
        message: String,
        file_type: i64,
        client_msg_id: Option<String>,
    },
    SendGroup {
        group_id: String,
        message: String,
        file_type: i64,
        client_msg_id: Option<String>,
    },
    CreateGroup {
        name: String,
        members: Vec<String>,
    },
    AddMembers {
        group_id: String,
        members: Vec<String>,
    },
    LeaveGroup {
        group_id: String,
    },
    Ack {
        msgid: String,
    },
    Sync {
        conversation_id: Option<String>,
        after_seq: i64,
        limit: u32,
    },
    Heartbeat,
    Renew,
}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type")]
    kind: Value,
    #[serde(default)]
    params: Value,
    #[serde(rename = "requestId", default)]
    request_id: Value,
}

/// Parses one text frame. On error, returns the request id (when it could be read) with the error,
/// so the ERROR reply can still echo it.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, (RequestId, Error)> {
    let raw: RawFrame = serde_json::from_str(text).map_err(|e| {
        let msg = if e.is_data() {
            "frame must be a JSON object with a numeric \"type\"".to_owned()
        } else {
            format!("invalid JSON: {e}")
        };
        (None, Error::BadRequest(msg))
    })?;
    let request_id = match raw.request_id {
        Value::String(_) | Value::Number(_) => Some(raw.request_id),
        _ => None,
    };
    let params = match raw.params {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        _ => {
            return Err((
                request_id,
                Error::BadRequest("\"params\" must be an object".into()),
            ))
        }
    };
    let kind = raw
        .kind
        .as_u64()
        .filter(|k| *k <= u16::MAX as u64)
        .ok_or_else(|| {
            (
                request_id.clone(),
                Error::BadRequest("\"type\" must be a small non-negative integer".into()),
            )
        })?;
    match parse_request(kind as u16, &params) {
        Ok(request) => Ok(ClientFrame {
            request_id,
            request,
        }),
        Err(e) => Err((request_id, e)),
    }
}

fn parse_request(kind: u16, p: &Map<String, Value>) -> Result<Request, Error> {
    Ok(match kind {
        kind::REGISTER => Request::Register {
            openid: req_str(p, "openid")?,
            user_name: opt_str(p, "userName")?,
            login_status: match p.get("loginStatus") {
                None | Some(Value::Null) => "1".to_owned(),
                Some(Value::String(s)) if s == "0" || s == "1" => s.clone(),
                Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
                    n.to_string()
                }
                _ => return Err(bad("\"loginStatus\" must be \"0\" or \"1\"")),
            },
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
                return Err(bad(format!(
                    "\"name\" must be 1-{MAX_GROUP_NAME} characters"
                )));
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
        kind::SYNC => {
            let conversation_id = opt_str(p, "conversationId")?;
            let after_seq = match p.get("afterSeq") {
                None | Some(Value::Null) => 0,
                Some(v) => v
                    .as_i64()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| bad("\"afterSeq\" must be a non-negative integer"))?,
            };
            let limit = match p.get("limit") {
                None | Some(Value::Null) => MAX_SYNC_LIMIT,
                Some(v) => match v.as_u64() {
                    Some(0) | None => {
                        return Err(bad(format!(
                            "\"limit\" must be an integer from 1 to {MAX_SYNC_LIMIT}"
                        )))
                    }
                    Some(n) => n.min(MAX_SYNC_LIMIT as u64) as u32,
                },
            };
            Request::Sync {
                conversation_id,
                after_seq,
                limit,
            }
        }
        kind::HEARTBEAT => Request::Heartbeat,
        kind::RENEW => Request::Renew,
        other => return Err(Error::BadRequest(format!("unknown frame type {other}"))),
    })
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

fn req_str(p: &Map<String, Value>, key: &str) -> Result<String, Error> {
    match p.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) | None => Err(bad(format!("missing \"{key}\""))),
        Some(_) => Err(bad(format!("\"{key}\" must be a string"))),
    }
}

fn opt_str(p: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("\"{key}\" must be a string"))),
    }
}

/// A non-empty identifier (user, group or message id) of at most 128 characters.
fn req_id(p: &Map<String, Value>, key: &str) -> Result<String, Error> {
    let s = req_str(p, key)?;
    if s.is_empty() || s.len() > 128 {
        return Err(bad(format!("\"{key}\" must be 1-128 bytes")));
    }
    Ok(s)
}

fn file_type(p: &Map<String, Value>) -> Result<i64, Error> {
    match p.get("fileType") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|n| (0..=i32::MAX as i64).contains(n))
            .ok_or_else(|| bad("\"fileType\" must be a small non-negative integer")),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=i32::MAX as i64).contains(n))
            .ok_or_else(|| bad("\"fileType\" must be a small non-negative integer")),
        Some(_) => Err(bad("\"fileType\" must be a small non-negative integer")),
    }
}

fn client_msg_id(p: &Map<String, Value>) -> Result<Option<String>, Error> {
    let id = opt_str(p, "clientMsgId")?;
    if let Some(id) = &id {
        if id.is_empty() || id.len() > MAX_CLIENT_MSG_ID {
            return Err(bad(format!(
                "\"clientMsgId\" must be 1-{MAX_CLIENT_MSG_ID} bytes"
            )));
        }
    }
    Ok(id)
}

fn members(p: &Map<String, Value>, required: bool) -> Result<Vec<String>, Error> {
    let list = match p.get("members") {
        None | Some(Value::Null) if !required => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        _ => return Err(bad("\"members\" must be an array of user ids")),
    };
    if list.len() > MAX_GROUP_MEMBERS {
        return Err(bad(format!("at most {MAX_GROUP_MEMBERS} members at once")));
    }
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        match m {
            Value::String(s) if !s.is_empty() && s.len() <= 128 => {
                if !out.contains(s) {
                    out.push(s.clone())
                }
            }
            _ => {
                return Err(bad(
                    "\"members\" must be an array of user ids (1-128 bytes)",
                ))
            }
        }
    }
    Ok(out)
}

/// A server reply to a request: `{"type", "status", "params", "requestId"}`.
pub fn reply(kind: u16, params: Value, request_id: &RequestId) -> String {
    let mut obj = Map::with_capacity(4);
    obj.insert("type".into(), kind.into());
    obj.insert("status".into(), 200.into());
    obj.insert("params".into(), params);
    if let Some(id) = request_id {
        obj.insert("requestId".into(), id.clone());
    }
    Value::Object(obj).to_string()
}

/// An ERROR (500) frame carrying the HTTP-like status and a stable code.
pub fn error_frame(err: &Error, request_id: &RequestId) -> String {
    let mut obj = Map::with_capacity(4);
    obj.insert("type".into(), kind::ERROR.into());
    obj.insert("status".into(), err.status().into());
    obj.insert(
        "params".into(),
        json!({"code": err.code(), "message": err.client_message()}),
    );
    if let Some(id) = request_id {
        obj.insert("requestId".into(), id.clone());
    }
    Value::Object(obj).to_string()
}

/// The seeds' user object inside envelopes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserRef {
    pub openid: String,
    #[serde(rename = "loginStatus")]
    pub login_status: String,
    #[serde(rename = "userName")]
    pub user_name: String,
}

impl UserRef {
    pub fn new(id: &str, name: &str) -> Self {
        Self {
            openid: id.to_owned(),
            login_status: "1".to_owned(),
            user_name: name.to_owned(),
        }
    }
}

/// The push envelope (seeds 000/002) for one receiving session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    #[serde(rename = "activeTime")]
    pub active_time: i64,
    pub from: String,
    #[serde(rename = "messageId")]
    pub message_id: String,
    pub msg: Value,
    #[serde(rename = "msgType")]
    pub msg_type: i32,
    #[serde(rename = "requestId")]
    pub request_id: String,
    #[serde(rename = "sessionId")]
    pub session_id: String,
    pub to: Vec<String>,
    pub trigger: i32,
    pub retry: bool,
}

/// The `msg` object of a push: `{"type", "status": 200, "params"}`.
pub fn push_msg(kind: u16, params: Value) -> Value {
    json!({"type": kind, "status": 200, "params": params})
}

/// Human-readable date like the seeds' `new Date().toString()`, used in reply `date` fields.
pub fn date_string(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        y
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, Error> {
        parse_client_frame(s).map(|f| f.request).map_err(|(_, e)| e)
    }

    #[test]
    fn parses_seed_send_frame() {
        let r =
            parse(r#"{"type":1,"params":{"toMessageId":"bob","message":"20240102","fileType":0}}"#)
                .unwrap();
        assert_eq!(
            r,
            Request::Send {
                to: "bob".into(),
                message: "20240102".into(),
                file_type: 0,
                client_msg_id: None
            }
        );
    }

    #[test]
    fn file_type_accepts_numeric_strings() {
        let r = parse(r#"{"type":9,"params":{"toMessageId":"g1","message":"x","fileType":"2","clientMsgId":"c"}}"#).unwrap();
        assert!(matches!(r, Request::SendGroup { file_type: 2, .. }));
    }

    #[test]
    fn request_id_is_echoed_even_on_error() {
        let (rid, err) =
            parse_client_frame(r#"{"type":1,"params":{},"requestId":"r-9"}"#).unwrap_err();
        assert_eq!(rid, Some(Value::String("r-9".into())));
        assert_eq!(err.status(), 400);
        let frame: Value = serde_json::from_str(&error_frame(&err, &rid)).unwrap();
        assert_eq!(frame["type"], 500);
        assert_eq!(frame["status"], 400);
        assert_eq!(frame["requestId"], "r-9");
        assert_eq!(frame["params"]["code"], "bad_request");
    }

    #[test]
    fn rejects_bad_shapes() {
        for bad in [
            "not json",
            "[1,2]",
            r#"{"params":{}}"#,
            r#"{"type":"1"}"#,
            r#"{"type":-1}"#,
            r#"{"type":1e400}"#,
            r#"{"type":99999999999999999999999}"#,
            r#"{"type":77}"#,
            r#"{"type":1,"params":[]}"#,
            r#"{"type":1,"params":{"toMessageId":5,"message":"x"}}"#,
            r#"{"type":1,"params":{"toMessageId":"b","message":"x","fileType":1e300}}"#,
            r#"{"type":1,"params":{"toMessageId":"b","message":"x","clientMsgId":""}}"#,
            r#"{"type":13,"params":{"conversationId":"c","afterSeq":-1}}"#,
            r#"{"type":13,"params":{"conversationId":"c","afterSeq":18446744073709551615}}"#,
            r#"{"type":13,"params":{"conversationId":"c","limit":0}}"#,
            r#"{"type":8,"params":{"name":"","members":[]}}"#,
            r#"{"type":11,"params":{"groupId":"g"}}"#,
            r#"{"type":7,"params":{"openid":"a","loginStatus":"2"}}"#,
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.status(), 400, "{bad}");
        }
    }

    #[test]
    fn sync_limit_is_clamped_and_defaulted() {
        assert_eq!(
            parse(r#"{"type":13,"params":{"conversationId":"c","afterSeq":3,"limit":5000}}"#)
                .unwrap(),
            Request::Sync {
                conversation_id: Some("c".into()),
                after_seq: 3,
                limit: 200
            }
        );
        assert_eq!(
            parse(r#"{"type":13}"#).unwrap(),
            Request::Sync {
                conversation_id: None,
                after_seq: 0,
                limit: 200
            }
        );
    }

    #[test]
    fn members_are_deduplicated() {
        let r = parse(r#"{"type":8,"params":{"name":"g","members":["a","b","a"]}}"#).unwrap();
        assert_eq!(
            r,
            Request::CreateGroup {
                name: "g".into(),
                members: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn date_string_matches_known_instant() {
        // 2024-01-02 02:28:12 UTC, a Tuesday (the seeds' sample, in UTC).
        assert_eq!(
            date_string(1_704_162_492_912),
            "Tue Jan 02 02:28:12 UTC 2024"
        );
    }
}
