//! Deciding what a run of SEND and ACK commands does (pure; shared by every store backend).
//!
//! A run is stored in a handful of set-based statements (see [`super::segment`]): look up what
//! the run needs, decide, write. Everything decided lives here, without I/O: which sends are
//! duplicates, refused or new; which seqs the new ones get from their conversations' allocated
//! ranges; whether each ack is allowed; how acks move `ackedSeq`; and every command's result.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::error::{Error, Result};
use crate::model::{direct_conversation_id, new_id, StoredMessage, Target};
use crate::store::acks::AckState;
use crate::store::{Acked, NewMessage, Sent};

/// A send of the run: the message and whether it goes to a group.
pub type SendRequest<'a> = (&'a NewMessage, bool);
/// An ack of the run: the acking user and the message id.
pub type AckRequest<'a> = (&'a str, &'a str);
/// `(user, conversation, seq)`: one seq one user acked (or sent) in one conversation.
pub type Mark = (String, String, i64);

/// What a send turned into while planning.
pub enum Plan {
    /// Stored before (`clientMsgId` seen): answer with the first result.
    Duplicate(StoredMessage),
    /// Same `(sender, clientMsgId)` as an earlier send of this run.
    DuplicateOf(usize),
    Refused(Error),
    New {
        conversation_id: String,
        target: Target,
        members: Vec<String>,
    },
}

/// What the database knows about a run's sends.
#[derive(Debug, Default)]
pub struct Lookups {
    /// Messages already stored under one of the run's `(sender, clientMsgId)`.
    pub existing: Vec<StoredMessage>,
    /// `(group id, conversation id)` of the addressed groups that exist.
    pub groups: Vec<(String, String)>,
    /// `(conversation id, user id)` of every active member of those groups.
    pub members: Vec<(String, String)>,
}

/// The `(sender, clientMsgId)` pairs to look for among stored messages.
pub fn idempotency_keys<'a>(sends: &[SendRequest<'a>]) -> Vec<(&'a str, &'a str)> {
    sends
        .iter()
        .filter_map(|(m, _)| m.client_msg_id.as_deref().map(|c| (m.from.as_str(), c)))
        .collect()
}

/// The group ids the run sends to, sorted and unique.
pub fn addressed_groups<'a>(sends: &[SendRequest<'a>]) -> Vec<&'a str> {
    let ids: BTreeSet<&str> = sends
        .iter()
        .filter(|(_, group)| *group)
        .map(|(m, _)| m.to.as_str())
        .collect();
    ids.into_iter().collect()
}

/// The 1:1 recipients whose display names are not in `names` yet, sorted and unique.
pub fn unnamed_recipients<'a>(
    sends: &[SendRequest<'a>],
    names: &HashMap<String, String>,
) -> Vec<&'a str> {
    let ids: BTreeSet<&str> = sends
        .iter()
        .filter(|(m, group)| !*group && !names.contains_key(&m.to))
        .map(|(m, _)| m.to.as_str())
        .collect();
    ids.into_iter().collect()
}

/// Decides every send of the run: duplicate (stored before, or earlier in this run), refused
/// (unknown group: 404; sender not an active member: 403), or new. `names` are the users'
/// display names known so far; a 1:1 recipient without one is shown by id.
pub fn plan_sends(
    sends: &[SendRequest<'_>],
    lookups: Lookups,
    names: &HashMap<String, String>,
) -> Vec<Plan> {
    let mut existing: HashMap<(String, String), StoredMessage> = HashMap::new();
    for m in lookups.existing {
        existing.insert(
            (m.from.clone(), m.client_msg_id.clone().unwrap_or_default()),
            m,
        );
    }
    let group_conv: HashMap<String, String> = lookups.groups.into_iter().collect();
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for (conv, user) in lookups.members {
        members.entry(conv).or_default().push(user);
    }
    members.values_mut().for_each(|list| list.sort());

    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut plans = Vec::with_capacity(sends.len());
    for (i, (m, group)) in sends.iter().enumerate() {
        if let Some(cid) = m.client_msg_id.as_deref() {
            if let Some(found) = existing.get(&(m.from.clone(), cid.to_owned())) {
                plans.push(Plan::Duplicate(found.clone()));
                continue;
            }
            if let Some(&j) = first_of.get(&(m.from.as_str(), cid)) {
                plans.push(Plan::DuplicateOf(j));
                continue;
            }
        }
        let plan = if *group {
            plan_group_send(m, &group_conv, &members)
        } else {
            Plan::New {
                conversation_id: direct_conversation_id(&m.from, &m.to),
                target: Target::Direct {
                    to: m.to.clone(),
                    to_name: names.get(&m.to).cloned().unwrap_or_else(|| m.to.clone()),
                },
                members: Vec::new(),
            }
        };
        if let (Plan::New { .. }, Some(cid)) = (&plan, m.client_msg_id.as_deref()) {
            first_of.insert((m.from.as_str(), cid), i);
        }
        plans.push(plan);
    }
    plans
}

fn plan_group_send(
    m: &NewMessage,
    group_conv: &HashMap<String, String>,
    members: &HashMap<String, Vec<String>>,
) -> Plan {
    let Some(conv) = group_conv.get(&m.to) else {
        return Plan::Refused(Error::NotFound(format!("no group {}", m.to)));
    };
    let list = members.get(conv).cloned().unwrap_or_default();
    if list.binary_search(&m.from).is_err() {
        return Plan::Refused(Error::Forbidden("not a member of this group".into()));
    }
    Plan::New {
        conversation_id: conv.clone(),
        target: Target::Group {
            group_id: m.to.clone(),
        },
        members: list,
    }
}

/// The new sends: `(send index, conversation id)`, in run order.
pub fn new_sends(plans: &[Plan]) -> Vec<(usize, &str)> {
    plans
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            Plan::New {
                conversation_id, ..
            } => Some((i, conversation_id.as_str())),
            _ => None,
        })
        .collect()
}

/// The 1:1 conversations of the new sends not `known` to exist: id → its two users.
pub fn direct_conversations<'a>(
    sends: &[SendRequest<'a>],
    new: &[(usize, &'a str)],
    known: &HashSet<String>,
) -> BTreeMap<&'a str, (&'a str, &'a str)> {
    new.iter()
        .filter(|(i, conv)| !sends[*i].1 && !known.contains(*conv))
        .map(|(i, conv)| (*conv, (sends[*i].0.from.as_str(), sends[*i].0.to.as_str())))
        .collect()
}

/// How many seqs each conversation needs, by conversation id (sorted: the order rows are locked in).
pub fn seq_counts<'a>(new: &[(usize, &'a str)]) -> BTreeMap<&'a str, i64> {
    let mut counts = BTreeMap::new();
    for (_, conv) in new {
        *counts.entry(*conv).or_default() += 1;
    }
    counts
}

/// Builds the new messages once each conversation's `last_seq` was raised by its count: a
/// conversation's sends take the seqs `last - count + 1 ..= last` in run order. Returns the
/// messages by send index and the acks they imply for their senders.
pub fn build_messages(
    sends: &[SendRequest<'_>],
    plans: &[Plan],
    counts: &BTreeMap<&str, i64>,
    lasts: Vec<(String, i64)>,
    now: i64,
) -> Result<(BTreeMap<usize, StoredMessage>, Vec<Mark>)> {
    let mut next: HashMap<String, i64> = HashMap::with_capacity(lasts.len());
    for (id, last) in lasts {
        let count = counts
            .get(id.as_str())
            .ok_or_else(|| Error::Internal(format!("seqs allocated for {id}, not asked for")))?;
        next.insert(id, last - count + 1);
    }
    let mut stored = BTreeMap::new();
    let mut marks = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let Plan::New {
            conversation_id,
            target,
            ..
        } = plan
        else {
            continue;
        };
        let m = sends[i].0;
        let seq = next
            .get_mut(conversation_id)
            .ok_or_else(|| Error::Internal(format!("conversation {conversation_id} missing")))?;
        let message = StoredMessage {
            message_id: new_id(),
            conversation_id: conversation_id.clone(),
            seq: *seq,
            from: m.from.clone(),
            from_name: m.from_name.clone(),
            target: target.clone(),
            body: m.body.clone(),
            file_type: m.file_type,
            client_msg_id: m.client_msg_id.clone(),
            created_at: now,
            request_id: m.request_id.clone(),
        };
        *seq += 1;
        marks.push((m.from.clone(), conversation_id.clone(), message.seq));
        stored.insert(i, message);
    }
    Ok((stored, marks))
}

/// A looked-up ack target: the acking user, the message, and the user's `joined_seq` in its
/// conversation (`None`: never a member).
pub type AckTarget = (String, StoredMessage, Option<i64>);

/// What the acks of a run are allowed to do.
pub struct AckChecks {
    /// Per ack: the message and whether the ack may be its first delivery, or why it is refused.
    pub results: Vec<Result<(StoredMessage, bool)>>,
    /// The acks to fold into `ackedSeq`.
    pub marks: Vec<Mark>,
    /// 1:1 messages acked by their recipient: delivered, maybe for the first time.
    pub candidates: Vec<String>,
}

/// Checks each ack against what was found: unknown message 404; only someone who could see the
/// message (a member since before it) may ack it, 403. The sender's other devices ack their
/// copies too, but the sender already counted as acked when it sent.
pub fn check_acks(acks: &[AckRequest<'_>], found: Vec<AckTarget>) -> AckChecks {
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
        checks.marks.push((
            (*user).to_owned(),
            message.conversation_id.clone(),
            message.seq,
        ));
        let candidate = message.is_direct_recipient(user);
        if candidate {
            checks.candidates.push(message.message_id.clone());
        }
        checks.results.push(Ok((message.clone(), candidate)));
    }
    checks.candidates.sort();
    checks.candidates.dedup();
    checks
}

/// Acked seqs by `(user, conversation)`, sorted (the order membership rows are locked in).
pub fn marks_by_pair(
    marks: impl IntoIterator<Item = Mark>,
) -> BTreeMap<(String, String), Vec<i64>> {
    let mut by_pair: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for (user, conv, seq) in marks {
        by_pair.entry((user, conv)).or_default().push(seq);
    }
    by_pair
}

/// The writes that fold a run's acks in.
#[derive(Debug, Default, PartialEq)]
pub struct AckWrites {
    /// `(user, conversation, new ackedSeq)`.
    pub advance: Vec<Mark>,
    /// Parked acks the gap below them closed for.
    pub unpark: Vec<Mark>,
    /// Acks above a gap, parked until it closes.
    pub park: Vec<Mark>,
}

impl AckWrites {
    pub fn is_empty(&self) -> bool {
        self.advance.is_empty() && self.unpark.is_empty() && self.park.is_empty()
    }
}

/// A stored ack position: `(user, conversation, ackedSeq, one parked seq)`, one row per parked
/// ack (`None`: none parked).
pub type AckPosition = (String, String, i64, Option<i64>);

/// Folds the acks of each `(user, conversation)` into its stored `positions`. A pair without a
/// membership row changes nothing.
pub fn fold_acks(
    by_pair: &BTreeMap<(String, String), Vec<i64>>,
    positions: Vec<AckPosition>,
) -> AckWrites {
    let mut states: HashMap<(String, String), AckState> = HashMap::new();
    for (user, conv, acked, parked) in positions {
        let state = states.entry((user, conv)).or_insert_with(|| AckState {
            acked,
            parked: BTreeSet::new(),
        });
        state.parked.extend(parked);
    }
    let mut writes = AckWrites::default();
    for ((user, conv), seqs) in by_pair {
        let Some(before) = states.get(&(user.clone(), conv.clone())) else {
            continue;
        };
        let after = before.fold(seqs.iter().copied());
        let mark = |s: &i64| (user.clone(), conv.clone(), *s);
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
    writes
}

/// Every command's result, in run order: sends from their plans (new ones from `stored`), acks
/// from their checks, with `first_delivery` for the ids in `first` (once per message).
pub fn results(
    plans: Vec<Plan>,
    mut stored: BTreeMap<usize, StoredMessage>,
    acks: Vec<Result<(StoredMessage, bool)>>,
    first: &HashSet<String>,
) -> (Vec<Result<Sent>>, Vec<Result<Acked>>) {
    let mut sent: Vec<Result<Sent>> = Vec::with_capacity(plans.len());
    for (i, plan) in plans.into_iter().enumerate() {
        let result = match plan {
            Plan::Duplicate(message) => Ok(Sent {
                message,
                duplicate: true,
                members: Vec::new(),
            }),
            Plan::DuplicateOf(j) => match &sent[j] {
                Ok(s) => Ok(Sent {
                    message: s.message.clone(),
                    duplicate: true,
                    members: Vec::new(),
                }),
                Err(e) => Err(Error::Conflict(format!(
                    "duplicate of a refused message: {e}"
                ))),
            },
            Plan::Refused(e) => Err(e),
            Plan::New { members, .. } => match stored.remove(&i) {
                Some(message) => Ok(Sent {
                    message,
                    duplicate: false,
                    members,
                }),
                None => Err(Error::Internal("a new message was not stored".into())),
            },
        };
        sent.push(result);
    }
    let mut seen_first: HashSet<String> = HashSet::new();
    let acked = acks
        .into_iter()
        .map(|r| {
            r.map(|(message, candidate)| {
                let first_delivery = candidate
                    && first.contains(&message.message_id)
                    && seen_first.insert(message.message_id.clone());
                Acked {
                    message,
                    first_delivery,
                }
            })
        })
        .collect();
    (sent, acked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: &str, to: &str, client_msg_id: Option<&str>) -> NewMessage {
        NewMessage {
            from: from.into(),
            from_name: from.to_uppercase(),
            to: to.into(),
            body: "hi".into(),
            file_type: 0,
            client_msg_id: client_msg_id.map(Into::into),
            request_id: "r".into(),
        }
    }

    fn stored(from: &str, conv: &str, seq: i64, to: &str) -> StoredMessage {
        StoredMessage {
            message_id: format!("{conv}-{seq}"),
            conversation_id: conv.into(),
            seq,
            from: from.into(),
            from_name: from.into(),
            target: Target::Direct {
                to: to.into(),
                to_name: to.into(),
            },
            body: "hi".into(),
            file_type: 0,
            client_msg_id: Some("c1".into()),
            created_at: 1,
            request_id: "r".into(),
        }
    }

    #[test]
    fn sends_are_duplicates_refused_or_new() {
        let (a, b, c, d, e) = (
            msg("alice", "bob", Some("c1")),
            msg("alice", "bob", Some("c2")),
            msg("alice", "bob", Some("c2")),
            msg("alice", "g1", None),
            msg("carol", "g2", None),
        );
        let sends = [
            (&a, false),
            (&b, false),
            (&c, false),
            (&d, true),
            (&e, true),
        ];
        let lookups = Lookups {
            existing: vec![stored("alice", "dm", 4, "bob")],
            groups: vec![("g2".into(), "grp:g2".into())],
            members: vec![
                ("grp:g2".into(), "dave".into()),
                ("grp:g2".into(), "carol".into()),
            ],
        };
        let names = HashMap::from([("bob".to_owned(), "Bob".to_owned())]);
        let plans = plan_sends(&sends, lookups, &names);
        assert!(matches!(&plans[0], Plan::Duplicate(m) if m.seq == 4));
        assert!(
            matches!(&plans[1], Plan::New { target: Target::Direct { to_name, .. }, .. } if to_name == "Bob")
        );
        assert!(matches!(plans[2], Plan::DuplicateOf(1)));
        assert!(matches!(&plans[3], Plan::Refused(e) if e.status() == 404));
        assert!(matches!(&plans[4], Plan::New { members, .. } if members == &["carol", "dave"]));
    }

    #[test]
    fn non_members_are_refused() {
        let m = msg("eve", "g", None);
        let lookups = Lookups {
            groups: vec![("g".into(), "grp:g".into())],
            members: vec![("grp:g".into(), "alice".into())],
            ..Lookups::default()
        };
        let plans = plan_sends(&[(&m, true)], lookups, &HashMap::new());
        assert!(matches!(&plans[0], Plan::Refused(e) if e.status() == 403));
    }

    #[test]
    fn seqs_count_down_from_each_allocated_last_seq() {
        let (a, b, c) = (
            msg("alice", "bob", None),
            msg("bob", "alice", None),
            msg("alice", "carol", None),
        );
        let sends = [(&a, false), (&b, false), (&c, false)];
        let plans = plan_sends(&sends, Lookups::default(), &HashMap::new());
        let new = new_sends(&plans);
        let counts = seq_counts(&new);
        let ab = direct_conversation_id("alice", "bob");
        let ac = direct_conversation_id("alice", "carol");
        assert_eq!(counts[ab.as_str()], 2);
        let (stored, marks) =
            build_messages(&sends, &plans, &counts, vec![(ab, 7), (ac, 1)], 5).unwrap();
        let seqs: Vec<i64> = stored.values().map(|m| m.seq).collect();
        assert_eq!(seqs, [6, 7, 1]);
        assert_eq!(marks[1].0, "bob");
        assert_eq!(marks[1].2, 7);
    }

    #[test]
    fn a_missing_allocation_is_an_internal_error() {
        let a = msg("alice", "bob", None);
        let plans = plan_sends(&[(&a, false)], Lookups::default(), &HashMap::new());
        let counts = seq_counts(&new_sends(&plans));
        let err = build_messages(&[(&a, false)], &plans, &counts, vec![], 1).unwrap_err();
        assert!(err.is_internal());
    }

    #[test]
    fn only_members_since_before_a_message_may_ack_it() {
        let m = stored("alice", "dm", 3, "bob");
        let found = vec![
            ("bob".to_owned(), m.clone(), Some(0)),
            ("alice".to_owned(), m.clone(), Some(0)),
            ("late".to_owned(), m.clone(), Some(3)),
            ("eve".to_owned(), m.clone(), None),
        ];
        let acks = [
            ("bob", "dm-3"),
            ("alice", "dm-3"),
            ("late", "dm-3"),
            ("eve", "dm-3"),
            ("bob", "nope"),
        ];
        let checks = check_acks(&acks, found);
        let statuses: Vec<u16> = checks
            .results
            .iter()
            .map(|r| r.as_ref().map(|_| 200).unwrap_or_else(|e| e.status()))
            .collect();
        assert_eq!(statuses, [200, 200, 403, 403, 404]);
        assert!(
            checks.results[0].as_ref().unwrap().1,
            "recipient: candidate"
        );
        assert!(!checks.results[1].as_ref().unwrap().1, "sender: not");
        assert_eq!(checks.marks, [("bob".to_owned(), "dm".to_owned(), 3)]);
        assert_eq!(checks.candidates, ["dm-3"]);
    }

    #[test]
    fn folding_writes_only_the_differences() {
        let by_pair = marks_by_pair([
            ("u".to_owned(), "c".to_owned(), 2),
            ("v".to_owned(), "c".to_owned(), 5),
            ("nobody".to_owned(), "c".to_owned(), 1),
        ]);
        let at = |u: &str, acked: i64, parked: Option<i64>| {
            (u.to_owned(), "c".to_owned(), acked, parked)
        };
        let writes = fold_acks(
            &by_pair,
            vec![at("u", 1, Some(3)), at("u", 1, Some(5)), at("v", 1, None)],
        );
        let m = |u: &str, s: i64| (u.to_owned(), "c".to_owned(), s);
        assert_eq!(
            writes,
            AckWrites {
                advance: vec![m("u", 3)],
                unpark: vec![m("u", 3)],
                park: vec![m("v", 5)],
            }
        );
    }

    #[test]
    fn first_delivery_is_reported_once_per_message() {
        let m = stored("alice", "dm", 1, "bob");
        let acks = vec![Ok((m.clone(), true)), Ok((m.clone(), true))];
        let first = HashSet::from([m.message_id.clone()]);
        let (_, acked) = results(Vec::new(), BTreeMap::new(), acks, &first);
        let flags: Vec<bool> = acked
            .iter()
            .map(|a| a.as_ref().unwrap().first_delivery)
            .collect();
        assert_eq!(flags, [true, false]);
    }
}
