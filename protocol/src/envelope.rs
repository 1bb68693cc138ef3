//! The push envelope (seeds 000/002): how the server hands a message, a notice or an HTTP push
//! to one receiving session.
//!
//! [`Envelope`] is the typed form (clients parse it; SYNC pages carry it). On the server's hot
//! path a push is [`PreparedPush`]: everything that is the same for every receiving device —
//! the `msg` body above all — is serialised **once**, and each device's frame is that shared
//! text with its own `sessionId`, `to` and `retry` written around it.

use std::sync::Arc;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::{kind, msg_type, trigger};

mod params;

pub use params::*;

/// An envelope's `msg`.
#[derive(Debug, Clone, PartialEq)]
pub enum PushMsg {
    /// 2.
    Deliver(DirectMessage),
    /// 10.
    DeliverGroup(GroupMessage),
    /// 17.
    Delivered(Delivered),
    /// 19.
    Read(ReadNotice),
    /// 25.
    Typing(TypingNotice),
    /// 33.
    Recalled(RecalledNotice),
    /// 27.
    Presence(PresenceNotice),
    /// An HTTP push's posted object, as posted (or a type this crate does not know).
    Other(Value),
}

impl PushMsg {
    /// The `msg.type` of a typed body.
    pub fn kind(&self) -> Option<u16> {
        match self {
            PushMsg::Deliver(_) => Some(kind::DELIVER),
            PushMsg::DeliverGroup(_) => Some(kind::DELIVER_GROUP),
            PushMsg::Delivered(_) => Some(kind::DELIVERED),
            PushMsg::Read(_) => Some(kind::READ_NOTICE),
            PushMsg::Typing(_) => Some(kind::TYPING_NOTICE),
            PushMsg::Recalled(_) => Some(kind::RECALLED),
            PushMsg::Presence(_) => Some(kind::PRESENCE),
            PushMsg::Other(_) => None,
        }
    }

    /// Parses a `msg` body; `http` bodies are kept as posted.
    fn parse(raw: &RawValue, http: bool) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct Body<'a> {
            #[serde(rename = "type", default, deserialize_with = "small_kind")]
            kind: Option<u16>,
            #[serde(borrow)]
            params: Option<&'a RawValue>,
        }
        /// A `type` this crate may not know (any JSON) reads as none, not as an error.
        fn small_kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
            let v = Value::deserialize(d)?;
            Ok(v.as_u64().and_then(|k| u16::try_from(k).ok()))
        }
        // A pushed body is an object with one `type` and one `params`: one that is not (two
        // `params`, say) is refused, not kept whole as an unknown body that would then be
        // written back as a known one.
        let body: Option<Body> = if http {
            None
        } else {
            Some(serde_json::from_str(raw.get())?)
        };
        let typed = |b: &Body| b.params.map(|p| p.get()).unwrap_or("{}").to_owned();
        Ok(match body {
            Some(b) if b.kind == Some(kind::DELIVER) => {
                PushMsg::Deliver(serde_json::from_str(&typed(&b))?)
            }
            Some(b) if b.kind == Some(kind::DELIVER_GROUP) => {
                PushMsg::DeliverGroup(serde_json::from_str(&typed(&b))?)
            }
            Some(b) if b.kind == Some(kind::DELIVERED) => {
                PushMsg::Delivered(serde_json::from_str(&typed(&b))?)
            }
            Some(b) if b.kind == Some(kind::READ_NOTICE) => {
                PushMsg::Read(serde_json::from_str(&typed(&b))?)
            }
            Some(b) if b.kind == Some(kind::TYPING_NOTICE) => {
                PushMsg::Typing(serde_json::from_str(&typed(&b))?)
            }
            Some(b) if b.kind == Some(kind::RECALLED) => {
                PushMsg::Recalled(serde_json::from_str(&typed(&b))?)
            }
            Some(b) if b.kind == Some(kind::PRESENCE) => {
                PushMsg::Presence(serde_json::from_str(&typed(&b))?)
            }
            _ => PushMsg::Other(serde_json::from_str(raw.get())?),
        })
    }
}

impl Serialize for PushMsg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn typed<S: Serializer, P: Serialize>(
            s: S,
            kind: u16,
            params: &P,
        ) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(3))?;
            map.serialize_entry("type", &kind)?;
            map.serialize_entry("status", &200)?;
            map.serialize_entry("params", params)?;
            map.end()
        }
        match self {
            PushMsg::Deliver(p) => typed(s, kind::DELIVER, p),
            PushMsg::DeliverGroup(p) => typed(s, kind::DELIVER_GROUP, p),
            PushMsg::Delivered(p) => typed(s, kind::DELIVERED, p),
            PushMsg::Read(p) => typed(s, kind::READ_NOTICE, p),
            PushMsg::Typing(p) => typed(s, kind::TYPING_NOTICE, p),
            PushMsg::Recalled(p) => typed(s, kind::RECALLED, p),
            PushMsg::Presence(p) => typed(s, kind::PRESENCE, p),
            PushMsg::Other(v) => v.serialize(s),
        }
    }
}

/// One push as one session receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// ms since the epoch: when the message was stored, or the notice made.
    pub active_time: i64,
    /// Always `"system"`.
    pub from: String,
    /// The stored message's id (2/10: ack and de-duplicate by it), or a fresh one.
    pub message_id: String,
    /// The body.
    pub msg: PushMsg,
    /// Always 1 (business).
    pub msg_type: i32,
    /// The sender's request id (as a string), or a fresh one.
    pub request_id: String,
    /// The receiving session.
    pub session_id: String,
    /// `[<receiving user>]`.
    pub to: Vec<String>,
    /// 1 WebSocket, 2 HTTP.
    pub trigger: i32,
    /// True only on the one resend after the ack timeout.
    pub retry: bool,
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            active_time: i64,
            from: String,
            message_id: String,
            msg: Box<RawValue>,
            msg_type: i32,
            request_id: String,
            session_id: String,
            to: Vec<String>,
            trigger: i32,
            retry: bool,
        }
        let r = Raw::deserialize(d)?;
        let msg = PushMsg::parse(&r.msg, r.trigger == trigger::HTTP).map_err(D::Error::custom)?;
        Ok(Envelope {
            active_time: r.active_time,
            from: r.from,
            message_id: r.message_id,
            msg,
            msg_type: r.msg_type,
            request_id: r.request_id,
            session_id: r.session_id,
            to: r.to,
            trigger: r.trigger,
            retry: r.retry,
        })
    }
}

impl Envelope {
    /// This envelope's shared part, prepared once (its ids shared by every device).
    pub fn prepare(&self) -> PreparedPush {
        PreparedPush::new(
            self.active_time,
            Some(&self.message_id),
            &self.msg,
            Some(&self.request_id),
            self.trigger,
        )
    }
}

/// A push serialised once for every device that receives it. The `msg` body is the part that
/// costs: it is written once, here, and shared; each device's frame is written around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedPush {
    active_time: i64,
    /// `None`: every device's envelope gets a fresh id (notices, HTTP pushes).
    message_id: Option<Arc<str>>,
    body: Arc<str>,
    /// `None`: fresh per device, like `message_id`.
    request_id: Option<Arc<str>>,
    trigger: i32,
}

impl PreparedPush {
    /// Serialises `msg` once. Ids left `None` are made fresh for each device by
    /// [`PreparedPush::render`].
    pub fn new(
        active_time: i64,
        message_id: Option<&str>,
        msg: &impl Serialize,
        request_id: Option<&str>,
        trigger: i32,
    ) -> Self {
        Self {
            active_time,
            message_id: message_id.map(Arc::from),
            body: serde_json::to_string(msg)
                .expect("a push body serialises")
                .into(),
            request_id: request_id.map(Arc::from),
            trigger,
        }
    }

    /// A push whose `msg` body another process serialised (a pod that forwards a message sends
    /// the body it prepared, so the receiving pod writes exactly that text around its devices'
    /// fields). The body must be a JSON value; it is written into frames as it is.
    pub fn from_body(
        active_time: i64,
        message_id: Option<&str>,
        body: Arc<str>,
        request_id: Option<&str>,
        trigger: i32,
    ) -> Self {
        Self {
            active_time,
            message_id: message_id.map(Arc::from),
            body,
            request_id: request_id.map(Arc::from),
            trigger,
        }
    }

    /// The serialised `msg` body, shared.
    pub fn body(&self) -> &Arc<str> {
        &self.body
    }

    /// The shared message id, when the envelopes share one.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// The frame for one receiving session of `to_user`; `new_id` makes the ids that are fresh
    /// per device.
    pub fn render(
        &self,
        session_id: &str,
        to_user: &str,
        retry: bool,
        new_id: fn() -> String,
    ) -> String {
        let mut out =
            String::with_capacity(self.body.len() + session_id.len() + to_user.len() + 240);
        out.push_str("{\"activeTime\":");
        out.push_str(&self.active_time.to_string());
        out.push_str(",\"from\":\"system\",\"messageId\":");
        match &self.message_id {
            Some(id) => push_json_str(&mut out, id),
            None => push_json_str(&mut out, &new_id()),
        }
        out.push_str(",\"msg\":");
        out.push_str(&self.body);
        out.push_str(",\"msgType\":");
        out.push_str(&msg_type::BUSINESS.to_string());
        out.push_str(",\"requestId\":");
        match &self.request_id {
            Some(id) => push_json_str(&mut out, id),
            None => push_json_str(&mut out, &new_id()),
        }
        out.push_str(",\"sessionId\":");
        push_json_str(&mut out, session_id);
        out.push_str(",\"to\":[");
        push_json_str(&mut out, to_user);
        out.push_str("],\"trigger\":");
        out.push_str(&self.trigger.to_string());
        out.push_str(if retry {
            ",\"retry\":true}"
        } else {
            ",\"retry\":false}"
        });
        out
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConversationId, MessageId, UserId};

    fn unused_id() -> String {
        unreachable!("the envelope's ids are shared")
    }

    #[test]
    fn fresh_ids_are_made_per_device() {
        fn id() -> String {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            format!("id{}", N.fetch_add(1, Ordering::Relaxed))
        }
        let p = PreparedPush::new(1, None, &PushMsg::Other(Value::Null), Some("r"), 2);
        let a: Value = serde_json::from_str(&p.render("s", "u", false, id)).unwrap();
        let b: Value = serde_json::from_str(&p.render("s", "u", false, id)).unwrap();
        assert_ne!(a["messageId"], b["messageId"]);
        assert_eq!(
            (&a["requestId"], &b["requestId"]),
            (&Value::from("r"), &Value::from("r"))
        );
    }

    #[test]
    fn prepared_push_renders_the_envelope_serde_would() {
        let env = Envelope {
            active_time: 1_704_162_492_912,
            from: "system".into(),
            message_id: "c41c45611af44a36a79a93d5193aa116".into(),
            msg: PushMsg::Other(
                serde_json::json!({"text": "a \"quoted\"\n\u{1} line", "type": 99}),
            ),
            msg_type: 1,
            request_id: "r\\1".into(),
            session_id: "gw-0_bob\t_1".into(),
            to: vec!["bob\u{7f}é".into()],
            trigger: trigger::HTTP,
            retry: true,
        };
        let rendered = env
            .prepare()
            .render(&env.session_id, &env.to[0], env.retry, unused_id);
        let a: Value = serde_json::from_str(&rendered).unwrap();
        assert_eq!(a, serde_json::to_value(&env).unwrap());
        let back: Envelope = serde_json::from_str(&rendered).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn typed_bodies_parse_back() {
        let env = Envelope {
            active_time: 1,
            from: "system".into(),
            message_id: "m".into(),
            msg: PushMsg::Delivered(Delivered {
                message_id: MessageId::parse("m0").unwrap(),
                conversation_id: ConversationId::parse("dm:a:b").unwrap(),
                seq: 3,
                by: UserId::parse("b").unwrap(),
            }),
            msg_type: 1,
            request_id: "r".into(),
            session_id: "s".into(),
            to: vec!["a".into()],
            trigger: trigger::WEBSOCKET,
            retry: false,
        };
        let text = env.prepare().render("s", "a", false, unused_id);
        assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), env);
    }
}
