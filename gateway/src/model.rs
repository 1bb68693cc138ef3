//! Domain values shared by the store, the delivery path and the bus: stored messages, notices,
//! and how each becomes a push that every receiving device shares ([`Prepared`]).

use chat_protocol::envelope::{Delivered, DirectMessage, FileInfo, GroupMessage, UserRef};
use chat_protocol::server::Received;
use chat_protocol::{date::date_string, trigger, ConversationId, MessageId, PreparedPush, PushMsg};
use chat_protocol::{GroupId, SystemEvent, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

use crate::delivery::Windowed;

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

/// User ids as the store takes them.
pub fn user_strings(users: &[UserId]) -> Vec<String> {
    users.iter().map(|u| u.as_str().to_owned()).collect()
}

/// The conversation of two users (see [`ConversationId::direct`]).
pub fn direct_conversation_id(a: &str, b: &str) -> String {
    match (UserId::parse(a), UserId::parse(b)) {
        (Ok(a), Ok(b)) => ConversationId::direct(&a, &b).into_string(),
        // Ids come validated from frames and tokens; an invalid one names no conversation.
        _ => String::new(),
    }
}

/// The conversation of a group (see [`ConversationId::group`]).
pub fn group_conversation_id(group_id: &str) -> String {
    format!("grp:{group_id}")
}

/// Who a message is addressed to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Target {
    /// A user, with its display name when the message was stored.
    Direct {
        /// The recipient's user id.
        to: String,
        /// The recipient's display name when the message was stored: pushes show it as sent.
        to_name: String,
    },
    /// A group.
    Group {
        /// The group; the message is in its conversation.
        group_id: String,
    },
}

/// A message as committed to the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredMessage {
    /// The cluster-wide unique id clients ack and de-duplicate by ([`new_id`]).
    pub message_id: String,
    /// The conversation it is in, whose seqs it takes ([`direct_conversation_id`],
    /// [`group_conversation_id`]).
    pub conversation_id: String,
    /// Its place in the conversation: 1, 2, 3… with no gap, allocated when it was stored.
    pub seq: i64,
    /// The sender's user id.
    pub from: String,
    /// The sender's display name when it sent: pushes show it as it was.
    pub from_name: String,
    /// The user or group it was sent to.
    pub target: Target,
    /// The text (`message` on the wire).
    pub body: String,
    /// The client's `fileType`, kept and pushed back as given (as a string).
    pub file_type: i64,
    /// The upload it carries (`file` on the wire). Its `url` is empty as stored: it is signed
    /// afresh wherever the message's envelope is made ([`crate::files::SigningStore`]). Boxed:
    /// most messages have none, and a message is moved and queued often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Box<FileInfo>>,
    /// The sender's `clientMsgId`: a send repeated with it is answered with this message, not
    /// stored twice.
    pub client_msg_id: Option<String>,
    /// When it was stored, in milliseconds since the Unix epoch (RECEIVED's `date`, the push's
    /// time).
    pub created_at: i64,
    /// The sender's `requestId` (or a fresh one), carried into every push of this message.
    pub request_id: String,
    /// (v1.1) Recalled by its sender: a tombstone, its body gone (RECALL, 32).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
    /// (v1.1) A group event (created, added, removed, …), stored as a message from `system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Box<SystemEvent>>,
}

/// The sender of group events, and of messages a backend posts for no user (`POST /api/messages`
/// with `from: "system"`): a user id no token may carry, so no client can connect or send as it.
pub const SYSTEM_USER: &str = "system";

impl StoredMessage {
    /// A group event as the message that stores it: from [`SYSTEM_USER`], empty text, in the
    /// group's conversation at `seq`.
    pub fn group_event(group_id: &str, seq: i64, event: SystemEvent, now: i64) -> Self {
        StoredMessage {
            message_id: new_id(),
            conversation_id: group_conversation_id(group_id),
            seq,
            from: SYSTEM_USER.to_owned(),
            from_name: SYSTEM_USER.to_owned(),
            target: Target::Group {
                group_id: group_id.to_owned(),
            },
            body: String::new(),
            file_type: 0,
            client_msg_id: None,
            created_at: now,
            request_id: new_id(),
            recalled: false,
            system: Some(Box::new(event)),
            file: None,
        }
    }

    /// `msg` of the push envelope (type 2 or 10).
    pub fn push_msg(&self) -> PushMsg {
        let from_user = UserRef::new(&self.from, &self.from_name);
        let conversation_id = conversation(&self.conversation_id);
        match &self.target {
            Target::Direct { to, to_name } => PushMsg::Deliver(DirectMessage {
                to_user: UserRef::new(to, to_name),
                from_user,
                message: self.body.clone(),
                file_type: self.file_type.to_string(),
                conversation_id,
                seq: self.seq,
                client_msg_id: self.client_msg_id.clone(),
                recalled: self.recalled,
                // A recalled message's file is served to nobody but its uploader any more.
                file: self.file.as_deref().filter(|_| !self.recalled).cloned(),
            }),
            Target::Group { group_id } => PushMsg::DeliverGroup(GroupMessage {
                group_id: GroupId::parse(group_id.as_str()).unwrap_or_else(|_| unnamed_group()),
                from_user,
                message: self.body.clone(),
                file_type: self.file_type.to_string(),
                conversation_id,
                seq: self.seq,
                client_msg_id: self.client_msg_id.clone(),
                recalled: self.recalled,
                system: self.system.as_deref().cloned(),
                // A recalled message's file is served to nobody but its uploader any more.
                file: self.file.as_deref().filter(|_| !self.recalled).cloned(),
            }),
        }
    }

    /// `params` of reply 0 (RECEIVED), sent to the sender once the message is durable.
    pub fn received(&self) -> Received {
        Received {
            date: date_string(self.created_at),
            message: self.body.clone(),
            message_id: self.message_id.clone(),
            seq: self.seq,
            conversation_id: conversation(&self.conversation_id),
            client_msg_id: self.client_msg_id.clone(),
        }
    }

    /// The recipient of a 1:1 message.
    pub fn target_user(&self) -> Option<&str> {
        match &self.target {
            Target::Direct { to, .. } => Some(to),
            Target::Group { .. } => None,
        }
    }

    /// Is `user` an addressee (not the sender) of this 1:1 message?
    pub fn is_direct_recipient(&self, user: &str) -> bool {
        matches!(&self.target, Target::Direct { to, .. } if to == user)
    }
}

fn conversation(id: &str) -> ConversationId {
    ConversationId::parse(id).expect("any string is a conversation id")
}

fn unnamed_group() -> GroupId {
    GroupId::parse("?").expect("a valid group id")
}

/// A stored message with its push prepared once: what travels to each local device.
#[derive(Debug, PartialEq)]
pub struct Prepared {
    /// The message: the window keys on its id and seq, and a bus event to another pod carries it.
    pub message: Arc<StoredMessage>,
    /// Its push, serialised once; each device adds only its own fields around it.
    pub push: PreparedPush,
}

impl Prepared {
    /// Serialises the push every receiving device of `message` shares.
    pub fn new(message: Arc<StoredMessage>) -> Self {
        let push = PreparedPush::new(
            message.created_at,
            Some(&message.message_id),
            &message.push_msg(),
            Some(&message.request_id),
            trigger::WEBSOCKET,
        );
        Self { message, push }
    }

    /// `message` with the push body another pod serialised for it.
    pub fn with_body(message: Arc<StoredMessage>, body: Arc<str>) -> Self {
        let push = PreparedPush::from_body(
            message.created_at,
            Some(&message.message_id),
            body,
            Some(&message.request_id),
            trigger::WEBSOCKET,
        );
        Self { message, push }
    }
}

impl Windowed for Prepared {
    fn id(&self) -> &str {
        &self.message.message_id
    }
    fn conversation(&self) -> &str {
        &self.message.conversation_id
    }
    fn seq(&self) -> i64 {
        self.message.seq
    }
}

/// A DELIVERED (17) notice for the original sender: one recipient device acked the message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredNotice {
    /// The message that was acked.
    pub message_id: String,
    /// The acked message's conversation, carried so the sender's client needs no lookup.
    pub conversation_id: String,
    /// The acked message's seq in that conversation.
    pub seq: i64,
    /// The recipient whose device acked it.
    pub by: String,
}

impl DeliveredNotice {
    /// The notice's push: its envelope gets a fresh `messageId` and `requestId` per device.
    pub fn prepare(&self) -> PreparedPush {
        let msg = match (
            MessageId::parse(&*self.message_id),
            UserId::parse(&*self.by),
        ) {
            (Ok(message_id), Ok(by)) => PushMsg::Delivered(Delivered {
                message_id,
                conversation_id: conversation(&self.conversation_id),
                seq: self.seq,
                by,
            }),
            _ => PushMsg::Other(Value::Null),
        };
        PreparedPush::new(now_ms(), None, &msg, None, trigger::WEBSOCKET)
    }
}

/// An HTTP `/message/send` notification: not stored, not acked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpPush {
    /// The object the caller posted, pushed to devices as it is.
    pub msg: Value,
    /// The call's `requestId`, carried in every push of it.
    pub request_id: String,
}

impl HttpPush {
    /// The push: the posted object as is, a fresh `messageId` per device, the call's `requestId`.
    pub fn prepare(&self) -> PreparedPush {
        PreparedPush::new(
            now_ms(),
            None,
            &PushMsg::Other(self.msg.clone()),
            Some(&self.request_id),
            trigger::HTTP,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            file: None,
            client_msg_id: Some("c-1".into()),
            created_at: 1_704_162_492_912,
            request_id: "r".into(),
            recalled: false,
            system: None,
        };
        let p = Prepared::new(Arc::new(m.clone()));
        let v: Value = serde_json::from_str(&p.push.render("s1", "bob", false, new_id)).unwrap();
        assert_eq!(v["msg"]["type"], 2);
        assert_eq!(
            v["msg"]["params"]["toUser"],
            serde_json::json!({"openid": "bob", "loginStatus": "1", "userName": "Bob"})
        );
        assert_eq!(v["msg"]["params"]["fileType"], "0");
        assert_eq!(v["msg"]["params"]["seq"], 42);
        assert_eq!(
            (v["msgType"].as_i64(), v["trigger"].as_i64()),
            (Some(1), Some(1))
        );
        assert_eq!(v["to"], serde_json::json!(["bob"]));
        assert_eq!(v["messageId"], m.message_id.as_str());
        assert_eq!(v["requestId"], "r");
        assert_eq!(v["sessionId"], "s1");
    }

    #[test]
    fn notices_get_fresh_ids_per_device() {
        let n = DeliveredNotice {
            message_id: new_id(),
            conversation_id: "dm:a:b".into(),
            seq: 1,
            by: "b".into(),
        };
        let p = n.prepare();
        let one: Value = serde_json::from_str(&p.render("s1", "a", false, new_id)).unwrap();
        let two: Value = serde_json::from_str(&p.render("s2", "a", false, new_id)).unwrap();
        assert_ne!(one["messageId"], two["messageId"]);
        assert_ne!(one["requestId"], two["requestId"]);
        assert_eq!(one["msg"]["params"]["messageId"], n.message_id.as_str());
        assert_eq!(one["msg"]["type"], 17);
    }
}
