//! A stored message as both backends read it: its columns and its row.

use chat_protocol::envelope::FileInfo;

use crate::model::{StoredMessage, Target};

/// The columns of a stored message ([`MessageRow`]).
pub(in crate::store) const MESSAGE_COLUMNS: &str = "conversation_id, seq, message_id, sender, sender_name, recipient, recipient_name, group_id, body, file_type, client_msg_id, request_id, created_at";
/// The same, qualified with the `m` alias, for joins.
pub(in crate::store) const MESSAGE_COLUMNS_M: &str = "m.conversation_id, m.seq, m.message_id, m.sender, m.sender_name, m.recipient, m.recipient_name, m.group_id, m.body, m.file_type, m.client_msg_id, m.request_id, m.created_at";

/// The columns page reads return: [`MESSAGE_COLUMNS`], whether the message was recalled, and
/// the group event it stores.
pub(in crate::store) const READ_COLUMNS: &str = "conversation_id, seq, message_id, sender, sender_name, recipient, recipient_name, group_id, body, file_type, client_msg_id, request_id, created_at, recalled_at, system";
/// The same, qualified with the `m` alias, for joins.
pub(in crate::store) const READ_COLUMNS_M: &str = "m.conversation_id, m.seq, m.message_id, m.sender, m.sender_name, m.recipient, m.recipient_name, m.group_id, m.body, m.file_type, m.client_msg_id, m.request_id, m.created_at, m.recalled_at, m.system";
/// The file columns a read adds to [`MESSAGE_COLUMNS_M`], from `files f` left-joined on
/// `m.file_id`: a message's file comes back with it, and a deleted file (retention, erasure)
/// drops out of the envelope.
pub(in crate::store) const FILE_COLUMNS_F: &str =
    "f.id AS file_id, f.name AS file_name, f.size AS file_size, f.mime AS file_mime";

/// A row of `messages`, decoded by column name.
#[derive(sqlx::FromRow)]
pub(in crate::store) struct MessageRow {
    pub(in crate::store) conversation_id: String,
    pub(in crate::store) seq: i64,
    pub(in crate::store) message_id: String,
    pub(in crate::store) sender: String,
    pub(in crate::store) sender_name: String,
    pub(in crate::store) recipient: Option<String>,
    pub(in crate::store) recipient_name: Option<String>,
    pub(in crate::store) group_id: Option<String>,
    pub(in crate::store) body: String,
    pub(in crate::store) file_type: i64,
    pub(in crate::store) client_msg_id: Option<String>,
    pub(in crate::store) request_id: String,
    pub(in crate::store) created_at: i64,
    /// Read only by page reads ([`READ_COLUMNS`]); the writer's lookups leave it out.
    #[sqlx(default)]
    pub(in crate::store) recalled_at: Option<i64>,
    /// A group event's JSON; read only by page reads, as `recalled_at`.
    #[sqlx(default)]
    pub(in crate::store) system: Option<String>,
    /// [`FILE_COLUMNS_F`], where the statement reads them (the writer's lookups do not: a
    /// duplicate's reply and an ack need no file).
    #[sqlx(default)]
    pub(in crate::store) file_id: Option<String>,
    #[sqlx(default)]
    pub(in crate::store) file_name: Option<String>,
    #[sqlx(default)]
    pub(in crate::store) file_size: Option<i64>,
    #[sqlx(default)]
    pub(in crate::store) file_mime: Option<String>,
}

impl From<MessageRow> for StoredMessage {
    fn from(r: MessageRow) -> Self {
        let target = match r.group_id {
            Some(group_id) => Target::Group { group_id },
            None => {
                let to = r.recipient.unwrap_or_default();
                Target::Direct {
                    to_name: r.recipient_name.unwrap_or_else(|| to.clone()),
                    to,
                }
            }
        };
        let file = match (r.file_id, r.file_name, r.file_size, r.file_mime) {
            (Some(file_id), Some(name), Some(size), Some(mime)) => Some(Box::new(FileInfo {
                file_id,
                name,
                size,
                mime,
                url: String::new(),
            })),
            _ => None,
        };
        StoredMessage {
            message_id: r.message_id,
            conversation_id: r.conversation_id,
            seq: r.seq,
            from: r.sender,
            from_name: r.sender_name,
            target,
            body: r.body,
            file_type: r.file_type,
            file,
            client_msg_id: r.client_msg_id,
            created_at: r.created_at,
            request_id: r.request_id,
            recalled: r.recalled_at.is_some(),
            system: r
                .system
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
        }
    }
}

/// A message's columns as the values an `INSERT` binds, in [`MESSAGE_COLUMNS`]' order from
/// `recipient` to `group_id`: `(recipient, recipient_name, group_id)`.
pub(in crate::store) fn target_columns(
    m: &StoredMessage,
) -> (Option<&str>, Option<&str>, Option<&str>) {
    match &m.target {
        Target::Direct { to, to_name } => (Some(to.as_str()), Some(to_name.as_str()), None),
        Target::Group { group_id } => (None, None, Some(group_id.as_str())),
    }
}
