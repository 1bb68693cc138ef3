//! Delivery bookkeeping for one device connection, and fan-out planning. Pure and synchronous.
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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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
    pub message: Arc<M>,
    pub retry: bool,
}

/// A read the session should make from the store: messages of `conversation_id` above `after_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub conversation_id: String,
    pub after_seq: i64,
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

pub struct Outbox<M> {
    capacity: usize,
    timeout: Duration,
    in_flight: HashMap<String, InFlight<M>>,
    /// Deadlines in order of insertion; deadlines only grow, so the front is the next to expire.
    deadlines: VecDeque<(Instant, String)>,
    queue: VecDeque<Arc<M>>,
    pulling: BTreeMap<String, Pull>,
    pull_in_flight: Option<String>,
    acked: HashSet<String>,
    acked_order: VecDeque<String>,
}

/// The result of [`Outbox::expire`].
#[derive(Debug, PartialEq)]
pub struct Expired<M> {
    pub resend: Vec<Push<M>>,
    pub gave_up: Vec<Arc<M>>,
}

impl<M> Default for Expired<M> {
    fn default() -> Self {
        Self {
            resend: Vec::new(),
            gave_up: Vec::new(),
        }
    }
}

impl<M: Windowed> Outbox<M> {
    pub fn new(capacity: usize, timeout: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            timeout,
            in_flight: HashMap::new(),
            deadlines: VecDeque::new(),
            queue: VecDeque::new(),
            pulling: BTreeMap::new(),
            pull_in_flight: None,
            acked: HashSet::new(),
            acked_order: VecDeque::new(),
        }
    }

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
        if self.in_flight.contains_key(message.id()) || self.acked.contains(message.id()) {
            return None;
        }
        if let Some(pull) = self.pulling.get_mut(message.conversation()) {
            if message.seq() > pull.cursor {
                pull.pending_up_to = pull.pending_up_to.max(message.seq());
            }
            return None;
        }
        if self.queue.is_empty() && self.room() > 0 {
            return Some(self.admit(message, now));
        }
        if self.queue.len() < QUEUE_CAPACITY {
            self.queue.push_back(message);
        } else {
            let conv = message.conversation().to_owned();
            self.start_pull(&conv, message.seq() - 1, message.seq());
        }
        None
    }

    fn admit(&mut self, message: Arc<M>, now: Instant) -> Push<M> {
        let deadline = now + self.timeout;
        self.deadlines
            .push_back((deadline, message.id().to_owned()));
        self.in_flight.insert(
            message.id().to_owned(),
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
        if self.acked.insert(message_id.to_owned()) {
            self.acked_order.push_back(message_id.to_owned());
            if self.acked_order.len() > RECENTLY_ACKED {
                if let Some(old) = self.acked_order.pop_front() {
                    self.acked.remove(&old);
                }
            }
        }
        self.in_flight.remove(message_id).map(|f| f.message)
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
            if !self.in_flight.contains_key(m.id()) {
                out.push(self.admit(m, now));
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
        for m in messages {
            cursor = cursor.max(m.seq());
            if !self.in_flight.contains_key(m.id()) && !self.acked.contains(m.id()) {
                out.push(self.admit(m, now));
            }
        }
        if let Some(pull) = self.pulling.get_mut(&req.conversation_id) {
            pull.cursor = pull.cursor.max(cursor);
            if short && pull.cursor >= pull.pending_up_to {
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
                out.resend.push(Push {
                    message: f.message.clone(),
                    retry: true,
                });
            }
        }
        out
    }
}

/// Where one device is connected.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct DeviceRoute {
    pub user: String,
    pub device: String,
    pub pod: String,
    pub epoch: u64,
}

/// Devices split by pod: those on this pod are delivered in-process, each other pod gets one event.
#[derive(Debug, Default, PartialEq)]
pub struct FanoutPlan {
    pub local: Vec<DeviceRoute>,
    pub remote: BTreeMap<String, Vec<DeviceRoute>>,
}

/// Plans the fan-out of one event to `routes`, leaving out `skip` (the sending device itself).
/// Never one event per member and never a broadcast: exactly one per pod that holds a target.
pub fn plan_fanout(
    local_pod: &str,
    routes: Vec<DeviceRoute>,
    skip: Option<(&str, &str)>,
) -> FanoutPlan {
    let mut plan = FanoutPlan::default();
    for r in routes {
        if skip.is_some_and(|(u, d)| r.user == u && r.device == d) {
            continue;
        }
        if r.pod == local_pod {
            plan.local.push(r);
        } else {
            plan.remote.entry(r.pod.clone()).or_default().push(r);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Msg {
        id: String,
        conv: String,
        seq: i64,
    }

    impl Windowed for Msg {
        fn id(&self) -> &str {
            &self.id
        }
        fn conversation(&self) -> &str {
            &self.conv
        }
        fn seq(&self) -> i64 {
            self.seq
        }
    }

    fn msg(conv: &str, seq: i64) -> Arc<Msg> {
        Arc::new(Msg {
            id: format!("{conv}-{seq}"),
            conv: conv.into(),
            seq,
        })
    }

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn ack_frees_the_slot() {
        let now = Instant::now();
        let mut o = Outbox::new(2, T);
        assert!(o.offer(msg("c", 1), now).is_some());
        assert!(
            o.offer(msg("c", 1), now).is_none(),
            "duplicate in flight is not sent twice"
        );
        assert!(o.offer(msg("c", 2), now).is_some());
        assert!(o.offer(msg("c", 3), now).is_none(), "window full: queued");
        assert_eq!(o.ack("c-1").unwrap().seq, 1);
        assert!(o.ack("c-1").is_none());
        let sent = o.refill(now);
        assert_eq!(
            sent.iter().map(|p| p.message.seq).collect::<Vec<_>>(),
            vec![3]
        );
    }

    #[test]
    fn retries_once_then_gives_up() {
        let now = Instant::now();
        let mut o = Outbox::new(8, T);
        o.offer(msg("c", 1), now);
        assert_eq!(o.next_deadline(), Some(now + T));
        assert_eq!(
            o.expire(now + T - Duration::from_millis(1)),
            Expired::default()
        );
        let first = o.expire(now + T);
        assert_eq!(first.resend.len(), 1);
        assert!(first.resend[0].retry);
        assert!(first.gave_up.is_empty());
        let second = o.expire(now + T * 2);
        assert!(second.resend.is_empty());
        assert_eq!(second.gave_up.len(), 1);
        assert_eq!(o.in_flight(), 0);
        assert_eq!(o.next_deadline(), None);
    }

    #[test]
    fn acked_message_does_not_expire() {
        let now = Instant::now();
        let mut o = Outbox::new(8, T);
        o.offer(msg("c", 1), now);
        o.offer(msg("c", 2), now + Duration::from_secs(1));
        o.ack("c-1");
        assert_eq!(o.next_deadline(), Some(now + Duration::from_secs(1) + T));
    }

    #[test]
    fn catch_up_pulls_in_pages_and_defers_live_messages() {
        let now = Instant::now();
        let mut o = Outbox::new(2, T);
        o.start_pull("c", 3, 7);
        // Live seq 8 arrives during catch-up: not sent now, the pull will read it.
        assert!(o.offer(msg("c", 8), now).is_none());
        let r1 = o.next_pull().unwrap();
        assert_eq!(
            r1,
            PullRequest {
                conversation_id: "c".into(),
                after_seq: 3,
                limit: 2
            }
        );
        assert!(o.next_pull().is_none(), "one read at a time");
        let sent = o.pulled(&r1, vec![msg("c", 4), msg("c", 5)], now);
        assert_eq!(sent.len(), 2);
        assert!(o.next_pull().is_none(), "window full");
        o.ack("c-4");
        o.ack("c-5");
        let r2 = o.next_pull().unwrap();
        assert_eq!(r2.after_seq, 5);
        o.pulled(&r2, vec![msg("c", 6), msg("c", 7)], now);
        o.ack("c-6");
        o.ack("c-7");
        let r3 = o.next_pull().unwrap();
        // A short page that does not reach seq 8 keeps pulling.
        o.pulled(&r3, vec![], now);
        assert!(o.is_pulling());
        let r4 = o.next_pull().unwrap();
        o.pulled(&r4, vec![msg("c", 8)], now);
        assert!(
            !o.is_pulling(),
            "short page past every dropped live message ends the pull"
        );
        assert!(
            o.offer(msg("c", 9), now).is_some(),
            "live again: sent at once"
        );
        assert!(
            o.offer(msg("c", 10), now).is_none(),
            "window full again, queued"
        );
        o.ack("c-8");
        assert_eq!(o.refill(now)[0].message.seq, 10);
    }

    #[test]
    fn catch_up_that_raced_a_live_delivery_does_not_push_it_again() {
        let now = Instant::now();
        let mut o = Outbox::new(4, T);
        // Delivered live and acked before the catch-up read (started at connect) answers.
        assert!(o.offer(msg("c", 1), now).is_some());
        o.ack("c-1");
        o.start_pull("c", 0, 1);
        let r = o.next_pull().unwrap();
        assert!(o.pulled(&r, vec![msg("c", 1)], now).is_empty());
        assert!(!o.is_pulling());
    }

    #[test]
    fn refused_pull_is_dropped_not_retried() {
        let mut o: Outbox<Msg> = Outbox::new(4, T);
        o.start_pull("grp:g", 0, 5);
        o.start_pull("dm:a:b", 0, 0);
        let r = o.next_pull().unwrap();
        assert_eq!(r.conversation_id, "dm:a:b");
        o.pulled(&r, vec![], Instant::now());
        let r = o.next_pull().unwrap();
        assert_eq!(r.conversation_id, "grp:g");
        o.pull_refused(&r);
        assert!(!o.is_pulling());
        assert!(o.next_pull().is_none());
    }

    #[test]
    fn queue_overflow_falls_back_to_pull_in_order() {
        let now = Instant::now();
        let mut o = Outbox::new(1, T);
        o.offer(msg("c", 1), now);
        for seq in 2..(2 + QUEUE_CAPACITY as i64) {
            assert!(o.offer(msg("c", seq), now).is_none());
        }
        let overflow = 2 + QUEUE_CAPACITY as i64;
        o.offer(msg("c", overflow), now);
        assert!(o.is_pulling());
        // The conversation's queued messages are now read back by the pull, from the oldest.
        o.ack("c-1");
        assert!(o.refill(now).is_empty());
        let r = o.next_pull().unwrap();
        assert_eq!((r.after_seq, r.limit), (1, 1));
        assert_eq!(o.pulled(&r, vec![msg("c", 2)], now)[0].message.seq, 2);
    }

    #[test]
    fn fanout_groups_by_pod_and_skips_sender_device() {
        let r = |u: &str, d: &str, p: &str| DeviceRoute {
            user: u.into(),
            device: d.into(),
            pod: p.into(),
            epoch: 1,
        };
        let plan = plan_fanout(
            "p0",
            vec![
                r("a", "phone", "p0"),
                r("a", "web", "p1"),
                r("b", "x", "p1"),
                r("c", "y", "p2"),
                r("a", "laptop", "p0"),
            ],
            Some(("a", "phone")),
        );
        assert_eq!(plan.local, vec![r("a", "laptop", "p0")]);
        assert_eq!(plan.remote.len(), 2);
        assert_eq!(
            plan.remote["p1"],
            vec![r("a", "web", "p1"), r("b", "x", "p1")]
        );
        assert_eq!(plan.remote["p2"], vec![r("c", "y", "p2")]);
    }
}
