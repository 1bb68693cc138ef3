//! The client's side of the gateway's wire protocol (DESIGN.md §3): the few frames a load client
//! sends, a lenient parser for the frames it reacts to, and the payload format that carries the
//! send timestamp and message number from sender to recipient.
//!
//! Everything here is pure: the connection loops feed it text and send what it returns.

use serde::{Deserialize, Serialize};

/// HEARTBEAT (type 3); the server answers with type 4.
pub const HEARTBEAT: &str = r#"{"type":3}"#;
/// RENEW timelife (type 21), so holds longer than the timelife are not closed with 4002.
pub const RENEW: &str = r#"{"type":21}"#;

const SEND: u16 = 1;
const ACK: u16 = 15;
const RECEIVED: i64 = 0;
const DELIVER: i64 = 2;
const DELIVERED_NOTICE: i64 = 17;
const WELCOME: i64 = 20;
const ERROR: i64 = 500;

/// What the connection loops care about in a server frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Type 20, the first frame after the upgrade.
    Welcome(Welcome),
    /// Type 0: the message with this `requestId` is durably stored.
    Stored { request_id: Option<String> },
    /// Envelope with `msg.type` 2: a 1:1 message for this device, to be acked.
    Deliver(Delivery),
    /// Envelope with `msg.type` 17: one of our messages was acked by its recipient.
    DeliveredNotice,
    /// Type 500 with its HTTP-like status.
    Error {
        status: u16,
        request_id: Option<String>,
    },
    /// Any other well-formed frame (heartbeat ack 4, ack received 16, renew 21, ...).
    Other,
}

/// The WELCOME parameters a client acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub user_id: String,
    /// Heartbeat interval, seconds.
    pub heartbeat: u64,
    /// Session lifetime before RENEW is needed, seconds.
    pub timelife: u64,
}

/// A delivered 1:1 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The envelope's `messageId`, which the ACK names.
    pub envelope_id: String,
    pub from_user: String,
    pub client_msg_id: Option<String>,
    pub message: String,
    pub retry: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFrame {
    #[serde(rename = "type")]
    kind: Option<i64>,
    status: Option<u16>,
    request_id: Option<String>,
    params: Option<RawParams>,
    // Envelope fields.
    message_id: Option<String>,
    msg: Option<Box<RawFrame>>,
    #[serde(default)]
    retry: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawParams {
    user_id: Option<String>,
    heartbeat: Option<u64>,
    timelife: Option<u64>,
    from_user: Option<UserRef>,
    client_msg_id: Option<String>,
    message: Option<serde_json::Value>,
}

/// `fromUser` is the seeds' user object in envelopes; accept a bare id too.
#[derive(Deserialize)]
#[serde(untagged)]
enum UserRef {
    Object { openid: String },
    Id(String),
}

/// Parses a server text frame; `None` when it is not JSON of the expected shape.
pub fn parse(text: &str) -> Option<Incoming> {
    let frame: RawFrame = serde_json::from_str(text).ok()?;
    if let Some(inner) = frame.msg {
        return Some(match inner.kind {
            Some(DELIVER) => {
                let params = inner.params?;
                let from_user = match params.from_user? {
                    UserRef::Object { openid } => openid,
                    UserRef::Id(id) => id,
                };
                let message = match params.message {
                    Some(serde_json::Value::String(s)) => s,
                    _ => String::new(),
                };
                Incoming::Deliver(Delivery {
                    envelope_id: frame.message_id?,
                    from_user,
                    client_msg_id: params.client_msg_id,
                    message,
                    retry: frame.retry,
                })
            }
            Some(DELIVERED_NOTICE) => Incoming::DeliveredNotice,
            _ => Incoming::Other,
        });
    }
    Some(match frame.kind? {
        WELCOME => {
            let params = frame.params?;
            Incoming::Welcome(Welcome {
                user_id: params.user_id.unwrap_or_default(),
                heartbeat: params.heartbeat?,
                timelife: params.timelife?,
            })
        }
        RECEIVED => Incoming::Stored {
            request_id: frame.request_id,
        },
        ERROR => Incoming::Error {
            status: frame.status.unwrap_or(500),
            request_id: frame.request_id,
        },
        _ => Incoming::Other,
    })
}

#[derive(Serialize)]
struct Request<P> {
    #[serde(rename = "type")]
    kind: u16,
    params: P,
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendParams<'a> {
    to_message_id: &'a str,
    message: &'a str,
    file_type: u8,
    client_msg_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AckParams<'a> {
    from: &'static str,
    msgid: &'a str,
    from_user: &'a str,
    to_user: &'a str,
}

/// SEND (type 1) of message number `n` to `to`: `clientMsgId` is `c<n>`, `requestId` `r<n>`.
pub fn send_frame(to: &str, n: u64, message: &str) -> String {
    let request = Request {
        kind: SEND,
        params: SendParams {
            to_message_id: to,
            message,
            file_type: 0,
            client_msg_id: &format!("c{n}"),
        },
        request_id: Some(format!("r{n}")),
    };
    serde_json::to_string(&request).expect("a send frame always serializes")
}

/// ACK (type 15) of a delivered envelope.
pub fn ack_frame(delivery: &Delivery, own_id: &str) -> String {
    let request = Request {
        kind: ACK,
        params: AckParams {
            from: "client",
            msgid: &delivery.envelope_id,
            from_user: &delivery.from_user,
            to_user: own_id,
        },
        request_id: None,
    };
    serde_json::to_string(&request).expect("an ack frame always serializes")
}

/// The message number in a `requestId` of [`send_frame`] (`r<n>`).
pub fn request_number(request_id: &str) -> Option<u64> {
    request_id.strip_prefix('r')?.parse().ok()
}

/// The message number in a `clientMsgId` of [`send_frame`] (`c<n>`).
pub fn client_msg_number(client_msg_id: &str) -> Option<u64> {
    client_msg_id.strip_prefix('c')?.parse().ok()
}

/// Message text carrying the send time (µs since the run's start), padded with `x` to `size`
/// bytes so the payload size is a knob.
pub fn payload(sent_us: u64, size: usize) -> String {
    let mut text = format!("t{sent_us} ");
    if text.len() < size {
        text.extend(std::iter::repeat_n('x', size - text.len()));
    }
    text
}

/// The send time embedded by [`payload`].
pub fn payload_sent_us(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('t')?;
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_welcome() {
        let text = r#"{"type":20,"status":200,"params":{"sessionId":"s1","userId":"u1",
            "deviceId":"d","server":"pod-0","timelife":1800,"heartbeat":30,"expiresAt":1}}"#;
        assert_eq!(
            parse(text),
            Some(Incoming::Welcome(Welcome {
                user_id: "u1".into(),
                heartbeat: 30,
                timelife: 1800
            }))
        );
    }

    #[test]
    fn parses_stored_reply_and_error() {
        let stored = r#"{"type":0,"status":200,"params":{"date":"x","message":"hi",
            "messageId":"ab","seq":3,"conversationId":"c","clientMsgId":"c7"},"requestId":"r7"}"#;
        assert_eq!(
            parse(stored),
            Some(Incoming::Stored {
                request_id: Some("r7".into())
            })
        );
        let error = r#"{"type":500,"status":429,"params":{"code":"rate_limited","message":"slow"},
            "requestId":"r9"}"#;
        assert_eq!(
            parse(error),
            Some(Incoming::Error {
                status: 429,
                request_id: Some("r9".into())
            })
        );
    }

    #[test]
    fn parses_delivery_envelope() {
        let text = r#"{"activeTime":1,"from":"system","messageId":"c41c","msg":{"type":2,
            "status":200,"params":{"toUser":{"openid":"bob","loginStatus":"1","userName":"Bob"},
            "fromUser":{"openid":"alice","loginStatus":"1","userName":"Alice"},"message":"t5 x",
            "fileType":"0","conversationId":"k","seq":42,"clientMsgId":"c1"}},"msgType":1,
            "requestId":"q","sessionId":"s","to":["bob"],"trigger":1,"retry":true}"#;
        let expected = Delivery {
            envelope_id: "c41c".into(),
            from_user: "alice".into(),
            client_msg_id: Some("c1".into()),
            message: "t5 x".into(),
            retry: true,
        };
        assert_eq!(parse(text), Some(Incoming::Deliver(expected.clone())));
        let ack: serde_json::Value = serde_json::from_str(&ack_frame(&expected, "bob")).unwrap();
        assert_eq!(
            ack,
            serde_json::json!({"type":15,"params":{"from":"client","msgid":"c41c",
                "fromUser":"alice","toUser":"bob"}})
        );
    }

    #[test]
    fn classifies_other_frames() {
        let notice = r#"{"messageId":"m","msg":{"type":17,"status":200,"params":{"by":"bob"}}}"#;
        assert_eq!(parse(notice), Some(Incoming::DeliveredNotice));
        assert_eq!(
            parse(r#"{"type":4,"status":200,"params":{"date":"x"}}"#),
            Some(Incoming::Other)
        );
        assert_eq!(parse("not json"), None);
        assert_eq!(parse(r#"{"type":20,"params":{}}"#), None);
    }

    #[test]
    fn send_frame_round_trips_numbers() {
        let frame: serde_json::Value = serde_json::from_str(&send_frame("bob", 12, "t1 ")).unwrap();
        assert_eq!(
            frame,
            serde_json::json!({"type":1,"params":{"toMessageId":"bob","message":"t1 ",
                "fileType":0,"clientMsgId":"c12"},"requestId":"r12"})
        );
        assert_eq!(request_number("r12"), Some(12));
        assert_eq!(client_msg_number("c12"), Some(12));
        assert_eq!(request_number("a12"), None);
    }

    #[test]
    fn payload_carries_send_time_and_size() {
        let text = payload(1_234_567, 64);
        assert_eq!(text.len(), 64);
        assert_eq!(payload_sent_us(&text), Some(1_234_567));
        let short = payload(99, 1);
        assert_eq!(payload_sent_us(&short), Some(99));
        assert_eq!(payload_sent_us("hello"), None);
    }
}
