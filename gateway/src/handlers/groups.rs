//! CREATE GROUP (8), ADD MEMBERS (11), LEAVE GROUP (12): group management, answered after the
//! store committed the change.

use chat_protocol::server::{reply_json, GroupInfo, GroupLeft};
use chat_protocol::{GroupId, Reply, RequestId, UserId};

use crate::app::App;
use crate::error::Result;
use crate::session::ops::Done;
use crate::session::Identity;
use crate::store::Group;

pub(super) async fn create(
    app: &App,
    who: &Identity,
    name: &str,
    members: &[UserId],
    rid: Option<&RequestId>,
) -> Result<Done> {
    let members = strings(members);
    let group = app
        .store
        .create_group(who.user.as_str(), name, &members)
        .await?;
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
    let members = strings(members);
    let group = app
        .store
        .add_members(who.user.as_str(), group_id.as_str(), &members)
        .await?;
    Ok(Done::Frame(reply_json(
        &Reply::AddMembers(info(group)),
        rid,
    )))
}

pub(super) async fn leave(
    app: &App,
    who: &Identity,
    group_id: GroupId,
    rid: Option<&RequestId>,
) -> Result<Done> {
    app.store
        .leave_group(who.user.as_str(), group_id.as_str())
        .await?;
    let reply = Reply::LeaveGroup(GroupLeft { group_id });
    Ok(Done::Frame(reply_json(&reply, rid)))
}

fn strings(users: &[UserId]) -> Vec<String> {
    users.iter().map(|u| u.as_str().to_owned()).collect()
}

/// The store's group as the wire shows it. Its ids were validated when they were stored.
fn info(g: Group) -> GroupInfo {
    GroupInfo {
        group_id: GroupId::parse(g.group_id).expect("stored group ids are valid"),
        name: g.name,
        members: g
            .members
            .into_iter()
            .filter_map(|m| UserId::parse(m).ok())
            .collect(),
    }
}
