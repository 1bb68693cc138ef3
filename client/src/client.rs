//! The async client: a [`Session`] driven over real connections. One task, no background tasks:
//! every call ([`Client::next_event`], [`Client::request`] and the typed helpers) reads the
//! connection, fires timers and writes what the session asks until it has its answer, and keeps
//! the events it met on the way for [`Client::next_event`].
//!
//! What it does for the application (docs/protocol.md §5–§7): heartbeats and RENEW; ACKs and
//! de-duplicates pushes; SYNCs seq gaps; resends unanswered SENDs (same `clientMsgId`) after a
//! reconnect; reconnects with jittered backoff after 1006, 1012, 4000 and 4002 (not after 1000
//! or 4001); on DRAIN (22) waits `reconnectAfterMs`, opens the new connection, and only then
//! closes the old one, reading both meanwhile; gives up on a connection that stays silent while
//! answers are owed.

use std::collections::VecDeque;
use std::time::Duration;

use chat_protocol::server::{ConversationInfo, GroupInfo, Received, Renewed, SyncReply, Welcome};
use chat_protocol::{ConversationId, GroupId, KickReason, Reply, Request, RequestId};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::connect::{classify, Connector, Event as Read, TokenIn, Ws};
use crate::error::{Error, Result};
use crate::keepalive::Keepalive;
use crate::session::{Effect, Event, Session};

/// First pause before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Default for [`Options::stall`].
const STALL: Duration = Duration::from_secs(10);
/// Default for [`Options::connect_timeout`].
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the client connects: asked again for every new connection, so a list can be walked
/// (the next pod after one died) or a load balancer stood in for.
pub trait Endpoints: Send {
    /// The `ws://` URL of the next connection, or `None` when there is nowhere to go now.
    fn next_url(&mut self) -> Option<String>;
}

impl<F: FnMut() -> Option<String> + Send> Endpoints for F {
    fn next_url(&mut self) -> Option<String> {
        self()
    }
}

/// The URLs of a list in turn: the first, then the next one on every new connection.
pub struct RoundRobin {
    urls: Vec<String>,
    next: usize,
}

impl RoundRobin {
    /// Starts at `urls[0]`.
    pub fn new(urls: Vec<String>) -> Self {
        Self { urls, next: 0 }
    }
}

impl Endpoints for RoundRobin {
    fn next_url(&mut self) -> Option<String> {
        let url = self.urls.get(self.next % self.urls.len().max(1)).cloned();
        self.next += 1;
        url
    }
}

/// How a [`Client`] connects and behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The JWT.
    pub token: String,
    /// The device id; the server assigns one when `None`.
    pub device: Option<String>,
    /// Where the token goes in the upgrade.
    pub token_in: TokenIn,
    /// Heartbeat interval; WELCOME's when `None`.
    pub heartbeat: Option<Duration>,
    /// Follow DRAIN (22) to a new connection (true), or stay until the server closes (an app
    /// that predates DRAIN).
    pub follow_drain: bool,
    /// A connection that sends nothing for this long while answers are owed is given up.
    pub stall: Duration,
    /// How long one connect may take, WELCOME included.
    pub connect_timeout: Duration,
}

impl Options {
    /// `token`, every other option at its default.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            device: None,
            token_in: TokenIn::Query,
            heartbeat: None,
            follow_drain: true,
            stall: STALL,
            connect_timeout: CONNECT_TIMEOUT,
        }
    }

    /// Connects as `device`.
    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }
}

/// One connection of the client's.
struct Link {
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
    keepalive: Keepalive,
    last_read: Instant,
}

/// What woke a link.
enum LinkWake {
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

    async fn write(&mut self, text: String) -> Result<(), String> {
        self.sink
            .send(Message::text(text))
            .await
            .map_err(|e| format!("write failed: {e}"))
    }
}

async fn wake(link: Option<&mut Link>) -> LinkWake {
    match link {
        Some(l) => l.wake().await,
        None => std::future::pending().await,
    }
}

/// A chat user's device, connected.
pub struct Client {
    session: Session,
    endpoints: Box<dyn Endpoints>,
    options: Options,
    link: Option<Link>,
    /// During a DRAIN handover: the old connection, still read until the server closes it.
    old: Option<Link>,
    handover_at: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Bumped on every lost connection: an answer owed on it will not come.
    generation: u64,
    /// Why the client stopped for good (1000, 4001): no reconnect.
    ended: Option<String>,
    welcome: Welcome,
    events: VecDeque<Event>,
    servers: Vec<String>,
    seed: u64,
}

impl Client {
    /// Connects to the first of `endpoints` and reads WELCOME.
    pub async fn connect(endpoints: impl Endpoints + 'static, options: Options) -> Result<Self> {
        let mut endpoints: Box<dyn Endpoints> = Box::new(endpoints);
        let url = endpoints
            .next_url()
            .ok_or_else(|| Error::Closed("no endpoint to connect to".into()))?;
        let (link, welcome) = open(&url, &options).await?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(Self {
            session: Session::new(),
            endpoints,
            options,
            link: Some(link),
            old: None,
            handover_at: None,
            retry_at: None,
            backoff: FIRST_BACKOFF,
            generation: 0,
            ended: None,
            servers: vec![welcome.server.clone()],
            welcome,
            events: VecDeque::new(),
            seed: seed | 1,
        })
    }

    /// The current connection's WELCOME.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The server (pod) of every connection made, in order.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// SENDs still without reply 0 (they are written again on the next connection).
    pub fn unanswered(&self) -> usize {
        self.session.unanswered()
    }

    /// The next event: a message, a notice, a connection made or lost, an answer nobody
    /// waited for.
    pub async fn next_event(&mut self) -> Result<Event> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            self.step().await?;
        }
    }

    /// The events met so far and not yet taken, without waiting for more.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    /// Writes `request` and waits for its answer. A SEND with a `clientMsgId` survives lost
    /// connections (it is written again on the next one); any other request fails when the
    /// connection it went out on is lost.
    pub async fn request(&mut self, request: Request) -> Result<Reply> {
        let resent = matches!(
            &request,
            Request::Send {
                client_msg_id: Some(_),
                ..
            } | Request::SendGroup {
                client_msg_id: Some(_),
                ..
            }
        );
        while self.link.is_none() {
            self.step().await?;
        }
        let generation = self.generation;
        let id = self.session.request(request);
        loop {
            if let Some(answer) = self.take_answer(&id) {
                return answer;
            }
            if !resent && self.generation != generation {
                return Err(Error::Closed("connection lost before the answer".into()));
            }
            self.step().await?;
        }
    }

    fn take_answer(&mut self, id: &RequestId) -> Option<Result<Reply>> {
        let pos = self.events.iter().position(|e| match e {
            Event::Reply { request_id, .. } => request_id == id,
            Event::Error { request_id, .. } => request_id.as_ref() == Some(id),
            _ => false,
        })?;
        Some(match self.events.remove(pos)? {
            Event::Reply { reply, .. } => Ok(reply),
            Event::Error { error, .. } => Err(Error::Server(error)),
            _ => unreachable!("matched above"),
        })
    }

    /// Sends `text` to user `to` with `client_msg_id`; returns reply 0 (the message is stored).
    pub async fn send_to(&mut self, to: &str, text: &str, client_msg_id: &str) -> Result<Received> {
        let request = Request::Send {
            to: parse_id(to)?,
            message: text.to_owned(),
            file_type: 0,
            client_msg_id: Some(client_msg_id.to_owned()),
        };
        received(self.request(request).await?)
    }

    /// Sends `text` to group `group` with `client_msg_id`; returns reply 0.
    pub async fn send_to_group(
        &mut self,
        group: &str,
        text: &str,
        client_msg_id: &str,
    ) -> Result<Received> {
        let request = Request::SendGroup {
            group_id: parse_id(group)?,
            message: text.to_owned(),
            file_type: 0,
            client_msg_id: Some(client_msg_id.to_owned()),
        };
        received(self.request(request).await?)
    }

    /// Creates group `name` with `members` (the caller becomes its owner).
    pub async fn create_group(&mut self, name: &str, members: &[&str]) -> Result<GroupInfo> {
        let members = members.iter().map(|m| parse_id(m)).collect::<Result<_>>()?;
        let request = Request::CreateGroup {
            name: name.to_owned(),
            members,
        };
        match self.request(request).await? {
            Reply::CreateGroup(g) => Ok(g),
            other => Err(unexpected(other)),
        }
    }

    /// Adds `members` to `group`.
    pub async fn add_members(&mut self, group: &str, members: &[&str]) -> Result<GroupInfo> {
        let members = members.iter().map(|m| parse_id(m)).collect::<Result<_>>()?;
        let request = Request::AddMembers {
            group_id: parse_id(group)?,
            members,
        };
        match self.request(request).await? {
            Reply::AddMembers(g) => Ok(g),
            other => Err(unexpected(other)),
        }
    }

    /// Leaves `group`.
    pub async fn leave_group(&mut self, group: &str) -> Result<GroupId> {
        let request = Request::LeaveGroup {
            group_id: parse_id(group)?,
        };
        match self.request(request).await? {
            Reply::LeaveGroup(g) => Ok(g.group_id),
            other => Err(unexpected(other)),
        }
    }

    /// The user's conversations (SYNC without a conversation).
    pub async fn conversations(&mut self) -> Result<Vec<ConversationInfo>> {
        let request = Request::Sync {
            conversation_id: None,
            after_seq: 0,
            limit: chat_protocol::limits::MAX_SYNC_LIMIT,
        };
        match self.request(request).await? {
            Reply::Sync(SyncReply::List { conversations }) => Ok(conversations),
            other => Err(unexpected(other)),
        }
    }

    /// One page of `conversation` above `after_seq` (at most `limit` messages).
    pub async fn sync(
        &mut self,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<SyncReply> {
        let request = Request::Sync {
            conversation_id: Some(ConversationId::parse(conversation).expect("any text")),
            after_seq,
            limit,
        };
        match self.request(request).await? {
            Reply::Sync(page) => Ok(page),
            other => Err(unexpected(other)),
        }
    }

    /// Renews the timelife now (the client also does on its own, every half timelife).
    pub async fn renew(&mut self) -> Result<Renewed> {
        match self.request(Request::Renew).await? {
            Reply::Renew(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Closes the connections cleanly.
    pub async fn close(mut self) {
        for link in [self.link.take(), self.old.take()].into_iter().flatten() {
            crate::connect::close(link.sink, link.stream).await;
        }
    }

    /// One turn: write what the session asks, then wait for a frame, a keepalive or a timer.
    async fn step(&mut self) -> Result<()> {
        self.flush(false).await;
        if let Some(reason) = &self.ended {
            return Err(Error::Closed(reason.clone()));
        }
        let wake_at = self.next_wake();
        let woke = {
            let Self { link, old, .. } = self;
            tokio::select! {
                w = wake(link.as_mut()) => Some((false, w)),
                w = wake(old.as_mut()) => Some((true, w)),
                _ = sleep_until(wake_at) => None,
            }
        };
        match woke {
            Some((from_old, LinkWake::Read(item))) => self.read(from_old, item).await,
            Some((from_old, LinkWake::Beat(frame))) => {
                let link = if from_old {
                    &mut self.old
                } else {
                    &mut self.link
                };
                if let Some(l) = link {
                    if let Err(reason) = l.write(frame.to_owned()).await {
                        self.lost(from_old, reason);
                    }
                }
            }
            None => self.timers().await,
        }
        Ok(())
    }

    async fn read(&mut self, from_old: bool, item: Option<Result<Message, tungstenite::Error>>) {
        match classify(item) {
            Read::Text(text) => {
                let now = Instant::now();
                if let Some(l) = if from_old {
                    &mut self.old
                } else {
                    &mut self.link
                } {
                    l.last_read = now;
                }
                // A frame this client cannot read is skipped: the protocol lets servers add
                // frame types (v1.1) that older clients ignore.
                let _ = self.session.on_text(&text, now.into_std());
                self.flush(from_old).await;
            }
            Read::Ignore => {
                if let Some(l) = if from_old {
                    &mut self.old
                } else {
                    &mut self.link
                } {
                    l.last_read = Instant::now();
                }
            }
            Read::Ended(reason) => self.lost(from_old, reason),
        }
    }

    /// Carries out the session's effects; `from_old`: they answer a frame of the old
    /// connection of a handover, whose KICKED `replaced` is the handover's expected end.
    async fn flush(&mut self, from_old: bool) {
        while let Some(effect) = self.session.poll() {
            match effect {
                Effect::Write(text) => {
                    if let Some(l) = &mut self.link {
                        if let Err(reason) = l.write(text).await {
                            self.lost(false, reason);
                        }
                    }
                }
                Effect::Event(Event::Kicked(KickReason::Replaced)) if from_old => {}
                Effect::Event(e) => self.events.push_back(e),
                Effect::Reconnect { after } => {
                    if self.options.follow_drain && !from_old {
                        self.handover_at = Some(Instant::now() + after);
                    }
                }
            }
        }
    }

    fn lost(&mut self, from_old: bool, reason: String) {
        if from_old {
            self.old = None;
            return;
        }
        self.link = None;
        self.generation += 1;
        self.events.push_back(Event::Disconnected(reason.clone()));
        // 1000 (logged out) and 4001 (kicked) are final, DESIGN §4 of docs/protocol.md.
        if reason == "close 1000" || reason == "close 4001" {
            self.ended = Some(reason);
            return;
        }
        if self.handover_at.is_none() {
            self.retry_at = Some(Instant::now() + self.jitter());
        }
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let session = self.session.next_timeout().map(Instant::from_std);
        let stall = self
            .link
            .as_ref()
            .filter(|_| self.session.in_flight() > 0)
            .map(|l| l.last_read + self.options.stall);
        [session, self.handover_at, self.retry_at, stall]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(far)
    }

    async fn timers(&mut self) {
        let now = Instant::now();
        self.session.on_timeout(now.into_std());
        if self.handover_at.is_some_and(|at| at <= now) {
            self.handover_at = None;
            self.handover().await;
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            self.reconnect().await;
        }
        let stalled = self.link.as_ref().is_some_and(|l| {
            self.session.in_flight() > 0 && now >= l.last_read + self.options.stall
        });
        if stalled {
            let reason = format!(
                "no frame for {:?} while answers are owed",
                self.options.stall
            );
            self.lost(false, reason);
        }
    }

    /// DRAIN: the new connection first, then the old one is closed (read until it ends).
    async fn handover(&mut self) {
        match self.open_next().await {
            Ok(link) => {
                if let Some(mut old) = self.link.replace(link) {
                    let _ = old.sink.send(Message::Close(None)).await;
                    self.old = Some(old);
                }
                self.session.connected();
            }
            Err(_) if self.link.is_some() => {
                self.handover_at = Some(Instant::now() + self.jitter());
            }
            Err(_) => self.retry_at = Some(Instant::now() + self.jitter()),
        }
    }

    async fn reconnect(&mut self) {
        match self.open_next().await {
            Ok(link) => {
                self.link = Some(link);
                self.session.connected();
            }
            Err(_) => self.retry_at = Some(Instant::now() + self.jitter()),
        }
    }

    async fn open_next(&mut self) -> Result<Link> {
        let url = self
            .endpoints
            .next_url()
            .ok_or_else(|| Error::Closed("no endpoint to connect to".into()))?;
        let (link, welcome) = match open(&url, &self.options).await {
            Ok(ok) => ok,
            Err(e) => {
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                return Err(e);
            }
        };
        self.backoff = FIRST_BACKOFF;
        self.servers.push(welcome.server.clone());
        self.events.push_back(Event::Connected(welcome.clone()));
        self.welcome = welcome;
        Ok(link)
    }

    /// The backoff with full jitter (xorshift: no need for a cryptographic generator here).
    fn jitter(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.backoff.mul_f64((self.seed % 1000) as f64 / 1000.0)
    }
}

async fn open(url: &str, options: &Options) -> Result<(Link, Welcome)> {
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

async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(at).await
}

fn parse_id<T: TryFrom<String, Error = chat_protocol::IdError>>(s: &str) -> Result<T> {
    T::try_from(s.to_owned()).map_err(|e| Error::Invalid(format!("{s:?} {e}")))
}

fn received(reply: Reply) -> Result<Received> {
    match reply {
        Reply::Received(r) => Ok(r),
        other => Err(unexpected(other)),
    }
}

fn unexpected(reply: Reply) -> Error {
    Error::Invalid(format!("unexpected reply type {}", reply.kind()))
}
