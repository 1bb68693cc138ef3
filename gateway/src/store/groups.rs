//! The writer's rare commands, run one by one between SEND/ACK runs: display names, groups and
//! their administration (v1.1), READ marks and RECALL ([`super::marks`]), blocks ([`super::blocks`]).
//!
//! Every membership change is also stored as a group event — a message from `system` in the
//! group's conversation, with its seq (DESIGN §11) — in the transaction that makes the change,
//! and comes back with the users to deliver it to.

use std::collections::{BTreeMap, BTreeSet};

use chat_protocol::{GroupEvent, Role, SystemEvent, UserId};

use super::backend::Backend;
use super::cache::Cache;
use super::command::ManageCommand;
use super::{blocks, lifecycle, marks, Announcement, Group, GroupChange};
use crate::error::{Error, Result};
use crate::model::{group_conversation_id, new_id, now_ms, StoredMessage};

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
        ManageCommand::ChangeGroup {
            user,
            group_id,
            change,
            reply,
        } => reply.hold(apply::<DB>(conn, user, group_id, change).await),
        ManageCommand::MarkRead {
            user,
            conversation_id,
            seq,
            reply,
        } => reply.hold(marks::mark_read::<DB>(conn, user, conversation_id, *seq).await),
        ManageCommand::Recall {
            user,
            message_id,
            window_ms,
            reply,
        } => reply.hold(marks::recall::<DB>(conn, user, message_id, *window_ms).await),
        ManageCommand::Purge {
            before_id,
            limit,
            reply,
        } => reply.hold(lifecycle::purge::<DB>(conn, before_id, *limit).await),
        ManageCommand::EraseUser { user, reply } => {
            reply.hold(lifecycle::erase::<DB>(conn, user).await)
        }
        ManageCommand::Block {
            blocker,
            blocked,
            on,
            reply,
        } => reply.hold(blocks::block::<DB>(conn, cache, blocker, blocked, *on).await),
    }
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
    let everyone = unique(&everyone);
    let group = (group_id.as_str(), name, owner);
    DB::create_group(conn, group, &conversation, &everyone, now_ms()).await?;
    DB::set_role(conn, &conversation, owner, Role::Owner.as_str()).await?;
    let mut g = State::load::<DB>(conn, &group_id).await?;
    let event = g.event(GroupEvent::Created, owner, &everyone);
    g.announce::<DB>(
        conn,
        SystemEvent {
            name: Some(name.to_owned()),
            ..event
        },
        &[],
    )
    .await?;
    Ok(g.into_group())
}

pub(super) async fn apply<DB: Backend>(
    conn: &mut DB::Writer,
    user: &str,
    group_id: &str,
    change: &GroupChange,
) -> Result<Group> {
    let mut g = State::load::<DB>(conn, group_id).await?;
    let Some(mine) = g.role_of(user) else {
        return Err(Error::Forbidden("not a member of this group".into()));
    };
    match change {
        GroupChange::Add { members, max_size } => {
            let added: Vec<&str> = unique(members)
                .into_iter()
                .filter(|m| g.role_of(m).is_none())
                .collect();
            if g.members.len() + added.len() > *max_size {
                return Err(too_many_members(*max_size, g.members.len(), added.len()));
            }
            if !added.is_empty() {
                DB::join(conn, &g.conversation, &added).await?;
                g.reload::<DB>(conn).await?;
                let event = g.event(GroupEvent::Added, user, &added);
                g.announce::<DB>(conn, event, &[]).await?;
            }
        }
        GroupChange::Remove(members) => remove::<DB>(conn, &mut g, user, mine, members).await?,
        GroupChange::Leave => leave::<DB>(conn, &mut g, user, mine).await?,
        GroupChange::Rename(name) => {
            require(
                mine.is_manager(),
                "only the owner or an admin may rename the group",
            )?;
            DB::update_group(conn, group_id, (Some(name), None, None)).await?;
            g.name.clone_from(name);
            let event = g.event(GroupEvent::Renamed, user, &[]);
            let renamed = SystemEvent {
                name: Some(name.clone()),
                ..event
            };
            g.announce::<DB>(conn, renamed, &[]).await?;
        }
        GroupChange::Dissolve => {
            require(mine == Role::Owner, "only the owner may dissolve the group")?;
            let event = g.event(GroupEvent::Dissolved, user, &[]);
            let seq = g.announce::<DB>(conn, event, &[]).await?;
            let everyone: Vec<String> = g.members.keys().cloned().collect();
            let everyone: Vec<&str> = everyone.iter().map(String::as_str).collect();
            DB::deactivate(conn, &g.conversation, &everyone, seq).await?;
            DB::update_group(conn, group_id, (None, None, Some(now_ms()))).await?;
            g.members.clear();
        }
        GroupChange::SetRole(target, role) => {
            set_role::<DB>(conn, &mut g, user, mine, target, *role).await?
        }
    }
    Ok(g.into_group())
}

/// 413: a group may have at most `max` members (`--max-group-members`).
pub(crate) fn too_many_members(max: usize, has: usize, joining: usize) -> Error {
    Error::TooLarge(format!(
        "a group has at most {max} members: it has {has}, and {joining} more would join"
    ))
}

/// REMOVE MEMBERS: the removed receive their removal (and can read up to it), nothing after.
async fn remove<DB: Backend>(
    conn: &mut DB::Writer,
    g: &mut State,
    user: &str,
    mine: Role,
    members: &[String],
) -> Result<()> {
    require(
        mine.is_manager(),
        "only the owner or an admin may remove members",
    )?;
    let targets: Vec<&str> = unique(members)
        .into_iter()
        .filter(|m| g.role_of(m).is_some())
        .collect();
    if targets.contains(&user) {
        return Err(Error::BadRequest(
            "to remove yourself, leave the group (12)".into(),
        ));
    }
    if targets.is_empty() {
        return Err(Error::NotFound(
            "none of them is a member of this group".into(),
        ));
    }
    let protected = targets
        .iter()
        .any(|t| matches!(g.role_of(t), Some(Role::Owner | Role::Admin)));
    require(
        mine == Role::Owner || !protected,
        "an admin cannot remove the owner or another admin",
    )?;
    let event = g.event(GroupEvent::Removed, user, &targets);
    let seq = g.announce::<DB>(conn, event, &[]).await?;
    DB::deactivate(conn, &g.conversation, &targets, seq).await?;
    for t in &targets {
        g.members.remove(*t);
    }
    Ok(())
}

/// LEAVE GROUP: the leaver receives its own `left`; an owner hands ownership over first to the
/// longest-standing admin, else member (earliest join point, then user id).
async fn leave<DB: Backend>(
    conn: &mut DB::Writer,
    g: &mut State,
    user: &str,
    mine: Role,
) -> Result<()> {
    let event = g.event(GroupEvent::Left, user, &[user]);
    let seq = g.announce::<DB>(conn, event, &[]).await?;
    DB::deactivate(conn, &g.conversation, &[user], seq).await?;
    g.members.remove(user);
    if mine != Role::Owner {
        return Ok(());
    }
    let heir = g
        .members
        .iter()
        .min_by_key(|(id, (role, joined))| (*role != Role::Admin, *joined, (*id).clone()))
        .map(|(id, _)| id.clone());
    if let Some(heir) = heir {
        hand_over::<DB>(conn, g, &heir).await?;
        let event = g.event(GroupEvent::Role, user, &[heir.as_str()]);
        let role = SystemEvent {
            role: Some(Role::Owner),
            ..event
        };
        g.announce::<DB>(conn, role, &[]).await?;
    }
    Ok(())
}

async fn set_role<DB: Backend>(
    conn: &mut DB::Writer,
    g: &mut State,
    user: &str,
    mine: Role,
    target: &str,
    role: Role,
) -> Result<()> {
    require(mine == Role::Owner, "only the owner may set roles")?;
    if target == user {
        return Err(Error::BadRequest(
            "the owner cannot change its own role; hand ownership to another member".into(),
        ));
    }
    if g.role_of(target).is_none() {
        return Err(Error::NotFound(format!(
            "{target} is not a member of this group"
        )));
    }
    if role == Role::Owner {
        DB::set_role(conn, &g.conversation, user, Role::Admin.as_str()).await?;
        g.set(user, Role::Admin);
        hand_over::<DB>(conn, g, target).await?;
    } else {
        DB::set_role(conn, &g.conversation, target, role.as_str()).await?;
        g.set(target, role);
    }
    let event = g.event(GroupEvent::Role, user, &[target]);
    let changed = SystemEvent {
        role: Some(role),
        ..event
    };
    g.announce::<DB>(conn, changed, &[]).await?;
    Ok(())
}

/// Makes `heir` the owner (the row of the group and the membership's role).
async fn hand_over<DB: Backend>(conn: &mut DB::Writer, g: &mut State, heir: &str) -> Result<()> {
    DB::set_role(conn, &g.conversation, heir, Role::Owner.as_str()).await?;
    DB::update_group(conn, &g.group_id, (None, Some(heir), None)).await?;
    g.set(heir, Role::Owner);
    Ok(())
}

fn require(allowed: bool, why: &str) -> Result<()> {
    if allowed {
        Ok(())
    } else {
        Err(Error::Forbidden(why.into()))
    }
}

/// A group inside the writer's transaction: its active members with their roles and join
/// points, and the events stored so far.
struct State {
    group_id: String,
    conversation: String,
    name: String,
    members: BTreeMap<String, (Role, i64)>,
    events: Vec<Announcement>,
}

impl State {
    /// The group (404 when there is none, or it was dissolved) and its active members.
    async fn load<DB: Backend>(conn: &mut DB::Writer, group_id: &str) -> Result<Self> {
        let (conversation, name) = DB::group(conn, group_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no group {group_id}")))?;
        let mut g = State {
            group_id: group_id.to_owned(),
            conversation,
            name,
            members: BTreeMap::new(),
            events: Vec::new(),
        };
        g.reload::<DB>(conn).await?;
        Ok(g)
    }

    async fn reload<DB: Backend>(&mut self, conn: &mut DB::Writer) -> Result<()> {
        self.members = DB::members_with_roles(conn, &self.conversation)
            .await?
            .into_iter()
            .map(|(user, role, joined)| {
                (user, (Role::parse(&role).unwrap_or(Role::Member), joined))
            })
            .collect();
        Ok(())
    }

    fn role_of(&self, user: &str) -> Option<Role> {
        self.members.get(user).map(|(role, _)| *role)
    }

    fn set(&mut self, user: &str, role: Role) {
        if let Some(entry) = self.members.get_mut(user) {
            entry.0 = role;
        }
    }

    /// An event by `actor` concerning `members` (ids were validated when they came in).
    fn event(&self, event: GroupEvent, actor: &str, members: &[&str]) -> SystemEvent {
        let id = |u: &str| UserId::parse(u).ok();
        SystemEvent {
            event,
            actor: id(actor).unwrap_or_else(|| UserId::parse("?").expect("valid")),
            members: members.iter().filter_map(|m| id(m)).collect(),
            name: None,
            role: None,
        }
    }

    /// Stores `event` at the conversation's next seq, for the active members and `also`;
    /// returns its seq.
    async fn announce<DB: Backend>(
        &mut self,
        conn: &mut DB::Writer,
        event: SystemEvent,
        also: &[&str],
    ) -> Result<i64> {
        let counts = BTreeMap::from([(self.conversation.as_str(), 1)]);
        let (_, seq) = DB::allocate(conn, &counts).await?.pop().ok_or_else(|| {
            Error::Internal(format!("conversation {} missing", self.conversation))
        })?;
        let system = serde_json::to_string(&event).expect("a group event serialises");
        let message = StoredMessage::group_event(&self.group_id, seq, event, now_ms());
        DB::insert_event(conn, &message, &system).await?;
        let mut users: BTreeSet<String> = self.members.keys().cloned().collect();
        users.extend(also.iter().map(|u| (*u).to_owned()));
        self.events.push(Announcement {
            message,
            users: users.into_iter().collect(),
        });
        Ok(seq)
    }

    fn into_group(self) -> Group {
        Group {
            group_id: self.group_id,
            name: self.name,
            roles: self
                .members
                .iter()
                .map(|(user, (role, _))| (user.clone(), role.as_str().to_owned()))
                .collect(),
            members: self.members.into_keys().collect(),
            conversation_id: self.conversation,
            events: self.events,
        }
    }
}

/// Sorted, without repeats: one row per user in set-based inserts.
fn unique(users: &[String]) -> Vec<&str> {
    let set: BTreeSet<&str> = users.iter().map(String::as_str).collect();
    set.into_iter().collect()
}
