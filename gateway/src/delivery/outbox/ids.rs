//! Message ids as the window keeps them: numbers, not strings.
//!
//! Message ids are UUIDv7s written as 32 hex digits, so the window keys its in-flight messages,
//! their deadlines and the ids acked lately by the `u128` an id spells ([`IdKey`]): 16 bytes and
//! no allocation per delivery and per ack. Kept as `String`s the acked ids alone cost ~120 bytes
//! an entry (in a set and in the eviction order), ~120 KiB for a busy connection's 1,024. An id
//! that is not 32 hex digits (a client may ack anything) is keyed by a 128-bit keyed hash of its
//! text: it can be taken for another id only with a chance of 2⁻¹²⁸.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

/// An id's key in the window.
pub(super) type IdKey = u128;

/// A bounded set of acked ids: the oldest is forgotten first.
#[derive(Debug)]
pub(super) struct RecentlyAcked {
    ids: HashSet<u128>,
    order: VecDeque<u128>,
    capacity: usize,
}

impl RecentlyAcked {
    /// Remembers up to `capacity` ids.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            ids: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Remembers `id`, forgetting the oldest when full.
    pub(super) fn insert(&mut self, key: IdKey) {
        if self.ids.insert(key) {
            self.order.push_back(key);
            if self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.ids.remove(&old);
                }
            }
        }
    }

    /// Whether the id of `key` was acked lately.
    pub(super) fn contains(&self, key: IdKey) -> bool {
        !self.ids.is_empty() && self.ids.contains(&key)
    }
}

/// The id as a number: its own value for 32 hex digits, else a keyed hash of its text.
pub(super) fn key(id: &str) -> IdKey {
    if id.len() == 32 {
        if let Ok(n) = u128::from_str_radix(id, 16) {
            if !id.starts_with('+') {
                return n;
            }
        }
    }
    static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
    let (a, b) = KEYS.get_or_init(|| (RandomState::new(), RandomState::new()));
    (u128::from(a.hash_one(id)) << 64) | u128::from(b.hash_one(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_are_their_value_and_other_texts_are_told_apart() {
        let id = "0190c3f1a2b37c4d8e9f0a1b2c3d4e5f";
        assert_eq!(key(id), 0x0190c3f1a2b37c4d8e9f0a1b2c3d4e5f);
        assert_ne!(key("not-a-uuid"), key("not-a-uuiD"));
        assert_eq!(key("not-a-uuid"), key("not-a-uuid"));
        // 32 characters that parse only with a sign are text, not a number.
        let signed = "+190c3f1a2b37c4d8e9f0a1b2c3d4e5f";
        assert_ne!(key(signed), 0x190c3f1a2b37c4d8e9f0a1b2c3d4e5f);
    }

    #[test]
    fn the_oldest_is_forgotten_first() {
        let mut acked = RecentlyAcked::new(2);
        let [a, b, c] = [key("a"), key("b"), key("c")];
        assert!(!acked.contains(a));
        acked.insert(a);
        acked.insert(b);
        acked.insert(a);
        assert!(acked.contains(a) && acked.contains(b));
        acked.insert(c);
        assert!(!acked.contains(a), "a was the oldest");
        assert!(acked.contains(b) && acked.contains(c));
    }
}
