//! One connection of a client's: its halves, its keepalive, when it was last heard from.

use std::future::Future;
use std::pin::Pin;

use chat_protocol::server::Welcome;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use super::Options;
use crate::connect::{Connector, Ws};
use crate::error::Result;
use crate::keepalive::Keepalive;

/// One connection of the client's.
pub(super) struct Link {
    pub(super) sink: SplitSink<Ws, Message>,
    pub(super) stream: SplitStream<Ws>,
    keepalive: Keepalive,
    pub(super) last_read: Instant,
}

/// What woke a link.
pub(super) enum LinkWake {
    Read(Option<Result<Message, tungstenite::Error>>),
    Beat(&'static str),
}

impl Link {
    async fn wake(&mut self) -> LinkWake {
        tokio::select! {
            item = self.stream.next() => LinkWake::Read(item),
            frame = self.keepalive.next() => LinkWake::Beat(frame),
        }
    }

    pub(super) async fn write(&mut self, text: String) -> Result<(), String> {
        self.sink
            .send(Message::text(text))
            .await
            .map_err(|e| format!("write failed: {e}"))
    }
}

pub(super) async fn wake(link: Option<&mut Link>) -> LinkWake {
    match link {
        Some(l) => l.wake().await,
        None => std::future::pending().await,
    }
}

/// A finished connect: the connection and its WELCOME.
pub(super) type Opened = Result<(Link, Welcome)>;

/// A connect in progress, kept by the client across turns: a turn cancelled by its caller
/// does not cancel the connect.
pub(super) struct Connecting {
    /// A DRAIN handover (true), or a reconnect after a loss.
    pub(super) handover: bool,
    future: Pin<Box<dyn Future<Output = Opened> + Send>>,
}

impl Connecting {
    pub(super) fn start(url: String, options: Options, handover: bool) -> Self {
        let future = Box::pin(async move { open(&url, &options).await });
        Self { handover, future }
    }
}

/// The connect in progress finishing; never, when there is none.
pub(super) async fn connected(c: Option<&mut Connecting>) -> Box<Opened> {
    match c {
        Some(c) => Box::new((&mut c.future).await),
        None => std::future::pending().await,
    }
}

pub(super) async fn open(url: &str, options: &Options) -> Result<(Link, Welcome)> {
    let conn = Connector::resolve(url)
        .await?
        .token_in(options.token_in)
        .timeout(options.connect_timeout)
        .connect(0, &options.token, options.device.as_deref())
        .await?;
    let (sink, stream) = conn.ws.split();
    let link = Link {
        sink,
        stream,
        keepalive: Keepalive::new(&conn.welcome, options.heartbeat, 0.0),
        last_read: Instant::now(),
    };
    Ok((link, conn.welcome))
}

pub(super) async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(at).await
}
