//! The ack window of one device connection. Pure and synchronous.
//!
//! [`Outbox`] is the per-connection sliding window of delivered-but-unacked messages (seed 004:
//! "application-level ACK like TCP's sliding window"). At most `capacity` messages are in flight;
//! an ACK frees a slot. A message not acked within the timeout is resent once with `retry: true`
//! and then given up on (seed 000: a resent message is not resent again) — it stays stored and the
//! device catches up on its next connect.
//!
//! When the window is full, live messages wait in a short queue; past that, the conversation
//! switches to *pull mode*: later messages are read back from the store page by page as the window
//! frees, so a slow device never makes the server buffer without bound, and never loses order.
//! Catch-up after connect is the same pull mode, started at the user's `ackedSeq`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use ids::{key, IdKey, RecentlyAcked};

mod ids;

/// Live messages that may wait for window room before their conversation falls back to pull mode.
const QUEUE_CAPACITY: usize = 512;
/// Acked message ids remembered per connection, so a catch-up read that raced a live delivery does
/// not push again what the device already acked.
const RECENTLY_ACKED: usize = 1024;

/// What the window needs to know of a message: its id and its place in its conversation.
pub trait Windowed {
    /// The message id (acks name it).
    fn id(&self) -> &str;
    /// Its conversation.
    fn conversation(&self) -> &str;
    /// Its seq in the conversation.
    fn seq(&self) -> i64;
}

/// What to write to the socket for one windowed message.
#[derive(Debug, PartialEq)]
pub struct Push<M> {
    /// The message, shared with every other device that gets it.
    pub message: Arc<M>,
    /// The second and last attempt, after the first was not acked in time (`retry: true` on the
    /// wire).
    pub retry: bool,
}

/// A read the session should make from the store: messages of `conversation_id` above `after_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The conversation to read.
    pub conversation_id: String,
    /// Read above this seq: what the window already had or the device acked.
    pub after_seq: i64,
    /// At most this many: the window's free room, capped at 200, so the page fits into the window.
    pub limit: u32,
}

struct InFlight<M> {
    message: Arc<M>,
    deadline: Instant,
    retried: bool,
}

#[derive(Debug, Default)]
struct Pull {
    /// Highest seq already handed to the window (or acked) for this conversation.
    cursor: i64,
    /// Highest seq of a live message dropped while pulling: the pull must reach it.
    pending_up_to: i64,
}

/// The ack window of one connection (see the module docs). `M` is a message as the session holds it
/// ([`crate::model::Prepared`] in the gateway).
pub struct Outbox<M> {
    capacity: usize,
    timeout: Duration,
    in_flight: HashMap<IdKey, InFlight<M>>,
    /// Deadlines in order of insertion; deadlines only grow, so the front is the next to expire.
    deadlines: VecDeque<(Instant, IdKey)>,
    queue: VecDeque<Arc<M>>,
    pulling: BTreeMap<String, Pull>,
    pull_in_flight: Option<String>,
    acked: RecentlyAcked,
}

/// The result of [`Outbox::expire`].
#[derive(Debug, PartialEq)]
pub struct Expired<M> {
    /// What to write now: the one retry of each message that timed out, then queued messages
    /// let into the slots of those given up.
    pub send: Vec<Push<M>>,
    /// Messages whose retry was not acked either: out of the window, still stored, so the device
    /// gets them at its next catch-up.
    pub gave_up: Vec<Arc<M>>,
}

impl<M> Default for Expired<M> {
    fn default() -> Self {
        Self {
            send: Vec::new(),
            gave_up: Vec::new(),
        }
    }
}

impl<M: Windowed> Outbox<M> {
    /// A window of `capacity` unacked messages (at least 1), each waiting `timeout` for its ACK.
    pub fn new(capacity: usize, timeout: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            timeout,
            in_flight: HashMap::new(),
            deadlines: VecDeque::new(),
            queue: VecDeque::new(),
            pulling: BTreeMap::new(),
            pull_in_flight: None,
            acked: RecentlyAcked::new(RECENTLY_ACKED),
        }
    }

    /// Messages written and neither acked nor given up on yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn room(&self) -> usize {
        self.capacity.saturating_sub(self.in_flight.len())
    }

    /// Starts pull mode for a conversation whose messages above `after_seq` this device still needs
    /// (catch-up on connect).
    pub fn start_pull(&mut self, conversation_id: &str, after_seq: i64, up_to: i64) {
        let pull = self.pulling.entry(conversation_id.to_owned()).or_default();
        pull.cursor = pull.cursor.max(after_seq);
        pull.pending_up_to = pull.pending_up_to.max(up_to);
    }

    /// A live message for this device. Returns what to send now (possibly nothing).
    pub fn offer(&mut self, message: Arc<M>, now: Instant) -> Option<Push<M>> {
        let id = key(message.id());
        if self.known(id) {
            return None;
        }
        if let Some(pull) = self.pulling.get_mut(message.conversation()) {
            if message.seq() > pull.cursor {
                pull.pending_up_to = pull.pending_up_to.max(message.seq());
                return None;
            }
            // At or below the cursor, and not had here: the read started above it because
            // another device of the user acked it (a catch-up starts at the user's `ackedSeq`),
            // but this device is online and gets every message live (issue 17, point 2).
        }
        if self.queue.is_empty() && self.room() > 0 {
            return Some(self.admit(message, id, now));
        }
        if self.queue.len() < QUEUE_CAPACITY {
            self.queue.push_back(message);
        } else {
            let conv = message.conversation().to_owned();
            self.start_pull(&conv, message.seq() - 1, message.seq());
            // A read already past it goes back for it.
            if let Some(pull) = self.pulling.get_mut(&conv) {
                pull.cursor = pull.cursor.min(message.seq() - 1);
            }
        }
        None
    }

    /// Whether the message of `id` is in flight or was acked lately: not to be sent again.
    fn known(&self, id: IdKey) -> bool {
        self.in_flight.contains_key(&id) || self.acked.contains(id)
    }

    /// Puts `message` (whose key is `id`) in flight.
    fn admit(&mut self, message: Arc<M>, id: IdKey, now: Instant) -> Push<M> {
        let deadline = now + self.timeout;
        self.deadlines.push_back((deadline, id));
        self.in_flight.insert(
            id,
            InFlight {
                message: message.clone(),
                deadline,
                retried: false,
            },
        );
        Push {
            message,
            retry: false,
        }
    }

    /// An ACK for `message_id`. Returns the message if it was in flight here.
    pub fn ack(&mut self, message_id: &str) -> Option<Arc<M>> {
        let id = key(message_id);
        self.acked.insert(id);
        self.in_flight.remove(&id).map(|f| f.message)
    }

    /// Moves queued live messages into freed window slots.
    pub fn refill(&mut self, now: Instant) -> Vec<Push<M>> {
        let mut out = Vec::new();
        while self.room() > 0 {
            let Some(m) = self.queue.pop_front() else {
                break;
            };
            if let Some(pull) = self.pulling.get_mut(m.conversation()) {
                // Its conversation fell back to pull mode after it was queued: the pull reads it.
                pull.cursor = pull.cursor.min(m.seq() - 1);
                continue;
            }
            // A redelivered copy may have queued behind the first: once that one is in flight
            // or acked, the copy is not sent.
            let id = key(m.id());
            if !self.known(id) {
                out.push(self.admit(m, id, now));
            }
        }
        out
    }

    /// The next store read to make, if the window has room, no live message is waiting and no
    /// other read is outstanding.
    pub fn next_pull(&mut self) -> Option<PullRequest> {
        if self.pull_in_flight.is_some() || !self.queue.is_empty() || self.room() == 0 {
            return None;
        }
        let (conv, pull) = self.pulling.iter().next()?;
        let req = PullRequest {
            conversation_id: conv.clone(),
            after_seq: pull.cursor,
            limit: self.room().min(200) as u32,
        };
        self.pull_in_flight = Some(conv.clone());
        Some(req)
    }

    /// The answer to a [`PullRequest`]: messages in seq order. Returns what to send now.
    pub fn pulled(
        &mut self,
        req: &PullRequest,
        messages: Vec<Arc<M>>,
        now: Instant,
    ) -> Vec<Push<M>> {
        self.pull_in_flight = None;
        let short = messages.len() < req.limit as usize;
        let mut out = Vec::with_capacity(messages.len());
        let mut cursor = req.after_seq;
        // The page was sized to the room at the time of the request; live messages of other
        // conversations may have taken some of it since. What does not fit is read again.
        let mut cut = false;
        for m in messages {
            let id = key(m.id());
            let new = !self.known(id);
            if new && self.room() == 0 {
                cut = true;
                break;
            }
            cursor = cursor.max(m.seq());
            if new {
                out.push(self.admit(m, id, now));
            }
        }
        if let Some(pull) = self.pulling.get_mut(&req.conversation_id) {
            pull.cursor = pull.cursor.max(cursor);
            if short && !cut && pull.cursor >= pull.pending_up_to {
                self.pulling.remove(&req.conversation_id);
            }
        }
        out
    }

    /// A failed read: forget it so it is tried again.
    pub fn pull_failed(&mut self) {
        self.pull_in_flight = None;
    }

    /// The store refused the read for good (the user left the group): stop pulling it.
    pub fn pull_refused(&mut self, req: &PullRequest) {
        self.pull_in_flight = None;
        self.pulling.remove(&req.conversation_id);
    }

    /// Whether any conversation is in pull mode, still being read back from the store.
    pub fn is_pulling(&self) -> bool {
        !self.pulling.is_empty()
    }

    /// When the next in-flight message times out.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some((deadline, id)) = self.deadlines.front() {
            match self.in_flight.get(id) {
                Some(f) if f.deadline == *deadline => return Some(*deadline),
                _ => {
                    self.deadlines.pop_front();
                }
            }
        }
        None
    }

    /// Messages whose ACK timed out by `now`: resent once, then given up.
    pub fn expire(&mut self, now: Instant) -> Expired<M> {
        let mut out = Expired::default();
        while let Some(deadline) = self.next_deadline() {
            if deadline > now {
                break;
            }
            let (_, id) = self.deadlines.pop_front().expect("next_deadline saw it");
            let f = self
                .in_flight
                .get_mut(&id)
                .expect("next_deadline checked it");
            if f.retried {
                out.gave_up
                    .push(self.in_flight.remove(&id).expect("present").message);
            } else {
                f.retried = true;
                f.deadline = now + self.timeout;
                self.deadlines.push_back((f.deadline, id));
                out.send.push(Push {
                    message: f.message.clone(),
                    retry: true,
                });
            }
        }
        if !out.gave_up.is_empty() {
            // Their slots are free: queued messages go out now, not at the next ack — with
            // nothing in flight, no ack may ever come.
            let admitted = self.refill(now);
            out.send.extend(admitted);
        }
        out
    }
}

#[cfg(test)]
mod tests;
