//! BLOCK and UNBLOCK in the writer (v1.1): the block stored, and the writer's cache told at
//! once, so this writer's next run of sends sees it (other pods' writers see it when what they
//! read of the blocker expires, the backend's `NAMES_TTL`).

use super::backend::Backend;
use super::cache::Cache;
use crate::error::Result;
use crate::model::now_ms;

/// Records (`on`) or removes `blocker`'s block of `blocked`. Idempotent.
pub(super) async fn block<DB: Backend>(
    conn: &mut DB::Writer,
    cache: &mut Cache,
    blocker: &str,
    blocked: &str,
    on: bool,
) -> Result<()> {
    let blocking = DB::set_block(conn, blocker, blocked, on, now_ms()).await?;
    cache.set_blocking(blocker, blocking);
    Ok(())
}
