//! ACK (15): record that one of the user's devices received a message; the first ack of a 1:1
//! message by its recipient sends DELIVERED (17) to the sender's devices. Reply 16 after the ack
//! is stored.

use std::sync::Arc;

use chat_protocol::date::date_string;
use chat_protocol::server::{reply_json, AckReceived};
use chat_protocol::{MessageId, Reply, RequestId};

use crate::app::App;
use crate::error::Result;
use crate::model::{now_ms, DeliveredNotice};
use crate::routing::Payload;
use crate::session::ops::Done;
use crate::session::Identity;

pub(super) async fn handle(
    app: &App,
    who: &Identity,
    msgid: MessageId,
    rid: Option<&RequestId>,
) -> Result<Done> {
    let acked = app.store.ack(who.user.as_str(), msgid.as_str()).await?;
    if acked.first_delivery {
        let m = &acked.message;
        let notice = DeliveredNotice {
            message_id: m.message_id.clone(),
            conversation_id: m.conversation_id.clone(),
            seq: m.seq,
            by: who.user.as_str().to_owned(),
        };
        let payload = Payload::Delivered(Arc::new(notice));
        if let Err(e) = app
            .router
            .deliver(payload, std::slice::from_ref(&m.from), None)
            .await
        {
            tracing::warn!(error = %e, "DELIVERED notice not sent");
        }
    }
    let reply = AckReceived {
        date: date_string(now_ms()),
        message: msgid.into_string(),
    };
    Ok(Done::Frame(reply_json(&Reply::AckReceived(reply), rid)))
}
