//! The client's memory of what it has seen, free of I/O: which messages arrived (de-duplication
//! by `messageId`, DESIGN §4.4) and, per conversation, up to which seq it holds everything (a
//! client that sees a seq gap SYNCs, §4.5).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// The `messageId`s seen most recently, at most `capacity` of them (the oldest are forgotten:
/// a duplicate arrives within the ack window and the retry, not days later).
#[derive(Debug)]
pub struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Seen {
    /// Remembers up to `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records `id`; false when it was seen before (a duplicate).
    pub fn insert(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.ids.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

/// One conversation's seqs as this client has seen them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Conversation {
    /// Every seq up to this one has been seen.
    contiguous: i64,
    /// Seen above `contiguous`, with a gap below them.
    above: BTreeSet<i64>,
}

/// Per conversation, the highest seq up to which nothing is missing, and the gaps above it.
///
/// The first seq seen of a conversation is where it starts: a new connection's catch-up begins
/// above the user's `ackedSeq`, which the client does not know, so what lies below the first
/// message is not a gap.
#[derive(Debug, Default)]
pub struct Seqs {
    conversations: HashMap<String, Conversation>,
}

impl Seqs {
    /// Records `seq` in `conversation`; returns the seq after which something is missing, if a
    /// gap is open there now.
    pub fn record(&mut self, conversation: &str, seq: i64) -> Option<i64> {
        let c = match self.conversations.get_mut(conversation) {
            Some(c) => c,
            None => {
                self.conversations.insert(
                    conversation.to_owned(),
                    Conversation {
                        contiguous: seq,
                        above: BTreeSet::new(),
                    },
                );
                return None;
            }
        };
        if seq > c.contiguous {
            c.above.insert(seq);
        }
        while c.above.remove(&(c.contiguous + 1)) {
            c.contiguous += 1;
        }
        (!c.above.is_empty()).then_some(c.contiguous)
    }

    /// The seq after which `conversation` is missing something, if anything is.
    pub fn gap(&self, conversation: &str) -> Option<i64> {
        let c = self.conversations.get(conversation)?;
        (!c.above.is_empty()).then_some(c.contiguous)
    }

    /// The highest seq of `conversation` up to which nothing is missing.
    pub fn contiguous(&self, conversation: &str) -> Option<i64> {
        self.conversations.get(conversation).map(|c| c.contiguous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_recognised_and_old_ids_forgotten() {
        let mut seen = Seen::new(2);
        assert!(seen.insert("a"));
        assert!(!seen.insert("a"));
        assert!(seen.insert("b"));
        assert!(seen.insert("c"));
        assert!(!seen.insert("b"));
        assert!(seen.insert("a"), "forgotten after two newer ids");
    }

    #[test]
    fn in_order_seqs_leave_no_gap() {
        let mut s = Seqs::default();
        for seq in 5..=9 {
            assert_eq!(s.record("c", seq), None);
        }
        assert_eq!(s.contiguous("c"), Some(9));
        assert_eq!(s.record("c", 7), None, "an old seq again is no gap");
    }

    #[test]
    fn a_gap_opens_and_closes_when_the_missing_seqs_arrive() {
        let mut s = Seqs::default();
        s.record("c", 1);
        assert_eq!(s.record("c", 4), Some(1));
        assert_eq!(s.record("c", 3), Some(1));
        assert_eq!(s.gap("c"), Some(1));
        assert_eq!(s.record("c", 2), None);
        assert_eq!(s.contiguous("c"), Some(4));
        assert_eq!(s.gap("c"), None);
    }

    #[test]
    fn conversations_are_tracked_apart() {
        let mut s = Seqs::default();
        s.record("a", 1);
        s.record("b", 10);
        assert_eq!(s.record("a", 3), Some(1));
        assert_eq!(s.record("b", 11), None);
        assert_eq!(s.gap("b"), None);
        assert_eq!(s.gap("unknown"), None);
    }

    proptest::proptest! {
        /// Whatever order the seqs of two conversations arrive in (repeats included), each
        /// conversation's contiguous seq only moves up, is exactly where an unbroken run from its
        /// first seq ends, and a gap is reported exactly when a seq above it was seen.
        #[test]
        fn the_contiguous_seq_follows_what_was_seen(
            arrivals in proptest::collection::vec((0usize..2, 0i64..30), 1..80),
        ) {
            let mut s = Seqs::default();
            let mut seen: [Vec<i64>; 2] = Default::default();
            let mut last = [None::<i64>; 2];
            for (conv, seq) in arrivals {
                let name = ["a", "b"][conv];
                let gap = s.record(name, seq);
                seen[conv].push(seq);
                let first = seen[conv][0];
                let mut run = first;
                while seen[conv].contains(&(run + 1)) {
                    run += 1;
                }
                let contiguous = s.contiguous(name).expect("recorded");
                proptest::prop_assert_eq!(contiguous, run);
                proptest::prop_assert!(last[conv].is_none_or(|l| contiguous >= l), "moved back");
                last[conv] = Some(contiguous);
                let above = seen[conv].iter().any(|x| *x > run);
                proptest::prop_assert_eq!(gap, above.then_some(run));
                proptest::prop_assert_eq!(s.gap(name), gap);
            }
        }
    }
}
