//! The writer's rare commands, run one by one between SEND/ACK runs: display names, group
//! management, READ marks and RECALL.

use std::collections::BTreeSet;

use super::backend::Backend;
use super::cache::Cache;
use super::command::ManageCommand;
use super::{Group, ReadMark, Recalled};
use crate::error::{Error, Result};
use crate::model::{group_conversation_id, new_id, now_ms};

/// Runs one command inside the writer's transaction; the command holds its result (a client
/// error fails it alone). `Err` is an internal error: the whole transaction must roll back.
pub(super) async fn run<DB: Backend>(
    conn: &mut DB::Writer,
    cache: &mut Cache,
    command: &mut ManageCommand,
) -> Result<()> {
    match command {
        ManageCommand::UpsertUser { id, name, reply } => {
            reply.hold(upsert_user::<DB>(conn, cache, id, name).await)
        }
        ManageCommand::CreateGroup {
            owner,
            name,
            members,
            reply,
        } => reply.hold(create::<DB>(conn, owner, name, members).await),
        ManageCommand::AddMembers {
            user,
            group_id,
            members,
            reply,
        } => reply.hold(add::<DB>(conn, user, group_id, members).await),
        ManageCommand::LeaveGroup {
            user,
            group_id,
            reply,
        } => reply.hold(leave::<DB>(conn, user, group_id).await),
        ManageCommand::MarkRead {
            user,
            conversation_id,
            seq,
            reply,
        } => reply.hold(mark_read::<DB>(conn, user, conversation_id, *seq).await),
        ManageCommand::Recall {
            user,
            message_id,
            window_ms,
            reply,
        } => reply.hold(recall::<DB>(conn, user, message_id, *window_ms).await),
    }
}

/// RECALL: the sender's own message, within the window, becomes a tombstone.
async fn recall<DB: Backend>(
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
async fn mark_read<DB: Backend>(
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

/// Records a display name, unless the cache knows it already.
async fn upsert_user<DB: Backend>(
    conn: &mut DB::Writer,
    cache: &mut Cache,
    id: &str,
    name: &str,
) -> Result<()> {
    if cache.names().get(id).map(String::as_str) != Some(name) {
        DB::upsert_user(conn, id, name, now_ms()).await?;
        cache.add_names([(id.to_owned(), name.to_owned())]);
    }
    Ok(())
}

async fn add<DB: Backend>(
    conn: &mut DB::Writer,
    user: &str,
    group_id: &str,
    members: &[String],
) -> Result<Group> {
    let conversation = member_of::<DB>(conn, user, group_id).await?;
    DB::join(conn, &conversation, &unique(members)).await?;
    load::<DB>(conn, group_id).await
}

async fn leave<DB: Backend>(conn: &mut DB::Writer, user: &str, group_id: &str) -> Result<()> {
    let conversation = member_of::<DB>(conn, user, group_id).await?;
    DB::leave(conn, user, &conversation).await
}

async fn create<DB: Backend>(
    conn: &mut DB::Writer,
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
async fn find<DB: Backend>(conn: &mut DB::Writer, group_id: &str) -> Result<(String, String)> {
    DB::group(conn, group_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no group {group_id}")))
}

/// The group's conversation, if it exists (404) and `user` is an active member of it (403).
async fn member_of<DB: Backend>(
    conn: &mut DB::Writer,
    user: &str,
    group_id: &str,
) -> Result<String> {
    let (conversation, _) = find::<DB>(conn, group_id).await?;
    if !DB::is_active_member(conn, user, &conversation).await? {
        return Err(Error::Forbidden("not a member of this group".into()));
    }
    Ok(conversation)
}

async fn load<DB: Backend>(conn: &mut DB::Writer, group_id: &str) -> Result<Group> {
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
