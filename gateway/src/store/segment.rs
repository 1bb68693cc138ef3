//! Storing a run of SEND and ACK commands in a constant number of steps, whatever its length.
//!
//! On PostgreSQL each step is a round trip to the server, and those round trips — not the
//! database — are what a message costs when it is stored statement by statement (SQLite's
//! writer calls the database in place, where a step is a loop of cached single-row statements).
//! Here a run of hundreds of sends and acks costs about a dozen steps: look up
//! duplicates, acked messages, groups, members and names; create new conversations; allocate
//! every conversation's seqs in one `UPDATE … RETURNING`; insert all messages and lock the
//! memberships the acks touch; fold all acks (the senders' own included) into the users'
//! `ackedSeq`; mark first deliveries. The decisions between those round trips are [`super::plan`]'s.

use std::collections::BTreeMap;

use super::backend::Backend;
use super::cache::Cache;
use super::command::MessageCommand;
use super::plan::{self, AckTarget, Lookups, Mark, Plan, SendRequest};
use super::{Acked, Sent};
use crate::error::Result;
use crate::model::{now_ms, StoredMessage};

/// A run's results, held until the transaction commits: its sends' and its acks' results, each
/// in run order.
#[derive(Default)]
pub(super) struct Results {
    sent: Vec<Result<Sent>>,
    acked: Vec<Result<Acked>>,
}

impl Results {
    /// After commit: each command's caller gets its result. A command without one (the run was
    /// not stored) just has its channel closed: its caller sees the store unavailable, as when
    /// the writer stops.
    pub(super) fn answer(self, run: Vec<MessageCommand>) {
        let mut sent = self.sent.into_iter();
        let mut acked = self.acked.into_iter();
        for command in run {
            match command {
                MessageCommand::Send { reply, .. } => {
                    if let Some(result) = sent.next() {
                        reply.send(result);
                    }
                }
                MessageCommand::Ack { reply, .. } => {
                    if let Some(result) = acked.next() {
                        reply.send(result);
                    }
                }
            }
        }
    }
}

/// Stores a run of SEND/ACK commands inside the caller's transaction. `Err` is a database error:
/// the whole transaction must roll back.
pub(super) async fn run<DB: Backend>(
    conn: &mut DB::Writer,
    cache: &mut Cache,
    run: &[MessageCommand],
) -> Result<Results> {
    let mut sends = Vec::new();
    let mut acks = Vec::new();
    for command in run {
        match command {
            MessageCommand::Send { msg, group, .. } => sends.push((msg, *group)),
            MessageCommand::Ack {
                user, message_id, ..
            } => acks.push((user.as_str(), message_id.as_str())),
        }
    }
    let (sent, acked) = store::<DB>(conn, cache, &sends, &acks).await?;
    Ok(Results { sent, acked })
}

type Outcomes = (Vec<Result<Sent>>, Vec<Result<Acked>>);

async fn store<DB: Backend>(
    conn: &mut DB::Writer,
    cache: &mut Cache,
    sends: &[SendRequest<'_>],
    acks: &[(&str, &str)],
) -> Result<Outcomes> {
    let (lookups, found) = look_up::<DB>(conn, cache, sends, acks).await?;
    let plans = plan::plan_sends(sends, lookups, cache.names());
    let checks = plan::check_acks(acks, found);
    let (stored, mut marks) = allocate_new::<DB>(conn, cache, sends, &plans).await?;

    // The sender's own messages: counted as acked and as read by it.
    let read = marks.clone();
    marks.extend(checks.marks);
    let by_pair = plan::marks_by_pair(marks);
    let pairs: Vec<(&str, &str)> = by_pair
        .keys()
        .map(|(u, c)| (u.as_str(), c.as_str()))
        .collect();
    let messages: Vec<_> = stored.values().collect();
    DB::insert_and_lock(conn, &messages, &pairs).await?;
    let (mut writes, fresh) = plan::fold_acks(&by_pair, DB::positions(conn, &pairs).await?);
    writes.read = read;
    DB::settle(conn, &writes).await?;
    let first = plan::first_deliveries(&checks.candidates, &fresh);
    Ok(plan::results(plans, stored, checks.results, &first))
}

/// Everything planning needs: stored duplicates, the addressed groups and their active members,
/// the display names of 1:1 recipients not in the cache (added to it, with whether each blocks
/// anyone), the blocks of those who do; and the acked
/// messages. An ack never names a message of its own run: a message is acked after it was
/// delivered, so after the transaction that stored it committed.
async fn look_up<DB: Backend>(
    conn: &mut DB::Writer,
    cache: &mut Cache,
    sends: &[SendRequest<'_>],
    acks: &[(&str, &str)],
) -> Result<(Lookups, Vec<AckTarget>)> {
    let (existing, found) = DB::look_up(conn, &plan::idempotency_keys(sends), acks).await?;
    let groups = DB::find_groups(conn, &plan::addressed_groups(sends)).await?;
    let conversations: Vec<&str> = groups.iter().map(|(_, c)| c.as_str()).collect();
    let members = DB::active_members(conn, &conversations).await?;
    let unnamed = plan::unnamed_recipients(sends, cache.names(), cache.blocking());
    let names = DB::names(conn, &unnamed).await?;
    cache.add_users(names);
    // Only sends to users who block someone cost a lookup more.
    let blockable = plan::blockable(sends, cache.blocking());
    let blocked = DB::blocked_pairs(conn, &blockable).await?;
    let lookups = Lookups {
        existing,
        groups,
        members,
        blocked,
    };
    Ok((lookups, found))
}

/// Creates new 1:1 conversations, allocates seqs and builds the new messages (inserted with the
/// membership locks). Returns them by send index, and the acks they imply for their senders.
async fn allocate_new<DB: Backend>(
    conn: &mut DB::Writer,
    cache: &mut Cache,
    sends: &[SendRequest<'_>],
    plans: &[Plan],
) -> Result<(BTreeMap<usize, StoredMessage>, Vec<Mark>)> {
    let new = plan::new_sends(plans);
    if new.is_empty() {
        return Ok(Default::default());
    }
    let fresh = plan::direct_conversations(sends, &new, cache.conversations());
    DB::create_direct(conn, &fresh, now_ms()).await?;
    cache.add_conversations(fresh.keys().copied());

    let counts = plan::seq_counts(&new);
    let lasts = DB::allocate(conn, &counts).await?;
    plan::build_messages(sends, plans, &counts, lasts, now_ms())
}
