//! Deciding what a run of SEND and ACK commands does (pure; shared by every store backend).
//!
//! A run is stored in a handful of set-based statements (see [`super::segment`]): look up what
//! the run needs, decide, write. Everything decided lives here, without I/O: which sends are
//! duplicates, refused or new; which seqs the new ones get from their conversations' allocated
//! ranges; whether each ack is allowed; how acks move `ackedSeq`; and every command's result.
//! Sends are planned in `sends.rs`, acks in `acks.rs`; the results of both are put together here.

mod acks;
mod sends;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result};
use crate::model::StoredMessage;
use crate::store::{Acked, Sent};
pub(crate) use acks::{
    check_acks, first_deliveries, fold_acks, marks_by_pair, AckPosition, AckTarget, AckWrites,
};
pub(crate) use sends::{
    addressed_groups, blockable, build_messages, direct_conversations, idempotency_keys, new_sends,
    plan_sends, seq_counts, unnamed_recipients, Lookups, Plan, SendRequest,
};

/// `(user, conversation, seq)`: one seq one user acked (or sent) in one conversation.
pub(crate) type Mark = (String, String, i64);

/// Every command's result, in run order: sends from their plans (new ones from `stored`), acks
/// from their checks, with `first_delivery` for the ids in `first` (once per message).
pub(crate) fn results(
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
