//! Requests from the client: which are answered here at once (HEARTBEAT, RENEW, REGISTER's
//! refusal and logout, parse and rate-limit errors) and which become store calls.

use chat_protocol::server::{HeartbeatAck, Renewed};
use chat_protocol::{date::date_string, limits, ClientFrame, LoginStatus};
use chat_protocol::{Reply, Request, RequestId};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::{Connection, Effect};
use crate::error::Error;
use crate::model::user_strings;
use crate::session::ops::{Op, Token};
use crate::store::GroupChange;

impl Connection {
    pub(super) fn handle_request(&mut self, frame: ClientFrame, now: Instant) {
        let rid = frame.request_id;
        if let Request::Typing {
            conversation_id, ..
        } = &frame.request
        {
            if !self.typing.allow(conversation_id, now) {
                metrics::counter!("chat_typing_dropped_total").increment(1);
                return;
            }
        }
        if frame.request.is_rate_limited() && !self.rate.allow(now) {
            let e = Error::RateLimited("too many requests; slow down".into());
            return self.error(&e, rid.as_ref());
        }
        if let (Request::Send { .. } | Request::SendGroup { .. }, Some(user)) =
            (&frame.request, &self.user_sends)
        {
            if !user.allow(now) {
                metrics::counter!("chat_limited_total", "limit" => "user_sends").increment(1);
                let e = Error::RateLimited(
                    "too many messages from your user across its devices; slow down".into(),
                );
                return self.error(&e, rid.as_ref());
            }
        }
        let op = match frame.request {
            Request::Heartbeat => return self.heartbeat(rid, now),
            Request::Renew { token: None } => return self.renew(rid, now),
            Request::Renew { token: Some(token) } => Op::Renew {
                token: Token(token),
            },
            Request::Register {
                openid,
                user_name,
                login_status,
            } => match self.register(openid, user_name, login_status, rid.as_ref()) {
                Some(op) => op,
                None => return,
            },
            Request::Ack { msgid } => {
                metrics::counter!("chat_acks_total").increment(1);
                self.outbox.ack(msgid.as_str());
                for push in self.outbox.refill(now) {
                    self.write_push(push);
                }
                Op::Ack { msgid }
            }
            Request::Send {
                to,
                message,
                file_type,
                file,
                client_msg_id,
            } => Op::Send {
                group: false,
                to: to.into_string(),
                message,
                file_type,
                file,
                client_msg_id,
            },
            Request::SendGroup {
                group_id,
                message,
                file_type,
                file,
                client_msg_id,
            } => Op::Send {
                group: true,
                to: group_id.into_string(),
                message,
                file_type,
                file,
                client_msg_id,
            },
            Request::CreateGroup { name, members } => Op::CreateGroup { name, members },
            Request::AddMembers { group_id, members } => Op::AddMembers { group_id, members },
            Request::LeaveGroup { group_id } => Op::LeaveGroup { group_id },
            Request::RemoveMembers { group_id, members } => Op::ChangeGroup {
                group_id,
                change: GroupChange::Remove(user_strings(&members)),
            },
            Request::UpdateGroup { group_id, name } => Op::ChangeGroup {
                group_id,
                change: GroupChange::Rename(name),
            },
            Request::DissolveGroup { group_id } => Op::ChangeGroup {
                group_id,
                change: GroupChange::Dissolve,
            },
            Request::SetRole {
                group_id,
                user_id,
                role,
            } => Op::ChangeGroup {
                group_id,
                change: GroupChange::SetRole(user_id.into_string(), role),
            },
            Request::Read {
                conversation_id,
                seq,
            } => Op::MarkRead {
                conversation_id,
                seq,
            },
            Request::Typing {
                conversation_id,
                state,
            } => Op::Typing {
                conversation_id,
                state,
            },
            Request::Recall { message_id } => Op::Recall { message_id },
            Request::SubscribePresence { users } => Op::SubscribePresence { users },
            Request::Block { user_id } | Request::Unblock { user_id }
                if user_id == self.who.user =>
            {
                let e = Error::BadRequest("you cannot block yourself".into());
                return self.error(&e, rid.as_ref());
            }
            Request::Block { user_id } => Op::Block { user_id, on: true },
            Request::Unblock { user_id } => Op::Block { user_id, on: false },
            Request::Sync {
                conversation_id: None,
                ..
            } => Op::Conversations,
            Request::Sync {
                conversation_id: Some(conversation_id),
                after_seq,
                limit,
            } => Op::Read {
                conversation_id,
                after_seq,
                limit,
            },
        };
        self.call(op, rid);
    }

    fn heartbeat(&mut self, rid: Option<RequestId>, now: Instant) {
        self.effects.push_back(Effect::RefreshRoute);
        let date = date_string(self.wall_ms(now));
        self.reply(Reply::HeartbeatAck(HeartbeatAck { date }), rid.as_ref());
    }

    /// RENEW (or RENEW with a token, once verified): a new timelife, never past the token's
    /// `exp`.
    pub(super) fn renew(&mut self, rid: Option<RequestId>, now: Instant) {
        let token_left = self.token_expires.saturating_duration_since(now);
        let mut timelife = self.settings.timelife.min(token_left);
        self.expires_at = now + timelife;
        if let Some(close_at) = self.close_at {
            // Draining: tell the client the time left; the drain deadline closes (1012) unless
            // the token ends first.
            timelife = timelife.min(close_at.saturating_duration_since(now));
            self.expires_at = self
                .expires_at
                .max(close_at + Duration::from_secs(1))
                .min(self.token_expires);
        }
        self.effects.push_back(Effect::RefreshRoute);
        let renewed = Renewed {
            timelife: timelife.as_secs(),
            expires_at: self.wall_ms(now) + timelife.as_millis() as i64,
        };
        self.reply(Reply::Renew(renewed), rid.as_ref());
    }

    /// REGISTER: a store call to record the name, or nothing more (refused, or logged out).
    fn register(
        &mut self,
        openid: String,
        user_name: Option<String>,
        login_status: LoginStatus,
        rid: Option<&RequestId>,
    ) -> Option<Op> {
        if openid != self.who.user.as_str() {
            let e = Error::Forbidden("openid does not match the token's user".into());
            self.error(&e, rid);
            return None;
        }
        if login_status == LoginStatus::Offline {
            // The device's tokens are revoked first; the reply and the close follow.
            return Some(Op::Logout);
        }
        if let Some(name) =
            user_name.filter(|n| !n.is_empty() && n.len() <= limits::MAX_USER_NAME_BYTES)
        {
            let mut who = (*self.who).clone();
            who.name = name;
            self.who = Arc::new(who);
        }
        Some(Op::Register {
            name: self.who.name.clone(),
        })
    }
}
