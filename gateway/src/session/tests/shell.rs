//! The async shell over channels, with tokio's clock paused: the real loop, timer and inbox,
//! a fake store side, and no wall-clock sleep.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Sink, Stream};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::{bob, live, settings, ACK_TIMEOUT, HEARTBEAT, WALL};
use crate::delivery::PullRequest;
use crate::error::Result;
use crate::hub::{DrainNotice, Outbound};
use crate::session::core::Connection;
use crate::session::ops::{Call, Done, Finished, Op};
use crate::session::{run, Backend, Identity};
use crate::store::Page;

/// A socket made of two channels: what the test sends, what the session writes. With
/// `stall_after`, the client stops reading after that many frames: later flushes never finish.
struct Socket {
    incoming: mpsc::UnboundedReceiver<Result<Message, axum::Error>>,
    outgoing: mpsc::UnboundedSender<Message>,
    stall_after: Option<usize>,
    written: usize,
}

impl Stream for Socket {
    type Item = Result<Message, axum::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.incoming.poll_recv(cx)
    }
}

impl Sink<Message> for Socket {
    type Error = axum::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), axum::Error> {
        self.written += 1;
        self.outgoing
            .send(item)
            .map_err(|_| axum::Error::new("peer gone"))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        if self.stall_after.is_some_and(|n| self.written > n) {
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// The store side: every call answers at once; the calls made are kept.
#[derive(Default)]
struct FakeBackend {
    calls: Mutex<Vec<Op>>,
}

impl Backend for FakeBackend {
    fn call(&self, _: Arc<Identity>, call: Call) -> BoxFuture<'static, Finished> {
        self.calls.lock().unwrap().push(call.op.clone());
        let result = match call.op {
            Op::Backlog => Ok(Done::Backlog(vec![])),
            _ => Ok(Done::Frame(json!({"type": 0, "status": 200}).to_string())),
        };
        async move {
            Finished {
                request_id: call.request_id,
                silent: false,
                result,
            }
        }
        .boxed()
    }

    fn read(&self, _: Arc<Identity>, _: PullRequest) -> BoxFuture<'static, Result<Page>> {
        async {
            Ok(Page {
                messages: vec![],
                has_more: false,
            })
        }
        .boxed()
    }

    fn refresh_route(&self, _: &Identity) {}
    fn unacked(&self, _: &Identity, _: Vec<Arc<crate::model::Prepared>>) {}
}

struct Running {
    client: mpsc::UnboundedSender<Result<Message, axum::Error>>,
    frames: mpsc::UnboundedReceiver<Message>,
    inbox: mpsc::Sender<Outbound>,
    session: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start() -> Self {
        Self::start_stalling(None)
    }

    /// A session whose client stops reading after `stall_after` frames.
    fn start_stalling(stall_after: Option<usize>) -> Self {
        let (client, incoming) = mpsc::unbounded_channel();
        let (outgoing, frames) = mpsc::unbounded_channel();
        let (inbox, inbox_rx) = mpsc::channel(16);
        let conn = Connection::new(settings(), bob(), Instant::now(), WALL);
        let socket = Socket {
            incoming,
            outgoing,
            stall_after,
            written: 0,
        };
        let backend = Arc::new(FakeBackend::default());
        let resync = Arc::new(Notify::new());
        let session = tokio::spawn(run(socket, conn, backend, inbox_rx, resync));
        Self {
            client,
            frames,
            inbox,
            session,
        }
    }

    async fn next(&mut self) -> Message {
        self.frames.recv().await.expect("a frame")
    }

    async fn next_json(&mut self) -> Value {
        match self.next().await {
            Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
            other => panic!("not a text frame: {other:?}"),
        }
    }

    fn send(&self, frame: Value) {
        let text = Message::Text(frame.to_string().into());
        self.client.send(Ok(text)).unwrap();
    }
}

fn close_code(m: &Message) -> Option<u16> {
    match m {
        Message::Close(Some(f)) => Some(f.code),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn silence_closes_4000_after_three_heartbeats_of_paused_time() {
    let mut s = Running::start();
    assert_eq!(s.next_json().await["type"], 20);
    let started = Instant::now();
    assert_eq!(close_code(&s.next().await), Some(4000));
    assert_eq!(started.elapsed(), HEARTBEAT * 3);
    s.session.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unacked_push_is_resent_after_the_ack_timeout() {
    let mut s = Running::start();
    s.next_json().await;
    s.inbox.send(live(1)).await.unwrap();
    assert_eq!(s.next_json().await["retry"], false);
    let pushed = Instant::now();
    let again = s.next_json().await;
    assert_eq!(
        (again["retry"].clone(), pushed.elapsed()),
        (json!(true), ACK_TIMEOUT)
    );
}

#[tokio::test(start_paused = true)]
async fn requests_are_answered_in_order_through_the_backend() {
    let mut s = Running::start();
    s.next_json().await;
    s.send(json!({"type": 3, "requestId": "hb"}));
    assert_eq!(s.next_json().await["type"], 4);
    s.send(json!({"type": 1, "params": {"toMessageId": "alice", "message": "x"}, "requestId": 1}));
    assert_eq!(s.next_json().await["type"], 0);
}

#[tokio::test(start_paused = true)]
async fn at_the_drain_deadline_queued_pushes_go_out_before_1012() {
    let mut s = Running::start();
    s.next_json().await;
    // A drain whose deadline has come, and a push queued behind it: whether the session takes
    // the push from its inbox or flushes it at the deadline, it goes out before the close.
    let notice = DrainNotice {
        deadline: Instant::now(),
        reconnect_after: Duration::ZERO,
    };
    s.inbox
        .send(Outbound::Drain(Box::new(notice)))
        .await
        .unwrap();
    s.inbox.send(live(1)).await.unwrap();
    assert_eq!(s.next_json().await["type"], 22);
    assert_eq!(s.next_json().await["msg"]["params"]["seq"], 1);
    assert_eq!(close_code(&s.next().await), Some(1012));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_closed_1013_after_the_write_timeout() {
    // WELCOME is read; the push after it never leaves the socket's buffer.
    let mut s = Running::start_stalling(Some(1));
    assert_eq!(s.next_json().await["type"], 20);
    s.inbox.send(live(1)).await.unwrap();
    assert_eq!(s.next_json().await["msg"]["params"]["seq"], 1);
    let stalled = Instant::now();
    // The close frame is queued behind it (a client that reads on finds it), and the session
    // ends without waiting for the client any longer than one more write timeout.
    assert_eq!(close_code(&s.next().await), Some(1013));
    let write_timeout = settings().write_timeout;
    assert_eq!(stalled.elapsed(), write_timeout);
    s.session.await.unwrap();
    assert_eq!(stalled.elapsed(), write_timeout * 2);
}
