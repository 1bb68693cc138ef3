//! The backend API (DESIGN §11, service token): a backend posts stored messages into
//! conversations — as any user, or as `system` — exactly as a WebSocket SEND stores and delivers
//! them, and reads a conversation's history.
//!
//! | call | answer (in `/message/send`'s wrapper) |
//! |---|---|
//! | `POST /api/messages {from, to \| groupId, message, fileType, clientMsgId}` | `{messageId, seq, conversationId}` |
//! | `GET /api/conversations/{conversationId}/messages?afterSeq=&limit=` | `{conversationId, messages[], hasMore}` |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use chat_protocol::api::{History, PostedMessage, Wrapped};
use chat_protocol::limits::{MAX_CLIENT_MSG_ID, MAX_SYNC_LIMIT};
use chat_protocol::{GroupId, UserId};

use crate::app::App;
use crate::error::{Error, Result};
use crate::handlers::send::store_and_deliver;
use crate::http::{parse_json, service};
use crate::model::{new_id, Prepared, StoredMessage, Target, SYSTEM_USER};
use crate::store::NewMessage;

/// The page size of a history read without `limit`.
const DEFAULT_LIMIT: u32 = 50;

/// The backend API's routes, for the public port.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/api/messages", post(post_message))
        .route(
            "/api/conversations/{conversation_id}/messages",
            get(history),
        )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostBody {
    from: Option<String>,
    from_name: Option<String>,
    to: Option<String>,
    group_id: Option<String>,
    message: Option<String>,
    #[serde(default)]
    file_type: Value,
    client_msg_id: Option<String>,
}

/// `POST /api/messages`: stores and delivers as a WebSocket SEND does (seq, idempotency by
/// `(from, clientMsgId)`, delivery to online devices on any pod, receipts, offline push).
async fn post_message(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Wrapped<PostedMessage>>> {
    service(&app, &headers).await?;
    let (msg, group) = new_message(parse_json(&body)?)?;
    let stored = store_and_deliver(&app, msg, group, None).await?;
    let m = &stored.message;
    Ok(Json(Wrapped::ok(PostedMessage {
        message_id: m.message_id.clone(),
        seq: m.seq,
        conversation_id: m.conversation_id.clone(),
    })))
}

/// Checks a posted body; returns the message to store and whether it goes to a group.
fn new_message(body: PostBody) -> Result<(NewMessage, bool)> {
    let from = body
        .from
        .ok_or_else(|| bad("\"from\" is required: a user id, or \"system\""))?;
    UserId::parse(from.as_str()).map_err(|e| bad(format!("\"from\" {e}")))?;
    let (to, group) = match (body.to, body.group_id) {
        (Some(to), None) => {
            UserId::parse(to.as_str()).map_err(|e| bad(format!("\"to\" {e}")))?;
            if to == SYSTEM_USER {
                return Err(bad("\"to\" cannot be \"system\": it has no devices"));
            }
            (to, false)
        }
        (None, Some(group)) => {
            GroupId::parse(group.as_str()).map_err(|e| bad(format!("\"groupId\" {e}")))?;
            (group, true)
        }
        _ => {
            return Err(bad(
                "exactly one of \"to\" (a user id) and \"groupId\" is required",
            ))
        }
    };
    let message = body
        .message
        .ok_or_else(|| bad("\"message\" is required (a string)"))?;
    let file_type = match &body.file_type {
        Value::Null => Some(0),
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
    .ok_or_else(|| bad("\"fileType\" must be a small non-negative integer"))?;
    if let Some(id) = &body.client_msg_id {
        if id.is_empty() || id.len() > MAX_CLIENT_MSG_ID {
            return Err(bad(format!(
                "\"clientMsgId\" must be 1-{MAX_CLIENT_MSG_ID} bytes"
            )));
        }
    }
    let from_name = body
        .from_name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| from.clone());
    let msg = NewMessage {
        from,
        from_name,
        to,
        body: message,
        file_type,
        file: None,
        client_msg_id: body.client_msg_id,
        request_id: new_id(),
    };
    Ok((msg, group))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryQuery {
    after_seq: Option<String>,
    limit: Option<String>,
}

/// `GET /api/conversations/{conversationId}/messages?afterSeq=&limit=`: a page of history, as
/// the envelopes the conversation's devices were pushed.
async fn history(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(conversation_id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Wrapped<History>>> {
    service(&app, &headers).await?;
    let after_seq = match q.after_seq.as_deref() {
        None | Some("") => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad("\"afterSeq\" must be a non-negative integer"))?,
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_SYNC_LIMIT).contains(n))
            .ok_or_else(|| bad(format!("\"limit\" must be from 1 to {MAX_SYNC_LIMIT}")))?,
    };
    let page = app
        .store
        .history(&conversation_id, after_seq, limit)
        .await?;
    let messages = page.messages.into_iter().map(envelope).collect();
    Ok(Json(Wrapped::ok(History {
        conversation_id,
        messages,
        has_more: page.has_more,
    })))
}

/// A stored message as the envelope its recipients were pushed (`to`: the user or the group).
fn envelope(m: StoredMessage) -> Value {
    let to = match &m.target {
        Target::Direct { to, .. } => to.clone(),
        Target::Group { group_id } => group_id.clone(),
    };
    let text = Prepared::new(Arc::new(m))
        .push
        .render("", &to, false, new_id);
    serde_json::from_str(&text).expect("an envelope is JSON")
}

fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(message.into())
}
