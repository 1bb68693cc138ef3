//! SUBSCRIBE PRESENCE (26), BLOCK (34) and UNBLOCK (35), v1.1. A subscription replaces the
//! connection's set in this pod's [`crate::presence::Presence`] and is answered with each
//! user's presence now, as the caller may see it. A block is stored (1:1 sends from the
//! blocked user then get 403, `segment.rs`), and changes what the blocked user's subscriptions
//! show of the blocker on every pod at once.

use std::collections::HashSet;

use chat_protocol::server::{reply_json, BlockReply, PresenceInfo, PresenceReply};
use chat_protocol::{Reply, RequestId, UserId};

use crate::app::App;
use crate::error::Result;
use crate::presence::index::Watcher;
use crate::presence::{shown, PresenceEvent, Targets};
use crate::session::ops::Done;
use crate::session::Identity;

pub(super) async fn subscribe(
    app: &App,
    who: &Identity,
    users: Vec<UserId>,
    rid: Option<&RequestId>,
) -> Result<Done> {
    let viewer = who.user.as_str();
    let ids: Vec<String> = users.iter().map(|u| u.as_str().to_owned()).collect();
    let visible: HashSet<String> = app.store.visible(viewer, &ids).await?.into_iter().collect();
    // Watch first, then read: a change between the two is pushed, not missed.
    let watcher = Watcher {
        user: viewer.to_owned(),
        device: who.device.as_str().to_owned(),
        epoch: who.epoch,
    };
    let set = ids
        .iter()
        .map(|u| (u.clone(), visible.contains(u)))
        .collect();
    app.presence.watch(&watcher, set).await?;
    let states = app.routes.presence(&ids).await?;
    let presence = users
        .into_iter()
        .zip(states)
        .map(|(user_id, state)| {
            let (online, last_seen) = shown(visible.contains(user_id.as_str()), state);
            PresenceInfo {
                user_id,
                online,
                last_seen,
            }
        })
        .collect();
    let reply = Reply::Presence(PresenceReply { presence });
    Ok(Done::Frame(reply_json(&reply, rid)))
}

pub(super) async fn block(
    app: &App,
    who: &Identity,
    user_id: UserId,
    on: bool,
    rid: Option<&RequestId>,
) -> Result<Done> {
    let (me, other) = (who.user.as_str(), user_id.as_str());
    app.store.block(me, other, on).await?;
    // What `other`'s subscriptions show of the caller: hidden while blocked; after UNBLOCK,
    // as it is if they share a conversation.
    let shown_as = if on || app.store.visible(other, &[me.to_owned()]).await?.is_empty() {
        None
    } else {
        let state = app.routes.presence(&[me.to_owned()]).await?;
        state.first().map(|s| shown(true, *s))
    };
    if on || shown_as.is_some() {
        app.presence.announce(
            Targets::All,
            vec![PresenceEvent::View {
                viewer: other.to_owned(),
                user_id: me.to_owned(),
                shown: shown_as,
            }],
        );
    }
    let reply = BlockReply { user_id };
    let reply = if on {
        Reply::Block(reply)
    } else {
        Reply::Unblock(reply)
    };
    Ok(Done::Frame(reply_json(&reply, rid)))
}
