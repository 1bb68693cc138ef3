//! The writer's data-lifecycle commands (DESIGN §11): retention's purge and a user's erasure,
//! run one by one between SEND/ACK runs.

use super::backend::Backend;
use super::groups::apply;
use super::{Erased, GroupChange};
use crate::error::Result;
use crate::model::now_ms;

/// The first message id of millisecond `ms`: ids are UUIDv7 in hex, their first 12 digits the
/// time they were made, so every message stored before `ms` sorts below it.
pub(super) fn id_at(ms: i64) -> String {
    format!("{:012x}{}", ms.max(0), "0".repeat(20))
}

pub(super) async fn purge<DB: Backend>(
    conn: &mut DB::Writer,
    before_id: &str,
    limit: i64,
) -> Result<u64> {
    DB::purge(conn, before_id, limit).await
}

/// `user` leaves each of its groups (events and ownership as for LEAVE), then its rows go.
pub(super) async fn erase<DB: Backend>(conn: &mut DB::Writer, user: &str) -> Result<Erased> {
    let mut groups = Vec::new();
    for group_id in DB::groups_of(conn, user).await? {
        groups.push(apply::<DB>(conn, user, &group_id, &GroupChange::Leave).await?);
    }
    let (messages, conversations) = DB::erase_rows(conn, user, now_ms()).await?;
    Ok(Erased {
        messages,
        conversations,
        groups,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_id_made_before_a_time_sorts_below_its_cutoff() {
        let made = crate::model::new_id();
        let now = crate::model::now_ms();
        assert!(made.as_str() < super::id_at(now + 1).as_str());
        assert!(made.as_str() >= super::id_at(now - 60_000).as_str());
        assert_eq!(super::id_at(0).len(), 32);
    }
}
