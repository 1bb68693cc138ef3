//! READ (18), TYPING (24) and RECALL (32), v1.1: a user's read position, who is typing, and
//! taking a message back. READ is stored and answered (reply 18), and when it moved the reader's
//! other devices and, in a 1:1 conversation, the peer's devices get READ (19). TYPING is
//! neither stored nor answered: the other participants' devices get TYPING (25). RECALL makes
//! the message a tombstone and tells every participant's devices RECALLED (33). All three
//! notices are notifications: a fresh `messageId`, never acked or retried.

use std::sync::Arc;

use chat_protocol::server::{reply_json, ReadReply, RecallReply};
use chat_protocol::{ConversationId, MessageId, Reply, RequestId, TypingState};

use crate::app::App;
use crate::error::Result;
use crate::notice::Notice;
use crate::routing::Payload;
use crate::session::ops::Done;
use crate::session::Identity;

pub(super) async fn read(
    app: &App,
    who: &Identity,
    conversation_id: ConversationId,
    seq: i64,
    rid: Option<&RequestId>,
) -> Result<Done> {
    let user = who.user.as_str();
    let mark = app
        .store
        .mark_read(user, conversation_id.as_str(), seq)
        .await?;
    if mark.moved {
        // The reader's other devices, and a 1:1 peer (a group's members are not told: SYNC's
        // list has each one's own readSeq; per-member read receipts in big groups would be a
        // storm).
        let mut users = vec![user.to_owned()];
        if let Some((a, b)) = conversation_id.direct_users() {
            let peer = if a.as_str() == user { b } else { a };
            if peer.as_str() != user {
                users.push(peer.into_string());
            }
        }
        let notice = Notice::Read {
            conversation_id: conversation_id.clone(),
            user_id: who.user.clone(),
            read_seq: mark.read_seq,
        };
        let skip = Some((user, who.device.as_str()));
        notify(app, notice, &users, skip).await;
    }
    let reply = ReadReply {
        conversation_id,
        read_seq: mark.read_seq,
    };
    Ok(Done::Frame(reply_json(&Reply::Read(reply), rid)))
}

pub(super) async fn typing(
    app: &App,
    who: &Identity,
    conversation_id: ConversationId,
    state: TypingState,
) -> Result<Done> {
    let user = who.user.as_str();
    let mut others = app
        .store
        .participants(user, conversation_id.as_str())
        .await?;
    others.retain(|u| u != user);
    if !others.is_empty() {
        let notice = Notice::Typing {
            conversation_id,
            user_id: who.user.clone(),
            state,
        };
        notify(app, notice, &others, None).await;
    }
    Ok(Done::Quiet)
}

pub(super) async fn recall(
    app: &App,
    who: &Identity,
    message_id: MessageId,
    rid: Option<&RequestId>,
) -> Result<Done> {
    let user = who.user.as_str();
    let window = std::time::Duration::from_secs(app.config.recall_seconds);
    let recalled = app.store.recall(user, message_id.as_str(), window).await?;
    let m = &recalled.message;
    let conversation_id = ConversationId::parse(m.conversation_id.as_str()).expect("any string");
    if recalled.newly {
        metrics::counter!("chat_recalls_total").increment(1);
        let users = match m.target_user() {
            Some(to) => vec![user.to_owned(), to.to_owned()],
            // A sender who has left the group since still recalls; only its own devices hear.
            None => app
                .store
                .participants(user, &m.conversation_id)
                .await
                .unwrap_or_else(|_| vec![user.to_owned()]),
        };
        let notice = Notice::Recalled {
            message_id: message_id.clone(),
            conversation_id: conversation_id.clone(),
            seq: m.seq,
        };
        notify(app, notice, &users, Some((user, who.device.as_str()))).await;
    }
    let reply = RecallReply {
        message_id,
        conversation_id,
        seq: m.seq,
    };
    Ok(Done::Frame(reply_json(&Reply::Recall(reply), rid)))
}

/// Hands `notice` to every connected device of `users` but `skip`; a failure is logged (the
/// notification is lost, what it announced is not).
async fn notify(app: &App, notice: Notice, users: &[String], skip: Option<(&str, &str)>) {
    let payload = Payload::Notice(Arc::new(notice));
    if let Err(e) = app.router.deliver(payload, users, skip).await {
        tracing::warn!(error = %e, "notification not sent");
    }
}
