//! A one-pass look at a server frame for code on a hot path (the load tool handles every frame
//! of thousands of connections): the few fields a client acts on, borrowed where the text has no
//! escapes, without building the typed [`chat_protocol::ServerFrame`] or any JSON tree. Code
//! that wants everything a frame says parses it with [`chat_protocol::ServerFrame::parse`].

use std::borrow::Cow;

use chat_protocol::kind;
use serde::Deserialize;
use serde_json::value::RawValue;

/// What a client acts on in a server frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek<'a> {
    /// 20, the first frame after the upgrade.
    Welcome {
        /// The token's user.
        user_id: Cow<'a, str>,
        /// Heartbeat interval, seconds.
        heartbeat: u64,
        /// Seconds before RENEW is needed.
        timelife: u64,
    },
    /// 0: the message sent with `request_id` is stored.
    Stored(Stored<'a>),
    /// An envelope with `msg.type` 2 or 10: a message for this device, to be acked.
    Deliver(Delivery<'a>),
    /// An envelope with `msg.type` 17: a recipient acked one of our 1:1 messages.
    DeliveredNotice,
    /// 22: the server is going away.
    Drain {
        /// When to open the new connection.
        reconnect_after_ms: u64,
    },
    /// 500 with its HTTP-like status.
    Error {
        /// 400, 403, 429, 503…
        status: u16,
        /// The request's id, as written (a JSON string or number).
        request_id: Option<&'a str>,
    },
    /// Any other well-formed frame (4, 16, 21, 14, 23, HTTP pushes…): its type, or `None` for
    /// an envelope.
    Other(Option<u16>),
}

/// Reply 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<'a> {
    /// The request's id, as written (a JSON string or number).
    pub request_id: Option<&'a str>,
    /// The stored message.
    pub message_id: Option<Cow<'a, str>>,
    /// Its conversation.
    pub conversation_id: Option<Cow<'a, str>>,
    /// Its seq.
    pub seq: Option<i64>,
    /// The sender's key.
    pub client_msg_id: Option<Cow<'a, str>>,
}

/// A pushed message (2 or 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// The envelope's `messageId`: what the ACK names and what de-duplicates.
    pub message_id: Cow<'a, str>,
    /// 2 or 10.
    pub kind: u16,
    /// The sender.
    pub from_user: Cow<'a, str>,
    /// The conversation.
    pub conversation_id: Cow<'a, str>,
    /// Its seq.
    pub seq: i64,
    /// The sender's key.
    pub client_msg_id: Option<Cow<'a, str>>,
    /// The text (empty when not a string).
    pub message: Cow<'a, str>,
    /// The one resend after the ack timeout.
    pub retry: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFrame<'a> {
    #[serde(rename = "type")]
    kind: Option<u16>,
    status: Option<u16>,
    #[serde(borrow)]
    request_id: Option<&'a RawValue>,
    #[serde(borrow)]
    params: Option<RawParams<'a>>,
    // Envelope fields.
    #[serde(borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    msg: Option<&'a RawValue>,
    #[serde(default)]
    retry: bool,
}

#[derive(Deserialize)]
struct RawMsg<'a> {
    #[serde(rename = "type")]
    kind: Option<u16>,
    #[serde(borrow)]
    params: Option<RawParams<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawParams<'a> {
    #[serde(borrow)]
    user_id: Option<Cow<'a, str>>,
    heartbeat: Option<u64>,
    timelife: Option<u64>,
    reconnect_after_ms: Option<u64>,
    #[serde(borrow)]
    from_user: Option<UserRef<'a>>,
    #[serde(borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    conversation_id: Option<Cow<'a, str>>,
    seq: Option<i64>,
    #[serde(borrow)]
    client_msg_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
}

/// `fromUser` is the seeds' user object in envelopes.
#[derive(Deserialize)]
struct UserRef<'a> {
    #[serde(borrow)]
    openid: Cow<'a, str>,
}

/// Looks at one server text frame; `None` when it is not JSON of a known shape.
pub fn peek(text: &str) -> Option<Peek<'_>> {
    let frame: RawFrame = serde_json::from_str(text).ok()?;
    if let Some(msg) = frame.msg {
        return Some(envelope(frame.message_id, msg, frame.retry));
    }
    let request_id = frame.request_id.map(RawValue::get);
    Some(match frame.kind? {
        kind::WELCOME => {
            let params = frame.params?;
            Peek::Welcome {
                user_id: params.user_id.unwrap_or_default(),
                heartbeat: params.heartbeat?,
                timelife: params.timelife?,
            }
        }
        kind::RECEIVED => {
            let p = frame.params?;
            Peek::Stored(Stored {
                request_id,
                message_id: p.message_id,
                conversation_id: p.conversation_id,
                seq: p.seq,
                client_msg_id: p.client_msg_id,
            })
        }
        kind::DRAIN => Peek::Drain {
            reconnect_after_ms: frame.params?.reconnect_after_ms?,
        },
        kind::ERROR => Peek::Error {
            status: frame.status.unwrap_or(500),
            request_id,
        },
        other => Peek::Other(Some(other)),
    })
}

fn envelope<'a>(message_id: Option<Cow<'a, str>>, msg: &'a RawValue, retry: bool) -> Peek<'a> {
    // An HTTP push's `msg` is any JSON the service posted: not ours to read.
    let Ok(RawMsg {
        kind: Some(k),
        params,
    }) = serde_json::from_str::<RawMsg>(msg.get())
    else {
        return Peek::Other(None);
    };
    let delivery = || {
        let p = params?;
        Some(Delivery {
            message_id: message_id?,
            kind: k,
            from_user: p.from_user?.openid,
            conversation_id: p.conversation_id?,
            seq: p.seq?,
            client_msg_id: p.client_msg_id,
            message: match p.message.map(|m| serde_json::from_str::<Cow<str>>(m.get())) {
                Some(Ok(text)) => text,
                _ => Cow::Borrowed(""),
            },
            retry,
        })
    };
    match k {
        kind::DELIVER | kind::DELIVER_GROUP => delivery().map_or(Peek::Other(None), Peek::Deliver),
        kind::DELIVERED => Peek::DeliveredNotice,
        _ => Peek::Other(None),
    }
}

/// A request id as [`Peek`] gives it (the JSON text) without its quotes, when a string.
pub fn request_id_text(raw: &str) -> &str {
    raw.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome() {
        let text = r#"{"type":20,"status":200,"params":{"sessionId":"s1","userId":"u1",
            "deviceId":"d","server":"pod-0","timelife":1800,"heartbeat":30,"expiresAt":1}}"#;
        assert_eq!(
            peek(text),
            Some(Peek::Welcome {
                user_id: "u1".into(),
                heartbeat: 30,
                timelife: 1800
            })
        );
    }

    #[test]
    fn stored_reply_error_and_drain() {
        let stored = r#"{"type":0,"status":200,"params":{"date":"x","message":"hi",
            "messageId":"ab","seq":3,"conversationId":"c","clientMsgId":"c7"},"requestId":"r7"}"#;
        let Some(Peek::Stored(s)) = peek(stored) else {
            panic!("not stored")
        };
        assert_eq!(s.request_id.map(request_id_text), Some("r7"));
        assert_eq!((s.message_id.as_deref(), s.seq), (Some("ab"), Some(3)));
        assert_eq!(s.client_msg_id.as_deref(), Some("c7"));
        let error = r#"{"type":500,"status":429,"params":{"code":"rate_limited","message":"slow"},
            "requestId":9}"#;
        assert_eq!(
            peek(error),
            Some(Peek::Error {
                status: 429,
                request_id: Some("9")
            })
        );
        let drain = r#"{"type":22,"status":200,"params":{"timelife":30,"reconnectAfterMs":1200,
            "reason":"drain"}}"#;
        assert_eq!(
            peek(drain),
            Some(Peek::Drain {
                reconnect_after_ms: 1200
            })
        );
    }

    #[test]
    fn delivery_envelope() {
        let text = r#"{"activeTime":1,"from":"system","messageId":"c41c","msg":{"type":2,
            "status":200,"params":{"toUser":{"openid":"bob","loginStatus":"1","userName":"Bob"},
            "fromUser":{"openid":"alice","loginStatus":"1","userName":"Alice"},"message":"t5 \"x\"",
            "fileType":"0","conversationId":"k","seq":42,"clientMsgId":"c1"}},"msgType":1,
            "requestId":"q","sessionId":"s","to":["bob"],"trigger":1,"retry":true}"#;
        let expected = Delivery {
            message_id: "c41c".into(),
            kind: 2,
            from_user: "alice".into(),
            conversation_id: "k".into(),
            seq: 42,
            client_msg_id: Some("c1".into()),
            message: "t5 \"x\"".into(),
            retry: true,
        };
        assert_eq!(peek(text), Some(Peek::Deliver(expected)));
    }

    #[test]
    fn other_frames() {
        let notice = r#"{"messageId":"m","msg":{"type":17,"status":200,"params":{"by":"bob"}}}"#;
        assert_eq!(peek(notice), Some(Peek::DeliveredNotice));
        let http = r#"{"messageId":"m","msg":{"type":"custom","n":[1]},"trigger":2}"#;
        assert_eq!(peek(http), Some(Peek::Other(None)));
        assert_eq!(
            peek(r#"{"type":4,"status":200,"params":{"date":"x"}}"#),
            Some(Peek::Other(Some(4)))
        );
        assert_eq!(peek("not json"), None);
        assert_eq!(peek(r#"{"type":20,"params":{}}"#), None);
    }
}
