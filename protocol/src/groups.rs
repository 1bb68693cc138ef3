//! Group administration (v1.1): roles, and the events stored in a group's conversation as
//! system messages (DELIVER GROUP, 10, with `system` in its params).

use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// A member's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// One per group: may do everything, dissolve and set roles included.
    Owner,
    /// May remove members (not the owner or another admin) and rename the group.
    Admin,
    /// May send, add members and leave.
    Member,
}

impl Role {
    /// The role as sent and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Reads a role from its text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    /// May this role remove members and rename the group?
    pub fn is_manager(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

/// What a group event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupEvent {
    /// CREATE GROUP (8): `members` are everyone in it, `name` its name.
    Created,
    /// ADD MEMBERS (11): `members` were added.
    Added,
    /// REMOVE MEMBERS (28): `members` were removed.
    Removed,
    /// LEAVE GROUP (12): `members` is the one who left.
    Left,
    /// UPDATE GROUP (29): `name` is the new name.
    Renamed,
    /// SET ROLE (31), or an owner's leaving: `members` is the one whose role is now `role`.
    Role,
    /// DISSOLVE GROUP (30): the group is gone.
    Dissolved,
}

/// `system` of a group event's params: who did what to whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemEvent {
    /// What happened.
    pub event: GroupEvent,
    /// Who did it.
    pub actor: UserId,
    /// Whom it concerned (empty for a rename or dissolution).
    #[serde(default)]
    pub members: Vec<UserId>,
    /// The group's name: at creation, and the new one for a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The role given, for `role`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}
