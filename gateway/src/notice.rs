//! v1.1 notifications: READ (19), TYPING (25), PRESENCE (27) and RECALLED (33) — not stored, never acked or retried, each
//! envelope with a fresh `messageId` (DESIGN §11). What they announce is also visible through
//! SYNC (`readSeq`, recalled tombstones), except typing, which is only ever "now".
//!
//! One [`Notice`] type for all of them, so one [`crate::routing::Payload`] variant and one bus
//! event carry every kind across pods.

use chat_protocol::envelope::{PresenceNotice, ReadNotice, RecalledNotice, TypingNotice};
use chat_protocol::{
    trigger, ConversationId, MessageId, PreparedPush, PushMsg, TypingState, UserId,
};
use serde::{Deserialize, Serialize};

use crate::model::now_ms;

/// A notification for some users' devices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Notice {
    /// 19: `user_id` read `conversation_id` up to `read_seq`.
    #[serde(rename_all = "camelCase")]
    Read {
        /// The conversation.
        conversation_id: ConversationId,
        /// The reader.
        user_id: UserId,
        /// Its `readSeq` now.
        read_seq: i64,
    },
    /// 25: `user_id` started or stopped typing in `conversation_id`.
    #[serde(rename_all = "camelCase")]
    Typing {
        /// The conversation.
        conversation_id: ConversationId,
        /// Who types.
        user_id: UserId,
        /// Started or stopped.
        state: TypingState,
    },
    /// 33: the message `message_id` (`seq` of `conversation_id`) was recalled by its sender.
    #[serde(rename_all = "camelCase")]
    Recalled {
        /// The recalled message.
        message_id: MessageId,
        /// Its conversation.
        conversation_id: ConversationId,
        /// Its seq.
        seq: i64,
    },
    /// 27: `user_id`'s presence, as one watcher may see it.
    #[serde(rename_all = "camelCase")]
    Presence {
        /// Whose presence.
        user_id: UserId,
        /// Online now?
        online: bool,
        /// When its last device left; `None` while online, never seen, or not visible.
        last_seen: Option<i64>,
    },
}

impl Notice {
    /// The notice's push, serialised once for every device of a pod; each envelope gets a fresh
    /// `messageId` and `requestId`.
    pub fn prepare(&self) -> PreparedPush {
        let msg = match self.clone() {
            Notice::Read {
                conversation_id,
                user_id,
                read_seq,
            } => PushMsg::Read(ReadNotice {
                conversation_id,
                user_id,
                read_seq,
            }),
            Notice::Typing {
                conversation_id,
                user_id,
                state,
            } => PushMsg::Typing(TypingNotice {
                conversation_id,
                user_id,
                state,
            }),
            Notice::Recalled {
                message_id,
                conversation_id,
                seq,
            } => PushMsg::Recalled(RecalledNotice {
                message_id,
                conversation_id,
                seq,
            }),
            Notice::Presence {
                user_id,
                online,
                last_seen,
            } => PushMsg::Presence(PresenceNotice {
                user_id,
                online,
                last_seen,
            }),
        };
        PreparedPush::new(now_ms(), None, &msg, None, trigger::WEBSOCKET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_crosses_pods_as_it_was() {
        let n = Notice::Typing {
            conversation_id: ConversationId::parse("grp:g").unwrap(),
            user_id: UserId::parse("alice").unwrap(),
            state: TypingState::Start,
        };
        let text = serde_json::to_string(&n).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"typing","conversationId":"grp:g","userId":"alice","state":"start"}"#
        );
        assert_eq!(serde_json::from_str::<Notice>(&text).unwrap(), n);
        let push = n.prepare().render("s1", "bob", false, || "id".to_owned());
        let v: serde_json::Value = serde_json::from_str(&push).unwrap();
        assert_eq!(v["msg"]["type"], 25);
        assert_eq!(v["msg"]["params"]["userId"], "alice");
        assert_eq!(v["msg"]["params"]["state"], "start");
    }
}
