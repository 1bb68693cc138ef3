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
}
