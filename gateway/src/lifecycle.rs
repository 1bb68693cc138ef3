//! The data lifecycle (DESIGN §11): `--retention-days` purges older messages and the uploads
//! no message carries any more; `DELETE /api/users/{id}` erases a user — its groups left (as
//! LEAVE), its messages tombstones, its uploads, memberships and connections gone. (Uploads
//! never sent are swept by [`crate::files`].)

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use chat_protocol::api::{ErasedUser, Wrapped};
use chat_protocol::KickReason;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::error::Result;
use crate::files::Files;
use crate::model::now_ms;
use crate::store::Store;

/// Messages one purge transaction deletes: the writer stays free for sends between batches.
const PURGE_BATCH: u32 = 5_000;
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// `DELETE /api/users/{id}` (service token): erases the user.
pub async fn erase_user(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Wrapped<ErasedUser>>> {
    crate::http::service(&app, &headers).await?;
    let kicked = app.router.kick_user(&id, KickReason::Logout).await?;
    let erased = app.store.erase_user(&id).await?;
    for group in &erased.groups {
        crate::handlers::groups::announce(&app, group).await;
    }
    let files = app.files.delete_owned(&id).await?;
    metrics::counter!("chat_users_erased_total").increment(1);
    tracing::info!(user = %id, messages = erased.messages, files, "user erased");
    Ok(Json(Wrapped::ok(ErasedUser {
        user_id: id,
        messages: erased.messages,
        files,
        groups: erased.groups.len(),
        kicked,
    })))
}

/// One retention pass: messages stored more than `days` ago, in batches, then the uploads no
/// message carries any more. Returns how many messages and files went.
pub async fn purge_older_than(store: &dyn Store, files: &Files, days: u32) -> Result<(u64, usize)> {
    let before = now_ms() - i64::from(days) * 86_400_000;
    let mut messages = 0;
    loop {
        let n = store.purge(before, PURGE_BATCH).await?;
        messages += n;
        if n < u64::from(PURGE_BATCH) {
            break;
        }
    }
    let files = files.sweep_unsent_before(before).await?;
    metrics::counter!("chat_retention_purged_total").increment(messages);
    Ok((messages, files))
}

/// Runs retention every hour (the first pass at a random point of the first minute, so pods
/// started together do not purge together) until `stop`.
pub async fn run_retention(
    store: Arc<dyn Store>,
    files: Arc<Files>,
    days: u32,
    stop: CancellationToken,
) {
    let first = Duration::from_millis(rand::random::<u64>() % 60_000);
    let mut next = tokio::time::Instant::now() + first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.cancelled() => return,
        }
        match purge_older_than(store.as_ref(), &files, days).await {
            Ok((0, 0)) => {}
            Ok((messages, files)) => tracing::info!(messages, files, days, "retention purged"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying at the next"),
        }
        next += RETENTION_EVERY;
    }
}
