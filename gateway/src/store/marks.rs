//! The writer's READ and RECALL commands (v1.1), run one by one between SEND/ACK runs.

use super::backend::Backend;
use super::{ReadMark, Recalled};
use crate::error::{Error, Result};
use crate::model::now_ms;

/// RECALL: the sender's own message, within the window, becomes a tombstone.
pub(super) async fn recall<DB: Backend>(
    conn: &mut DB::Writer,
    user: &str,
    message_id: &str,
    window_ms: i64,
) -> Result<Recalled> {
    let (mut message, recalled_at) = DB::message_for_recall(conn, message_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no message {message_id}")))?;
    if message.from != user {
        return Err(Error::Forbidden(
            "only its sender may recall a message".into(),
        ));
    }
    if recalled_at.is_some() {
        return Ok(Recalled {
            message,
            newly: false,
        });
    }
    let now = now_ms();
    if now - message.created_at > window_ms {
        return Err(Error::Forbidden(format!(
            "too late to recall: the window is {} s",
            window_ms / 1000
        )));
    }
    DB::recall(conn, message_id, now).await?;
    message.body.clear();
    message.recalled = true;
    Ok(Recalled {
        message,
        newly: true,
    })
}

/// READ: the user's new `readSeq`, and whether it moved (403 when not a participant).
pub(super) async fn mark_read<DB: Backend>(
    conn: &mut DB::Writer,
    user: &str,
    conversation: &str,
    seq: i64,
) -> Result<ReadMark> {
    let (before, after) = DB::mark_read(conn, user, conversation, seq)
        .await?
        .ok_or_else(|| Error::Forbidden("not a participant of this conversation".into()))?;
    Ok(ReadMark {
        read_seq: after,
        moved: after != before,
    })
}
