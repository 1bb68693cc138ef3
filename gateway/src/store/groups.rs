//! The writer's rare commands, run one by one between SEND/ACK runs: display names and group
//! management.

use std::collections::BTreeSet;

use super::sql::Sql;
use super::writer::{Cache, Request, Response};
use super::Group;
use crate::error::{Error, Result};
use crate::model::{group_conversation_id, new_id, now_ms};

/// Runs one request inside the writer's transaction.
pub(super) async fn run<DB: Sql>(
    conn: &mut DB::Connection,
    cache: &mut Cache,
    request: &Request,
) -> Result<Response> {
    match request {
        Request::UpsertUser { id, name } => {
            if cache.names().get(id) != Some(name) {
                DB::upsert_user(conn, id, name, now_ms()).await?;
                cache.add_names([(id.clone(), name.clone())]);
            }
            Ok(Response::Done)
        }
        Request::CreateGroup {
            owner,
            name,
            members,
        } => Ok(Response::Group(
            create::<DB>(conn, owner, name, members).await?,
        )),
        Request::AddMembers {
            user,
            group_id,
            members,
        } => {
            let conversation = member_of::<DB>(conn, user, group_id).await?;
            DB::join(conn, &conversation, &unique(members)).await?;
            Ok(Response::Group(load::<DB>(conn, group_id).await?))
        }
        Request::LeaveGroup { user, group_id } => {
            let conversation = member_of::<DB>(conn, user, group_id).await?;
            DB::leave(conn, user, &conversation).await?;
            Ok(Response::Done)
        }
        Request::Send { .. } | Request::Ack { .. } => {
            Err(Error::Internal("SEND/ACK outside a run".into()))
        }
    }
}

async fn create<DB: Sql>(
    conn: &mut DB::Connection,
    owner: &str,
    name: &str,
    members: &[String],
) -> Result<Group> {
    let group_id = new_id();
    let conversation = group_conversation_id(&group_id);
    let everyone: Vec<String> = std::iter::once(owner.to_owned())
        .chain(members.iter().cloned())
        .collect();
    DB::create_group(
        conn,
        (&group_id, name, owner),
        &conversation,
        &unique(&everyone),
        now_ms(),
    )
    .await?;
    load::<DB>(conn, &group_id).await
}

/// The group's conversation id and name (404 when there is no such group).
async fn find<DB: Sql>(conn: &mut DB::Connection, group_id: &str) -> Result<(String, String)> {
    DB::group(conn, group_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no group {group_id}")))
}

/// The group's conversation, if it exists (404) and `user` is an active member of it (403).
async fn member_of<DB: Sql>(
    conn: &mut DB::Connection,
    user: &str,
    group_id: &str,
) -> Result<String> {
    let (conversation, _) = find::<DB>(conn, group_id).await?;
    if !DB::is_active_member(conn, user, &conversation).await? {
        return Err(Error::Forbidden("not a member of this group".into()));
    }
    Ok(conversation)
}

async fn load<DB: Sql>(conn: &mut DB::Connection, group_id: &str) -> Result<Group> {
    let (conversation_id, name) = find::<DB>(conn, group_id).await?;
    let mut members: Vec<String> = DB::active_members(conn, &[&conversation_id])
        .await?
        .into_iter()
        .map(|(_, user)| user)
        .collect();
    members.sort();
    Ok(Group {
        group_id: group_id.to_owned(),
        name,
        members,
        conversation_id,
    })
}

/// Sorted, without repeats: one row per user in set-based inserts.
fn unique(users: &[String]) -> Vec<&str> {
    let set: BTreeSet<&str> = users.iter().map(String::as_str).collect();
    set.into_iter().collect()
}
