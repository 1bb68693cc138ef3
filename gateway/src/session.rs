//! One WebSocket connection's loop: reads client frames, runs requests, writes replies and
//! pushes, keeps the ack window, enforces heartbeat, timelife, size and rate limits.
//!
//! Generic over the socket (`Stream` + `Sink` of axum messages) so it can run over channels.
//! Requests that touch the store run concurrently (up to [`MAX_OPS`]) but reply in order.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::time::{sleep_until, Instant};
use tracing::Instrument;

use crate::delivery::{DeviceRoute, Outbox, PullRequest, Push};
use crate::error::{Error, Result};
use crate::hub::{DrainNotice, Outbound};
use crate::model::{new_id, now_ms, DeliveredNotice, StoredMessage};
use crate::protocol::{self, close, kind, parse_client_frame, Request, RequestId};
use crate::router::Payload;
use crate::server::App;
use crate::store::{Backlog, NewMessage, Page};

/// Store requests one connection may have outstanding before the server stops reading from it.
pub const MAX_OPS: usize = 32;

/// Who is on this connection.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: String,
    pub name: String,
    pub device: String,
    pub epoch: u64,
    pub session_id: String,
}

impl Identity {
    pub fn route(&self, pod: &str) -> DeviceRoute {
        DeviceRoute {
            user: self.user.clone(),
            device: self.device.clone(),
            pod: pod.to_owned(),
            epoch: self.epoch,
        }
    }
}

/// What a finished store request asks the loop to do.
enum Done {
    Frames(Vec<String>),
    Backlog(Vec<Backlog>),
}

/// Why the loop ended: a close frame to send, or none when the peer is gone or closed first.
type Ending = Option<(u16, &'static str)>;

/// Token bucket for client requests (acks and heartbeats are not counted).
struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    fn allow(&mut self, now: Instant) -> bool {
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Session<S> {
    app: Arc<App>,
    socket: S,
    who: Identity,
    outbox: Outbox,
    ops: FuturesOrdered<BoxFuture<'static, Done>>,
    pull: Option<(PullRequest, BoxFuture<'static, Result<Page>>)>,
    expires_at: Instant,
    idle_deadline: Instant,
    close_at: Option<Instant>,
    rate: RateLimit,
}

/// Runs the connection until it closes; unregisters it afterwards.
pub async fn run<S>(
    app: Arc<App>,
    socket: S,
    who: Identity,
    inbox: mpsc::Receiver<Outbound>,
    resync: Arc<Notify>,
) where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Unpin
        + Send,
{
    let span = tracing::info_span!("session", user.id = %who.user, device.id = %who.device, session.id = %who.session_id);
    async move {
        let cfg = &app.config;
        let now = Instant::now();
        let mut s = Session {
            outbox: Outbox::new(cfg.ack_window as usize, cfg.ack_timeout()),
            ops: FuturesOrdered::new(),
            pull: None,
            expires_at: now + cfg.timelife(),
            idle_deadline: now + cfg.heartbeat() * 3,
            close_at: None,
            rate: RateLimit::new(cfg.rate_limit_per_second, cfg.rate_burst),
            app: app.clone(),
            socket,
            who: who.clone(),
        };
        tracing::debug!("connected");
        let ending = s.run(inbox, resync).await;
        if let Some((code, reason)) = ending {
            let _ = s
                .socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
        let _ = s.socket.close().await;
        // Requests still running when the connection ends finish without it: their replies have
        // nowhere to go, but a SEND that commits must still reach the recipients' devices (and
        // an ACK its sender's DELIVERED notice), not wait for their next catch-up.
        let pending = std::mem::take(&mut s.ops);
        if !pending.is_empty() {
            tokio::spawn(pending.for_each(|_| async {}).in_current_span());
        }
        app.hub.remove(&who.user, &who.device, who.epoch);
        if let Err(e) = app.routes.unregister(&who.route(&app.pod)).await {
            tracing::warn!(error = %e, "route removal failed; it expires by TTL");
        }
        tracing::debug!(?ending, "closed");
    }
    .instrument(span)
    .await
}

impl<S> Session<S>
where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Unpin
        + Send,
{
    async fn write(&mut self, text: String) -> bool {
        self.socket.send(Message::Text(text.into())).await.is_ok()
    }

    async fn write_push(&mut self, push: Push) -> bool {
        if push.retry {
            metrics::counter!("chat_retries_total").increment(1);
        }
        metrics::counter!("chat_messages_out_total").increment(1);
        let env = push
            .message
            .envelope(&self.who.session_id, &self.who.user, push.retry);
        self.write(serde_json::to_string(&env).expect("envelope serializes"))
            .await
    }

    async fn write_pushes(&mut self, pushes: Vec<Push>) -> bool {
        for p in pushes {
            if !self.write_push(p).await {
                return false;
            }
        }
        true
    }

    async fn run(&mut self, mut inbox: mpsc::Receiver<Outbound>, resync: Arc<Notify>) -> Ending {
        let welcome = json!({
            "sessionId": self.who.session_id,
            "userId": self.who.user,
            "deviceId": self.who.device,
            "server": self.app.pod,
            "timelife": self.app.config.timelife_seconds,
            "heartbeat": self.app.config.heartbeat_seconds,
            "expiresAt": now_ms() + self.app.config.timelife().as_millis() as i64,
        });
        if !self
            .write(protocol::reply(kind::WELCOME, welcome, &None))
            .await
        {
            return None;
        }
        self.start_backlog();
        // One timer serves every deadline of the connection (heartbeat, timelife, drain, ack
        // timeouts). A fresh `sleep_until` per deadline per loop turn took the runtime's timer
        // lock several times for every frame and event; under load those locks were contended
        // and workers stalled in them for milliseconds. The timer is armed for the earliest
        // deadline and moved only when one comes earlier: a deadline that moved later (a frame
        // pushed the heartbeat deadline out, an ack emptied the window) just wakes the loop once
        // for nothing, and it re-arms.
        let mut timer = std::pin::pin!(sleep_until(self.idle_deadline));
        loop {
            if self.pull.is_none() {
                if let Some(req) = self.outbox.next_pull() {
                    let app = self.app.clone();
                    let (user, r) = (self.who.user.clone(), req.clone());
                    self.pull = Some((
                        req,
                        async move {
                            app.store
                                .read(&user, &r.conversation_id, r.after_seq, r.limit)
                                .await
                        }
                        .boxed(),
                    ));
                }
            }
            let ack_deadline = self.outbox.next_deadline();
            let due = [
                Some(self.idle_deadline),
                Some(self.expires_at),
                self.close_at,
                ack_deadline,
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("the heartbeat deadline is always set");
            if timer.is_elapsed() || due < timer.deadline() {
                timer.as_mut().reset(due);
            }
            tokio::select! {
                frame = self.socket.next(), if self.ops.len() < MAX_OPS => {
                    match frame {
                        Some(Ok(msg)) => if let Some(ending) = self.on_frame(msg).await { return ending },
                        Some(Err(e)) => return read_error(e),
                        None => return None,
                    }
                }
                Some(event) = inbox.recv() => {
                    if let Some(ending) = self.on_outbound(event).await { return ending }
                }
                Some(done) = self.ops.next(), if !self.ops.is_empty() => {
                    match done {
                        Done::Frames(frames) => for f in frames { if !self.write(f).await { return None } },
                        Done::Backlog(list) => for b in list { self.outbox.start_pull(&b.conversation_id, b.after_seq, b.last_seq) },
                    }
                }
                page = async { (&mut self.pull.as_mut().expect("guarded").1).await }, if self.pull.is_some() => {
                    let (req, _) = self.pull.take().expect("guarded");
                    match page {
                        Ok(page) => {
                            let msgs = page.messages.into_iter().map(Arc::new).collect();
                            let pushes = self.outbox.pulled(&req, msgs, Instant::now());
                            if !self.write_pushes(pushes).await { return None }
                        }
                        Err(e) if matches!(e.status(), 403 | 404) => self.outbox.pull_refused(&req),
                        Err(e) => {
                            e.record();
                            self.outbox.pull_failed();
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                _ = resync.notified() => self.start_backlog(),
                () = &mut timer => {
                    let now = Instant::now();
                    if self.close_at.is_some_and(|at| at <= now) {
                        // Flush what is queued for this device before closing.
                        while let Ok(event) = inbox.try_recv() {
                            if matches!(event, Outbound::Kick(_) | Outbound::Drain(_)) {
                                continue;
                            }
                            if self.on_outbound(event).await.is_some() { return None }
                        }
                        return Some((close::SERVICE_RESTART, "server restarting"));
                    }
                    if self.expires_at <= now {
                        return Some((close::TIMELIFE_EXPIRED, "timelife expired"));
                    }
                    if self.idle_deadline <= now {
                        return Some((close::HEARTBEAT_TIMEOUT, "heartbeat timeout"));
                    }
                    if ack_deadline.is_some_and(|at| at <= now) {
                        let expired = self.outbox.expire(now);
                        if !self.write_pushes(expired.resend).await { return None }
                        if !expired.gave_up.is_empty() {
                            tracing::debug!(count = expired.gave_up.len(), "unacked after retry; left for catch-up");
                        }
                    }
                }
            }
        }
    }

    /// Reads the user's backlog (catch-up): every conversation with messages above `ackedSeq`.
    fn start_backlog(&mut self) {
        let app = self.app.clone();
        let user = self.who.user.clone();
        self.ops.push_back(
            async move {
                match app.store.backlog(&user).await {
                    Ok(list) => Done::Backlog(list),
                    Err(e) => {
                        e.record();
                        Done::Frames(vec![])
                    }
                }
            }
            .boxed(),
        );
    }

    async fn on_outbound(&mut self, event: Outbound) -> Option<Ending> {
        let ok = match event {
            Outbound::Message(m) => match self.outbox.offer(m, Instant::now()) {
                Some(p) => self.write_push(p).await,
                None => true,
            },
            Outbound::Delivered(n) => {
                self.write(
                    serde_json::to_string(&n.envelope(&self.who.session_id, &self.who.user))
                        .expect("serializes"),
                )
                .await
            }
            Outbound::Push(p) => {
                self.write(
                    serde_json::to_string(&p.envelope(&self.who.session_id, &self.who.user))
                        .expect("serializes"),
                )
                .await
            }
            Outbound::Kick(reason) => {
                let _ = self
                    .write(protocol::reply(
                        kind::KICKED,
                        json!({"reason": reason}),
                        &None,
                    ))
                    .await;
                return Some(Some((close::KICKED, reason)));
            }
            Outbound::Drain(notice) => {
                let DrainNotice {
                    deadline,
                    reconnect_after,
                } = *notice;
                let left = deadline.saturating_duration_since(Instant::now());
                self.close_at = Some(deadline);
                let params = json!({"timelife": left.as_secs_f64().ceil() as u64, "reconnectAfterMs": reconnect_after.as_millis() as u64, "reason": "drain"});
                self.write(protocol::reply(kind::DRAIN, params, &None))
                    .await
            }
        };
        (!ok).then_some(None)
    }

    async fn on_frame(&mut self, msg: Message) -> Option<Ending> {
        let now = Instant::now();
        self.idle_deadline = now + self.app.config.heartbeat() * 3;
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                return Some(Some((
                    close::UNSUPPORTED,
                    "binary frames are not supported",
                )))
            }
            Message::Ping(_) | Message::Pong(_) => return None,
            Message::Close(_) => return Some(None),
        };
        if text.len() > protocol::MAX_FRAME_BYTES {
            return Some(Some((close::TOO_BIG, "frame larger than 64 KiB")));
        }
        let frame = match parse_client_frame(text.as_str()) {
            Ok(f) => f,
            Err((rid, e)) => return self.reply_error(&e, &rid).await,
        };
        let rid = frame.request_id;
        let limited = !matches!(
            frame.request,
            Request::Ack { .. } | Request::Heartbeat | Request::Renew
        );
        if limited && !self.rate.allow(now) {
            return self
                .reply_error(
                    &Error::RateLimited("too many requests; slow down".into()),
                    &rid,
                )
                .await;
        }
        match frame.request {
            Request::Heartbeat => {
                self.refresh_route();
                let reply = protocol::reply(
                    kind::HEARTBEAT_ACK,
                    json!({"date": protocol::date_string(now_ms())}),
                    &rid,
                );
                return (!self.write(reply).await).then_some(None);
            }
            Request::Renew => {
                let mut timelife = self.app.config.timelife();
                self.expires_at = now + timelife;
                if let Some(close_at) = self.close_at {
                    // Draining: tell the client the time left; the drain deadline closes (1012).
                    timelife = timelife.min(close_at.saturating_duration_since(now));
                    self.expires_at = self.expires_at.max(close_at + Duration::from_secs(1));
                }
                self.refresh_route();
                let params = json!({"timelife": timelife.as_secs(), "expiresAt": now_ms() + timelife.as_millis() as i64});
                return (!self.write(protocol::reply(kind::RENEW, params, &rid)).await)
                    .then_some(None);
            }
            Request::Register {
                openid,
                user_name,
                login_status,
            } => {
                if openid != self.who.user {
                    return self
                        .reply_error(
                            &Error::Forbidden("openid does not match the token's user".into()),
                            &rid,
                        )
                        .await;
                }
                if login_status == "0" {
                    let reply = protocol::reply(
                        kind::REGISTER,
                        json!({"openid": openid, "loginStatus": "0"}),
                        &rid,
                    );
                    let _ = self.write(reply).await;
                    return Some(Some((close::NORMAL, "logged out")));
                }
                if let Some(name) = user_name.filter(|n| !n.is_empty() && n.len() <= 128) {
                    self.who.name = name;
                }
                let (app, user, name) = (
                    self.app.clone(),
                    self.who.user.clone(),
                    self.who.name.clone(),
                );
                self.spawn_op(rid, move |rid| async move {
                    app.store.upsert_user(&user, &name).await?;
                    Ok(vec![protocol::reply(
                        kind::REGISTER,
                        json!({"openid": user, "userName": name, "loginStatus": "1"}),
                        &rid,
                    )])
                });
            }
            Request::Ack { msgid } => {
                metrics::counter!("chat_acks_total").increment(1);
                self.outbox.ack(&msgid);
                let refill = self.outbox.refill(now);
                if !self.write_pushes(refill).await {
                    return Some(None);
                }
                let (app, user) = (self.app.clone(), self.who.user.clone());
                self.spawn_op(rid, move |rid| async move {
                    let acked = app.store.ack(&user, &msgid).await?;
                    if acked.first_delivery {
                        let m = &acked.message;
                        let notice = DeliveredNotice {
                            message_id: m.message_id.clone(),
                            conversation_id: m.conversation_id.clone(),
                            seq: m.seq,
                            by: user.clone(),
                        };
                        if let Err(e) = app
                            .deliver(
                                Payload::Delivered(Arc::new(notice)),
                                std::slice::from_ref(&m.from),
                                None,
                            )
                            .await
                        {
                            tracing::warn!(error = %e, "DELIVERED notice not sent");
                        }
                    }
                    Ok(vec![protocol::reply(
                        kind::ACK_RECEIVED,
                        json!({"date": protocol::date_string(now_ms()), "message": msgid}),
                        &rid,
                    )])
                });
            }
            Request::Send {
                to,
                message,
                file_type,
                client_msg_id,
            } => self.send(rid, false, to, message, file_type, client_msg_id),
            Request::SendGroup {
                group_id,
                message,
                file_type,
                client_msg_id,
            } => self.send(rid, true, group_id, message, file_type, client_msg_id),
            Request::CreateGroup { name, members } => {
                let (app, user) = (self.app.clone(), self.who.user.clone());
                self.spawn_op(rid, move |rid| async move {
                    let g = app.store.create_group(&user, &name, &members).await?;
                    Ok(vec![protocol::reply(
                        kind::CREATE_GROUP,
                        serde_json::to_value(&g).expect("serializes"),
                        &rid,
                    )])
                });
            }
            Request::AddMembers { group_id, members } => {
                let (app, user) = (self.app.clone(), self.who.user.clone());
                self.spawn_op(rid, move |rid| async move {
                    let g = app.store.add_members(&user, &group_id, &members).await?;
                    Ok(vec![protocol::reply(
                        kind::ADD_MEMBERS,
                        serde_json::to_value(&g).expect("serializes"),
                        &rid,
                    )])
                });
            }
            Request::LeaveGroup { group_id } => {
                let (app, user) = (self.app.clone(), self.who.user.clone());
                self.spawn_op(rid, move |rid| async move {
                    app.store.leave_group(&user, &group_id).await?;
                    Ok(vec![protocol::reply(
                        kind::LEAVE_GROUP,
                        json!({"groupId": group_id}),
                        &rid,
                    )])
                });
            }
            Request::Sync {
                conversation_id: None,
                ..
            } => {
                let (app, user) = (self.app.clone(), self.who.user.clone());
                self.spawn_op(rid, move |rid| async move {
                    let list = app.store.conversations(&user).await?;
                    Ok(vec![protocol::reply(
                        kind::SYNC_REPLY,
                        json!({"conversations": list}),
                        &rid,
                    )])
                });
            }
            Request::Sync {
                conversation_id: Some(conv),
                after_seq,
                limit,
            } => {
                let (app, user, session) = (
                    self.app.clone(),
                    self.who.user.clone(),
                    self.who.session_id.clone(),
                );
                self.spawn_op(rid, move |rid| async move {
                    let page = app.store.read(&user, &conv, after_seq, limit).await?;
                    let messages: Vec<Value> = page.messages.iter().map(|m| serde_json::to_value(m.envelope(&session, &user, false)).expect("serializes")).collect();
                    Ok(vec![protocol::reply(kind::SYNC_REPLY, json!({"conversationId": conv, "messages": messages, "hasMore": page.has_more}), &rid)])
                });
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        rid: RequestId,
        group: bool,
        to: String,
        body: String,
        file_type: i64,
        client_msg_id: Option<String>,
    ) {
        let app = self.app.clone();
        let who = self.who.clone();
        self.spawn_op(rid, move |rid| async move {
            let request_id = match &rid {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => new_id(),
            };
            let msg = NewMessage {
                from: who.user.clone(),
                from_name: who.name.clone(),
                to: to.clone(),
                body,
                file_type,
                client_msg_id,
                request_id,
            };
            let sent = if group {
                app.store.send_group(msg).await?
            } else {
                app.store.send_direct(msg).await?
            };
            let reply = protocol::reply(kind::RECEIVED, sent.message.received_params(), &rid);
            if !sent.duplicate {
                metrics::counter!("chat_messages_in_total").increment(1);
                let users = if group {
                    sent.members
                } else if to == who.user {
                    vec![to]
                } else {
                    vec![to, who.user.clone()]
                };
                let message: Arc<StoredMessage> = Arc::new(sent.message);
                if let Err(e) = app
                    .deliver(
                        Payload::Message(message),
                        &users,
                        Some((&who.user, &who.device)),
                    )
                    .await
                {
                    // Stored already: recipients catch up on reconnect or SYNC.
                    tracing::warn!(error = %e, "fan-out failed after commit");
                }
            }
            Ok(vec![reply])
        });
    }

    /// Queues a store request; its frames (or its error) are written in request order.
    fn spawn_op<F, Fut>(&mut self, rid: RequestId, f: F)
    where
        F: FnOnce(RequestId) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<String>>> + Send + 'static,
    {
        let rid2 = rid.clone();
        let fut = f(rid);
        self.ops.push_back(
            async move {
                match fut.await {
                    Ok(frames) => Done::Frames(frames),
                    Err(e) => {
                        e.record();
                        Done::Frames(vec![protocol::error_frame(&e, &rid2)])
                    }
                }
            }
            .boxed(),
        );
    }

    async fn reply_error(&mut self, err: &Error, rid: &RequestId) -> Option<Ending> {
        err.record();
        (!self.write(protocol::error_frame(err, rid)).await).then_some(None)
    }

    fn refresh_route(&self) {
        let app = self.app.clone();
        let route = self.who.route(&app.pod);
        tokio::spawn(async move {
            if let Err(e) = app.routes.refresh(&route).await {
                tracing::warn!(error = %e, "route refresh failed");
            }
        });
    }
}

/// A read error from the socket: too-large and invalid-UTF-8 frames get their close codes.
fn read_error(e: axum::Error) -> Ending {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    let inner = e.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
            Some((close::TOO_BIG, "frame larger than 64 KiB"))
        }
        Some(WsError::Capacity(_)) => Some((close::TOO_BIG, "frame too large")),
        Some(WsError::Utf8(_)) => Some((close::INVALID_PAYLOAD, "text frame is not valid UTF-8")),
        Some(WsError::Protocol(_)) => Some((1002, "protocol error")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_refills_over_time() {
        let mut r = RateLimit::new(10, 2);
        let now = Instant::now();
        assert!(r.allow(now) && r.allow(now));
        assert!(!r.allow(now));
        assert!(r.allow(now + Duration::from_millis(100)));
        assert!(!r.allow(now + Duration::from_millis(100)));
    }
}
