//! The store's contract, checked on both backends through the `Store` trait: SQLite (a temp data
//! dir) and PostgreSQL (a real server, a fresh database per test). PostgreSQL also runs as two
//! "pods": two stores, each with its own writer, on one database.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chat_gateway::model::{direct_conversation_id, Target};
use chat_gateway::store::postgres::PgStore;
use chat_gateway::store::sqlite::SqliteStore;
use chat_gateway::store::{ConversationSummary, Sent, Store};
use chat_tests::fixtures::{new_message, status};
use chat_tests::{postgres, TempDir};
use futures_util::future::join_all;

/// One backend under test; holds what must live as long as its store.
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    _dir: Option<TempDir>,
}

/// A fresh store of each backend.
async fn both(tag: &str) -> Vec<Backend> {
    chat_tests::init_logging();
    let dir = TempDir::new(tag);
    let sqlite = SqliteStore::open(dir.path()).await.expect("open sqlite");
    let pg = PgStore::connect(&postgres::database(tag).await)
        .await
        .expect("connect to postgres");
    vec![
        Backend {
            name: "sqlite",
            store: Arc::new(sqlite),
            _dir: Some(dir),
        },
        Backend {
            name: "postgres",
            store: Arc::new(pg),
            _dir: None,
        },
    ]
}

/// Two PostgreSQL stores on one database: two pods.
async fn two_pods(tag: &str) -> [Arc<dyn Store>; 2] {
    chat_tests::init_logging();
    let url = postgres::database(tag).await;
    let a = PgStore::connect(&url).await.expect("connect pod a");
    let b = PgStore::connect(&url).await.expect("connect pod b");
    [Arc::new(a), Arc::new(b)]
}

fn members(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Sends `per_sender` messages from each of `senders` concurrently, spread over `stores`:
/// sender `i` to `peer` (1:1) when `group` is `None`, else to the group.
async fn flood(
    stores: &[Arc<dyn Store>],
    senders: &[&str],
    peer: &str,
    group: Option<&str>,
    per_sender: usize,
) -> Vec<Sent> {
    let tasks = senders.iter().enumerate().map(|(i, sender)| {
        let store = stores[i % stores.len()].clone();
        let (sender, peer, group) = (
            sender.to_string(),
            peer.to_owned(),
            group.map(str::to_owned),
        );
        tokio::spawn(async move {
            let mut out = Vec::new();
            for n in 0..per_sender {
                let body = format!("{sender}-{n}");
                let sent = match &group {
                    Some(g) => store.send_group(new_message(&sender, g, &body, None)).await,
                    None => {
                        store
                            .send_direct(new_message(&sender, &peer, &body, None))
                            .await
                    }
                };
                out.push(sent.expect("send"));
            }
            out
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("sender task"))
        .collect()
}

/// Every conversation's seqs are exactly 1..=n: unique and without gaps.
fn assert_gapless(name: &str, sent: &[Sent]) {
    let mut by_conv: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for s in sent {
        by_conv
            .entry(&s.message.conversation_id)
            .or_default()
            .push(s.message.seq);
    }
    for (conv, mut seqs) in by_conv {
        seqs.sort();
        // A group's seq 1 is its creation (v1.1 group events).
        let first = if conv.starts_with("grp:") { 2 } else { 1 };
        let expected: Vec<i64> = (first..first + seqs.len() as i64).collect();
        assert_eq!(seqs, expected, "{name}: seqs of {conv}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seqs_are_unique_and_gapless_under_concurrent_senders() {
    for b in both("seqs").await {
        let name = b.name;
        let s = b.store.clone();
        let g = s
            .create_group("u0", "g", &members(&["u1", "u2", "u3"]))
            .await
            .unwrap();
        let stores = [s.clone()];
        let mut sent = flood(&stores, &["alice", "bob"], "carol", None, 30).await;
        sent.extend(
            flood(
                &stores,
                &["u0", "u1", "u2", "u3"],
                "",
                Some(&g.group_id),
                20,
            )
            .await,
        );
        assert_eq!(sent.len(), 60 + 80, "{name}");
        assert_gapless(name, &sent);
        // Each sender's own messages keep their order.
        let page = s.read("u1", &g.conversation_id, 0, 200).await.unwrap();
        assert_eq!(
            page.messages.len(),
            81,
            "{name}: the creation and 80 messages"
        );
        let u2: Vec<String> = page
            .messages
            .iter()
            .filter(|m| m.from == "u2")
            .map(|m| m.body.clone())
            .collect();
        let expected: Vec<String> = (0..20).map(|n| format!("u2-{n}")).collect();
        assert_eq!(u2, expected, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pods_share_one_gapless_sequence_per_conversation() {
    let pods = two_pods("pods").await;
    let g = pods[0]
        .create_group("p0", "g", &members(&["p1", "p2", "p3"]))
        .await
        .unwrap();
    let senders = ["alice", "bob", "carol", "alice", "bob", "carol"];
    let (direct, group) = tokio::join!(
        flood(&pods, &senders, "dave", None, 40),
        flood(&pods, &["p0", "p1", "p2", "p3"], "", Some(&g.group_id), 40),
    );
    let mut sent = direct;
    sent.extend(group);
    assert_eq!(sent.len(), 6 * 40 + 4 * 40);
    assert_gapless("postgres pods", &sent);
    // What the pods answered is what both read back.
    for pod in &pods {
        let page = pod.read("p3", &g.conversation_id, 0, 200).await.unwrap();
        let seqs: Vec<i64> = page.messages.iter().map(|m| m.seq).collect();
        assert_eq!(
            seqs,
            (1..=161).collect::<Vec<_>>(),
            "the creation and 160 messages"
        );
        let ids: HashSet<&str> = page
            .messages
            .iter()
            .map(|m| m.message_id.as_str())
            .collect();
        for s in sent
            .iter()
            .filter(|s| s.message.conversation_id == g.conversation_id)
        {
            assert!(ids.contains(s.message.message_id.as_str()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resends_are_idempotent_in_one_batch_and_across_stores() {
    for b in both("idem").await {
        let name = b.name;
        let s = &b.store;
        // Queued together: most land in one batch.
        let results = join_all(
            (0..20).map(|_| s.send_direct(new_message("alice", "bob", "hello", Some("c-1")))),
        )
        .await;
        let results: Vec<Sent> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1, "{name}");
        let first = &results.iter().find(|r| !r.duplicate).unwrap().message;
        for r in &results {
            assert_eq!(r.message.message_id, first.message_id, "{name}");
            assert_eq!(r.message.seq, first.seq, "{name}");
        }
        // A later resend, and the same clientMsgId from another sender.
        let again = s
            .send_direct(new_message("alice", "bob", "hello", Some("c-1")))
            .await
            .unwrap();
        assert!(again.duplicate, "{name}");
        assert_eq!(again.message.message_id, first.message_id, "{name}");
        let other = s
            .send_direct(new_message("bob", "alice", "hello", Some("c-1")))
            .await
            .unwrap();
        assert!(!other.duplicate, "{name}");
        assert_eq!(other.message.seq, 2, "{name}");
    }

    // The same resend reaching two pods at once: stored once, both answer with it.
    let pods = two_pods("idem_pods").await;
    for round in 0..10 {
        let cid = format!("r-{round}");
        let sends = (0..6).map(|i| {
            let pod = pods[i % 2].clone();
            let m = new_message("alice", "bob", "again", Some(&cid));
            async move { pod.send_direct(m).await.unwrap() }
        });
        let results = join_all(sends).await;
        assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
        let ids: HashSet<&str> = results
            .iter()
            .map(|r| r.message.message_id.as_str())
            .collect();
        assert_eq!(ids.len(), 1, "round {round}: {ids:?}");
    }
    let conv = direct_conversation_id("alice", "bob");
    let page = pods[1].read("bob", &conv, 0, 100).await.unwrap();
    let seqs: Vec<i64> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn acks_fold_out_of_order_and_park_above_gaps() {
    for b in both("acks").await {
        let name = b.name;
        let s = &b.store;
        let mut sent = Vec::new();
        for i in 1..=4 {
            sent.push(
                s.send_direct(new_message("alice", "bob", &format!("m{i}"), None))
                    .await
                    .unwrap()
                    .message,
            );
        }
        let acked = |list: Vec<ConversationSummary>| list[0].acked_seq;
        // The sender counts as having acked what it sent.
        assert_eq!(acked(s.conversations("alice").await.unwrap()), 4, "{name}");
        assert_eq!(acked(s.conversations("bob").await.unwrap()), 0, "{name}");

        s.ack("bob", &sent[2].message_id).await.unwrap();
        s.ack("bob", &sent[3].message_id).await.unwrap();
        assert_eq!(acked(s.conversations("bob").await.unwrap()), 0, "{name}");
        s.ack("bob", &sent[0].message_id).await.unwrap();
        assert_eq!(acked(s.conversations("bob").await.unwrap()), 1, "{name}");
        let backlog = s.backlog("bob").await.unwrap();
        assert_eq!(
            (backlog[0].after_seq, backlog[0].last_seq),
            (1, 4),
            "{name}"
        );
        // Closing the gap folds the parked acks in.
        s.ack("bob", &sent[1].message_id).await.unwrap();
        assert_eq!(acked(s.conversations("bob").await.unwrap()), 4, "{name}");
        assert!(s.backlog("bob").await.unwrap().is_empty(), "{name}");
        // Repeated acks change nothing.
        s.ack("bob", &sent[1].message_id).await.unwrap();
        assert_eq!(acked(s.conversations("bob").await.unwrap()), 4, "{name}");

        // Acks queued together (one batch), out of order.
        let more: Vec<_> = join_all(
            (5..=8).map(|i| s.send_direct(new_message("alice", "bob", &format!("m{i}"), None))),
        )
        .await
        .into_iter()
        .map(|r| r.unwrap().message)
        .collect();
        let ids: Vec<&str> = more.iter().rev().map(|m| m.message_id.as_str()).collect();
        join_all(ids.iter().map(|id| s.ack("bob", id))).await;
        assert_eq!(acked(s.conversations("bob").await.unwrap()), 8, "{name}");
    }
}

#[tokio::test]
async fn acks_from_two_pods_never_move_acked_seq_back() {
    let pods = two_pods("acks_pods").await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let sent = pods[i % 2]
            .send_direct(new_message("alice", "bob", &format!("m{i}"), None))
            .await
            .unwrap();
        ids.push(sent.message.message_id);
    }
    // Each pod acks every other message, in reverse: every ack parks until the last.
    let acks = ids.iter().enumerate().rev().map(|(i, id)| {
        let pod = pods[i % 2].clone();
        let id = id.clone();
        async move { pod.ack("bob", &id).await.unwrap() }
    });
    join_all(acks).await;
    for pod in &pods {
        let list = pod.conversations("bob").await.unwrap();
        assert_eq!(list[0].acked_seq, 60);
        assert!(pod.backlog("bob").await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn first_delivery_is_reported_once() {
    for b in both("first").await {
        let name = b.name;
        let s = &b.store;
        let m = s
            .send_direct(new_message("alice", "bob", "hi", None))
            .await
            .unwrap()
            .message;
        // Two of bob's devices ack at once, then again.
        let (a, c) = tokio::join!(s.ack("bob", &m.message_id), s.ack("bob", &m.message_id));
        let firsts = [a.unwrap(), c.unwrap()]
            .iter()
            .filter(|x| x.first_delivery)
            .count();
        assert_eq!(firsts, 1, "{name}");
        assert!(
            !s.ack("bob", &m.message_id).await.unwrap().first_delivery,
            "{name}"
        );
        // The sender's other device acks its copy: allowed, never a delivery.
        let own = s.ack("alice", &m.message_id).await.unwrap();
        assert!(!own.first_delivery, "{name}");
        assert_eq!(status(s.ack("eve", &m.message_id).await), 403, "{name}");
        assert_eq!(status(s.ack("bob", "no-such-message").await), 404, "{name}");
        // Group messages have no delivery notice.
        let g = s
            .create_group("alice", "g", &members(&["bob"]))
            .await
            .unwrap();
        let gm = s
            .send_group(new_message("alice", &g.group_id, "hi all", None))
            .await
            .unwrap()
            .message;
        assert!(
            !s.ack("bob", &gm.message_id).await.unwrap().first_delivery,
            "{name}"
        );
    }

    let pods = two_pods("first_pods").await;
    for i in 0..20 {
        let m = pods[0]
            .send_direct(new_message("alice", "bob", &format!("m{i}"), None))
            .await
            .unwrap()
            .message;
        let (a, c) = tokio::join!(
            pods[0].ack("bob", &m.message_id),
            pods[1].ack("bob", &m.message_id)
        );
        let firsts = [a.unwrap(), c.unwrap()]
            .iter()
            .filter(|x| x.first_delivery)
            .count();
        assert_eq!(firsts, 1, "message {i}");
    }
}

#[tokio::test]
async fn group_membership_rules() {
    for b in both("groups").await {
        let name = b.name;
        let s = &b.store;
        let g = s
            .create_group("owner", "team", &members(&["bob", "alice", "bob"]))
            .await
            .unwrap();
        assert_eq!(g.name, "team", "{name}");
        assert_eq!(g.members, ["alice", "bob", "owner"], "{name}");

        assert_eq!(
            status(
                s.send_group(new_message("eve", &g.group_id, "x", None))
                    .await
            ),
            403,
            "{name}"
        );
        assert_eq!(
            status(
                s.send_group(new_message("bob", "no-such-group", "x", None))
                    .await
            ),
            404,
            "{name}"
        );
        let early = s
            .send_group(new_message("bob", &g.group_id, "before carol", None))
            .await
            .unwrap();
        assert_eq!(early.members, ["alice", "bob", "owner"], "{name}");

        // Only members add members; a new member sees only what comes after.
        let refused = s.add_members("eve", &g.group_id, &members(&["eve"])).await;
        assert_eq!(status(refused), 403, "{name}");
        let g2 = s
            .add_members("alice", &g.group_id, &members(&["carol"]))
            .await
            .unwrap();
        assert_eq!(g2.members, ["alice", "bob", "carol", "owner"], "{name}");
        // Her backlog is the event that added her (created 1, early 2, added 3).
        let backlog = s.backlog("carol").await.unwrap();
        assert_eq!(
            (backlog.len(), backlog[0].after_seq, backlog[0].last_seq),
            (1, 2, 3),
            "{name}"
        );
        let late = s
            .send_group(new_message("carol", &g.group_id, "hi, carol here", None))
            .await
            .unwrap();
        assert_eq!(late.message.seq, 4, "{name}");
        let page = s.read("carol", &g.conversation_id, 0, 50).await.unwrap();
        let bodies: Vec<&str> = page.messages.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(bodies, ["", "hi, carol here"], "{name}");
        let added = page.messages[0].system.as_deref().expect("a group event");
        assert_eq!(added.event, chat_protocol::GroupEvent::Added, "{name}");
        assert_eq!(
            status(s.ack("carol", &early.message.message_id).await),
            403,
            "{name}"
        );
        let bob_page = s.read("bob", &g.conversation_id, 0, 50).await.unwrap();
        assert_eq!(bob_page.messages.len(), 4, "{name}");

        // Leaving: no more sending; reading up to one's own `left` (5) only; rejoining starts
        // over at the current seq.
        s.leave_group("bob", &g.group_id).await.unwrap();
        assert_eq!(
            status(
                s.send_group(new_message("bob", &g.group_id, "x", None))
                    .await
            ),
            403,
            "{name}"
        );
        let read = s.read("bob", &g.conversation_id, 0, 50).await.unwrap();
        let seqs: Vec<i64> = read.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "{name}");
        assert_eq!(
            status(s.leave_group("bob", &g.group_id).await),
            403,
            "{name}"
        );
        assert_eq!(
            status(s.leave_group("bob", "no-such-group").await),
            404,
            "{name}"
        );
        let away = s
            .send_group(new_message(
                "alice",
                &g.group_id,
                "while bob was away",
                None,
            ))
            .await
            .unwrap();
        // A former member acks what it may still read (up to its `left`), nothing after it.
        assert_eq!(
            status(s.ack("bob", &away.message.message_id).await),
            403,
            "{name}"
        );
        assert_eq!(
            status(s.ack("bob", &late.message.message_id).await),
            200,
            "{name}"
        );
        s.add_members("alice", &g.group_id, &members(&["bob"]))
            .await
            .unwrap();
        // Back: from the event that added him again (away 6, added 7).
        let page = s.read("bob", &g.conversation_id, 0, 50).await.unwrap();
        let seqs: Vec<i64> = page.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [7], "{name}");
        let sent = s
            .send_group(new_message("bob", &g.group_id, "back", None))
            .await
            .unwrap();
        assert_eq!(sent.message.seq, 8, "{name}");
    }
}

#[tokio::test]
async fn backlog_reads_and_conversation_lists() {
    for b in both("reads").await {
        let name = b.name;
        let s = &b.store;
        s.upsert_user("bob", "Bobby").await.unwrap();
        let mut ids = Vec::new();
        for i in 1..=5 {
            let sent = s
                .send_direct(new_message("alice", "bob", &format!("m{i}"), None))
                .await
                .unwrap();
            ids.push(sent.message.message_id.clone());
            if i == 1 {
                match &sent.message.target {
                    Target::Direct { to_name, .. } => {
                        assert_eq!(to_name, "Bobby", "{name}")
                    }
                    other => panic!("{name}: {other:?}"),
                }
            }
        }
        let unnamed = s
            .send_direct(new_message("alice", "zed", "hi", None))
            .await
            .unwrap();
        assert!(
            matches!(&unnamed.message.target, Target::Direct { to_name, .. } if to_name == "zed"),
            "{name}"
        );
        let conv = direct_conversation_id("alice", "bob");

        // Paging.
        let first = s.read("bob", &conv, 0, 2).await.unwrap();
        assert_eq!(
            first.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [1, 2],
            "{name}"
        );
        assert!(first.has_more, "{name}");
        let last = s.read("bob", &conv, 3, 10).await.unwrap();
        assert_eq!(
            last.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [4, 5],
            "{name}"
        );
        assert!(!last.has_more, "{name}");
        assert_eq!(last.messages[1].body, "m5", "{name}");
        assert_eq!(last.messages[1].from_name, "ALICE", "{name}");
        assert_eq!(status(s.read("eve", &conv, 0, 10).await), 403, "{name}");

        // Backlog: what bob has not acked yet.
        s.ack("bob", &ids[0]).await.unwrap();
        s.ack("bob", &ids[1]).await.unwrap();
        let backlog = s.backlog("bob").await.unwrap();
        assert_eq!(backlog.len(), 1, "{name}");
        assert_eq!(
            (
                backlog[0].conversation_id.as_str(),
                backlog[0].after_seq,
                backlog[0].last_seq
            ),
            (conv.as_str(), 2, 5),
            "{name}"
        );
        assert!(s.backlog("alice").await.unwrap().is_empty(), "{name}");

        // Conversation lists, sorted by id.
        let g = s
            .create_group("alice", "club", &members(&["carol"]))
            .await
            .unwrap();
        let list = s.conversations("alice").await.unwrap();
        let mut ids: Vec<&str> = list.iter().map(|c| c.conversation_id.as_str()).collect();
        let sorted = {
            let mut v = ids.clone();
            v.sort();
            v
        };
        assert_eq!(ids, sorted, "{name}");
        ids.sort();
        assert_eq!(ids.len(), 3, "{name}");
        let dm = list.iter().find(|c| c.conversation_id == conv).unwrap();
        assert_eq!(
            (
                dm.kind.as_str(),
                dm.peer.as_deref(),
                dm.last_seq,
                dm.acked_seq
            ),
            ("direct", Some("bob"), 5, 5),
            "{name}"
        );
        let club = list
            .iter()
            .find(|c| c.conversation_id == g.conversation_id)
            .unwrap();
        assert_eq!(
            (
                club.kind.as_str(),
                club.group_id.as_deref(),
                club.name.as_deref(),
                club.last_seq
            ),
            ("group", Some(g.group_id.as_str()), Some("club"), 1),
            "{name}"
        );
        let bob = s.conversations("bob").await.unwrap();
        assert_eq!(bob.len(), 1, "{name}");
        assert_eq!(bob[0].acked_seq, 2, "{name}");
        assert_eq!(bob[0].peer.as_deref(), Some("alice"), "{name}");

        // Talking to oneself is a conversation with oneself as the peer.
        s.send_direct(new_message("solo", "solo", "note", None))
            .await
            .unwrap();
        let solo = s.conversations("solo").await.unwrap();
        assert_eq!(solo[0].peer.as_deref(), Some("solo"), "{name}");
        assert_eq!(solo[0].acked_seq, 1, "{name}");
        s.ping().await.unwrap();
    }
}

#[tokio::test]
async fn retention_purges_what_is_older_in_batches_and_erasure_leaves_tombstones() {
    for b in both("lifecycle").await {
        let (name, s) = (b.name, &b.store);
        let mut last = None;
        for i in 0..5 {
            last = Some(
                s.send_direct(new_message("alice", "bob", &format!("old {i}"), None))
                    .await
                    .unwrap(),
            );
        }
        let conv = last.unwrap().message.conversation_id;
        let cutoff = chat_gateway::model::now_ms() + 1;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let kept = s
            .send_direct(new_message("bob", "alice", "new", None))
            .await
            .unwrap();
        assert_eq!(s.purge(cutoff, 2).await.unwrap(), 2, "{name}: one batch");
        assert_eq!(s.purge(cutoff, 100).await.unwrap(), 3, "{name}: the rest");
        assert_eq!(
            s.purge(cutoff, 100).await.unwrap(),
            0,
            "{name}: nothing older left"
        );
        let page = s.read("alice", &conv, 0, 50).await.unwrap();
        let seqs: Vec<i64> = page.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [kept.message.seq], "{name}");

        let erased = s.erase_user("bob").await.unwrap();
        assert_eq!(erased.messages, 1, "{name}");
        assert_eq!(erased.conversations, std::slice::from_ref(&conv), "{name}");
        let page = s.read("alice", &conv, 0, 50).await.unwrap();
        assert!(
            page.messages[0].recalled && page.messages[0].body.is_empty(),
            "{name}"
        );
        assert!(s.conversations("bob").await.unwrap().is_empty(), "{name}");
    }
}
