//! SEND (1) and SEND GROUP (9): store, fan out to every online device of the recipients (and the
//! sender's other devices), then reply 0. A resend of a stored `clientMsgId` gets the first reply
//! and delivers nothing again (DESIGN §4.3).

use chat_protocol::server::reply_json;
use chat_protocol::{Reply, RequestId};

use crate::app::App;
use crate::error::Result;
use crate::model::new_id;
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
    let to_self = !send.group && send.to == user;
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
    let sent = if send.group {
        app.store.send_group(msg).await?
    } else {
        app.store.send_direct(msg).await?
    };
    let reply = reply_json(&Reply::Received(sent.message.received()), rid);
    if !sent.duplicate {
        metrics::counter!("chat_messages_in_total").increment(1);
        let users = if send.group {
            sent.members
        } else if to_self {
            vec![user.to_owned()]
        } else {
            let to = sent.message.target_user().unwrap_or_default().to_owned();
            vec![to, user.to_owned()]
        };
        let payload = Payload::message(sent.message);
        let skip = Some((user, who.device.as_str()));
        if let Err(e) = app.router.deliver(payload, &users, skip).await {
            // Stored already: recipients catch up on reconnect or SYNC.
            tracing::warn!(error = %e, "fan-out failed after commit");
        }
    }
    Ok(Done::Frame(reply))
}
