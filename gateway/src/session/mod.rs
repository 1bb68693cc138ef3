//! One WebSocket connection. [`core::Connection`] decides everything (sans I/O); [`run`] is the
//! async shell around it that only moves bytes and drives its timer: it reads frames, the
//! session's inbox, finished store calls and catch-up pages, feeds them to the core, and carries
//! out the effects the core returns. The store side is a [`Backend`], so the shell runs over
//! channels and a fake backend in tests, with tokio's paused clock.

pub mod core;
pub mod ops;
mod rate;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message};
use chat_protocol::{close, DeviceId, UserId};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, Notify};
use tokio::time::{sleep_until, Instant};
use tracing::Instrument;

use self::core::{Connection, Effect, Ending, Incoming};
use self::ops::{Call, Finished};
use crate::delivery::{DeviceRoute, PullRequest};
use crate::error::Result;
use crate::hub::Outbound;
use crate::model::Prepared;
use crate::store::Page;

/// Who is on a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The token's user.
    pub user: UserId,
    /// The display name pushes of this connection's messages carry.
    pub name: String,
    /// The device the client named at the upgrade.
    pub device: DeviceId,
    /// Fences this connection's route and hub entry against its successors.
    pub epoch: u64,
    /// WELCOME's `sessionId`, `{pod}_{user}_{epoch in hex}`, stamped on every push to this
    /// connection.
    pub session_id: String,
    /// The token's `exp` in ms: the session never outlives it (WELCOME and RENEW are capped at
    /// it; a RENEW with a fresh token moves it).
    pub token_expires_ms: i64,
}

impl Identity {
    /// This connection's entry in the route table.
    pub fn route(&self, pod: &str) -> DeviceRoute {
        DeviceRoute {
            user: self.user.as_str().to_owned(),
            device: self.device.as_str().to_owned(),
            pod: pod.to_owned(),
            epoch: self.epoch,
        }
    }
}

/// What the shell needs of the rest of the gateway: running store calls, reading catch-up pages,
/// refreshing the route. Implemented by `crate::handlers::Handlers`.
pub trait Backend: Send + Sync + 'static {
    /// Runs a call (store, fan-out) to its end; the reply frame or error comes back.
    fn call(&self, who: Arc<Identity>, call: Call) -> BoxFuture<'static, Finished>;
    /// Reads a catch-up page.
    fn read(&self, who: Arc<Identity>, req: PullRequest) -> BoxFuture<'static, Result<Page>>;
    /// Extends the device's route, in the background.
    fn refresh_route(&self, who: &Identity);
    /// Messages the device left unacked after their retry, handed over in the background (the
    /// offline push).
    fn unacked(&self, who: &Identity, messages: Vec<Arc<Prepared>>);
}

/// Runs the connection until it closes. Calls still in flight then finish on a task of their own:
/// their replies have nowhere to go, but a SEND that commits must still reach the recipients'
/// devices (and an ACK its sender's DELIVERED notice), not wait for their next catch-up.
///
/// Not an `async fn`: the returned future is the connection's whole state while it lives, and an
/// `async fn` wrapping the block would keep a second copy of its arguments beside it (~1.3 KB
/// of every idle connection's memory, `-Zprint-type-sizes`).
pub fn run<S, B>(
    mut socket: S,
    conn: Connection,
    backend: Arc<B>,
    inbox: mpsc::Receiver<Outbound>,
    resync: Arc<Notify>,
) -> impl std::future::Future<Output = ()> + Send
where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Unpin
        + Send,
    B: Backend,
{
    let who = conn.identity().clone();
    let stall = conn.settings().write_timeout;
    let span = tracing::info_span!("session", user.id = %who.user, device.id = %who.device, session.id = %who.session_id);
    // Built here, not in the block: the block then holds the core once, inside the shell.
    let mut shell = Shell {
        conn,
        backend,
        calls: FuturesOrdered::new(),
        read: None,
        stall,
    };
    async move {
        tracing::debug!("connected");
        let ending = shell.run(&mut socket, inbox, resync).await;
        // Bounded like any write: a client that reads nothing does not hold the task.
        let closing = async {
            if let Some((code, reason)) = ending {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                let _ = socket.send(Message::Close(Some(frame))).await;
            }
            let _ = socket.close().await;
        };
        let _ = tokio::time::timeout(stall, closing).await;
        let pending = std::mem::take(&mut shell.calls);
        if !pending.is_empty() {
            tokio::spawn(pending.for_each(|_| async {}).in_current_span());
        }
        tracing::debug!(?ending, "closed");
    }
    .instrument(span)
}

struct Shell<B> {
    conn: Connection,
    backend: Arc<B>,
    calls: FuturesOrdered<BoxFuture<'static, Finished>>,
    read: Option<(PullRequest, BoxFuture<'static, Result<Page>>)>,
    /// How long one write may wait for the client to read (`--write-timeout-seconds`).
    stall: std::time::Duration,
}

/// Why the loop ended: the close frame to send, if any.
type Closing = Option<(u16, &'static str)>;

impl<B: Backend> Shell<B> {
    async fn run<S>(
        &mut self,
        socket: &mut S,
        mut inbox: mpsc::Receiver<Outbound>,
        resync: Arc<Notify>,
    ) -> Closing
    where
        S: Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin,
    {
        // One timer serves every deadline of the connection. It is moved only when a deadline
        // comes earlier than the one it is armed for (a fresh `sleep_until` per loop turn took
        // the runtime's timer lock several times per frame, contended under load); a deadline
        // that moved later just wakes the loop once for nothing.
        let mut timer = std::pin::pin!(sleep_until(self.conn.poll_timeout()));
        loop {
            match self.carry_out(socket).await {
                Ok(Some(ending)) => return self.finish(socket, &mut inbox, ending).await,
                Ok(None) => {}
                Err(()) => return None,
            }
            let due = self.conn.poll_timeout();
            if timer.is_elapsed() || due < timer.deadline() {
                timer.as_mut().reset(due);
            }
            tokio::select! {
                frame = socket.next(), if self.conn.wants_frames() => match frame {
                    Some(Ok(msg)) => self.frame(msg),
                    Some(Err(e)) => return read_error(e),
                    None => return None,
                },
                Some(event) = inbox.recv() => self.conn.handle_event(event, Instant::now()),
                Some(done) = self.calls.next(), if !self.calls.is_empty() => {
                    self.conn.handle_finished(done, Instant::now())
                }
                page = async { (&mut self.read.as_mut().expect("guarded").1).await }, if self.read.is_some() => {
                    let (req, _) = self.read.take().expect("guarded");
                    self.conn.handle_page(&req, page, Instant::now());
                }
                _ = resync.notified() => self.conn.handle_resync(),
                () = &mut timer => self.conn.handle_timeout(Instant::now()),
            }
        }
    }

    fn frame(&mut self, msg: Message) {
        let now = Instant::now();
        match &msg {
            Message::Text(t) => self.conn.handle_frame(Incoming::Text(t.as_str()), now),
            Message::Binary(_) => self.conn.handle_frame(Incoming::Binary, now),
            Message::Ping(_) | Message::Pong(_) => self.conn.handle_frame(Incoming::Control, now),
            Message::Close(_) => self.conn.handle_frame(Incoming::Close, now),
        }
    }

    /// Carries out the core's effects until there are none. `Ok(Some)`: the core closes;
    /// `Err`: the socket is gone.
    async fn carry_out<S>(&mut self, socket: &mut S) -> Result<Option<Ending>, ()>
    where
        S: Sink<Message, Error = axum::Error> + Unpin,
    {
        while let Some(effect) = self.conn.poll_effect() {
            match effect {
                Effect::Write(text) => match write(socket, text, self.stall).await {
                    Ok(()) => {}
                    Err(Unwritten::Gone) => return Err(()),
                    Err(Unwritten::Stalled) => return Ok(Some(not_reading())),
                },
                Effect::Call(call) => {
                    let who = self.conn.identity().clone();
                    self.calls.push_back(self.backend.call(who, call));
                }
                Effect::Read(req) => {
                    let page = self.backend.read(self.conn.identity().clone(), req.clone());
                    self.read = Some((req, page));
                }
                Effect::RefreshRoute => self.backend.refresh_route(self.conn.identity()),
                Effect::Unacked(messages) => self.backend.unacked(self.conn.identity(), messages),
                Effect::Close(ending) => return Ok(Some(ending)),
            }
        }
        Ok(None)
    }

    /// The core closes: at the drain deadline, what is queued for the device goes out first.
    async fn finish<S>(
        &mut self,
        socket: &mut S,
        inbox: &mut mpsc::Receiver<Outbound>,
        ending: Ending,
    ) -> Closing
    where
        S: Sink<Message, Error = axum::Error> + Unpin,
    {
        if ending.flush_inbox {
            while let Ok(event) = inbox.try_recv() {
                if matches!(event, Outbound::Kick(_) | Outbound::Drain(_)) {
                    continue;
                }
                self.conn.handle_event(event, Instant::now());
            }
            while let Some(effect) = self.conn.poll_effect() {
                if let Effect::Write(text) = effect {
                    if let Err(e) = write(socket, text, self.stall).await {
                        return match e {
                            Unwritten::Gone => None,
                            Unwritten::Stalled => not_reading().close,
                        };
                    }
                }
            }
        }
        ending.close
    }
}

/// Why a frame was not written.
enum Unwritten {
    /// The socket failed: the peer is gone.
    Gone,
    /// The write waited `--write-timeout-seconds` for room: the client stopped reading.
    Stalled,
}

/// Writes one frame. The connection's outbound queue is bounded — the inbox (1024 events; a
/// message that does not fit is read back from the store), the ack window and its queue, one
/// frame in the socket's buffer — and when the kernel's buffers toward a client are full too,
/// a write waits; past `stall` the client is taken to have stopped reading.
async fn write<S>(socket: &mut S, text: String, stall: std::time::Duration) -> Result<(), Unwritten>
where
    S: Sink<Message, Error = axum::Error> + Unpin,
{
    let mut send = socket.send(Message::Text(text.into()));
    // Almost every write completes at once (the socket has room): no timer is armed for those.
    if let Some(done) = (&mut send).now_or_never() {
        return done.map_err(|_| Unwritten::Gone);
    }
    match tokio::time::timeout(stall, send).await {
        Ok(done) => done.map_err(|_| Unwritten::Gone),
        Err(_) => {
            metrics::counter!("chat_slow_clients_total").increment(1);
            tracing::info!(?stall, "client stopped reading; closing 1013");
            Err(Unwritten::Stalled)
        }
    }
}

/// The ending of a connection whose client stopped reading (1013: try again later).
fn not_reading() -> Ending {
    Ending {
        close: Some((close::TRY_AGAIN_LATER, "client not reading")),
        flush_inbox: false,
    }
}

/// A read error from the socket: too-large and invalid-UTF-8 frames get their close codes.
fn read_error(e: axum::Error) -> Closing {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
    let inner = e.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
            Some((close::TOO_BIG, "frame larger than 64 KiB"))
        }
        Some(WsError::Capacity(_)) => Some((close::TOO_BIG, "frame too large")),
        Some(WsError::Utf8(_)) => Some((close::INVALID_PAYLOAD, "text frame is not valid UTF-8")),
        Some(WsError::Protocol(_)) => Some((close::PROTOCOL_ERROR, "protocol error")),
        _ => None,
    }
}
