//! Groups: CREATE GROUP (8), ADD MEMBERS (11), LEAVE GROUP (12) and (v1.1) REMOVE MEMBERS (28),
//! UPDATE GROUP (29), DISSOLVE GROUP (30), SET ROLE (31). Each is answered after the store
//! committed the change; the group events it stored (messages from `system`, DELIVER GROUP 10
//! with `system` in its params) then go to their users' devices on every pod, like any stored
//! message: acked, retried, caught up.

use std::collections::BTreeMap;

use chat_protocol::server::{reply_json, GroupInfo, GroupLeft};
use chat_protocol::{GroupId, Reply, RequestId, Role, UserId};

use crate::app::App;
use crate::error::Result;
use crate::model::user_strings;
use crate::routing::Payload;
use crate::session::ops::Done;
use crate::session::Identity;
use crate::store::{too_many_members, Group, GroupChange};

pub(super) async fn create(
    app: &App,
    who: &Identity,
    name: &str,
    members: &[UserId],
    rid: Option<&RequestId>,
) -> Result<Done> {
    let members = user_strings(members);
    let max = app.config.limits.max_group_members as usize;
    let everyone: std::collections::BTreeSet<&str> = members
        .iter()
        .map(String::as_str)
        .chain([who.user.as_str()])
        .collect();
    if everyone.len() > max {
        return Err(too_many_members(max, 0, everyone.len()));
    }
    let group = app
        .store
        .create_group(who.user.as_str(), name, &members)
        .await?;
    announce(app, &group).await;
    Ok(Done::Frame(reply_json(
        &Reply::CreateGroup(info(group)),
        rid,
    )))
}

pub(super) async fn add_members(
    app: &App,
    who: &Identity,
    group_id: &GroupId,
    members: &[UserId],
    rid: Option<&RequestId>,
) -> Result<Done> {
    let change = GroupChange::Add {
        members: user_strings(members),
        max_size: app.config.limits.max_group_members as usize,
    };
    change_group(app, who, group_id.clone(), change, rid).await
}

pub(super) async fn leave(
    app: &App,
    who: &Identity,
    group_id: GroupId,
    rid: Option<&RequestId>,
) -> Result<Done> {
    change_group(app, who, group_id, GroupChange::Leave, rid).await
}

/// Any change to an existing group; the reply's type follows the change.
pub(super) async fn change_group(
    app: &App,
    who: &Identity,
    group_id: GroupId,
    change: GroupChange,
    rid: Option<&RequestId>,
) -> Result<Done> {
    let make_reply: fn(Group, GroupId) -> Reply = match &change {
        GroupChange::Add { .. } => |g, _| Reply::AddMembers(info(g)),
        GroupChange::Remove(_) => |g, _| Reply::RemoveMembers(info(g)),
        GroupChange::Rename(_) => |g, _| Reply::UpdateGroup(info(g)),
        GroupChange::SetRole(..) => |g, _| Reply::SetRole(info(g)),
        GroupChange::Leave => |_, group_id| Reply::LeaveGroup(GroupLeft { group_id }),
        GroupChange::Dissolve => |_, group_id| Reply::DissolveGroup(GroupLeft { group_id }),
    };
    let group = app
        .store
        .change_group(who.user.as_str(), group_id.as_str(), change)
        .await?;
    announce(app, &group).await;
    Ok(Done::Frame(reply_json(&make_reply(group, group_id), rid)))
}

/// Delivers the change's events, in order, each to its users (a failure is logged: the events
/// are stored, and devices catch up).
pub(crate) async fn announce(app: &App, group: &Group) {
    for event in &group.events {
        let payload = Payload::message(event.message.clone());
        if let Err(e) = app.router.deliver(payload, &event.users, None).await {
            tracing::warn!(error = %e, group = %group.group_id, "group event not delivered now; devices catch up");
        }
    }
}

/// The store's group as the wire shows it. Its ids were validated when they were stored.
fn info(g: Group) -> GroupInfo {
    let roles: BTreeMap<UserId, Role> = g
        .roles
        .iter()
        .filter_map(|(u, r)| Some((UserId::parse(u.as_str()).ok()?, Role::parse(r)?)))
        .collect();
    GroupInfo {
        group_id: GroupId::parse(g.group_id).expect("stored group ids are valid"),
        name: g.name,
        members: g
            .members
            .into_iter()
            .filter_map(|m| UserId::parse(m).ok())
            .collect(),
        roles,
    }
}
