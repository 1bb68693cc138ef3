//! The store side of a connection: each request kind that needs the store (or the fan-out) has
//! its handler in its own module, and [`Handlers`] is the table from a call to its handler — the
//! [`crate::session::Backend`] the session shell runs calls through.
//!
//! | frame | op | handler |
//! |---|---|---|
//! | 1 SEND, 9 SEND GROUP | `Op::Send` | [`send`] |
//! | 15 ACK | `Op::Ack` | [`ack`] |
//! | 13 SYNC | `Op::Conversations`, `Op::Read` | [`sync`] |
//! | 18 READ, 24 TYPING, 32 RECALL | `Op::MarkRead`, `Op::Typing`, `Op::Recall` | [`marks`] |
//! | 26 SUBSCRIBE PRESENCE, 34 BLOCK, 35 UNBLOCK | `Op::SubscribePresence`, `Op::Block` | [`presence`] |
//! | 8, 11, 12, 28–31 groups | `Op::CreateGroup`, `Op::AddMembers`, `Op::LeaveGroup`, `Op::ChangeGroup` | [`groups`] |
//! | 7 REGISTER, 21 RENEW with a token | `Op::Register`, `Op::Logout`, `Op::Renew` | [`register`] |
//! | (catch-up) | `Op::Backlog`, pages | [`sync`] |
//!
//! HEARTBEAT, RENEW, REGISTER's logout and every parse or rate-limit error are answered by the
//! connection core itself, without the store.

mod ack;
pub(crate) mod groups;
mod marks;
mod presence;
mod register;
pub mod send;
mod sync;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::app::App;
use crate::delivery::PullRequest;
use crate::error::Result;
use crate::model::now_ms;
use crate::model::Prepared;
use crate::presence::{PresenceEvent, Targets};
use crate::session::ops::{Call, Done, Finished, Op};
use crate::session::{Backend, Identity};
use crate::store::Page;
use crate::webhook::Webhook;

/// Runs a connection's calls against the process's store, route table and bus.
pub struct Handlers {
    app: Arc<App>,
}

impl Handlers {
    /// Handlers over `app`'s dependencies.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

impl Backend for Handlers {
    fn call(&self, who: Arc<Identity>, call: Call) -> BoxFuture<'static, Finished> {
        let app = self.app.clone();
        async move {
            let Call { op, request_id } = call;
            let silent = matches!(op, Op::Backlog);
            let result = handle(&app, &who, op, request_id.as_ref()).await;
            Finished {
                request_id,
                silent,
                result,
            }
        }
        .boxed()
    }

    fn read(&self, who: Arc<Identity>, req: PullRequest) -> BoxFuture<'static, Result<Page>> {
        let app = self.app.clone();
        async move { sync::page(&app, &who, &req).await }.boxed()
    }

    fn unacked(&self, who: &Identity, messages: Vec<Arc<Prepared>>) {
        let Some(webhook) = self.app.webhook.clone() else {
            return;
        };
        let (app, user) = (self.app.clone(), who.user.as_str().to_owned());
        tokio::spawn(async move { unacked(&app, &webhook, &user, messages).await });
    }

    fn refresh_route(&self, who: &Identity) {
        let app = self.app.clone();
        let route = who.route(&app.pod);
        tokio::spawn(async move {
            match app.routes.refresh(&route).await {
                Ok(refreshed) => {
                    // Its route had been reaped or lost: the user is back...
                    if let Some(watchers) = refreshed.back_online {
                        app.presence.announce(
                            Targets::Pods(watchers),
                            vec![PresenceEvent::online(&route.user, now_ms())],
                        );
                    }
                    // ...and what was sent while the device had no route comes from the store.
                    if refreshed.created {
                        if let Some(conn) = app
                            .hub
                            .get(&route.user, &route.device)
                            .filter(|c| c.epoch == route.epoch)
                        {
                            conn.resync();
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "route refresh failed");
                    app.router.reannounce_later();
                }
            }
        });
    }
}

/// Messages one of `user`'s devices left unacked after the retry: each one from someone else
/// that none of the user's devices acked (its `ackedSeq` is below it) gets an offline push.
async fn unacked(app: &App, webhook: &Webhook, user: &str, messages: Vec<Arc<Prepared>>) {
    let messages: Vec<_> = messages.iter().filter(|m| m.message.from != user).collect();
    if messages.is_empty() {
        return;
    }
    let acked: HashMap<String, i64> = match app.store.conversations(user).await {
        Ok(list) => list
            .into_iter()
            .map(|c| (c.conversation_id, c.acked_seq))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading ack positions failed; pushing anyway");
            HashMap::new()
        }
    };
    let users = [user.to_owned()];
    for m in messages {
        let m = &m.message;
        if acked.get(&m.conversation_id).is_none_or(|a| *a < m.seq) {
            webhook.offline(m, &users).await;
        }
    }
}

/// One hop from the op to its handler.
async fn handle(
    app: &App,
    who: &Identity,
    op: Op,
    rid: Option<&chat_protocol::RequestId>,
) -> Result<Done> {
    match op {
        Op::Send {
            group,
            to,
            message,
            file_type,
            file,
            client_msg_id,
        } => {
            let send = send::Send {
                group,
                to,
                body: message,
                file_type,
                file,
                client_msg_id,
            };
            send::handle(app, who, send, rid).await
        }
        Op::Ack { msgid } => ack::handle(app, who, msgid, rid).await,
        Op::Conversations => sync::conversations(app, who, rid).await,
        Op::Read {
            conversation_id,
            after_seq,
            limit,
        } => sync::read(app, who, conversation_id, after_seq, limit, rid).await,
        Op::Backlog => sync::backlog(app, who).await,
        Op::MarkRead {
            conversation_id,
            seq,
        } => marks::read(app, who, conversation_id, seq, rid).await,
        Op::Typing {
            conversation_id,
            state,
        } => marks::typing(app, who, conversation_id, state).await,
        Op::Recall { message_id } => marks::recall(app, who, message_id, rid).await,
        Op::SubscribePresence { users } => presence::subscribe(app, who, users, rid).await,
        Op::Block { user_id, on } => presence::block(app, who, user_id, on, rid).await,
        Op::CreateGroup { name, members } => groups::create(app, who, &name, &members, rid).await,
        Op::AddMembers { group_id, members } => {
            groups::add_members(app, who, &group_id, &members, rid).await
        }
        Op::LeaveGroup { group_id } => groups::leave(app, who, group_id, rid).await,
        Op::ChangeGroup { group_id, change } => {
            groups::change_group(app, who, group_id, change, rid).await
        }
        Op::Register { name } => register::handle(app, who, name, rid).await,
        Op::Logout => register::logout(app, who, rid).await,
        Op::Renew { token } => register::renew(app, who, &token.0).await,
    }
}
