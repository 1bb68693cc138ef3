//! The chaos checker: what the devices, the final catch-up and the database say, against what
//! must hold (see [`check`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::device::{Content, DeviceLog, Sent, Target};
use super::faults::Fault;

/// A recipient device that was online must have a message within this long of its commit, or
/// of the end of a fault in effect meanwhile.
pub const LIVE_WITHIN: Duration = Duration::from_secs(30);

/// One device's log, with whose it is.
pub struct DeviceRecord {
    pub user: String,
    pub device: String,
    pub log: DeviceLog,
}

/// A stored message as the database holds it.
#[derive(Clone, Debug)]
pub struct Row {
    pub content: Content,
    /// When it was stored.
    pub at: Instant,
}

/// Everything the checker reads.
pub struct Evidence {
    pub origin: Instant,
    pub devices: Vec<DeviceRecord>,
    pub groups: HashMap<String, Vec<String>>,
    pub faults: Vec<Fault>,
    /// user → what the final catch-up (a fresh connection of a new device) pushed.
    pub catch_up: HashMap<String, HashMap<String, Content>>,
    /// messageId → its row.
    pub db: HashMap<String, Row>,
}

/// One live-delivery violation.
#[derive(Debug)]
pub struct Late {
    pub message_id: String,
    pub device: String,
    pub sender_pod: String,
    pub faults: Vec<String>,
    /// How long after its commit it arrived (None: never while the device stayed online).
    pub delay: Option<Duration>,
    pub due_after_commit: Duration,
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Findings {
    pub messages: usize,
    pub lost: Vec<String>,
    pub not_in_db: Vec<String>,
    pub seq_gaps: Vec<String>,
    pub conflicts: Vec<String>,
    pub duplicates: usize,
    pub late: Vec<Late>,
    /// (message, device) pairs judged for live delivery.
    pub live_judged: usize,
    /// (message, device) pairs not judged: the device was not online from commit until due.
    pub live_offline: usize,
    /// One pair not judged, for the report: message, commit and due (s since the start), the
    /// device and its online intervals.
    pub live_offline_example: Option<String>,
    pub only_at_catch_up: usize,
    pub send_errors: BTreeMap<u16, usize>,
}

impl Findings {
    /// The violations other than live delivery, as text (empty: none).
    pub fn safety_violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut say = |what: &str, items: &[String]| {
            if !items.is_empty() {
                v.push(format!(
                    "{} {what}, e.g. {:?}",
                    items.len(),
                    &items[..items.len().min(5)]
                ));
            }
        };
        say(
            "messages with reply 0 never reached a recipient user",
            &self.lost,
        );
        say(
            "reply 0s for messages missing from the database",
            &self.not_in_db,
        );
        say("seq gaps seen by a user", &self.seq_gaps);
        say("messageIds with two different contents", &self.conflicts);
        v
    }
}

/// Checks the run:
/// - every message that got reply 0 is in the database, as sent;
/// - it reached every recipient user (some device of theirs, during the run or at the final
///   catch-up; a device need not get what a sibling already acked, DESIGN §4.4);
/// - the seqs each user saw of each conversation (pushes, gap SYNCs, its own reply 0s, the
///   catch-up) run from 1 without a gap;
/// - no messageId carried two contents (pushes, duplicates, reply 0s, the database);
/// - live delivery: a recipient device online from the commit until it was due had it by
///   then — due [`LIVE_WITHIN`] after the commit, or after the end of the last fault in effect
///   within that window. A device that went offline before the message was due and before it
///   arrived is not judged (catch-up on its next connection is checked above).
pub fn check(e: &Evidence) -> Findings {
    let mut f = Findings::default();
    let mut contents: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut note = |id: &str, c: &Content| {
        if !c.recalled {
            contents.entry(id.to_owned()).or_default().insert(format!(
                "{}#{} from {}: {}",
                c.conversation_id, c.seq, c.from, c.body
            ));
        }
    };
    let sent: Vec<(&DeviceRecord, &Sent)> = e
        .devices
        .iter()
        .flat_map(|d| d.log.sent.iter().map(move |s| (d, s)))
        .collect();
    f.messages = sent.len();
    for (d, s) in &sent {
        let c = Content {
            conversation_id: s.conversation_id.clone(),
            seq: s.seq,
            from: d.user.clone(),
            body: s.body.clone(),
            recalled: false,
        };
        note(&s.message_id, &c);
        match e.db.get(&s.message_id) {
            Some(row) => note(&s.message_id, &row.content),
            None => f.not_in_db.push(s.message_id.clone()),
        }
    }
    for d in &e.devices {
        f.duplicates += d.log.duplicates;
        for (id, got) in &d.log.got {
            note(id, &got.content);
        }
        for (id, a, b) in &d.log.conflicts {
            f.conflicts
                .push(format!("{id} on {}:{}: {a:?} then {b:?}", d.user, d.device));
        }
        for (status, n) in &d.log.errors {
            *f.send_errors.entry(*status).or_default() += n;
        }
    }
    for got in e.catch_up.values() {
        for (id, c) in got {
            note(id, c);
        }
    }
    for (id, cs) in &contents {
        if cs.len() > 1 {
            f.conflicts.push(format!("{id}: {cs:?}"));
        }
    }

    // Per user: every messageId it holds, and the seqs of each conversation.
    let mut held: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    let mut seqs: HashMap<(&str, &str), BTreeSet<i64>> = HashMap::new();
    for d in &e.devices {
        for (id, got) in &d.log.got {
            held.entry(&d.user).or_default().insert(id);
            seqs.entry((&d.user, &got.content.conversation_id))
                .or_default()
                .insert(got.content.seq);
        }
        for s in &d.log.sent {
            seqs.entry((&d.user, &s.conversation_id))
                .or_default()
                .insert(s.seq);
        }
    }
    let mut at_catch_up: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (user, got) in &e.catch_up {
        for (id, c) in got {
            at_catch_up.entry(user).or_default().insert(id);
            seqs.entry((user, &c.conversation_id))
                .or_default()
                .insert(c.seq);
        }
    }
    for ((user, conv), s) in &seqs {
        let max = s.last().copied().unwrap_or(0);
        let missing: Vec<i64> = (1..=max).filter(|q| !s.contains(q)).collect();
        if !missing.is_empty() {
            f.seq_gaps.push(format!(
                "{user} in {conv}: missing seqs {missing:?} of 1..={max}"
            ));
        }
    }

    let devices_of: HashMap<&str, Vec<&DeviceRecord>> =
        e.devices.iter().fold(HashMap::new(), |mut m, d| {
            m.entry(d.user.as_str()).or_default().push(d);
            m
        });
    for (d, s) in &sent {
        let users: Vec<&str> = match &s.target {
            Target::User(u) => vec![u.as_str(), d.user.as_str()],
            Target::Group(g) => e.groups[g].iter().map(String::as_str).collect(),
        };
        for user in users.iter().filter(|u| **u != d.user) {
            let during = held
                .get(user)
                .is_some_and(|h| h.contains(s.message_id.as_str()));
            let after = at_catch_up
                .get(user)
                .is_some_and(|h| h.contains(s.message_id.as_str()));
            if !during && after {
                f.only_at_catch_up += 1;
            }
            if !during && !after {
                f.lost
                    .push(format!("{} ({} → {user})", s.message_id, d.user));
            }
        }
        let Some(row) = e.db.get(&s.message_id) else {
            continue;
        };
        live(e, &mut f, d, s, row.at, &users, &devices_of);
    }
    f
}

/// The live-delivery judgement of message `s` (sent by device `from`, stored at `commit`) for
/// every device of `users` but the sending one.
fn live(
    e: &Evidence,
    f: &mut Findings,
    from: &DeviceRecord,
    s: &Sent,
    commit: Instant,
    users: &[&str],
    devices_of: &HashMap<&str, Vec<&DeviceRecord>>,
) {
    let window_end = commit + LIVE_WITHIN;
    let in_effect: Vec<&Fault> = e
        .faults
        .iter()
        .filter(|x| x.start <= window_end && x.end >= commit)
        .collect();
    let due = in_effect
        .iter()
        .map(|x| x.end)
        .chain([commit])
        .max()
        .unwrap_or(commit)
        + LIVE_WITHIN;
    for user in users {
        for d in devices_of.get(user).into_iter().flatten() {
            if d.user == from.user && d.device == from.device {
                continue;
            }
            let got = d.log.got.get(&s.message_id).map(|g| g.at);
            // Judged when online from the commit until it arrived in time, or until it was due.
            let until = got.filter(|at| *at <= due).unwrap_or(due);
            if !d.log.online_through(commit, until) {
                f.live_offline += 1;
                if f.live_offline_example.is_none() {
                    let at = |t: Instant| t.saturating_duration_since(e.origin).as_secs_f64();
                    let online: Vec<(f64, Option<f64>)> = d
                        .log
                        .online
                        .iter()
                        .map(|(s, x)| (at(*s), x.map(at)))
                        .collect();
                    f.live_offline_example = Some(format!(
                        "{} committed at {:.1} s, due {:.1} s; {}:{} online {online:?}",
                        s.message_id,
                        at(commit),
                        at(due),
                        d.user,
                        d.device
                    ));
                }
                continue;
            }
            f.live_judged += 1;
            if got.is_some_and(|at| at <= due) {
                continue;
            }
            f.late.push(Late {
                message_id: s.message_id.clone(),
                device: format!("{}:{}", d.user, d.device),
                sender_pod: s.pod.clone(),
                faults: in_effect.iter().map(|x| x.describe(e.origin)).collect(),
                delay: got.map(|at| at.saturating_duration_since(commit)),
                due_after_commit: due - commit,
            });
        }
    }
}
