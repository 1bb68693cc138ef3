//! Client frames as JSON (for clients): `{"type", "params", "requestId"}` with each request's
//! params under their wire names.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{ClientFrame, LoginStatus, Request, TypingState};
use crate::groups::Role;
use crate::ids::{ConversationId, GroupId, MessageId, UserId};

impl Serialize for ClientFrame {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("type", &self.request.kind())?;
        match &self.request {
            Request::Register {
                openid,
                user_name,
                login_status,
            } => map.serialize_entry(
                "params",
                &RegisterParams {
                    openid,
                    user_name: user_name.as_deref(),
                    login_status: *login_status,
                },
            )?,
            Request::Send {
                to,
                message,
                file_type,
                file,
                client_msg_id,
            } => map.serialize_entry(
                "params",
                &SendParams {
                    to_message_id: to.as_str(),
                    message,
                    file_type: *file_type,
                    file: file.as_deref().map(|file_id| FileParam { file_id }),
                    client_msg_id: client_msg_id.as_deref(),
                },
            )?,
            Request::SendGroup {
                group_id,
                message,
                file_type,
                file,
                client_msg_id,
            } => map.serialize_entry(
                "params",
                &SendParams {
                    to_message_id: group_id.as_str(),
                    message,
                    file_type: *file_type,
                    file: file.as_deref().map(|file_id| FileParam { file_id }),
                    client_msg_id: client_msg_id.as_deref(),
                },
            )?,
            Request::CreateGroup { name, members } => {
                map.serialize_entry("params", &CreateParams { name, members })?
            }
            Request::AddMembers { group_id, members } => {
                map.serialize_entry("params", &MembersParams { group_id, members })?
            }
            Request::LeaveGroup { group_id } => {
                map.serialize_entry("params", &GroupParams { group_id })?
            }
            Request::Ack { msgid } => map.serialize_entry(
                "params",
                &AckParams {
                    from: "client",
                    msgid,
                },
            )?,
            Request::Sync {
                conversation_id,
                after_seq,
                limit,
            } if conversation_id.is_some()
                || (*after_seq, *limit) != (0, crate::limits::MAX_SYNC_LIMIT) =>
            {
                // The list (no conversation) ignores the cursor and the page size, but a frame
                // that gave them says so when written back.
                map.serialize_entry(
                    "params",
                    &SyncParams {
                        conversation_id: conversation_id.as_ref(),
                        after_seq: *after_seq,
                        limit: *limit,
                    },
                )?
            }
            Request::Read {
                conversation_id,
                seq,
            } => map.serialize_entry(
                "params",
                &ReadParams {
                    conversation_id,
                    seq: *seq,
                },
            )?,
            Request::Typing {
                conversation_id,
                state,
            } => map.serialize_entry(
                "params",
                &TypingParams {
                    conversation_id,
                    state: *state,
                },
            )?,
            Request::RemoveMembers { group_id, members } => {
                map.serialize_entry("params", &MembersParams { group_id, members })?
            }
            Request::UpdateGroup { group_id, name } => {
                map.serialize_entry("params", &RenameParams { group_id, name })?
            }
            Request::DissolveGroup { group_id } => {
                map.serialize_entry("params", &GroupParams { group_id })?
            }
            Request::SetRole {
                group_id,
                user_id,
                role,
            } => map.serialize_entry(
                "params",
                &RoleParams {
                    group_id,
                    user_id,
                    role: *role,
                },
            )?,
            Request::Recall { message_id } => {
                map.serialize_entry("params", &RecallParams { message_id })?
            }
            Request::SubscribePresence { users } => {
                map.serialize_entry("params", &UsersParams { users })?
            }
            Request::Block { user_id } | Request::Unblock { user_id } => {
                map.serialize_entry("params", &UserParams { user_id })?
            }
            Request::Sync { .. } | Request::Heartbeat | Request::Renew { token: None } => {}
            Request::Renew { token: Some(token) } => {
                map.serialize_entry("params", &TokenParams { token })?
            }
        }
        if let Some(id) = &self.request_id {
            map.serialize_entry("requestId", id)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct TokenParams<'a> {
    token: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RegisterParams<'a> {
    openid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_name: Option<&'a str>,
    login_status: LoginStatus,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendParams<'a> {
    to_message_id: &'a str,
    message: &'a str,
    file_type: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<FileParam<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileParam<'a> {
    file_id: &'a str,
}

#[derive(Serialize)]
struct CreateParams<'a> {
    name: &'a str,
    members: &'a [UserId],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MembersParams<'a> {
    group_id: &'a GroupId,
    members: &'a [UserId],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupParams<'a> {
    group_id: &'a GroupId,
}

#[derive(Serialize)]
struct AckParams<'a> {
    from: &'static str,
    msgid: &'a MessageId,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SyncParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_id: Option<&'a ConversationId>,
    after_seq: i64,
    limit: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReadParams<'a> {
    conversation_id: &'a ConversationId,
    seq: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TypingParams<'a> {
    conversation_id: &'a ConversationId,
    state: TypingState,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecallParams<'a> {
    message_id: &'a MessageId,
}

#[derive(Serialize)]
struct UsersParams<'a> {
    users: &'a [UserId],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RenameParams<'a> {
    group_id: &'a GroupId,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoleParams<'a> {
    group_id: &'a GroupId,
    user_id: &'a UserId,
    role: Role,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserParams<'a> {
    user_id: &'a UserId,
}
