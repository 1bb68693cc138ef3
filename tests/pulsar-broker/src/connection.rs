//! One client connection over the crate's own `Codec` in a tokio-util `Framed`: the CONNECT
//! handshake, PING/PONG both ways, and the loop that feeds every other frame to the shared
//! state and writes what the state addresses to this connection.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use pulsar::message::{proto::BaseCommand, Codec, Message};
use tokio::{
    net::TcpStream,
    sync::mpsc,
    time::{Instant, MissedTickBehavior},
};
use tokio_util::{codec::Framed, sync::CancellationToken};

use crate::{
    broker::Shared,
    commands,
    error::{Error, Result},
};

/// How long a client may take to send CONNECT after opening the socket.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames written before one flush, so a burst of MESSAGE pushes costs few syscalls.
const MAX_FRAMES_PER_FLUSH: usize = 256;

type Frames = Framed<TcpStream, Codec>;

/// Serves one connection until the client leaves, a frame fails, the client leaves a PING
/// unanswered for a keepalive interval, or `cancel` fires (shutdown or [`drop_all_connections`]).
///
/// [`drop_all_connections`]: crate::BrokerHandle::drop_all_connections
#[tracing::instrument(name = "connection", skip_all, fields(peer = %peer, connection.id))]
pub(crate) async fn serve(
    socket: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    keepalive: Duration,
) {
    let mut frames = Framed::new(socket, Codec);
    let protocol_version = tokio::select! {
        _ = cancel.cancelled() => return,
        handshake = handshake(&mut frames) => match handshake {
            Ok(version) => version,
            Err(error) => {
                tracing::debug!(%error, "handshake failed");
                return;
            }
        },
    };
    if let Err(error) = frames.send(commands::connected(protocol_version)).await {
        tracing::debug!(%error, "could not answer CONNECT");
        return;
    }
    let (outbound, mut to_client) = mpsc::unbounded_channel();
    let id = shared.open(outbound, cancel.clone());
    tracing::Span::current().record("connection.id", id);
    tracing::debug!("connected");
    let ended = session(&mut frames, &shared, id, &mut to_client, &cancel, keepalive).await;
    shared.close(id);
    match ended {
        Ok(()) => tracing::debug!("closed"),
        Err(error) => tracing::debug!(%error, "closed"),
    }
}

/// Waits for CONNECT and returns the client's protocol version. Authentication data is
/// accepted as it is: the test broker does not check credentials.
async fn handshake(frames: &mut Frames) -> Result<Option<i32>> {
    let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, frames.next())
        .await
        .map_err(|_| Error::Handshake("no CONNECT in time".into()))?;
    match first {
        Some(Ok(Message {
            command:
                BaseCommand {
                    connect: Some(connect),
                    ..
                },
            ..
        })) => Ok(connect.protocol_version),
        Some(Ok(other)) => Err(Error::Handshake(format!(
            "expected CONNECT, got command type {}",
            other.command.r#type
        ))),
        Some(Err(error)) => Err(error.into()),
        None => Err(Error::Handshake("closed before CONNECT".into())),
    }
}

async fn session(
    frames: &mut Frames,
    shared: &Shared,
    id: u64,
    to_client: &mut mpsc::UnboundedReceiver<Message>,
    cancel: &CancellationToken,
    keepalive: Duration,
) -> Result<()> {
    let mut pings = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    // after a stall, do not fire missed ticks back to back: that would close a connection
    // whose PONG simply had no time to arrive
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // any frame counts as a sign of life, as on a real broker
    let mut heard_since_ping = true;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            frame = frames.next() => {
                let Some(frame) = frame else { return Ok(()) };
                let message = frame?;
                heard_since_ping = true;
                if message.command.ping.is_some() {
                    frames.send(commands::pong()).await?;
                } else if message.command.pong.is_none() {
                    shared.handle(id, message);
                }
            }
            Some(message) = to_client.recv() => {
                frames.feed(message).await?;
                for _ in 1..MAX_FRAMES_PER_FLUSH {
                    let Ok(message) = to_client.try_recv() else { break };
                    frames.feed(message).await?;
                }
                frames.flush().await?;
            }
            _ = pings.tick() => {
                if !heard_since_ping {
                    return Err(Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no answer to PING within a keepalive interval",
                    )));
                }
                heard_since_ping = false;
                frames.send(commands::ping()).await?;
            }
        }
    }
}
