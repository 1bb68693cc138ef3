//! SYNC (13): the conversation list, or a page of one conversation rendered as the envelopes
//! this session would have been pushed; and catch-up: the backlog on connect and its pages.

use std::sync::Arc;

use chat_protocol::server::SyncReply;
use chat_protocol::server::{reply_json, sync_page_json, ConversationInfo, ConversationKind};
use chat_protocol::{ConversationId, GroupId, Reply, RequestId, UserId};

use crate::app::App;
use crate::delivery::PullRequest;
use crate::error::Result;
use crate::model::{new_id, Prepared};
use crate::session::ops::Done;
use crate::session::Identity;
use crate::store::{ConversationSummary, Page};

pub(super) async fn conversations(
    app: &App,
    who: &Identity,
    rid: Option<&RequestId>,
) -> Result<Done> {
    let list = app.store.conversations(who.user.as_str()).await?;
    let conversations = list.into_iter().map(info).collect();
    let blocked = app.store.blocked(who.user.as_str()).await?;
    let blocked = blocked
        .into_iter()
        .filter_map(|u| UserId::parse(u).ok())
        .collect();
    let reply = Reply::Sync(SyncReply::List {
        conversations,
        blocked,
    });
    Ok(Done::Frame(reply_json(&reply, rid)))
}

fn info(c: ConversationSummary) -> ConversationInfo {
    ConversationInfo {
        conversation_id: ConversationId::parse(c.conversation_id).expect("any string"),
        last_seq: c.last_seq,
        acked_seq: c.acked_seq,
        kind: if c.kind == "group" {
            ConversationKind::Group
        } else {
            ConversationKind::Direct
        },
        peer: c.peer.and_then(|p| UserId::parse(p).ok()),
        group_id: c.group_id.and_then(|g| GroupId::parse(g).ok()),
        name: c.name,
        read_seq: c.read_seq,
        unread: c.unread,
        peer_acked_seq: c.peer_acked_seq,
        peer_read_seq: c.peer_read_seq,
    }
}

pub(super) async fn read(
    app: &App,
    who: &Identity,
    conversation_id: ConversationId,
    after_seq: i64,
    limit: u32,
    rid: Option<&RequestId>,
) -> Result<Done> {
    let page = app
        .store
        .read(
            who.user.as_str(),
            conversation_id.as_str(),
            after_seq,
            limit,
        )
        .await?;
    let envelopes: Vec<String> = page
        .messages
        .into_iter()
        .map(|m| {
            let prepared = Prepared::new(Arc::new(m));
            prepared
                .push
                .render(&who.session_id, who.user.as_str(), false, new_id)
        })
        .collect();
    let frame = sync_page_json(rid, &conversation_id, &envelopes, page.has_more);
    Ok(Done::Frame(frame))
}

pub(super) async fn backlog(app: &App, who: &Identity) -> Result<Done> {
    Ok(Done::Backlog(app.store.backlog(who.user.as_str()).await?))
}

pub(super) async fn page(app: &App, who: &Identity, req: &PullRequest) -> Result<Page> {
    app.store
        .read(
            who.user.as_str(),
            &req.conversation_id,
            req.after_seq,
            req.limit,
        )
        .await
}
