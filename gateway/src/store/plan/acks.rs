//! Planning a run's acks: which are allowed, and the writes that fold them into `ackedSeq`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::Mark;
use crate::error::{Error, Result};
use crate::model::StoredMessage;
use crate::store::acks::AckState;

/// An ack of the run: the acking user and the message id.
pub(crate) type AckRequest<'a> = (&'a str, &'a str);
/// A looked-up ack target: the acking user, the message, and the user's `joined_seq` in its
/// conversation (`None`: never a member, or no longer one when the message was stored).
pub(crate) type AckTarget = (String, StoredMessage, Option<i64>);

/// What the acks of a run are allowed to do.
pub(crate) struct AckChecks {
    /// Per ack: the message and whether the ack may be its first delivery, or why it is refused.
    pub results: Vec<Result<(StoredMessage, bool)>>,
    /// The acks to fold into `ackedSeq`.
    pub marks: Vec<Mark>,
    /// 1:1 messages acked by their recipient — delivered, for the first time if the ack's
    /// `(user, conversation, seq)` was not acked before: the ack and the message id.
    pub candidates: Vec<(Mark, String)>,
}

/// Checks each ack against what was found: unknown message 404; only someone who could see the
/// message (a member since before it) may ack it, 403. The sender's other devices ack their
/// copies too, but the sender already counted as acked when it sent.
pub(crate) fn check_acks(acks: &[AckRequest<'_>], found: Vec<AckTarget>) -> AckChecks {
    let found: HashMap<(String, String), (StoredMessage, Option<i64>)> = found
        .into_iter()
        .map(|(user, m, joined)| ((user, m.message_id.clone()), (m, joined)))
        .collect();
    let mut checks = AckChecks {
        results: Vec::with_capacity(acks.len()),
        marks: Vec::new(),
        candidates: Vec::new(),
    };
    for (user, id) in acks {
        let Some((message, joined)) = found.get(&((*user).to_owned(), (*id).to_owned())) else {
            checks
                .results
                .push(Err(Error::NotFound(format!("no message {id}"))));
            continue;
        };
        if !joined.is_some_and(|j| message.seq > j) {
            checks.results.push(Err(Error::Forbidden(
                "only a recipient may ack a message".into(),
            )));
            continue;
        }
        if message.from == *user {
            checks.results.push(Ok((message.clone(), false)));
            continue;
        }
        let mark = (
            (*user).to_owned(),
            message.conversation_id.clone(),
            message.seq,
        );
        let candidate = message.is_direct_recipient(user);
        if candidate {
            checks
                .candidates
                .push((mark.clone(), message.message_id.clone()));
        }
        checks.marks.push(mark);
        checks.results.push(Ok((message.clone(), candidate)));
    }
    checks
}

/// Acked seqs by `(user, conversation)`, sorted (the order membership rows are locked in).
pub(crate) fn marks_by_pair(
    marks: impl IntoIterator<Item = Mark>,
) -> BTreeMap<(String, String), Vec<i64>> {
    let mut by_pair: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for (user, conv, seq) in marks {
        by_pair.entry((user, conv)).or_default().push(seq);
    }
    by_pair
}

/// The writes that fold a run's acks in. (`pub`, unlike the rest of the plan: `Backend::settle`,
/// a method of a `pub` trait, takes it.)
#[derive(Debug, Default, PartialEq)]
pub struct AckWrites {
    /// `(user, conversation, new ackedSeq)`.
    pub advance: Vec<Mark>,
    /// Parked acks the gap below them closed for.
    pub unpark: Vec<Mark>,
    /// Acks above a gap, parked until it closes.
    pub park: Vec<Mark>,
    /// `(sender, conversation, seq)`: sending advances the sender's own `readSeq` (v1.1).
    pub read: Vec<Mark>,
}

impl AckWrites {
    pub fn is_empty(&self) -> bool {
        self.advance.is_empty()
            && self.unpark.is_empty()
            && self.park.is_empty()
            && self.read.is_empty()
    }

    /// One membership row update per `(user, conversation)`: `(user, conversation, ackedSeq,
    /// readSeq)`, each raised to at least the value given (0: unchanged). `advance` and `read`
    /// often name the same row (a sender's own message advances both), and PostgreSQL applies
    /// only one of two updates of a row in one statement.
    pub fn memberships(&self) -> Vec<(&str, &str, i64, i64)> {
        let mut rows: BTreeMap<(&str, &str), (i64, i64)> = BTreeMap::new();
        for (user, conv, seq) in &self.advance {
            let row = rows.entry((user, conv)).or_default();
            row.0 = row.0.max(*seq);
        }
        for (user, conv, seq) in &self.read {
            let row = rows.entry((user, conv)).or_default();
            row.1 = row.1.max(*seq);
        }
        rows.into_iter()
            .map(|((user, conv), (acked, read))| (user, conv, acked, read))
            .collect()
    }
}

/// A stored ack position: `(user, conversation, ackedSeq, one parked seq)`, one row per parked
/// ack (`None`: none parked).
pub(crate) type AckPosition = (String, String, i64, Option<i64>);

/// Folds the acks of each `(user, conversation)` into its stored `positions`. A pair without a
/// membership row changes nothing. Also returns the acks that are new: above `ackedSeq` and not
/// parked before. (That is how a 1:1 message's first delivery is told from a second device's
/// ack or a repeat: the membership rows are locked, so two pods never both see one as new.)
pub(crate) fn fold_acks(
    by_pair: &BTreeMap<(String, String), Vec<i64>>,
    positions: Vec<AckPosition>,
) -> (AckWrites, HashSet<Mark>) {
    let mut states: HashMap<(String, String), AckState> = HashMap::new();
    for (user, conv, acked, parked) in positions {
        let state = states.entry((user, conv)).or_insert_with(|| AckState {
            acked,
            parked: BTreeSet::new(),
        });
        state.parked.extend(parked);
    }
    let mut writes = AckWrites::default();
    let mut fresh = HashSet::new();
    for ((user, conv), seqs) in by_pair {
        let Some(before) = states.get(&(user.clone(), conv.clone())) else {
            continue;
        };
        let after = before.fold(seqs.iter().copied());
        let mark = |s: &i64| (user.clone(), conv.clone(), *s);
        fresh.extend(
            seqs.iter()
                .filter(|s| **s > before.acked && !before.parked.contains(s))
                .map(mark),
        );
        if after.acked != before.acked {
            writes.advance.push(mark(&after.acked));
        }
        writes
            .unpark
            .extend(before.parked.difference(&after.parked).map(mark));
        writes
            .park
            .extend(after.parked.difference(&before.parked).map(mark));
    }
    (writes, fresh)
}

/// The 1:1 messages among `candidates` whose recipient's ack was new (see [`fold_acks`]).
pub(crate) fn first_deliveries(
    candidates: &[(Mark, String)],
    fresh: &HashSet<Mark>,
) -> HashSet<String> {
    candidates
        .iter()
        .filter(|(mark, _)| fresh.contains(mark))
        .map(|(_, id)| id.clone())
        .collect()
}
