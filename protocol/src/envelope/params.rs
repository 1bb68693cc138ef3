//! What a push's `msg.params` holds, one struct per push type: messages (2, 10) with the
//! user and file objects inside them, and the notices (17, 19, 25, 27, 33).

use serde::{Deserialize, Serialize};

use crate::client::TypingState;
use crate::groups::SystemEvent;
use crate::ids::{ConversationId, GroupId, MessageId, UserId};

/// The seeds' user object inside pushes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRef {
    /// The user id.
    pub openid: String,
    /// Always `"1"`.
    #[serde(rename = "loginStatus")]
    pub login_status: String,
    /// The display name.
    #[serde(rename = "userName")]
    pub user_name: String,
}

impl UserRef {
    /// `id` with its display name, online.
    pub fn new(id: &str, name: &str) -> Self {
        Self {
            openid: id.to_owned(),
            login_status: "1".to_owned(),
            user_name: name.to_owned(),
        }
    }
}

/// `msg.params` of DELIVER (2): a 1:1 message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectMessage {
    /// The recipient, as the server knew its name when storing.
    pub to_user: UserRef,
    /// The sender.
    pub from_user: UserRef,
    /// The text.
    pub message: String,
    /// The sender's `fileType`, as a string (the seeds' format).
    pub file_type: String,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Its sequence number in the conversation.
    pub seq: i64,
    /// The sender's idempotency key, `null` when it gave none.
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// (v1.1) The sender recalled it: a tombstone, `message` is empty. Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
    /// The file the message carries, with a signed URL; absent for a message without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileInfo>,
}

/// `msg.params` of DELIVER GROUP (10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMessage {
    /// The group.
    pub group_id: GroupId,
    /// The sender.
    pub from_user: UserRef,
    /// The text.
    pub message: String,
    /// The sender's `fileType`, as a string.
    pub file_type: String,
    /// `grp:<groupId>`.
    pub conversation_id: ConversationId,
    /// Its sequence number in the conversation.
    pub seq: i64,
    /// The sender's idempotency key, `null` when it gave none.
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// (v1.1) The sender recalled it: a tombstone, `message` is empty. Absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
    /// (v1.1) A group event, stored as a message from `system` with an empty `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemEvent>,
    /// The file the message carries, with a signed URL; absent for a message without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileInfo>,
}

/// `file` of DELIVER (2) and DELIVER GROUP (10): an upload the message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// The id `POST /api/files` answered with.
    pub file_id: String,
    /// The name the uploader gave (`X-File-Name`).
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its media type (the upload's `Content-Type`).
    pub mime: String,
    /// A signed URL that serves the bytes without any header for at least an hour (an `<img>`
    /// can load it); relative to the gateway when no public URL is configured.
    pub url: String,
}

/// `msg.params` of DELIVERED (17).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivered {
    /// The message that was delivered (not the envelope's own id).
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Its seq.
    pub seq: i64,
    /// The recipient whose device acked it.
    pub by: UserId,
}

/// `msg.params` of the READ notice (19, v1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadNotice {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Who read it.
    pub user_id: UserId,
    /// Up to where, now.
    pub read_seq: i64,
}

/// `msg.params` of the TYPING notice (25, v1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingNotice {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Who is typing.
    pub user_id: UserId,
    /// Started or stopped.
    pub state: TypingState,
}

/// `msg.params` of RECALLED (33, v1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecalledNotice {
    /// The recalled message (not the envelope's own id).
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Its seq.
    pub seq: i64,
}

/// `msg.params` of the PRESENCE notice (27, v1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceNotice {
    /// Whose presence changed.
    pub user_id: UserId,
    /// Whether one of its devices is connected now.
    pub online: bool,
    /// When its last device left (ms since the epoch); null while online, or when the
    /// subscriber may not see the user.
    pub last_seen: Option<i64>,
}
