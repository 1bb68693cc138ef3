//! Domain values shared by the store, the delivery path and the bus: stored messages, conversation
//! ids, and how a stored message is shown to a client (reply 0, push envelope 2/10).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::protocol::{self, kind, Envelope, UserRef};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh cluster-wide unique id: 32 lowercase hex chars. A UUIDv7: it starts with the time,
/// so ids made one after another sort together and the database's unique index on message ids
/// takes each new one at its right edge, where a random id would land on any page of it (in a
/// large table, a read from disk and a full-page image in the WAL for most inserts). The random
/// bits after the millisecond keep ids made by different pods apart.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// The conversation of two users: the same id whoever sends. User ids are escaped so that
/// `a:b` + `c` and `a` + `b:c` never collide.
pub fn direct_conversation_id(a: &str, b: &str) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("dm:{}:{}", escape(lo), escape(hi))
}

pub fn group_conversation_id(group_id: &str) -> String {
    format!("grp:{group_id}")
}

fn escape(id: &str) -> String {
    id.replace('%', "%25").replace(':', "%3A")
}

/// Who a message is addressed to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Target {
    Direct { to: String, to_name: String },
    Group { group_id: String },
}

/// A message as committed to the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredMessage {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub from: String,
    pub from_name: String,
    pub target: Target,
    pub body: String,
    pub file_type: i64,
    pub client_msg_id: Option<String>,
    pub created_at: i64,
    /// The sender's `requestId` (or a fresh one), carried into every push of this message.
    pub request_id: String,
}

impl StoredMessage {
    pub fn push_kind(&self) -> u16 {
        match self.target {
            Target::Direct { .. } => kind::DELIVER,
            Target::Group { .. } => kind::DELIVER_GROUP,
        }
    }

    /// `msg.params` of the push envelope (type 2 or 10).
    pub fn push_params(&self) -> Value {
        let from = UserRef::new(&self.from, &self.from_name);
        match &self.target {
            Target::Direct { to, to_name } => json!({
                "toUser": UserRef::new(to, to_name),
                "fromUser": from,
                "message": self.body,
                "fileType": self.file_type.to_string(),
                "conversationId": self.conversation_id,
                "seq": self.seq,
                "clientMsgId": self.client_msg_id,
            }),
            Target::Group { group_id } => json!({
                "groupId": group_id,
                "fromUser": from,
                "message": self.body,
                "fileType": self.file_type.to_string(),
                "conversationId": self.conversation_id,
                "seq": self.seq,
                "clientMsgId": self.client_msg_id,
            }),
        }
    }

    /// The envelope pushed to one receiving session of `to_user`.
    pub fn envelope(&self, session_id: &str, to_user: &str, retry: bool) -> Envelope {
        Envelope {
            active_time: self.created_at,
            from: "system".to_owned(),
            message_id: self.message_id.clone(),
            msg: protocol::push_msg(self.push_kind(), self.push_params()),
            msg_type: protocol::msg_type::BUSINESS,
            request_id: self.request_id.clone(),
            session_id: session_id.to_owned(),
            to: vec![to_user.to_owned()],
            trigger: protocol::trigger::WEBSOCKET,
            retry,
        }
    }

    /// `params` of reply 0 (RECEIVED), sent to the sender once the message is durable.
    pub fn received_params(&self) -> Value {
        json!({
            "date": protocol::date_string(self.created_at),
            "message": self.body,
            "messageId": self.message_id,
            "seq": self.seq,
            "conversationId": self.conversation_id,
            "clientMsgId": self.client_msg_id,
        })
    }

    /// Is `user` an addressee (not the sender) of this 1:1 message?
    pub fn is_direct_recipient(&self, user: &str) -> bool {
        matches!(&self.target, Target::Direct { to, .. } if to == user)
    }
}

/// A DELIVERED (17) notice for the original sender: one recipient device acked the message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredNotice {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub by: String,
}

impl DeliveredNotice {
    pub fn envelope(&self, session_id: &str, to_user: &str) -> Envelope {
        Envelope {
            active_time: now_ms(),
            from: "system".to_owned(),
            message_id: new_id(),
            msg: protocol::push_msg(
                kind::DELIVERED,
                json!({"messageId": self.message_id, "conversationId": self.conversation_id, "seq": self.seq, "by": self.by}),
            ),
            msg_type: protocol::msg_type::BUSINESS,
            request_id: new_id(),
            session_id: session_id.to_owned(),
            to: vec![to_user.to_owned()],
            trigger: protocol::trigger::WEBSOCKET,
            retry: false,
        }
    }
}

/// An HTTP `/message/send` notification: not stored, not acked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpPush {
    pub msg: Value,
    pub request_id: String,
}

impl HttpPush {
    pub fn envelope(&self, session_id: &str, to_user: &str) -> Envelope {
        Envelope {
            active_time: now_ms(),
            from: "system".to_owned(),
            message_id: new_id(),
            msg: self.msg.clone(),
            msg_type: protocol::msg_type::BUSINESS,
            request_id: self.request_id.clone(),
            session_id: session_id.to_owned(),
            to: vec![to_user.to_owned()],
            trigger: protocol::trigger::HTTP,
            retry: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_ids_are_symmetric_and_unambiguous() {
        assert_eq!(
            direct_conversation_id("bob", "alice"),
            direct_conversation_id("alice", "bob")
        );
        assert_ne!(
            direct_conversation_id("a:b", "c"),
            direct_conversation_id("a", "b:c")
        );
    }

    #[test]
    fn ids_are_32_lowercase_hex_chars_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
        }
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids sort in the order they were made"
        );
    }

    #[test]
    fn envelope_has_seed_fields() {
        let m = StoredMessage {
            message_id: new_id(),
            conversation_id: direct_conversation_id("alice", "bob"),
            seq: 42,
            from: "alice".into(),
            from_name: "Alice".into(),
            target: Target::Direct {
                to: "bob".into(),
                to_name: "Bob".into(),
            },
            body: "hello".into(),
            file_type: 0,
            client_msg_id: Some("c-1".into()),
            created_at: 1_704_162_492_912,
            request_id: "r".into(),
        };
        let v = serde_json::to_value(m.envelope("s1", "bob", false)).unwrap();
        assert_eq!(v["msg"]["type"], 2);
        assert_eq!(
            v["msg"]["params"]["toUser"],
            json!({"openid": "bob", "loginStatus": "1", "userName": "Bob"})
        );
        assert_eq!(v["msg"]["params"]["fileType"], "0");
        assert_eq!(v["msg"]["params"]["seq"], 42);
        assert_eq!(
            (v["msgType"].as_i64(), v["trigger"].as_i64()),
            (Some(1), Some(1))
        );
        assert_eq!(v["to"], json!(["bob"]));
        assert_eq!(v["messageId"].as_str().unwrap().len(), 32);
    }
}
