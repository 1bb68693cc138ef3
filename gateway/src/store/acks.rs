//! How acks move a user's `ackedSeq` (pure; shared by every store backend).
//!
//! `ackedSeq` is the highest seq such that it and everything below it were acked by one of the
//! user's devices (or sent by the user). Acks above a gap are *parked* until the gap closes.

use std::collections::BTreeSet;

/// A user's ack position in one conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckState {
    /// `ackedSeq`: the highest seq such that it and all below it are acked.
    pub acked: i64,
    /// Acked seqs above a gap, waiting for the gap to close.
    pub parked: BTreeSet<i64>,
}

impl AckState {
    /// Folds newly acked `seqs` in: parks what lies above a gap, advances over what closes one.
    pub fn fold(&self, seqs: impl IntoIterator<Item = i64>) -> AckState {
        let mut parked = self.parked.clone();
        parked.extend(seqs.into_iter().filter(|s| *s > self.acked));
        let mut acked = self.acked;
        while parked.remove(&(acked + 1)) {
            acked += 1;
        }
        AckState { acked, parked }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(acked: i64, parked: &[i64]) -> AckState {
        AckState {
            acked,
            parked: parked.iter().copied().collect(),
        }
    }

    #[test]
    fn contiguous_acks_advance() {
        assert_eq!(state(3, &[]).fold([4, 5]), state(5, &[]));
    }

    #[test]
    fn acks_above_a_gap_are_parked_until_it_closes() {
        let s = state(0, &[]).fold([3, 2]);
        assert_eq!(s, state(0, &[2, 3]));
        assert_eq!(s.fold([1]), state(3, &[]));
    }

    #[test]
    fn old_and_repeated_acks_change_nothing() {
        assert_eq!(state(5, &[7]).fold([1, 5, 7]), state(5, &[7]));
    }

    #[test]
    fn closing_a_gap_folds_in_only_the_contiguous_part() {
        assert_eq!(state(1, &[3, 4, 6]).fold([2]), state(4, &[6]));
    }

    /// The highest `k` such that every seq in `1..=k` is at or below `start` or in `acked`.
    fn contiguous(start: i64, acked: &BTreeSet<i64>) -> i64 {
        let mut k = start;
        while acked.contains(&(k + 1)) {
            k += 1;
        }
        k
    }

    proptest::proptest! {
        /// However the same acks arrive — in any order, split into any batches, repeated —
        /// `ackedSeq` ends at the contiguous prefix of what was acked, never moves back on the
        /// way, and nothing parked lies at or below it or could extend it.
        #[test]
        fn acked_seq_is_the_contiguous_prefix_whatever_the_order(
            start in 0i64..5,
            acks in proptest::collection::vec(0i64..40, 0..60),
            cuts in proptest::collection::vec(0usize..60, 0..10),
        ) {
            let mut state = state(start, &[]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(acks.len())).collect();
            cuts.push(acks.len());
            cuts.sort_unstable();
            let mut from = 0;
            for to in cuts {
                let next = state.fold(acks[from..to].iter().copied());
                proptest::prop_assert!(next.acked >= state.acked, "ackedSeq moved back");
                proptest::prop_assert!(next.parked.iter().all(|s| *s > next.acked + 1));
                state = next;
                from = to;
            }
            let all: BTreeSet<i64> = acks.iter().copied().collect();
            proptest::prop_assert_eq!(state.acked, contiguous(start, &all));
            let above: BTreeSet<i64> = all.into_iter().filter(|s| *s > state.acked).collect();
            proptest::prop_assert_eq!(state.parked, above);
        }
    }
}
