//! Storing a run of SEND and ACK commands in a constant number of statements, whatever its length.
//!
//! Each statement is a round trip (to sqlx's SQLite worker thread, or to the PostgreSQL server),
//! and those round trips — not the database — are what a message costs when it is stored
//! statement by statement. Here a run of hundreds of sends and acks costs about a dozen: look up
//! duplicates, acked messages, groups, members and names; create new conversations; allocate
//! every conversation's seqs in one `UPDATE … RETURNING`; insert all messages and lock the
//! memberships the acks touch; fold all acks (the senders' own included) into the users'
//! `ackedSeq`; mark first deliveries. The decisions between those round trips are [`super::plan`]'s.

use std::collections::BTreeMap;

use super::lists::Lists;
use super::plan::{self, AckTarget, Lookups, Mark, Plan, SendRequest};
use super::writer::{Cache, Request, Response};
use crate::error::{Error, Result};
use crate::model::{now_ms, StoredMessage};
use crate::store::{Acked, Sent};

/// Runs a run of `Send`/`Ack` requests inside the caller's transaction. Returns one result per
/// request, in order, or `Err` when a database error means the whole transaction must roll back.
pub(super) async fn run<DB: Lists>(
    conn: &mut DB::Connection,
    cache: &mut Cache,
    run: &[Request],
) -> Result<Vec<Result<Response>>> {
    let mut sends = Vec::new();
    let mut acks = Vec::new();
    for request in run {
        match request {
            Request::Send { msg, group } => sends.push((msg, *group)),
            Request::Ack { user, message_id } => acks.push((user.as_str(), message_id.as_str())),
            _ => return Err(Error::Internal("not a SEND/ACK run".into())),
        }
    }
    let (sent, acked) = store::<DB>(conn, cache, &sends, &acks).await?;
    let mut sent = sent.into_iter().map(|r| r.map(Response::Sent));
    let mut acked = acked.into_iter().map(|r| r.map(Response::Acked));
    Ok(run
        .iter()
        .filter_map(|request| match request {
            Request::Send { .. } => sent.next(),
            _ => acked.next(),
        })
        .collect())
}

type Outcomes = (Vec<Result<Sent>>, Vec<Result<Acked>>);

async fn store<DB: Lists>(
    conn: &mut DB::Connection,
    cache: &mut Cache,
    sends: &[SendRequest<'_>],
    acks: &[(&str, &str)],
) -> Result<Outcomes> {
    let (lookups, found) = look_up::<DB>(conn, cache, sends, acks).await?;
    let plans = plan::plan_sends(sends, lookups, cache.names());
    let checks = plan::check_acks(acks, found);
    let (stored, mut marks) = allocate_new::<DB>(conn, cache, sends, &plans).await?;

    marks.extend(checks.marks);
    let by_pair = plan::marks_by_pair(marks);
    let pairs: Vec<(&str, &str)> = by_pair
        .keys()
        .map(|(u, c)| (u.as_str(), c.as_str()))
        .collect();
    let messages: Vec<_> = stored.values().collect();
    DB::insert_and_lock(conn, &messages, &pairs).await?;
    let writes = plan::fold_acks(&by_pair, DB::positions(conn, &pairs).await?);
    let first = DB::settle(conn, &writes, &checks.candidates, now_ms()).await?;
    Ok(plan::results(plans, stored, checks.results, &first))
}

/// Everything planning needs: stored duplicates, the addressed groups and their active members,
/// and the display names of 1:1 recipients not in the cache (added to it); and the acked
/// messages. An ack never names a message of its own run: a message is acked after it was
/// delivered, so after the transaction that stored it committed.
async fn look_up<DB: Lists>(
    conn: &mut DB::Connection,
    cache: &mut Cache,
    sends: &[SendRequest<'_>],
    acks: &[(&str, &str)],
) -> Result<(Lookups, Vec<AckTarget>)> {
    let (existing, found) = DB::look_up(conn, &plan::idempotency_keys(sends), acks).await?;
    let groups = DB::find_groups(conn, &plan::addressed_groups(sends)).await?;
    let conversations: Vec<&str> = groups.iter().map(|(_, c)| c.as_str()).collect();
    let members = DB::active_members(conn, &conversations).await?;
    let unnamed = plan::unnamed_recipients(sends, cache.names());
    let names = DB::names(conn, &unnamed).await?;
    cache.add_names(names);
    let lookups = Lookups {
        existing,
        groups,
        members,
    };
    Ok((lookups, found))
}

/// Creates new 1:1 conversations, allocates seqs and builds the new messages (inserted with the
/// membership locks). Returns them by send index, and the acks they imply for their senders.
async fn allocate_new<DB: Lists>(
    conn: &mut DB::Connection,
    cache: &mut Cache,
    sends: &[SendRequest<'_>],
    plans: &[Plan],
) -> Result<(BTreeMap<usize, StoredMessage>, Vec<Mark>)> {
    let new = plan::new_sends(plans);
    if new.is_empty() {
        return Ok(Default::default());
    }
    let fresh = plan::direct_conversations(sends, &new, &cache.conversations);
    DB::create_direct(conn, &fresh, now_ms()).await?;
    cache
        .conversations
        .extend(fresh.keys().map(|k| (*k).to_owned()));

    let counts = plan::seq_counts(&new);
    let lasts = DB::allocate(conn, &counts).await?;
    plan::build_messages(sends, plans, &counts, lasts, now_ms())
}
