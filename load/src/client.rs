//! Opening the load's connections: one per user, many at a time, round-robin over the gateways.
//! Everything about one connection (source addresses, read buffer, WELCOME, keepalive, close) is
//! `chat_client`'s.

use std::time::Duration;

use chat_client::connect::{classify, Event, Ws};
use chat_client::keepalive::{phase, Keepalive};
use chat_client::{Connection, Connector};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{stream, SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use crate::cli::ConnectArgs;
use crate::identity::{User, DEVICE};
use crate::stats::Counts;

/// tungstenite's per-connection read buffer. tungstenite zero-fills the free part of it (up to
/// this size) before every socket read, including the reads that find nothing: at 64 KiB that
/// memset was 75 % of the load tool's instructions (callgrind, 7.7 reads per delivered message).
/// 4 KiB still takes several ~600-byte frames per read.
pub const READ_BUFFER: usize = 4096;

/// One connector per `--url`, resolved once.
pub async fn connectors(connect: &ConnectArgs) -> anyhow::Result<Vec<Connector>> {
    let mut endpoints = Vec::with_capacity(connect.url.len());
    for url in &connect.url {
        endpoints.push(
            Connector::resolve_with(url, connect.source_ips.clone())
                .await?
                .read_buffer(connect.read_buffer_bytes.unwrap_or(READ_BUFFER))
                .timeout(connect.connect_timeout()),
        );
    }
    Ok(endpoints)
}

/// Opens one connection per user, `concurrency` at a time, in order. User `i` connects to
/// `connectors[(i + shift) % n]` (round-robin over the gateways) as connection number
/// `first_index + i` for source-address selection.
pub async fn connect_all(
    connectors: &[Connector],
    shift: usize,
    users: &[User],
    first_index: usize,
    concurrency: usize,
) -> Vec<chat_client::Result<Connection>> {
    stream::iter(users.iter().enumerate())
        .map(|(i, user)| {
            let connector = &connectors[(i + shift) % connectors.len()];
            connector.connect(first_index + i, &user.token, Some(DEVICE))
        })
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// The connections, or an error naming how many failed and why.
pub fn all_up(results: Vec<chat_client::Result<Connection>>) -> anyhow::Result<Vec<Connection>> {
    let total = results.len();
    let mut kinds = Counts::default();
    let mut first = None;
    let mut up = Vec::with_capacity(total);
    for result in results {
        match result {
            Ok(conn) => up.push(conn),
            Err(e) => {
                kinds.add(e.kind());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Some(first) = first {
        anyhow::bail!(
            "{} of {total} connections failed ({kinds}); first error: {first}",
            kinds.total()
        );
    }
    Ok(up)
}

/// How [`hold_until`] ended.
pub enum Held {
    /// The server ended the connection, for this reason.
    Ended(String),
    /// `until` fired; the connection is still open (close it, or drop it to cut it).
    Stopped(SplitSink<Ws, Message>, SplitStream<Ws>),
}

/// Keeps one connection alive (heartbeats, renewals) until `until`, reading and dropping what
/// the server sends.
pub async fn hold_until(
    conn: Connection,
    index: usize,
    heartbeat: Option<Duration>,
    until: &CancellationToken,
) -> Held {
    let (mut sink, mut stream) = conn.ws.split();
    let mut keepalive = Keepalive::new(&conn.welcome, heartbeat, phase(index));
    loop {
        tokio::select! {
            _ = until.cancelled() => return Held::Stopped(sink, stream),
            item = stream.next() => {
                if let Event::Ended(reason) = classify(item) {
                    return Held::Ended(reason);
                }
            }
            frame = keepalive.next() => {
                if let Err(e) = sink.send(Message::text(frame)).await {
                    return Held::Ended(format!("send failed: {e}"));
                }
            }
        }
    }
}

/// Writes frames and flushes once.
pub async fn send_all(
    sink: &mut SplitSink<Ws, Message>,
    frames: Vec<String>,
) -> Result<(), String> {
    let write = async {
        for frame in frames {
            sink.feed(Message::text(frame)).await?;
        }
        sink.flush().await
    };
    write
        .await
        .map_err(|e: tungstenite::Error| format!("send failed: {e}"))
}
