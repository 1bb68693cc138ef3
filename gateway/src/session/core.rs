//! One connection's state machine, sans I/O (the shape of `quinn_proto::Connection`).
//!
//! Inputs go in — a client frame, an event from the hub, a finished store call, a page read for
//! catch-up, a timer firing — each with the time it happened. Effects come out of
//! [`Connection::poll_effect`]: frames to write, store calls to start, pages to read, the route to
//! refresh, and at last the close. [`Connection::poll_timeout`] says when to wake it next. It
//! owns the ack window, the heartbeat, timelife and drain deadlines, the rate limit and the count
//! of store calls in flight; it never touches a socket, a clock or the store, so every rule here
//! is unit-tested with made-up instants.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chat_protocol::server::{self, Drain, DrainReason, ErrorFrame, Kicked, Welcome};
use chat_protocol::{close, limits, ClientFrame, PreparedPush, Reply, RequestId};
use tokio::time::Instant;

use super::ops::{Call, Done, Finished, Op};
use super::rate::{RateLimit, TypingGate};
use super::Identity;
use crate::delivery::{Outbox, PullRequest, Push};
use crate::error::{Error, Result};
use crate::hub::{DrainNotice, Outbound};
use crate::limits::SharedBucket;
use crate::model::{new_id, Prepared};
use crate::store::Page;

mod requests;

/// Store calls one connection may have in flight before the server stops reading from it.
pub const MAX_OPS: usize = 32;
/// How long a failed catch-up read waits before it is tried again.
const PULL_RETRY: Duration = Duration::from_millis(200);

/// The numbers a connection runs by (from the gateway's configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The pod's name (WELCOME's `server`).
    pub pod: String,
    /// The heartbeat interval WELCOME announces; 3 of them without a frame close the connection
    /// (4000).
    pub heartbeat: Duration,
    /// How long a session lives without RENEW before it is closed (4002).
    pub timelife: Duration,
    /// How long a push waits for its ACK before the one retry.
    pub ack_timeout: Duration,
    /// Most pushes in flight unacked; more wait, then are read back from the store.
    pub ack_window: usize,
    /// Sustained rate-limited frames per second; above it requests get ERROR 429.
    pub rate_limit: u32,
    /// How many frames above the sustained rate a burst may send.
    pub rate_burst: u32,
    /// How long one write may wait for the client to read before the connection closes 1013.
    pub write_timeout: Duration,
}

/// How the connection ends: the close frame to send (none when the peer is gone or closed
/// first), and whether queued events are flushed first (the drain deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    /// The close frame's code and reason, or none when the peer is gone or closed first.
    pub close: Option<(u16, &'static str)>,
    /// Whether to write the events still queued for the connection before closing (at the drain
    /// deadline: nothing already routed here is lost).
    pub flush_inbox: bool,
}

impl Ending {
    fn with(code: u16, reason: &'static str) -> Self {
        Self {
            close: Some((code, reason)),
            flush_inbox: false,
        }
    }
}

/// What the connection asks its shell to do.
#[derive(Debug, PartialEq)]
pub enum Effect {
    /// Write this text frame.
    Write(String),
    /// Run this store call; hand its result to [`Connection::handle_finished`], in call order.
    Call(Call),
    /// Read this page for catch-up; hand it to [`Connection::handle_page`].
    Read(PullRequest),
    /// Extend the device's route (heartbeat, renew).
    RefreshRoute,
    /// These messages were not acked after their retry either (an app suspended in the
    /// background): the offline push may announce them.
    Unacked(Vec<Arc<Prepared>>),
    /// Close, and stop.
    Close(Ending),
}

/// A client frame as the socket delivered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A text frame: a request to parse.
    Text(&'a str),
    /// A binary frame: the protocol has none, so the connection closes (1003).
    Binary,
    /// A WebSocket ping or pong (answered by the socket layer): the peer is alive.
    Control,
    /// The peer's close frame.
    Close,
}

/// One connection's state.
pub struct Connection {
    settings: Arc<Settings>,
    who: Arc<Identity>,
    outbox: Outbox<Prepared>,
    rate: RateLimit,
    /// The SEND bucket the user's connections on this pod share, if sends are limited per user.
    user_sends: Option<Arc<SharedBucket>>,
    typing: TypingGate,
    /// `now` and the wall clock (ms) at the start: wall times are derived, never read.
    started: (Instant, i64),
    idle_deadline: Instant,
    expires_at: Instant,
    /// The token's `exp`: the session ends there (4002) whatever RENEW says.
    token_expires: Instant,
    close_at: Option<Instant>,
    pull_paused_until: Option<Instant>,
    calls_in_flight: usize,
    closed: bool,
    effects: VecDeque<Effect>,
}

impl Connection {
    /// A new connection at `now` (`wall_ms`: the wall clock then). Its first effects are
    /// WELCOME and the catch-up read.
    pub fn new(settings: Arc<Settings>, who: Arc<Identity>, now: Instant, wall_ms: i64) -> Self {
        let token_expires = wall_instant(who.token_expires_ms, now, wall_ms);
        let timelife = settings
            .timelife
            .min(token_expires.saturating_duration_since(now));
        let mut c = Self {
            outbox: Outbox::new(settings.ack_window, settings.ack_timeout),
            rate: RateLimit::new(settings.rate_limit, settings.rate_burst, now),
            user_sends: None,
            typing: TypingGate::default(),
            started: (now, wall_ms),
            idle_deadline: now + settings.heartbeat * 3,
            expires_at: now + timelife,
            token_expires,
            close_at: None,
            pull_paused_until: None,
            calls_in_flight: 0,
            closed: false,
            effects: VecDeque::new(),
            settings,
            who,
        };
        let welcome = Welcome {
            session_id: c.who.session_id.clone(),
            user_id: c.who.user.clone(),
            device_id: c.who.device.clone(),
            server: c.settings.pod.clone(),
            timelife: timelife.as_secs(),
            heartbeat: c.settings.heartbeat.as_secs(),
            expires_at: wall_ms + timelife.as_millis() as i64,
        };
        c.reply(Reply::Welcome(welcome), None);
        c.call(Op::Backlog, None);
        c
    }

    /// Who is on this connection.
    pub fn identity(&self) -> &Arc<Identity> {
        &self.who
    }

    /// The numbers this connection runs by.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Shares `bucket` with the user's other connections on this pod: each SEND (1, 9) takes
    /// from it too, and gets ERROR 429 when it is empty (`--user-send-rate`).
    pub fn share_user_sends(&mut self, bucket: Arc<SharedBucket>) {
        self.user_sends = Some(bucket);
    }

    /// May the shell read another client frame? Not while [`MAX_OPS`] calls are in flight.
    pub fn wants_frames(&self) -> bool {
        self.calls_in_flight < MAX_OPS && !self.closed
    }

    /// The next thing to do, if any.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        if self.effects.is_empty() && !self.closed && self.pull_paused_until.is_none() {
            if let Some(req) = self.outbox.next_pull() {
                return Some(Effect::Read(req));
            }
        }
        self.effects.pop_front()
    }

    /// When to call [`Connection::handle_timeout`] next.
    pub fn poll_timeout(&mut self) -> Instant {
        [
            Some(self.idle_deadline),
            Some(self.expires_at),
            self.close_at,
            self.outbox.next_deadline(),
            self.pull_paused_until,
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("the heartbeat deadline is always set")
    }

    /// A frame from the client.
    pub fn handle_frame(&mut self, frame: Incoming<'_>, now: Instant) {
        self.idle_deadline = now + self.settings.heartbeat * 3;
        match frame {
            Incoming::Text(text) if text.len() > limits::MAX_FRAME_BYTES => {
                self.close(Ending::with(close::TOO_BIG, "frame larger than 64 KiB"))
            }
            Incoming::Text(text) => match ClientFrame::parse(text) {
                Ok(frame) => self.handle_request(frame, now),
                Err(e) => self.error(&Error::BadRequest(e.message), e.request_id.as_ref()),
            },
            Incoming::Binary => self.close(Ending::with(
                close::UNSUPPORTED,
                "binary frames are not supported",
            )),
            Incoming::Control => {}
            Incoming::Close => self.close(Ending {
                close: None,
                flush_inbox: false,
            }),
        }
    }

    /// Something the rest of the process tells this connection.
    pub fn handle_event(&mut self, event: Outbound, now: Instant) {
        match event {
            Outbound::Message(m) => {
                if let Some(push) = self.outbox.offer(m, now) {
                    self.write_push(push);
                }
            }
            Outbound::Notice(p) => self.write_notice(&p),
            Outbound::Kick(reason) => {
                self.reply(Reply::Kicked(Kicked { reason }), None);
                self.close(Ending::with(close::KICKED, reason.as_str()));
            }
            Outbound::Drain(notice) => {
                let DrainNotice {
                    deadline,
                    reconnect_after,
                } = *notice;
                let left = deadline.saturating_duration_since(now);
                self.close_at = Some(deadline);
                let drain = Drain {
                    timelife: left.as_secs_f64().ceil() as u64,
                    reconnect_after_ms: reconnect_after.as_millis() as u64,
                    reason: DrainReason::Drain,
                };
                self.reply(Reply::Drain(drain), None);
            }
        }
    }

    /// A store call finished (in the order the calls were made).
    pub fn handle_finished(&mut self, finished: Finished, now: Instant) {
        self.calls_in_flight = self.calls_in_flight.saturating_sub(1);
        match finished.result {
            Ok(Done::Frame(frame)) => self.effects.push_back(Effect::Write(frame)),
            Ok(Done::Token { expires_ms }) => {
                let (start, wall) = self.started;
                self.token_expires = wall_instant(expires_ms, start, wall);
                self.renew(finished.request_id, now);
            }
            Ok(Done::LoggedOut(frame)) => {
                self.effects.push_back(Effect::Write(frame));
                self.close(Ending::with(close::NORMAL, "logged out"));
            }
            Ok(Done::Quiet) => {}
            Ok(Done::Backlog(list)) => {
                for b in list {
                    self.outbox
                        .start_pull(&b.conversation_id, b.after_seq, b.last_seq);
                }
            }
            Err(e) if finished.silent => e.record(),
            Err(e) => self.error(&e, finished.request_id.as_ref()),
        }
    }

    /// A catch-up page read for `req`.
    pub fn handle_page(&mut self, req: &PullRequest, page: Result<Page>, now: Instant) {
        match page {
            Ok(page) => {
                let messages = page
                    .messages
                    .into_iter()
                    .map(|m| Arc::new(Prepared::new(Arc::new(m))))
                    .collect();
                for push in self.outbox.pulled(req, messages, now) {
                    self.write_push(push);
                }
            }
            Err(e) if matches!(e.status(), 403 | 404) => self.outbox.pull_refused(req),
            Err(e) => {
                e.record();
                self.outbox.pull_failed();
                self.pull_paused_until = Some(now + PULL_RETRY);
            }
        }
    }

    /// The hub could not queue an event for this connection: read the backlog again.
    pub fn handle_resync(&mut self) {
        self.call(Op::Backlog, None);
    }

    /// Time has come to `now`: deadlines that passed take effect.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.close_at.is_some_and(|at| at <= now) {
            // Flush what is queued for this device before closing.
            return self.close(Ending {
                close: Some((close::SERVICE_RESTART, "server restarting")),
                flush_inbox: true,
            });
        }
        if self.expires_at <= now {
            let why = if self.token_expires <= now {
                "token expired"
            } else {
                "timelife expired"
            };
            return self.close(Ending::with(close::TIMELIFE_EXPIRED, why));
        }
        if self.idle_deadline <= now {
            return self.close(Ending::with(close::HEARTBEAT_TIMEOUT, "heartbeat timeout"));
        }
        if self.pull_paused_until.is_some_and(|at| at <= now) {
            self.pull_paused_until = None;
        }
        let expired = self.outbox.expire(now);
        for push in expired.send {
            self.write_push(push);
        }
        if !expired.gave_up.is_empty() {
            tracing::debug!(
                count = expired.gave_up.len(),
                "unacked after retry; left for catch-up"
            );
            self.effects.push_back(Effect::Unacked(expired.gave_up));
        }
    }

    fn wall_ms(&self, now: Instant) -> i64 {
        let (start, wall) = self.started;
        wall + now.saturating_duration_since(start).as_millis() as i64
    }

    fn call(&mut self, op: Op, request_id: Option<RequestId>) {
        self.calls_in_flight += 1;
        self.effects
            .push_back(Effect::Call(Call { op, request_id }));
    }

    fn close(&mut self, ending: Ending) {
        if !self.closed {
            self.closed = true;
            self.effects.push_back(Effect::Close(ending));
        }
    }

    fn reply(&mut self, reply: Reply, rid: Option<&RequestId>) {
        self.effects
            .push_back(Effect::Write(server::reply_json(&reply, rid)));
    }

    /// The one place an error becomes an ERROR frame.
    fn error(&mut self, e: &Error, rid: Option<&RequestId>) {
        self.effects.push_back(Effect::Write(error_frame(e, rid)));
    }

    fn write_push(&mut self, push: Push<Prepared>) {
        if push.retry {
            metrics::counter!("chat_retries_total").increment(1);
        }
        metrics::counter!("chat_messages_out_total").increment(1);
        let frame = push.message.push.render(
            &self.who.session_id,
            self.who.user.as_str(),
            push.retry,
            new_id,
        );
        self.effects.push_back(Effect::Write(frame));
    }

    fn write_notice(&mut self, push: &PreparedPush) {
        let frame = push.render(&self.who.session_id, self.who.user.as_str(), false, new_id);
        self.effects.push_back(Effect::Write(frame));
    }
}

/// The instant of the wall-clock time `at_ms`, given that `now` was `wall_ms`; far in the future
/// when it does not fit.
fn wall_instant(at_ms: i64, now: Instant, wall_ms: i64) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
    match u64::try_from(at_ms.saturating_sub(wall_ms)) {
        Ok(ahead) => now
            .checked_add(Duration::from_millis(ahead).min(FAR))
            .unwrap_or(now + Duration::from_secs(86_400)),
        Err(_) => now,
    }
}

/// An ERROR (500) frame for `e`: counted and logged here, as the policy in `error.rs` says.
pub fn error_frame(e: &Error, rid: Option<&RequestId>) -> String {
    e.record();
    let frame = ErrorFrame {
        status: e.status(),
        code: e.code().to_owned(),
        message: e.client_message(),
    };
    server::error_json(&frame, rid)
}
