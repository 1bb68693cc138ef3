//! Opening a connection: TCP (optionally bound to a source address, round-robin, so one machine
//! can open more sockets to one server than one address has ephemeral ports), the WebSocket
//! upgrade with the token in the query, an `Authorization: Bearer` header or the
//! `Sec-WebSocket-Protocol` offer, and the WELCOME that
//! proves the session is up. Also how a connection loop reads its stream ([`classify`]) and how
//! a well-behaved client closes ([`close`]).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chat_protocol::server::Welcome;
use chat_protocol::{Reply, ServerFrame};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::error::{Error, Result};

/// The WebSocket of one connection.
pub type Ws = WebSocketStream<TcpStream>;

/// How long [`close`] waits for the server's Close reply.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long a connect may take by default, WELCOME included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the token goes in the upgrade request (any is accepted; the server prefers the header,
/// then the subprotocol, then the query, which ends up in proxies' access logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenIn {
    /// `?token=<JWT>`.
    #[default]
    Query,
    /// `Authorization: Bearer <JWT>`.
    Header,
    /// `Sec-WebSocket-Protocol: chatcluster.v1, bearer.<JWT>` (what a browser can send; the server
    /// selects `chatcluster.v1`).
    Subprotocol,
}

/// Where and how to connect; resolved once, so thousands of connects do no DNS.
#[derive(Debug, Clone)]
pub struct Connector {
    addr: SocketAddr,
    /// The URL up to and including the `?` or `&` that the query parameters follow.
    url_prefix: String,
    source_ips: Vec<IpAddr>,
    config: WebSocketConfig,
    timeout: Duration,
    token_in: TokenIn,
}

/// A connection whose session is up.
pub struct Connection {
    /// The socket.
    pub ws: Ws,
    /// WELCOME, typed.
    pub welcome: Welcome,
    /// WELCOME as the server wrote it.
    pub welcome_text: String,
    /// From starting the TCP connect to receiving WELCOME.
    pub handshake: Duration,
}

impl Connector {
    /// Resolves `url` (`ws://host:port/path`): token in the query, tungstenite's default read
    /// buffer, a 10 s connect timeout, no source address.
    pub async fn resolve(url: &str) -> Result<Self> {
        Self::resolve_with(url, Vec::new()).await
    }

    /// [`Connector::resolve`], connecting from `source_ips` round-robin (all of one family).
    pub async fn resolve_with(url: &str, source_ips: Vec<IpAddr>) -> Result<Self> {
        let (host, port, url_prefix) = split_url(url)?;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .collect();
        let wants_v6 = source_ips.first().map(IpAddr::is_ipv6);
        let addr = addrs
            .iter()
            .find(|a| wants_v6.is_none_or(|v6| a.is_ipv6() == v6))
            .copied()
            .ok_or(Error::Url(
                url.to_owned(),
                "no address of the source addresses' family",
            ))?;
        if source_ips.iter().any(|ip| ip.is_ipv6() != addr.is_ipv6()) {
            return Err(Error::Url(
                url.to_owned(),
                "source addresses mix IPv4 and IPv6",
            ));
        }
        Ok(Self {
            addr,
            url_prefix,
            source_ips,
            config: WebSocketConfig::default(),
            timeout: CONNECT_TIMEOUT,
            token_in: TokenIn::Query,
        })
    }

    /// tungstenite's eagerly allocated per-connection read buffer (small for idle connections).
    pub fn read_buffer(mut self, bytes: usize) -> Self {
        self.config = self.config.read_buffer_size(bytes);
        self
    }

    /// How long a connect may take, WELCOME included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where the token goes.
    pub fn token_in(mut self, token_in: TokenIn) -> Self {
        self.token_in = token_in;
        self
    }

    /// The resolved server address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens connection number `index` (which picks its source address) with `token` as
    /// `device` (the server assigns one when `None`) and waits for WELCOME.
    pub async fn connect(
        &self,
        index: usize,
        token: &str,
        device: Option<&str>,
    ) -> Result<Connection> {
        let start = Instant::now();
        match tokio::time::timeout(self.timeout, self.open(index, token, device)).await {
            Ok(Ok((ws, welcome, welcome_text))) => Ok(Connection {
                ws,
                welcome,
                welcome_text,
                handshake: start.elapsed(),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }

    async fn open(
        &self,
        index: usize,
        token: &str,
        device: Option<&str>,
    ) -> Result<(Ws, Welcome, String)> {
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
        let mut query = Vec::new();
        if self.token_in == TokenIn::Query {
            query.push(format!("token={token}"));
        }
        if let Some(d) = device {
            query.push(format!("device={d}"));
        }
        let url = format!("{}{}", self.url_prefix, query.join("&"));
        let mut request = url.into_client_request()?;
        if self.token_in == TokenIn::Header {
            let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| Error::Url(self.url_prefix.clone(), "token is not header text"))?;
            request.headers_mut().insert("Authorization", bearer);
        }
        if self.token_in == TokenIn::Subprotocol {
            use chat_protocol::names::{BEARER_SUBPROTOCOL_PREFIX, SUBPROTOCOL};
            let offer = format!("{SUBPROTOCOL}, {BEARER_SUBPROTOCOL_PREFIX}{token}");
            let offer = HeaderValue::from_str(&offer)
                .map_err(|_| Error::Url(self.url_prefix.clone(), "token is not header text"))?;
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", offer);
        }
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(request, tcp, Some(self.config)).await?;
        loop {
            match classify(ws.next().await) {
                Event::Text(text) => {
                    return match ServerFrame::parse(&text) {
                        Ok(ServerFrame::Reply {
                            reply: Reply::Welcome(welcome),
                            ..
                        }) => Ok((ws, welcome, text.to_string())),
                        _ => Err(Error::NoWelcome(text.chars().take(200).collect())),
                    };
                }
                Event::Ignore => continue,
                Event::Ended(reason) => return Err(Error::ClosedBeforeWelcome(reason)),
            }
        }
    }
}

/// Resolves `url` and opens one connection: the simple way in.
pub async fn connect(url: &str, token: &str, device: Option<&str>) -> Result<Connection> {
    Connector::resolve(url)
        .await?
        .connect(0, token, device)
        .await
}

/// `(host, port, url prefix ending in ? or &)` of a `ws://` URL.
fn split_url(url: &str) -> Result<(String, u16, String)> {
    let bad = |why| Error::Url(url.to_owned(), why);
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("ws") => {}
        Some("wss") => return Err(bad("wss:// is not supported: use the gateway's ws:// port")),
        _ => return Err(bad("must start with ws://")),
    }
    let host = uri
        .host()
        .ok_or_else(|| bad("no host"))?
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
    /// A text frame.
    Text(Utf8Bytes),
    /// Pings, pongs and binary frames (tungstenite answers pings itself).
    Ignore,
    /// The connection is over; the reason is a short label to count by (`close 1012`, `eof`…).
    Ended(String),
}

/// Sorts the next item of a connection's stream.
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
}
