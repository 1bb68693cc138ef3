//! SEND (1) and SEND GROUP (9): store, fan out to every online device of the recipients (and the
//! sender's other devices), then reply 0. A resend of a stored `clientMsgId` gets the first reply
//! and pushes nothing again itself (DESIGN §4.3); its recipients' devices re-read their backlog,
//! so one that lacks the message gets it (the first attempt's pod may have died between commit
//! and fan-out) and one that has it or acked it gets nothing twice. The backend API's `POST /api/messages` stores and
//! delivers through the same [`store_and_deliver`].

use std::sync::Arc;

use chat_protocol::server::reply_json;
use chat_protocol::{Reply, RequestId};

use crate::app::App;
use crate::error::Result;
use crate::model::new_id;
use crate::model::StoredMessage;
use crate::routing::Payload;
use crate::session::ops::Done;
use crate::session::Identity;
use crate::store::NewMessage;

/// What the client asked to send.
pub(super) struct Send {
    pub(super) group: bool,
    /// The recipient user, or the group.
    pub(super) to: String,
    pub(super) body: String,
    pub(super) file_type: i64,
    /// `file.fileId`: the sender's own upload (403 otherwise, 404 if unknown).
    pub(super) file: Option<String>,
    pub(super) client_msg_id: Option<String>,
}

pub(super) async fn handle(
    app: &App,
    who: &Identity,
    send: Send,
    rid: Option<&RequestId>,
) -> Result<Done> {
    let user = who.user.as_str();
    let file = match &send.file {
        Some(id) => Some(Box::new(app.files.attach(user, id).await?)),
        None => None,
    };
    let msg = NewMessage {
        from: user.to_owned(),
        from_name: who.name.clone(),
        to: send.to,
        body: send.body,
        file_type: send.file_type,
        file,
        client_msg_id: send.client_msg_id,
        request_id: rid.map_or_else(new_id, RequestId::to_envelope_string),
    };
    let skip = Some((user, who.device.as_str()));
    let stored = store_and_deliver(app, msg, send.group, skip).await?;
    let reply = reply_json(&Reply::Received(stored.message.received()), rid);
    Ok(Done::Frame(reply))
}

/// A message as [`store_and_deliver`] stored it.
pub struct Stored {
    /// The message as committed (the first one, for a repeat).
    pub message: Arc<StoredMessage>,
    /// True when `(sender, clientMsgId)` was stored before: nothing was delivered again.
    pub duplicate: bool,
}

/// Stores `msg` (1:1, or to a group), and unless it is a repeat of a stored `clientMsgId`,
/// delivers it to every online device of the recipients and of the sender (but `skip`, the
/// sending device). Recipients with no online device get an offline push when the webhook is on.
pub async fn store_and_deliver(
    app: &App,
    msg: NewMessage,
    group: bool,
    skip: Option<(&str, &str)>,
) -> Result<Stored> {
    let sent = if group {
        app.store.send_group(msg).await?
    } else {
        app.store.send_direct(msg).await?
    };
    if sent.duplicate {
        resync_recipients(app, &sent.message, group, skip).await;
        return Ok(Stored {
            message: Arc::new(sent.message),
            duplicate: true,
        });
    }
    metrics::counter!("chat_messages_in_total").increment(1);
    let users = if group {
        sent.members
    } else {
        let (from, to) = (&sent.message.from, sent.message.target_user());
        match to {
            Some(to) if to != from => vec![to.to_owned(), from.clone()],
            _ => vec![from.clone()],
        }
    };
    let payload = Payload::message(sent.message);
    let Payload::Message(prepared) = &payload else {
        unreachable!("Payload::message makes a message")
    };
    let message = prepared.message.clone();
    let stored = Stored {
        message: message.clone(),
        duplicate: false,
    };
    let Some(webhook) = &app.webhook else {
        if let Err(e) = app.router.deliver(payload, &users, skip).await {
            // Stored already: recipients catch up on reconnect or SYNC.
            tracing::warn!(error = %e, "fan-out failed after commit");
        }
        return Ok(stored);
    };
    let recipients: Vec<&str> = users
        .iter()
        .map(String::as_str)
        .filter(|u| *u != message.from)
        .collect();
    let offline = match app
        .router
        .deliver_noting(payload, &users, skip, &recipients)
        .await
    {
        Ok(offline) => offline,
        Err(e) => {
            // The route table did not answer: better a push too many than one missing.
            tracing::warn!(error = %e, "fan-out failed after commit");
            recipients.iter().map(|u| (*u).to_owned()).collect()
        }
    };
    if !offline.is_empty() {
        let webhook = Arc::clone(webhook);
        tokio::spawn(async move { webhook.offline(&message, &offline).await });
    }
    Ok(stored)
}

/// A resent `clientMsgId` found its message stored: the first attempt may have died between its
/// commit and its fan-out (its pod killed), so the recipients' devices, and the sender's other
/// devices, re-read their backlog. Those that acked it get nothing again.
async fn resync_recipients(
    app: &App,
    message: &StoredMessage,
    group: bool,
    skip: Option<(&str, &str)>,
) {
    let users = if group {
        match app
            .store
            .participants(&message.from, &message.conversation_id)
            .await
        {
            Ok(users) => users,
            Err(e) => {
                tracing::warn!(error = %e, "members of a resent group message not read");
                return;
            }
        }
    } else {
        let mut users = vec![message.from.clone()];
        users.extend(message.target_user().map(str::to_owned));
        users.dedup();
        users
    };
    if let Err(e) = app.router.deliver(Payload::Resync, &users, skip).await {
        tracing::warn!(error = %e, "resync after a resend waits for the route table");
    }
}
