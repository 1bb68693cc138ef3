//! The bodies of the gateway's public HTTP API (DESIGN §6): the seeds' answer wrapper
//! `{"success", "statusCode", "content", "msg"}`, what each call puts in it, and the error body.

use serde::{Deserialize, Serialize};

/// The seeds' wrapper around every successful API answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wrapped<T> {
    /// Always true on success (errors use [`ApiError`]).
    pub success: bool,
    /// The HTTP status, repeated.
    pub status_code: u16,
    /// The call's own answer.
    pub content: T,
    /// `"ok"`.
    pub msg: String,
}

impl<T> Wrapped<T> {
    /// A 200 answer carrying `content`.
    pub fn ok(content: T) -> Self {
        Self {
            success: true,
            status_code: 200,
            content,
            msg: "ok".into(),
        }
    }
}

/// `POST /message/send`'s content: the users who had no online device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pushed {
    /// Sorted, each once.
    pub not_exist: Vec<String>,
}

/// `POST /api/users/{id}/kick`'s content: how many connections were told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KickedUser {
    /// Connections closed, cluster-wide.
    pub kicked: usize,
}

/// `DELETE /api/users/{id}`'s content (v1.1 data lifecycle): what erasing the user did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasedUser {
    /// The user.
    pub user_id: String,
    /// Its messages made tombstones.
    pub messages: u64,
    /// Its uploads deleted.
    pub files: usize,
    /// The groups it left.
    pub groups: usize,
    /// Its connections closed (KICKED `logout`), cluster-wide.
    pub kicked: usize,
}

/// `POST /api/messages`'s content: where the message was stored (the first one, for a repeated
/// `clientMsgId`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostedMessage {
    /// The stored message's id (32 hex chars).
    pub message_id: String,
    /// Its seq in its conversation.
    pub seq: i64,
    /// Its conversation.
    pub conversation_id: String,
}

/// `GET /api/conversations/{id}/messages`'s content: a page of history, as SYNC's reply 14.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// The conversation read.
    pub conversation_id: String,
    /// The messages above `afterSeq`, oldest first, as the envelopes devices are pushed.
    pub messages: Vec<serde_json::Value>,
    /// Whether more follow: read again from the last one's seq.
    pub has_more: bool,
}

/// `POST /dev/login`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevToken {
    /// A client token for the user.
    pub token: String,
}

/// The body of every HTTP error: the same `code` and `message` as an ERROR frame's params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// A stable machine-readable code (`bad_request`, `unauthorized`, …).
    pub code: String,
    /// For people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_is_the_seeds_shape() {
        let v = serde_json::to_value(Wrapped::ok(Pushed {
            not_exist: vec!["zed".into()],
        }))
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"success": true, "statusCode": 200,
                               "content": {"notExist": ["zed"]}, "msg": "ok"})
        );
    }
}
