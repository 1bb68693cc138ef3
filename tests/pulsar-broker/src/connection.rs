//! One client connection over the crate's own `Codec` in a tokio-util `Framed`: the CONNECT
//! handshake, PING/PONG both ways, and the loop that feeds every other frame to the shared
//! state and writes what the state addresses to this connection.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use pulsar::message::{proto::BaseCommand, Codec, Message};
use tokio::{
    io::{AsyncRead, AsyncWrite},
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

type Frames<S> = Framed<S, Codec>;

/// What every connection is served with.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// How often the broker PINGs the client.
    pub(crate) keepalive: Duration,
    /// The token CONNECT must carry (`BrokerConfig::auth_token`).
    pub(crate) token: Option<String>,
}

/// Serves one connection until the client leaves, a frame fails, the client leaves a PING
/// unanswered for a keepalive interval, or `cancel` fires (shutdown or [`drop_all_connections`]).
///
/// [`drop_all_connections`]: crate::BrokerHandle::drop_all_connections
#[tracing::instrument(name = "connection", skip_all, fields(peer = %peer, connection.id))]
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    socket: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    settings: Settings,
) {
    let mut frames = Framed::new(socket, Codec);
    let protocol_version = tokio::select! {
        _ = cancel.cancelled() => return,
        handshake = handshake(&mut frames, settings.token.as_deref()) => match handshake {
            Ok(version) => version,
            Err(error @ Error::Authentication(_)) => {
                tracing::info!(%error, "CONNECT refused");
                let _ = frames.send(commands::error(0, &error)).await;
                return;
            }
            Err(error) => {
                tracing::debug!(%error, "handshake failed");
                return;
            }
        },
    };
    let keepalive = settings.keepalive;
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

/// Waits for CONNECT and returns the client's protocol version. With `token`, CONNECT must
/// carry it (auth method `token`); without, any authentication data is accepted.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    frames: &mut Frames<S>,
    token: Option<&str>,
) -> Result<Option<i32>> {
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
        })) => {
            if let Some(token) = token {
                let method = connect.auth_method_name.as_deref().unwrap_or("none");
                let data = connect.auth_data.as_deref().unwrap_or_default();
                if method != "token" {
                    return Err(Error::Authentication(format!(
                        "auth method {method:?}, want \"token\""
                    )));
                }
                if data != token.as_bytes() {
                    return Err(Error::Authentication("wrong token".into()));
                }
            }
            Ok(connect.protocol_version)
        }
        Some(Ok(other)) => Err(Error::Handshake(format!(
            "expected CONNECT, got command type {}",
            other.command.r#type
        ))),
        Some(Err(error)) => Err(error.into()),
        None => Err(Error::Handshake("closed before CONNECT".into())),
    }
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    frames: &mut Frames<S>,
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
