//! Server → client frames other than pushes: replies `{"type", "status": 200, "params",
//! "requestId"}` (WELCOME, DRAIN and KICKED share the shape, without `requestId`) and ERROR
//! (500). [`ServerFrame`] is every frame a client can receive, pushes included: the server writes
//! it with [`ServerFrame::to_json`] (or the borrowing [`reply_json`] / [`error_json`] /
//! [`sync_page_json`]), a client reads it with [`ServerFrame::parse`].

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::client::RequestId;
use crate::envelope::{push_json_str, Envelope};
use crate::ids::ConversationId;
use crate::kind;

mod params;

pub use params::*;

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
            // It writes `"from":"system"` and `"msgType":1`, as the server always does: an
            // envelope read with others is written field by field, so it reads back the same.
            ServerFrame::Push(env) => match env.to.as_slice() {
                [to] if env.from == "system" && env.msg_type == crate::msg_type::BUSINESS => {
                    env.prepare().render(&env.session_id, to, env.retry, || {
                        unreachable!("ids are shared")
                    })
                }
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
