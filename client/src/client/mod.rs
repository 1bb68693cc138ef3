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
use chat_protocol::{ConversationId, GroupId, Reply, Request, RequestId};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::session::{Event, Session};

mod drive;
mod link;
mod options;

use link::Link;
pub use options::{Endpoints, Options, RoundRobin};

/// First pause before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
    /// The connect in progress (handover or reconnect), kept across turns.
    connecting: Option<link::Connecting>,
    backoff: Duration,
    /// Bumped on every lost connection: an answer owed on it will not come.
    generation: u64,
    /// Why the client stopped for good (1000, 4001): no reconnect.
    ended: Option<String>,
    welcome: Welcome,
    events: VecDeque<Event>,
    /// Frames the session asked for, not yet written.
    outbox: VecDeque<String>,
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
        let (link, welcome) = link::open(&url, &options).await?;
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
            connecting: None,
            backoff: FIRST_BACKOFF,
            generation: 0,
            ended: None,
            servers: vec![welcome.server.clone()],
            welcome,
            events: VecDeque::new(),
            outbox: VecDeque::new(),
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

    /// Writes `request` and returns at once with its request id: the answer comes later from
    /// [`Client::next_event`] as [`Event::Reply`] or [`Event::Error`] with that id. A SEND with a
    /// `clientMsgId` is kept until its reply 0 and written again on every new connection; any
    /// other request is lost with the connection it went out on. For a client that keeps
    /// reading (timestamps of what arrives) while its sends are in flight.
    pub fn submit(&mut self, request: Request) -> RequestId {
        self.session.request(request)
    }

    /// Sends `text` to user `to` with `client_msg_id`; returns reply 0 (the message is stored).
    pub async fn send_to(&mut self, to: &str, text: &str, client_msg_id: &str) -> Result<Received> {
        let request = Request::Send {
            to: parse_id(to)?,
            message: text.to_owned(),
            file_type: 0,
            file: None,
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
            file: None,
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
            Reply::Sync(SyncReply::List { conversations, .. }) => Ok(conversations),
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
        self.renew_with(None).await
    }

    /// Renews the timelife with a fresh token (`params.token`): the server checks it is the same
    /// user's and lets the session live up to its `exp` instead of the old token's.
    pub async fn renew_with(&mut self, token: Option<String>) -> Result<Renewed> {
        match self.request(Request::Renew { token }).await? {
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
