//! What must hold after a failure test: every message that got reply 0 was stored once and
//! reached its recipient, and SYNC reads every conversation back whole and in order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::fixtures::wait_until;

use super::{Device, DeviceLog, ProcessCluster, Pushed, SendLog, Stored};

/// Every conversation of `user`, read back in full with SYNC (13) pages on a fresh connection
/// of its own: conversationId → the stored messages in the order SYNC returned them.
pub async fn sync_all(
    cluster: &ProcessCluster,
    pod: usize,
    user: &str,
) -> BTreeMap<String, Vec<Pushed>> {
    let mut c = cluster.connect(pod, user, "audit").await;
    c.send(json!({"type": 13, "requestId": "list", "params": {}}))
        .await;
    let list = c
        .recv_where("conversation list", |v| v["requestId"] == "list")
        .await;
    assert_eq!(list["type"], 14, "SYNC list: {list}");
    let mut out = BTreeMap::new();
    for conv in list["params"]["conversations"]
        .as_array()
        .expect("conversations")
    {
        let id = conv["conversationId"]
            .as_str()
            .expect("conversationId")
            .to_owned();
        let mut msgs: Vec<Pushed> = Vec::new();
        loop {
            let after = msgs.last().map_or(0, |m| m.seq);
            let rid = format!("sync-{id}-{after}");
            c.send(json!({"type": 13, "requestId": rid, "params": {
                "conversationId": id, "afterSeq": after, "limit": 200}}))
                .await;
            let page = c
                .recv_where("SYNC page", |v| v["requestId"] == rid.as_str())
                .await;
            assert_eq!(page["type"], 14, "SYNC page: {page}");
            for env in page["params"]["messages"].as_array().expect("messages") {
                let p = &env["msg"]["params"];
                msgs.push(Pushed {
                    message_id: env["messageId"].as_str().expect("messageId").to_owned(),
                    conversation_id: id.clone(),
                    seq: p["seq"].as_i64().expect("seq"),
                    from: p["fromUser"]["openid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    client_msg_id: p["clientMsgId"].as_str().map(str::to_owned),
                    pod: String::new(),
                });
            }
            if page["params"]["hasMore"] != true {
                break;
            }
        }
        out.insert(id, msgs);
    }
    out
}

/// The reply-0 messages of `senders`, checked for idempotence: one messageId per clientMsgId.
/// Returns recipient → the messages stored for it.
pub fn stored_by_recipient(senders: &[Arc<Mutex<SendLog>>]) -> BTreeMap<String, Vec<Stored>> {
    let mut out: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for log in senders {
        let log = log.lock().unwrap();
        for (cmid, replies) in &log.replies {
            let first = &replies[0];
            assert!(
                replies.iter().all(|r| r == first),
                "clientMsgId {cmid} got different replies 0: {replies:?}"
            );
            let to = log.to.get(cmid).expect("a reply for a message sent");
            out.entry(to.clone()).or_default().push(first.clone());
        }
    }
    out
}

/// Checks what recipients saw against what was stored; returns a one-line summary.
///
/// - every stored message reached the user (some device of theirs) by push: none missing. A
///   device can miss one its sibling acked (catch-up starts above the user's `ackedSeq`); a
///   client SYNCs such gaps, as the check below does;
/// - a pushed messageId always carries its stored conversation and seq, and one clientMsgId of a
///   sender was only ever pushed under one messageId (duplicates share the messageId);
/// - each conversation, read back with SYNC, is strictly increasing and gap-free from seq 1 and
///   holds exactly the stored messages.
pub async fn check_delivery(
    cluster: &ProcessCluster,
    audit_pod: usize,
    stored: &BTreeMap<String, Vec<Stored>>,
    devices: &BTreeMap<String, Vec<Arc<Mutex<DeviceLog>>>>,
) -> String {
    let (mut total, mut seen) = (0, PushCounts::default());
    for (user, msgs) in stored {
        let logs = devices.get(user).map(Vec::as_slice).unwrap_or_default();
        check_pushes(user, msgs, logs, &mut seen);
        total += msgs.len();
        check_synced(cluster, audit_pod, user, msgs).await;
    }
    let PushCounts {
        pushes,
        duplicates,
        device_gaps,
    } = seen;
    format!(
        "{total} messages stored, all delivered ({pushes} pushes, {duplicates} duplicates, \
         {device_gaps} left to a device's SYNC because another device of the user acked them)"
    )
}

/// What the devices of the users checked so far were pushed.
#[derive(Default)]
struct PushCounts {
    pushes: usize,
    /// Pushes of a messageId the device already had.
    duplicates: usize,
    /// Stored messages a device never got pushed (its user got them on another device).
    device_gaps: usize,
}

/// `user`'s devices (`logs`) got every message stored for them (`msgs`) by push, each under
/// its stored conversation and seq, and each clientMsgId under one messageId only.
fn check_pushes(
    user: &str,
    msgs: &[Stored],
    logs: &[Arc<Mutex<DeviceLog>>],
    seen: &mut PushCounts,
) {
    let by_id: HashMap<&str, &Stored> = msgs.iter().map(|m| (m.message_id.as_str(), m)).collect();
    let mut got: BTreeSet<String> = BTreeSet::new();
    let mut by_cmid: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
    for log in logs {
        let log = log.lock().unwrap();
        seen.pushes += log.pushes.len();
        let ids = log.message_ids();
        seen.duplicates += log.pushes.len() - ids.len();
        seen.device_gaps += msgs.iter().filter(|m| !ids.contains(&m.message_id)).count();
        for p in &log.pushes {
            if let Some(s) = by_id.get(p.message_id.as_str()) {
                assert_eq!(
                    (&p.conversation_id, p.seq),
                    (&s.conversation_id, s.seq),
                    "{user}: pushed {} with another conversation or seq than stored",
                    p.message_id
                );
            }
            if let Some(c) = &p.client_msg_id {
                by_cmid
                    .entry((p.from.clone(), c.clone()))
                    .or_default()
                    .insert(p.message_id.clone());
            }
            got.insert(p.message_id.clone());
        }
    }
    for (key, ids) in &by_cmid {
        assert_eq!(
            ids.len(),
            1,
            "{user}: {key:?} pushed under several messageIds: {ids:?}"
        );
    }
    let missing: Vec<&Stored> = msgs
        .iter()
        .filter(|m| !got.contains(&m.message_id))
        .collect();
    assert!(
        missing.is_empty(),
        "{user}: {} of {} messages that got reply 0 never arrived, e.g. {:?}",
        missing.len(),
        msgs.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Read back with SYNC through pod `audit_pod`: each of `user`'s conversations holds exactly the
/// messages stored in it (`msgs`), seqs 1..=n in order.
async fn check_synced(cluster: &ProcessCluster, audit_pod: usize, user: &str, msgs: &[Stored]) {
    let synced = sync_all(cluster, audit_pod, user).await;
    let mut want: BTreeMap<&str, BTreeMap<i64, &str>> = BTreeMap::new();
    for m in msgs {
        want.entry(m.conversation_id.as_str())
            .or_default()
            .insert(m.seq, m.message_id.as_str());
    }
    for (conv, expected) in want {
        let read = synced
            .get(conv)
            .unwrap_or_else(|| panic!("{user}: SYNC lacks conversation {conv}"));
        let seqs: Vec<i64> = read.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=read.len() as i64).collect::<Vec<_>>(),
            "{user}: conversation {conv} is not 1..n without gaps in order"
        );
        let read: BTreeMap<i64, &str> = read
            .iter()
            .map(|m| (m.seq, m.message_id.as_str()))
            .collect();
        assert_eq!(
            read, expected,
            "{user}: conversation {conv} holds other messages than stored"
        );
    }
}

/// How many stored messages have not reached any device of their recipient yet.
pub fn missing(stored: &BTreeMap<String, Vec<Stored>>, devices: &[Device]) -> usize {
    let mut got: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for d in devices {
        got.entry(d.user.as_str())
            .or_default()
            .extend(d.log.lock().unwrap().message_ids());
    }
    stored
        .iter()
        .map(|(user, msgs)| {
            let got = got.get(user.as_str());
            msgs.iter()
                .filter(|m| !got.is_some_and(|g| g.contains(&m.message_id)))
                .count()
        })
        .sum()
}

/// Waits until nothing is [`missing`] or `within` passed; returns what is still missing.
pub async fn wait_delivered(
    stored: &BTreeMap<String, Vec<Stored>>,
    devices: &[Device],
    within: Duration,
) -> usize {
    let every = Duration::from_millis(100);
    wait_until(within, every, async || missing(stored, devices) == 0).await;
    missing(stored, devices)
}
