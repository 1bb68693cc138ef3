//! Planning a run's sends: duplicates, refusals, new conversations, seqs, the new messages.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::Mark;
use crate::error::{Error, Result};
use crate::model::{direct_conversation_id, new_id, StoredMessage, Target, SYSTEM_USER};
use crate::store::NewMessage;

/// A send of the run: the message and whether it goes to a group.
pub(crate) type SendRequest<'a> = (&'a NewMessage, bool);
/// What a send turned into while planning.
pub(crate) enum Plan {
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
pub(crate) struct Lookups {
    /// Messages already stored under one of the run's `(sender, clientMsgId)`.
    pub existing: Vec<StoredMessage>,
    /// `(group id, conversation id)` of the addressed groups that exist.
    pub groups: Vec<(String, String)>,
    /// `(conversation id, user id)` of every active member of those groups.
    pub members: Vec<(String, String)>,
    /// `(blocker, blocked)`: 1:1 recipients that block the sender (looked up only for
    /// recipients who block someone, [`blockable`]).
    pub blocked: Vec<(String, String)>,
}

/// The `(sender, clientMsgId)` pairs to look for among stored messages.
pub(crate) fn idempotency_keys<'a>(sends: &[SendRequest<'a>]) -> Vec<(&'a str, &'a str)> {
    sends
        .iter()
        .filter_map(|(m, _)| m.client_msg_id.as_deref().map(|c| (m.from.as_str(), c)))
        .collect()
}

/// The group ids the run sends to, sorted and unique.
pub(crate) fn addressed_groups<'a>(sends: &[SendRequest<'a>]) -> Vec<&'a str> {
    let ids: BTreeSet<&str> = sends
        .iter()
        .filter(|(_, group)| *group)
        .map(|(m, _)| m.to.as_str())
        .collect();
    ids.into_iter().collect()
}

/// The 1:1 recipients whose display names, or whether they block anyone, are not known yet
/// (in `names`, `blocking`), sorted and unique.
pub(crate) fn unnamed_recipients<'a>(
    sends: &[SendRequest<'a>],
    names: &HashMap<String, String>,
    blocking: &HashMap<String, bool>,
) -> Vec<&'a str> {
    let ids: BTreeSet<&str> = sends
        .iter()
        .filter(|(m, group)| {
            let known = names.contains_key(&m.to) && blocking.contains_key(&m.to);
            !*group && !known
        })
        .map(|(m, _)| m.to.as_str())
        .collect();
    ids.into_iter().collect()
}

/// `(recipient, sender)` of the 1:1 sends whose recipient blocks someone, sorted and unique:
/// the only pairs whose block is looked up (a run to users who block no one asks nothing).
pub(crate) fn blockable<'a>(
    sends: &[SendRequest<'a>],
    blocking: &HashMap<String, bool>,
) -> Vec<(&'a str, &'a str)> {
    let pairs: BTreeSet<(&str, &str)> = sends
        .iter()
        .filter(|(m, group)| !*group && blocking.get(&m.to).copied().unwrap_or(false))
        .map(|(m, _)| (m.to.as_str(), m.from.as_str()))
        .collect();
    pairs.into_iter().collect()
}

/// Decides every send of the run: duplicate (stored before, or earlier in this run), refused
/// (unknown group: 404; sender not an active member, unless it is `system`, or blocked by the
/// 1:1 recipient: 403), or new. `names` are the users'
/// display names known so far; a 1:1 recipient without one is shown by id.
pub(crate) fn plan_sends(
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
    let blocked: HashSet<(String, String)> = lookups.blocked.into_iter().collect();
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
        } else if blocked.contains(&(m.to.clone(), m.from.clone())) {
            Plan::Refused(Error::Forbidden("the recipient blocked you".into()))
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
    // `system` (the backend API's sender, which no token carries) posts to any group.
    if m.from != SYSTEM_USER && list.binary_search(&m.from).is_err() {
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
pub(crate) fn new_sends(plans: &[Plan]) -> Vec<(usize, &str)> {
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
pub(crate) fn direct_conversations<'a>(
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
pub(crate) fn seq_counts<'a>(new: &[(usize, &'a str)]) -> BTreeMap<&'a str, i64> {
    let mut counts = BTreeMap::new();
    for (_, conv) in new {
        *counts.entry(*conv).or_default() += 1;
    }
    counts
}

/// Builds the new messages once each conversation's `last_seq` was raised by its count: a
/// conversation's sends take the seqs `last - count + 1 ..= last` in run order. Returns the
/// messages by send index and the acks they imply for their senders.
pub(crate) fn build_messages(
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
            file: m.file.clone(),
            client_msg_id: m.client_msg_id.clone(),
            created_at: now,
            request_id: m.request_id.clone(),
            recalled: false,
            system: None,
        };
        *seq += 1;
        marks.push((m.from.clone(), conversation_id.clone(), message.seq));
        stored.insert(i, message);
    }
    Ok((stored, marks))
}
