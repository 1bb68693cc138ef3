use std::collections::{HashMap, HashSet};

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
fn a_copy_queued_behind_its_original_is_not_sent_after_the_ack() {
    let now = Instant::now();
    let mut o = Outbox::new(1, T);
    assert!(o.offer(msg("c", 1), now).is_some());
    // Window full: 2 queues, and so does its redelivered copy.
    assert!(o.offer(msg("c", 2), now).is_none());
    assert!(o.offer(msg("c", 2), now).is_none());
    o.ack("c-1");
    assert_eq!(o.refill(now).len(), 1);
    o.ack("c-2");
    assert!(o.refill(now).is_empty(), "c-2 was acked");
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
    assert_eq!(first.send.len(), 1);
    assert!(first.send[0].retry);
    assert!(first.gave_up.is_empty());
    let second = o.expire(now + T * 2);
    assert!(second.send.is_empty());
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
fn a_live_message_a_sibling_acked_still_reaches_this_device_while_it_reads_back() {
    let now = Instant::now();
    let mut o = Outbox::new(2, T);
    // A resync read starts at the user's ackedSeq, 5: another device acked seq 5, which has
    // not reached this one yet (its live copy is still on the way).
    o.start_pull("c", 5, 6);
    assert_eq!(
        o.offer(msg("c", 5), now).map(|p| p.message.seq),
        Some(5),
        "below the read's start, yet never had here: sent live"
    );
    assert!(
        o.offer(msg("c", 7), now).is_none(),
        "above the read's start: the read gets it"
    );
    let r = o.next_pull().unwrap();
    assert_eq!(r.after_seq, 5);
    let sent = o.pulled(&r, vec![msg("c", 6)], now);
    assert_eq!(sent[0].message.seq, 6);
    o.ack("c-5");
    o.ack("c-6");
    let r = o.next_pull().unwrap();
    assert_eq!(o.pulled(&r, vec![msg("c", 7)], now)[0].message.seq, 7);
}

#[test]
fn a_full_queue_sends_the_read_back_for_a_message_below_its_start() {
    let now = Instant::now();
    let mut o = Outbox::new(1, T);
    o.offer(msg("d", 1), now);
    for seq in 2..(2 + QUEUE_CAPACITY as i64) {
        assert!(o.offer(msg("d", seq), now).is_none());
    }
    o.start_pull("c", 9, 10);
    // Seq 4 of "c", acked by a sibling, finds the queue full: the read goes back for it.
    assert!(o.offer(msg("c", 4), now).is_none());
    assert_eq!(o.pulling.get("c").map(|p| p.cursor), Some(3));
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
fn a_page_never_overruns_the_window_that_live_messages_filled_meanwhile() {
    let now = Instant::now();
    let mut o = Outbox::new(3, T);
    o.start_pull("a", 0, 3);
    let r = o.next_pull().unwrap();
    assert_eq!(r.limit, 3);
    // While the read is out, two live messages of another conversation take two slots.
    assert!(o.offer(msg("b", 1), now).is_some());
    assert!(o.offer(msg("b", 2), now).is_some());
    let sent = o.pulled(&r, vec![msg("a", 1), msg("a", 2), msg("a", 3)], now);
    assert_eq!(sent.len(), 1, "one slot left");
    assert_eq!(o.in_flight(), 3);
    // The rest is read again once acks free the window, from where the page was cut.
    assert!(o.is_pulling());
    o.ack("b-1");
    o.ack("a-1");
    let r = o.next_pull().unwrap();
    assert_eq!((r.after_seq, r.limit), (1, 2));
    let sent = o.pulled(&r, vec![msg("a", 2), msg("a", 3)], now);
    assert_eq!(
        sent.iter().map(|p| p.message.seq).collect::<Vec<_>>(),
        [2, 3]
    );
    // A full page: one more read finds the end.
    o.ack("a-2");
    let r = o.next_pull().unwrap();
    assert_eq!(r.after_seq, 3);
    assert!(o.pulled(&r, vec![], now).is_empty());
    assert!(!o.is_pulling());
}

/// What a device does to the window, for the property below.
#[derive(Debug, Clone)]
enum Step {
    /// The next live message of conversation `0` or `1`.
    Live(usize),
    /// Ack the `n`-th message in flight (modulo how many there are).
    Ack(usize),
    /// Time passes (ms); deadlines expire.
    Wait(u64),
    /// The outstanding page read, if any, is answered from the store.
    Answer,
    /// Conversation `0` or `1` switches to reading from the store (as at a catch-up).
    Pull(usize),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0usize..2).prop_map(Step::Live),
        3 => any::<usize>().prop_map(Step::Ack),
        1 => (0u64..15_000).prop_map(Step::Wait),
        2 => Just(Step::Answer),
        1 => (0usize..2).prop_map(Step::Pull),
    ]
}

/// The window seen from outside: what was pushed, what was acked.
struct Device {
    o: Outbox<Msg>,
    now: Instant,
    /// Messages stored per conversation (seqs 1..=n): what pages are read from.
    stored: [i64; 2],
    pending_read: Option<PullRequest>,
    in_flight: Vec<String>,
    first_pushes: Vec<(usize, i64)>,
    pushed: HashMap<String, (u32, u32)>,
    acked: HashSet<String>,
}

const CONVS: [&str; 2] = ["c0", "c1"];

impl Device {
    fn sent(&mut self, pushes: Vec<Push<Msg>>) {
        for p in pushes {
            let id = p.message.id.clone();
            assert!(!self.acked.contains(&id), "{id} pushed after it was acked");
            let counts = self.pushed.entry(id.clone()).or_default();
            if p.retry {
                assert_eq!(counts.0, 1, "{id} retried before it was sent");
                counts.1 += 1;
                assert_eq!(counts.1, 1, "{id} retried twice");
            } else {
                counts.0 += 1;
                assert_eq!(counts.0, 1, "{id} sent twice");
                let conv = CONVS.iter().position(|c| *c == p.message.conv).unwrap();
                self.first_pushes.push((conv, p.message.seq));
                self.in_flight.push(id);
            }
        }
        assert!(self.o.in_flight() <= 3, "window overrun");
    }

    fn poll_reads(&mut self) {
        if self.pending_read.is_none() {
            self.pending_read = self.o.next_pull();
        }
    }

    fn answer(&mut self) {
        let Some(req) = self.pending_read.take() else {
            return;
        };
        let conv = CONVS
            .iter()
            .position(|c| *c == req.conversation_id)
            .unwrap();
        let page = (req.after_seq + 1..=self.stored[conv])
            .take(req.limit as usize)
            .map(|seq| msg(CONVS[conv], seq))
            .collect();
        let pushes = self.o.pulled(&req, page, self.now);
        self.sent(pushes);
    }

    fn apply(&mut self, step: Step) {
        match step {
            Step::Live(conv) => {
                self.stored[conv] += 1;
                let push = self.o.offer(msg(CONVS[conv], self.stored[conv]), self.now);
                self.sent(push.into_iter().collect());
            }
            Step::Ack(n) if !self.in_flight.is_empty() => {
                let id = self.in_flight.remove(n % self.in_flight.len());
                self.o.ack(&id);
                self.acked.insert(id);
                let refill = self.o.refill(self.now);
                self.sent(refill);
            }
            Step::Ack(_) => {}
            Step::Wait(ms) => {
                self.now += Duration::from_millis(ms);
                let expired = self.o.expire(self.now);
                for m in &expired.gave_up {
                    self.in_flight.retain(|id| *id != m.id);
                }
                self.sent(expired.send);
            }
            Step::Answer => self.answer(),
            Step::Pull(conv) => {
                // From what the device has had, up to what is stored, as a catch-up reads.
                let had = self
                    .first_pushes
                    .iter()
                    .filter(|(c, _)| *c == conv)
                    .map(|(_, s)| *s);
                let had = had.max().unwrap_or(0);
                self.o.start_pull(CONVS[conv], had, self.stored[conv]);
            }
        }
        self.poll_reads();
    }
}

proptest::proptest! {
    /// Whatever the device does, the window never holds more than its capacity, never sends a
    /// message twice (one retry aside) or after it was acked, and — once the device acks all it
    /// gets — every stored message has been sent, each conversation in seq order.
    #[test]
    fn the_window_loses_nothing_and_keeps_order(steps in proptest::collection::vec(step(), 0..300)) {
        let mut d = Device {
            o: Outbox::new(3, T),
            now: Instant::now(),
            stored: [0, 0],
            pending_read: None,
            in_flight: Vec::new(),
            first_pushes: Vec::new(),
            pushed: HashMap::new(),
            acked: HashSet::new(),
        };
        for s in steps {
            d.apply(s);
        }
        // The device acks everything from now on, and every read is answered.
        for _ in 0..10_000 {
            if d.in_flight.is_empty() && d.pending_read.is_none() && !d.o.is_pulling() {
                break;
            }
            d.apply(Step::Answer);
            d.apply(Step::Ack(0));
        }
        for (conv, name) in CONVS.iter().enumerate() {
            let seqs: Vec<i64> = d.first_pushes.iter().filter(|(c, _)| *c == conv).map(|(_, s)| *s).collect();
            let all: Vec<i64> = (1..=d.stored[conv]).collect();
            proptest::prop_assert_eq!(&seqs, &all, "conversation {}", name);
        }
    }
}
