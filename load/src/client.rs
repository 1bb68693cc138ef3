//! One load client's connection: TCP (optionally bound to a source address, round-robin, so one
//! machine can open more sockets to one server than one address has ephemeral ports), the
//! WebSocket upgrade with the token in the query, the WELCOME that proves the session is up, and
//! the keepalive (heartbeat and timelife renewal) every held connection needs.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{stream, SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::error::{Error, Result};
use crate::identity::{User, DEVICE};
use crate::protocol::{self, Incoming, Welcome, HEARTBEAT, RENEW};

pub type Ws = WebSocketStream<TcpStream>;

/// How long [`close`] waits for the server's Close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Where and how to connect.
pub struct Endpoint {
    addr: SocketAddr,
    /// The URL up to and including the `?` or `&` that the token and device follow.
    url_prefix: String,
    source_ips: Vec<IpAddr>,
    config: WebSocketConfig,
    timeout: Duration,
}

/// A connection whose session is up.
pub struct Connected {
    pub ws: Ws,
    pub welcome: Welcome,
    /// From starting the TCP connect to receiving WELCOME.
    pub handshake: Duration,
}

impl Endpoint {
    /// Resolves `url` (`ws://host:port/path`) once, so thousands of connects do no DNS.
    /// `read_buffer` is tungstenite's eagerly allocated per-connection read buffer.
    pub async fn resolve(
        url: &str,
        source_ips: Vec<IpAddr>,
        read_buffer: usize,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let (host, port, url_prefix) = split_url(url)?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("resolving {host}:{port}"))?
            .collect();
        let wants_v6 = source_ips.first().map(IpAddr::is_ipv6);
        let addr = addrs
            .iter()
            .find(|a| wants_v6.is_none_or(|v6| a.is_ipv6() == v6))
            .copied()
            .with_context(|| format!("{host} has no address of the source addresses' family"))?;
        if source_ips.iter().any(|ip| ip.is_ipv6() != addr.is_ipv6()) {
            bail!("--source-ips mixes IPv4 and IPv6");
        }
        Ok(Self {
            addr,
            url_prefix,
            source_ips,
            config: WebSocketConfig::default().read_buffer_size(read_buffer),
            timeout,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens connection number `index` (which picks its source address) as `user` and waits for
    /// WELCOME.
    pub async fn connect(&self, index: usize, user: &User) -> Result<Connected> {
        let start = Instant::now();
        match tokio::time::timeout(self.timeout, self.open(index, user)).await {
            Ok(Ok((ws, welcome))) => Ok(Connected {
                ws,
                welcome,
                handshake: start.elapsed(),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }

    async fn open(&self, index: usize, user: &User) -> Result<(Ws, Welcome)> {
        let tcp = match self.source_ips.get(index % self.source_ips.len().max(1)) {
            Some(ip) => {
                let socket = match ip {
                    IpAddr::V4(_) => TcpSocket::new_v4()?,
                    IpAddr::V6(_) => TcpSocket::new_v6()?,
                };
                socket.bind(SocketAddr::new(*ip, 0))?;
                socket.connect(self.addr).await?
            }
            None => TcpStream::connect(self.addr).await?,
        };
        tcp.set_nodelay(true)?;
        let url = format!("{}token={}&device={DEVICE}", self.url_prefix, user.token);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(url, tcp, Some(self.config)).await?;
        loop {
            match classify(ws.next().await) {
                Event::Text(text) => {
                    return match protocol::parse(&text) {
                        Some(Incoming::Welcome(welcome)) => Ok((ws, welcome)),
                        _ => Err(Error::NoWelcome(text.chars().take(200).collect())),
                    }
                }
                Event::Ignore => continue,
                Event::Ended(reason) => return Err(Error::ClosedBeforeWelcome(reason)),
            }
        }
    }
}

/// Opens one connection per user, `concurrency` at a time, in order. User `i` connects to
/// `endpoints[(i + shift) % n]` (round-robin over the gateways) as connection number
/// `first_index + i` for source-address selection.
pub async fn connect_all(
    endpoints: &[Endpoint],
    shift: usize,
    users: &[User],
    first_index: usize,
    concurrency: usize,
) -> Vec<Result<Connected>> {
    stream::iter(users.iter().enumerate())
        .map(|(i, user)| endpoints[(i + shift) % endpoints.len()].connect(first_index + i, user))
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// `(host, port, url prefix ending in ? or &)` of a `ws://` URL.
fn split_url(url: &str) -> anyhow::Result<(String, u16, String)> {
    let uri: Uri = url.parse().with_context(|| format!("bad --url {url:?}"))?;
    match uri.scheme_str() {
        Some("ws") => {}
        Some("wss") => {
            bail!("wss:// is not supported: point --url at the gateway's plain ws:// port")
        }
        _ => bail!("--url must start with ws:// (got {url:?})"),
    }
    let host = uri
        .host()
        .with_context(|| format!("--url {url:?} has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let separator = match uri.query() {
        None => "?",
        Some("") => "",
        Some(_) => "&",
    };
    Ok((host, port, format!("{url}{separator}")))
}

/// What a connection loop does with the next item of its stream.
pub enum Event {
    Text(Utf8Bytes),
    /// Pings, pongs and binary frames (tungstenite answers pings itself).
    Ignore,
    /// The connection is over; the reason is a short label to count by.
    Ended(String),
}

pub fn classify(item: Option<Result<Message, tungstenite::Error>>) -> Event {
    match item {
        Some(Ok(Message::Text(text))) => Event::Text(text),
        Some(Ok(Message::Close(Some(frame)))) => {
            Event::Ended(format!("close {}", u16::from(frame.code)))
        }
        Some(Ok(Message::Close(None))) => Event::Ended("close without code".into()),
        Some(Ok(_)) => Event::Ignore,
        Some(Err(e)) => Event::Ended(match e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                "closed".into()
            }
            tungstenite::Error::Io(e) => format!("io {:?}", e.kind()),
            tungstenite::Error::Protocol(e) => format!("protocol error: {e}"),
            e => format!("websocket error: {e}"),
        }),
        None => Event::Ended("eof".into()),
    }
}

/// Closes a connection the way a well-behaved client does: sends Close and reads until the
/// server's Close (bounded), so the server sees a clean close rather than a reset.
pub async fn close(mut sink: SplitSink<Ws, Message>, mut stream: SplitStream<Ws>) {
    if sink.send(Message::Close(None)).await.is_err() {
        return;
    }
    let rest = async { while let Some(Ok(_)) = stream.next().await {} };
    let _ = tokio::time::timeout(CLOSE_WAIT, rest).await;
}

/// Heartbeats and timelife renewals for one held connection.
pub struct Keepalive {
    heartbeat: Interval,
    renew: Interval,
}

impl Keepalive {
    /// Heartbeats every `WELCOME.heartbeat` seconds (or `heartbeat_override`) and renews every
    /// half timelife. `phase` in `[0, 1)` shifts the first heartbeat within its interval, so ten
    /// thousand connections opened in one burst do not all beat in the same millisecond.
    pub fn new(welcome: &Welcome, heartbeat_override: Option<Duration>, phase: f64) -> Self {
        let beat = heartbeat_override.unwrap_or(Duration::from_secs(welcome.heartbeat.max(1)));
        let renew_every = Duration::from_secs((welcome.timelife / 2).max(1));
        let now = Instant::now();
        let phase = phase.clamp(0.0, 1.0);
        let mut heartbeat = interval_at(now + beat.mul_f64(phase), beat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut renew = interval_at(now + renew_every + beat.mul_f64(phase), renew_every);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { heartbeat, renew }
    }

    /// Waits for the next keepalive frame to send.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.heartbeat.tick() => HEARTBEAT,
            _ = self.renew.tick() => RENEW,
        }
    }
}

/// A well-spread phase in `[0, 1)` for connection `index` (golden-ratio sequence).
pub fn phase(index: usize) -> f64 {
    (index as f64 * 0.618_033_988_749_895).fract()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_ws_urls() {
        let (host, port, prefix) = split_url("ws://127.0.0.1:8080/ws").unwrap();
        assert_eq!((host.as_str(), port), ("127.0.0.1", 8080));
        assert_eq!(prefix, "ws://127.0.0.1:8080/ws?");
        let (_, port, prefix) = split_url("ws://chat.local/ws?x=1").unwrap();
        assert_eq!(port, 80);
        assert_eq!(prefix, "ws://chat.local/ws?x=1&");
        let (host, _, _) = split_url("ws://[::1]:9/ws").unwrap();
        assert_eq!(host, "::1");
        assert!(split_url("wss://x/ws").is_err());
        assert!(split_url("http://x/ws").is_err());
    }

    #[test]
    fn phases_spread_over_the_interval() {
        let mut phases: Vec<f64> = (0..100).map(phase).collect();
        assert!(phases.iter().all(|p| (0.0..1.0).contains(p)));
        phases.sort_by(f64::total_cmp);
        let widest_gap = phases.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
        assert!(widest_gap < 0.03, "{widest_gap}");
    }

    #[tokio::test(start_paused = true)]
    async fn keepalive_beats_and_renews() {
        let welcome = Welcome {
            user_id: "u".into(),
            heartbeat: 30,
            timelife: 100,
        };
        let start = Instant::now();
        let mut keepalive = Keepalive::new(&welcome, None, 0.5);
        assert_eq!(keepalive.next().await, HEARTBEAT);
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        assert_eq!(keepalive.next().await, HEARTBEAT);
        assert_eq!(start.elapsed(), Duration::from_secs(45));
        assert_eq!(keepalive.next().await, RENEW);
        assert_eq!(start.elapsed(), Duration::from_secs(65));
    }
}
