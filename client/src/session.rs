//! The client's protocol core, free of I/O (the sans-IO shape of STYLE.md): text frames and timer
//! expiries go in, frames to write and events for the application come out. It numbers
//! requests, keeps every SEND until its reply 0 and writes it again (same `clientMsgId`) on each
//! new connection, ACKs every push and passes each `messageId` on once, SYNCs a conversation
//! whose seqs show a gap that does not fill by itself, and says when DRAIN asks for a new
//! connection. [`crate::Client`] moves the bytes and drives the timers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chat_protocol::envelope::{Delivered, Envelope, PushMsg};
use chat_protocol::server::{Drain, Received, SyncReply, Welcome};
use chat_protocol::{
    ClientFrame, ConversationId, ErrorFrame, KickReason, MessageId, Reply, Request, RequestId,
    ServerFrame,
};

use crate::track::{Seen, Seqs};

/// How long a seq gap may stay open before the conversation is SYNCed: pushes of concurrent
/// senders can arrive swapped (docs/protocol.md §5.7), so a gap often fills by itself.
pub const GAP_WAIT: Duration = Duration::from_millis(500);
/// How many `messageId`s are remembered for de-duplication.
const SEEN_CAPACITY: usize = 100_000;
/// SYNC page size when filling a gap (the server's maximum).
const SYNC_PAGE: u32 = chat_protocol::limits::MAX_SYNC_LIMIT;

/// What the application hears.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The answer to one of our requests (reply 0 to a SEND included).
    Reply {
        /// The request's id, as [`Session::request`] returned it.
        request_id: RequestId,
        /// What it says.
        reply: Reply,
    },
    /// ERROR (500), for one of our requests or none.
    Error {
        /// The request it answers, when the server could read its id.
        request_id: Option<RequestId>,
        /// What went wrong.
        error: ErrorFrame,
    },
    /// A message (2 or 10) not seen before: pushed, or read by a gap SYNC. Already ACKed.
    Message(Box<Envelope>),
    /// A message (2 or 10) pushed again although its `messageId` was seen before (a retry, a
    /// catch-up of what was not acked yet): ACKed again and not to be shown twice. Tests count
    /// these and compare their content with the first copy's.
    Duplicate(Box<Envelope>),
    /// 17: a recipient acked one of our 1:1 messages.
    Delivered(Delivered),
    /// Another push, not acked: a v1.1 notification (READ 19, TYPING 25, PRESENCE 27, RECALLED
    /// 33), an HTTP push, or a type this client does not know.
    Push(Box<Envelope>),
    /// 22: the server is going away; [`Effect::Reconnect`] says when to move.
    Drain(Drain),
    /// 23: this connection is closed by the server (then close 4001).
    Kicked(KickReason),
    /// The client opened a new connection (after a loss, or DRAIN): its WELCOME.
    Connected(Welcome),
    /// The client lost its connection, for this reason (`close 1012`, `eof`…).
    Disconnected(String),
}

/// What the session asks of the I/O around it.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write this text frame on the current connection.
    Write(String),
    /// Tell the application.
    Event(Event),
    /// Open a new connection after `after` (DRAIN), then close the old one.
    Reconnect {
        /// `reconnectAfterMs`.
        after: Duration,
    },
}

/// A SEND waiting for its reply 0.
#[derive(Debug)]
struct PendingSend {
    request_id: RequestId,
    frame: String,
}

/// What the session remembers of one request in flight.
#[derive(Debug)]
enum InFlight {
    /// A request of the application's.
    Own,
    /// A SYNC of ours, filling a gap in this conversation.
    GapSync(String),
}

/// One client's protocol state across its connections.
#[derive(Debug)]
pub struct Session {
    next_id: u64,
    /// clientMsgId → the SEND, in the order sent (resent in that order).
    pending: BTreeMap<u64, (String, PendingSend)>,
    in_flight: HashMap<RequestId, InFlight>,
    seen: Seen,
    seqs: Seqs,
    /// Conversation → when its open gap is SYNCed.
    gap_due: HashMap<String, Instant>,
    out: VecDeque<Effect>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A session with nothing sent or seen.
    pub fn new() -> Self {
        Self {
            next_id: 0,
            pending: BTreeMap::new(),
            in_flight: HashMap::new(),
            seen: Seen::new(SEEN_CAPACITY),
            seqs: Seqs::default(),
            gap_due: HashMap::new(),
            out: VecDeque::new(),
        }
    }

    /// Writes `request` with a fresh request id (returned). A SEND with a `clientMsgId` is kept
    /// until its reply 0 and written again on every new connection.
    pub fn request(&mut self, request: Request) -> RequestId {
        self.next_id += 1;
        let request_id = RequestId::Text(format!("c{}", self.next_id));
        let cmid = match &request {
            Request::Send { client_msg_id, .. } | Request::SendGroup { client_msg_id, .. } => {
                client_msg_id.clone()
            }
            _ => None,
        };
        let frame = ClientFrame::new(request, Some(request_id.clone())).to_json();
        if let Some(cmid) = cmid {
            let send = PendingSend {
                request_id: request_id.clone(),
                frame: frame.clone(),
            };
            self.pending.insert(self.next_id, (cmid, send));
        }
        self.in_flight.insert(request_id.clone(), InFlight::Own);
        self.out.push_back(Effect::Write(frame));
        request_id
    }

    /// A new connection is up: every SEND still without reply 0 is written again, same
    /// `clientMsgId` (the server answers a resend with the first reply 0 and stores nothing twice).
    pub fn connected(&mut self) {
        for (_, send) in self.pending.values() {
            self.out.push_back(Effect::Write(send.frame.clone()));
        }
    }

    /// SENDs still without reply 0.
    pub fn unanswered(&self) -> usize {
        self.pending.len()
    }

    /// Requests (SENDs included) still without an answer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Handles one text frame received at `now`.
    pub fn on_text(&mut self, text: &str, now: Instant) -> Result<(), serde_json::Error> {
        match ServerFrame::parse(text)? {
            ServerFrame::Reply { reply, request_id } => self.on_reply(reply, request_id, now),
            ServerFrame::Error { error, request_id } => {
                if let Some(id) = &request_id {
                    self.in_flight.remove(id);
                    self.forget_send(id);
                }
                self.event(Event::Error { request_id, error });
            }
            ServerFrame::Push(envelope) => self.on_push(envelope, now, true),
        }
        Ok(())
    }

    fn on_reply(&mut self, reply: Reply, request_id: Option<RequestId>, now: Instant) {
        match &reply {
            Reply::Drain(drain) => {
                let after = Duration::from_millis(drain.reconnect_after_ms);
                self.event(Event::Drain(drain.clone()));
                self.out.push_back(Effect::Reconnect { after });
                return;
            }
            Reply::Kicked(kicked) => return self.event(Event::Kicked(kicked.reason)),
            Reply::Received(received) => self.on_received(received, now),
            _ => {}
        }
        let Some(request_id) = request_id else { return };
        match self.in_flight.remove(&request_id) {
            Some(InFlight::GapSync(conversation)) => self.on_gap_sync(conversation, reply, now),
            Some(InFlight::Own) => self.event(Event::Reply { request_id, reply }),
            // A late answer to a SEND written again on a newer connection: already answered.
            None => {}
        }
    }

    fn on_received(&mut self, r: &Received, now: Instant) {
        self.seen.insert(&r.message_id);
        if let Some(cmid) = &r.client_msg_id {
            self.pending.retain(|_, (c, _)| c != cmid);
        }
        self.record_seq(r.conversation_id.as_str(), r.seq, now);
    }

    /// A message pushed (`pushed`) or read by a gap SYNC.
    fn on_push(&mut self, envelope: Box<Envelope>, now: Instant, pushed: bool) {
        let (conversation, seq) = match &envelope.msg {
            PushMsg::Deliver(m) => (m.conversation_id.as_str().to_owned(), m.seq),
            PushMsg::DeliverGroup(m) => (m.conversation_id.as_str().to_owned(), m.seq),
            PushMsg::Delivered(d) => return self.event(Event::Delivered(d.clone())),
            // Notifications (v1.1) and HTTP pushes: never acked, handed over as they are.
            PushMsg::Read(_)
            | PushMsg::Typing(_)
            | PushMsg::Recalled(_)
            | PushMsg::Presence(_)
            | PushMsg::Other(_) => return self.event(Event::Push(envelope)),
        };
        self.ack(&envelope.message_id);
        if self.seen.insert(&envelope.message_id) {
            self.record_seq(&conversation, seq, now);
            self.event(Event::Message(envelope));
        } else if pushed {
            self.event(Event::Duplicate(envelope));
        }
    }

    /// ACKs every copy, duplicates included (docs/protocol.md §5.4).
    fn ack(&mut self, message_id: &str) {
        let Ok(msgid) = MessageId::parse(message_id) else {
            return;
        };
        let frame = ClientFrame::new(Request::Ack { msgid }, None).to_json();
        self.out.push_back(Effect::Write(frame));
    }

    fn record_seq(&mut self, conversation: &str, seq: i64, now: Instant) {
        match self.seqs.record(conversation, seq) {
            Some(_) => {
                self.gap_due
                    .entry(conversation.to_owned())
                    .or_insert(now + GAP_WAIT);
            }
            None => {
                self.gap_due.remove(conversation);
            }
        }
    }

    fn on_gap_sync(&mut self, conversation: String, reply: Reply, now: Instant) {
        let Reply::Sync(SyncReply::Page {
            messages, has_more, ..
        }) = reply
        else {
            return;
        };
        for envelope in messages {
            self.on_push(Box::new(envelope), now, false);
        }
        if has_more {
            if let Some(after_seq) = self.seqs.gap(&conversation) {
                self.sync_gap(conversation, after_seq);
            }
        }
    }

    fn sync_gap(&mut self, conversation: String, after_seq: i64) {
        let request = Request::Sync {
            conversation_id: Some(ConversationId::parse(conversation.clone()).expect("any text")),
            after_seq,
            limit: SYNC_PAGE,
        };
        self.next_id += 1;
        let request_id = RequestId::Text(format!("c{}", self.next_id));
        let frame = ClientFrame::new(request, Some(request_id.clone())).to_json();
        self.in_flight
            .insert(request_id, InFlight::GapSync(conversation));
        self.out.push_back(Effect::Write(frame));
    }

    /// When [`Session::on_timeout`] has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.gap_due.values().min().copied()
    }

    /// Timers due at `now` fire: gaps still open are SYNCed from their last contiguous seq.
    pub fn on_timeout(&mut self, now: Instant) {
        let due: Vec<String> = self
            .gap_due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(c, _)| c.clone())
            .collect();
        for conversation in due {
            self.gap_due.remove(&conversation);
            if let Some(after_seq) = self.seqs.gap(&conversation) {
                self.sync_gap(conversation, after_seq);
            }
        }
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<Effect> {
        self.out.pop_front()
    }

    fn event(&mut self, event: Event) {
        self.out.push_back(Effect::Event(event));
    }

    fn forget_send(&mut self, request_id: &RequestId) {
        self.pending.retain(|_, (_, s)| &s.request_id != request_id);
    }
}

#[cfg(test)]
mod tests;
