//! What the offline-push webhook posts, pure: the `message.offline` body, its signature, and the
//! retry schedule.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::model::StoredMessage;

/// Unicode code points of the text a `preview` keeps.
pub const PREVIEW_CHARS: usize = 100;
/// The longest delay between two attempts: backoff doubles up to here, then stays.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The header that carries `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Chat-Signature";
/// The header that names the delivery, `<messageId>:<userId>`: receivers de-duplicate by it.
pub const DELIVERY_HEADER: &str = "X-Chat-Delivery";
/// The event's `event` field.
pub const EVENT: &str = "message.offline";

/// The body of one delivery: a stored message, for one recipient user.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OfflineEvent<'a> {
    /// Always [`EVENT`].
    pub event: &'static str,
    /// The recipient user the push is for.
    pub user_id: &'a str,
    /// The stored message.
    pub message_id: &'a str,
    /// Its conversation.
    pub conversation_id: &'a str,
    /// Its seq there.
    pub seq: i64,
    /// The sender's user id.
    pub from_user: &'a str,
    /// The text's first [`PREVIEW_CHARS`] code points; empty for a recalled message.
    pub preview: &'a str,
    /// The message's `fileType`.
    pub file_type: i64,
    /// When the message was stored, ms since the epoch.
    pub ts: i64,
}

impl<'a> OfflineEvent<'a> {
    /// The event announcing `message` to `user`.
    pub fn new(message: &'a StoredMessage, user: &'a str) -> Self {
        Self {
            event: EVENT,
            user_id: user,
            message_id: &message.message_id,
            conversation_id: &message.conversation_id,
            seq: message.seq,
            from_user: &message.from,
            preview: if message.recalled {
                ""
            } else {
                preview(&message.body)
            },
            file_type: message.file_type,
            ts: message.created_at,
        }
    }

    /// The exact JSON posted, and signed, on every attempt.
    pub fn body(&self) -> String {
        serde_json::to_string(self).expect("an event serialises")
    }
}

/// The first [`PREVIEW_CHARS`] Unicode code points of `text`.
pub fn preview(text: &str) -> &str {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// `X-Chat-Delivery`: `<messageId>:<userId>`.
pub fn delivery_id(message_id: &str, user_id: &str) -> String {
    format!("{message_id}:{user_id}")
}

/// `X-Chat-Signature`: `sha256=` and the hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The delay before attempt `attempts + 1`, after `attempts` failed ones: full jitter over
/// `base · 2^(attempts-1)`, capped at [`MAX_BACKOFF`]. `unit` is a uniform draw in `[0, 1)`, so
/// receivers that failed together do not get their retries back together.
pub fn backoff(base: Duration, attempts: u32, unit: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let ceiling = base.saturating_mul(1 << exp).min(MAX_BACKOFF);
    // Never zero: a receiver that fails at once is not hammered in a loop.
    ceiling.mul_f64(unit.clamp(0.0, 1.0)).max(base / 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Target;

    #[test]
    fn preview_keeps_the_first_100_code_points() {
        assert_eq!(preview("hi"), "hi");
        let long: String = "é🙂".repeat(80);
        let p = preview(&long);
        assert_eq!(p.chars().count(), 100);
        assert!(long.starts_with(p));
    }

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1, 0.999_999).as_millis(), 999);
        assert_eq!(backoff(base, 3, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(base, 30, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(base, 2, 0.0), base / 10);
    }

    #[test]
    fn event_has_the_documented_fields() {
        let m = StoredMessage {
            message_id: "m1".into(),
            conversation_id: "c1".into(),
            seq: 7,
            from: "alice".into(),
            from_name: "Alice".into(),
            target: Target::Direct {
                to: "bob".into(),
                to_name: "Bob".into(),
            },
            body: "hello".into(),
            file_type: 1,
            client_msg_id: None,
            created_at: 1_700_000_000_000,
            request_id: "r".into(),
            recalled: false,
            system: None,
            file: None,
        };
        let v: serde_json::Value =
            serde_json::from_str(&OfflineEvent::new(&m, "bob").body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"event": "message.offline", "userId": "bob", "messageId": "m1",
                "conversationId": "c1", "seq": 7, "fromUser": "alice", "preview": "hello",
                "fileType": 1, "ts": 1_700_000_000_000i64})
        );
        let recalled = StoredMessage {
            recalled: true,
            ..m.clone()
        };
        assert_eq!(OfflineEvent::new(&recalled, "bob").preview, "");
    }
}
