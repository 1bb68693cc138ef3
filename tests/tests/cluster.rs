//! Several pods act as one server: real Redis route table, real Pulsar client against the
//! Pulsar-protocol test broker, real WebSocket clients on different pods.

use std::collections::HashMap;
use std::time::Duration;

use chat_tests::cluster::TestCluster;
use chat_tests::fixtures::{self, post_json, service_token};
use chat_tests::Closed;
use serde_json::json;

#[tokio::test]
async fn one_to_one_across_pods_with_receipts() {
    let c = TestCluster::start(3).await;
    let mut alice = c.connect(0, "alice", "phone").await;
    let mut alice_web = c.connect(2, "alice", "web").await;
    let mut bob = c.connect(1, "bob", "phone").await;
    let r0 = alice.send_to("bob", "across pods", Some("x-1")).await;
    let env = bob.push(2).await;
    assert_eq!(env["messageId"], r0["params"]["messageId"]);
    assert_eq!(env["msg"]["params"]["fromUser"]["openid"], "alice");
    assert_eq!(
        alice_web.push(2).await["messageId"],
        r0["params"]["messageId"],
        "sender's other device on a third pod"
    );
    bob.ack(&env).await;
    assert_eq!(bob.reply(16).await["type"], 16);
    let d = alice.push(17).await;
    assert_eq!(d["msg"]["params"]["messageId"], r0["params"]["messageId"]);
    assert_eq!(d["msg"]["params"]["by"], "bob");
}

#[tokio::test]
async fn group_message_reaches_members_on_every_pod() {
    let c = TestCluster::start(3).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut bob = c.connect(1, "bob", "d").await;
    let mut carol = c.connect(2, "carol", "d").await;
    let mut dave = c.connect(2, "dave", "d").await;
    let gid = alice.create_group("g", &["bob", "carol", "dave"]).await;
    let r0 = alice.send_to_group(&gid, "hi all", None).await;
    for m in [&mut bob, &mut carol, &mut dave] {
        m.group_event("created").await;
        let env = m.user_push(10).await;
        assert_eq!(env["messageId"], r0["params"]["messageId"]);
    }
    // One event per target pod, never one per member: pod-2 got one event for carol and dave
    // per stored message (the group's creation and alice's message).
    let topic = format!("persistent://public/chat/{}-pod-pod-2", c.prefix);
    let stats = c.broker.topic_stats(&topic).expect("pod-2's topic");
    assert_eq!(stats.messages, 2, "{stats:?}");
}

#[tokio::test]
async fn offline_catch_up_on_another_pod() {
    let c = TestCluster::start(2).await;
    let mut alice = c.connect(0, "alice", "d").await;
    for i in 0..5 {
        alice.send_to("bob", &format!("m{i}"), None).await;
    }
    let mut bob = c.connect(1, "bob", "d").await;
    for i in 0..5 {
        let env = bob.push(2).await;
        assert_eq!(env["msg"]["params"]["message"], format!("m{i}"));
        bob.ack(&env).await;
    }
}

#[tokio::test]
async fn duplicate_login_on_another_pod_kicks_the_old_connection() {
    let c = TestCluster::start(2).await;
    let mut old = c.connect(0, "alice", "phone").await;
    let mut new = c.connect(1, "alice", "phone").await;
    assert_eq!(old.reply(23).await["params"]["reason"], "replaced");
    assert_eq!(old.closed().await, Closed::Code(4001));
    // The old pod's late cleanup does not remove the new route.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut bob = c.connect(0, "bob", "d").await;
    fixtures::exchange(&mut bob, &mut new, "alice", "to the new one").await;
}

#[tokio::test]
async fn http_push_kick_and_not_exist_are_cluster_wide() {
    let c = TestCluster::start(3).await;
    let mut bob0 = c.connect(0, "bob", "a").await;
    let mut bob1 = c.connect(1, "bob", "b").await;
    let mut carol = c.connect(2, "carol", "c").await;
    let push = json!({"to": ["bob", "nobody"], "msg": {"k": 1}});
    let (_, answer) = post_json(
        &c.pod(2).http("/message/send"),
        Some(&service_token()),
        push,
    )
    .await;
    assert_eq!(answer["content"]["notExist"], json!(["nobody"]));
    for b in [&mut bob0, &mut bob1] {
        assert_eq!(
            b.recv_where("push", |v| v["trigger"] == 2).await["msg"],
            json!({"k": 1})
        );
    }
    // sendToAll reaches every pod.
    let to_all = json!({"msg": {"all": 1}, "sendToAll": true});
    post_json(
        &c.pod(0).http("/message/send"),
        Some(&service_token()),
        to_all,
    )
    .await;
    for who in [&mut bob0, &mut bob1, &mut carol] {
        assert_eq!(
            who.recv_where("broadcast", |v| v["msg"] == json!({"all": 1}))
                .await["trigger"],
            2
        );
    }
    // Kick from pod 2 closes bob on pods 0 and 1.
    let kick = c.pod(2).http("/api/users/bob/kick");
    let (_, answer) = post_json(&kick, Some(&service_token()), json!({})).await;
    assert_eq!(answer["content"]["kicked"], 2);
    for b in [&mut bob0, &mut bob1] {
        assert_eq!(b.reply(23).await["params"]["reason"], "logout");
        assert_eq!(b.closed().await, Closed::Code(4001));
    }
}

#[tokio::test]
async fn broker_connections_dropped_mid_traffic_lose_nothing() {
    let c = TestCluster::start(2).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut bob = c.connect(1, "bob", "d").await;
    let mut sent = Vec::new();
    for i in 0..200 {
        let r = alice
            .send_to("bob", &format!("n{i}"), Some(&format!("c{i}")))
            .await;
        sent.push(r["params"]["messageId"].as_str().unwrap().to_owned());
        if i == 60 || i == 140 {
            c.broker.drop_all_connections();
        }
    }
    // Everything that got reply 0 reaches bob: live through the rebuilt consumer, or on reconnect.
    let mut got: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < sent.len() && tokio::time::Instant::now() < deadline {
        match bob.quiet_for(Duration::from_millis(500)).await {
            Some(env) if env["msg"]["type"] == 2 => {
                bob.ack(&env).await;
                *got.entry(env["messageId"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
            Some(_) => {}
            None => {
                // Nothing live any more: reconnect (to the other pod) and catch up.
                bob = c.connect(0, "bob", "d").await;
            }
        }
    }
    let missing: Vec<&String> = sent.iter().filter(|id| !got.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} missing",
        missing.len(),
        sent.len()
    );
    // Both pods' consumers came back: ready again.
    for i in 0..2 {
        chat_tests::cluster::wait_ready(c.pod(i)).await;
    }
}

#[tokio::test]
async fn redis_losing_every_key_mid_traffic_loses_no_message() {
    let c = TestCluster::start(2).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut bob = c.connect(1, "bob", "d").await;
    let mut sent = Vec::new();
    for i in 0..60 {
        if i == 20 {
            // Redis restarted empty: every route and the pod registry are gone.
            chat_tests::redis::delete_prefix(&c.prefix).await;
            // Heartbeats re-create the routes.
            for who in [&mut alice, &mut bob] {
                who.send(json!({"type": 3, "requestId": "hb"})).await;
                who.recv_where("heartbeat ack", |v| v["requestId"] == "hb")
                    .await;
            }
        }
        let r = alice.send_to("bob", &format!("r{i}"), None).await;
        sent.push(r["params"]["messageId"].as_str().unwrap().to_owned());
    }
    // Live delivery resumes once the heartbeats re-created the routes; whatever was sent in the
    // gap is stored and arrives when bob reconnects (catch-up), as a client would after a gap.
    let mut got = std::collections::HashSet::new();
    let mut reconnected = false;
    while got.len() < sent.len() {
        match bob.quiet_for(Duration::from_millis(800)).await {
            Some(env) if env["msg"]["type"] == 2 => {
                bob.ack(&env).await;
                got.insert(env["messageId"].as_str().unwrap().to_owned());
            }
            Some(_) => {}
            None => {
                assert!(
                    !reconnected,
                    "{} of {} still missing after catch-up",
                    sent.len() - got.len(),
                    sent.len()
                );
                reconnected = true;
                bob = c.connect(0, "bob", "d").await;
            }
        }
    }
    assert!(sent.iter().all(|id| got.contains(id)));
}

#[tokio::test]
async fn a_pod_the_route_table_lost_registers_again_and_delivers_the_gap_live() {
    use redis::AsyncCommands;
    let c = TestCluster::start(2).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut bob = c.connect(1, "bob", "d").await;
    // Redis restarted empty: every route and the pod registry are gone. Nobody heartbeats.
    chat_tests::redis::delete_prefix(&c.prefix).await;
    let mut sent = Vec::new();
    for i in 0..10 {
        let reply = alice.send_to("bob", &format!("gap {i}"), None).await;
        sent.push(reply["params"]["messageId"].as_str().unwrap().to_owned());
    }
    // Within a pod heartbeat (5 s) each pod finds itself missing, registers its connections
    // again and re-reads their backlogs: bob gets the gap on the connection he has.
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while got.len() < sent.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(env) = bob.quiet_for(left).await else {
            panic!("{} of {} gap messages arrived live", got.len(), sent.len());
        };
        if env["msg"]["type"] == 2 {
            bob.ack(&env).await;
            got.push(env["messageId"].as_str().unwrap().to_owned());
        }
    }
    got.sort();
    got.dedup();
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(got, expected);
    let mut r = chat_tests::redis::client().await;
    let route: String = r.get(format!("{}:route:bob:d", c.prefix)).await.unwrap();
    assert!(route.starts_with("pod-1|"), "{route}");
    // And live delivery goes on: at once on the pod itself, across pods once the rebuilt table
    // has settled (every pod had a heartbeat to register again), from the retry queue.
    let reply = alice.send_to("bob", "after", None).await;
    let settled = chat_gateway::routes::redis::TABLE_SETTLE + Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + settled;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let env = bob
            .quiet_for(left)
            .await
            .expect("the message sent after the gap arrived live");
        if env["msg"]["type"] == 2 && !sent.iter().any(|id| env["messageId"] == id.as_str()) {
            assert_eq!(env["messageId"], reply["params"]["messageId"]);
            break;
        }
    }
}

#[tokio::test]
async fn three_pods_on_postgresql_each_with_its_own_store() {
    let c = TestCluster::start_postgres(3).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut bob = c.connect(1, "bob", "d").await;
    let mut carol = c.connect(2, "carol", "d").await;
    // Senders on different pods into one conversation: seqs unique and gapless.
    let mut all = Vec::new();
    for i in 0..20 {
        all.push(
            alice.send_to("bob", &format!("a{i}"), None).await["params"]["seq"]
                .as_i64()
                .unwrap(),
        );
        all.push(
            bob.send_to("alice", &format!("b{i}"), None).await["params"]["seq"]
                .as_i64()
                .unwrap(),
        );
    }
    all.sort();
    assert_eq!(all, (1..=40).collect::<Vec<_>>());
    // A group across the three pods.
    let gid = alice.create_group("g", &["bob", "carol"]).await;
    let r0 = carol.send_to_group(&gid, "from pod 2", None).await;
    assert_eq!(r0["params"]["seq"], 2, "after the group's creation (seq 1)");
    assert_eq!(
        alice.user_push(10).await["messageId"],
        r0["params"]["messageId"]
    );
    // Receipts across pods and stores: bob acks on pod 1, alice on pod 0 gets 17.
    let env = bob.push(2).await;
    bob.ack(&env).await;
    let d = alice.push(17).await;
    assert_eq!(d["msg"]["params"]["messageId"], env["messageId"]);
}

#[tokio::test]
async fn read_and_typing_notices_cross_pods_on_postgresql() {
    let c = TestCluster::start_postgres(2).await;
    let mut alice = c.connect(0, "alice", "phone").await;
    let mut bob = c.connect(1, "bob", "phone").await;
    let mut bob_web = c.connect(0, "bob", "web").await;
    let r = alice.send_to("bob", "one", None).await;
    alice.send_to("bob", "two", None).await;
    let conversation = r["params"]["conversationId"].as_str().unwrap().to_owned();
    let r = bob
        .request(18, json!({"conversationId": conversation, "seq": 2}))
        .await;
    assert_eq!(r["params"]["readSeq"], 2, "{r}");
    for d in [&mut alice, &mut bob_web] {
        let n = d.push(19).await;
        assert_eq!(n["msg"]["params"]["userId"], "bob");
        assert_eq!(n["msg"]["params"]["readSeq"], 2);
    }
    let list = alice.request(13, json!({})).await;
    let entry = &list["params"]["conversations"][0];
    assert_eq!(entry["peerReadSeq"], 2, "{list}");
    assert_eq!(
        (entry["readSeq"].as_i64(), entry["unread"].as_i64()),
        (Some(2), Some(0))
    );
    alice
        .send(json!({"type": 24, "params": {"conversationId": conversation, "state": "start"}}))
        .await;
    for d in [&mut bob, &mut bob_web] {
        assert_eq!(d.push(25).await["msg"]["params"]["state"], "start");
    }
}

#[tokio::test]
async fn a_recall_replaces_the_cached_message_and_reaches_every_pod() {
    let c = TestCluster::start_postgres(2).await;
    let mut alice = c.connect(0, "alice", "phone").await;
    let mut bob = c.connect(1, "bob", "phone").await;
    let r0 = alice.send_to("bob", "secret", None).await;
    let conversation = r0["params"]["conversationId"].clone();
    bob.push(2).await;
    // A read from the recent cache first (the send's cache write may still be queued: wait
    // until a page shows it).
    let sync = json!({"conversationId": conversation, "afterSeq": 0});
    let page = bob.request(13, sync.clone()).await;
    assert_eq!(
        page["params"]["messages"][0]["msg"]["params"]["message"],
        "secret"
    );
    let r = alice
        .request(32, json!({"messageId": r0["params"]["messageId"]}))
        .await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(bob.push(33).await["msg"]["params"]["seq"], 1);
    for pod_client in [&mut alice, &mut bob] {
        let page = pod_client.request(13, sync.clone()).await;
        let m = &page["params"]["messages"][0]["msg"]["params"];
        assert_eq!(
            (m["recalled"].as_bool(), m["message"].as_str()),
            (Some(true), Some("")),
            "{page}"
        );
    }
}

/// Presence (26/27) across three pods: a watcher on pod-0, the watched user's devices on pod-1
/// and pod-2. Only the first device in and the last device out are told, wherever they are.
#[tokio::test]
async fn presence_changes_reach_watchers_on_other_pods() {
    let c = TestCluster::start(3).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut bob = c.connect(1, "bob", "phone").await;
    alice.send_to("bob", "hi", None).await;
    let env = bob.push(2).await;
    bob.ack(&env).await;
    let r = alice.request(26, json!({"users": ["bob"]})).await;
    assert_eq!(
        r["params"]["presence"],
        json!([{"userId": "bob", "online": true, "lastSeen": null}]),
        "{r}"
    );
    let web = c.connect(2, "bob", "web").await;
    drop(bob);
    while let Some(v) = alice.quiet_for(Duration::from_millis(500)).await {
        assert_ne!(v["msg"]["type"], 27, "bob still has a device: {v}");
    }
    drop(web);
    let off = alice.push(27).await["msg"]["params"].clone();
    assert_eq!(
        (off["userId"].as_str(), off["online"].as_bool()),
        (Some("bob"), Some(false)),
        "{off}"
    );
    let seen = off["lastSeen"].as_i64().expect("lastSeen");
    // lastSeen is kept in Redis: any pod reports it.
    let mut carol = c.connect(2, "carol", "d").await;
    carol.send_to("bob", "hello", None).await;
    let r = carol.request(26, json!({"users": ["bob"]})).await;
    assert_eq!(
        r["params"]["presence"],
        json!([{"userId": "bob", "online": false, "lastSeen": seen}]),
        "{r}"
    );
    let _bob = c.connect(2, "bob", "tablet").await;
    for w in [&mut alice, &mut carol] {
        let on = w.push(27).await["msg"]["params"].clone();
        assert_eq!(
            on,
            json!({"userId": "bob", "online": true, "lastSeen": null})
        );
    }
}

/// BLOCK on one pod refuses the blocked user's sends stored by another pod's writer (within
/// the writers' 2 s trust of what they read of a user), and shows in SYNC's list everywhere.
#[tokio::test]
async fn a_block_applies_across_pods_on_postgresql() {
    let c = TestCluster::start_postgres(2).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut mallory = c.connect(1, "mallory", "d").await;
    // Mallory's pod has read alice's name (and that she blocks no one) before the block.
    mallory.send_to("alice", "first", None).await;
    alice.push(2).await;
    let r = alice.request(34, json!({"userId": "mallory"})).await;
    assert_eq!(r["type"], 34, "{r}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = mallory
            .request(1, json!({"toMessageId": "alice", "message": "again"}))
            .await;
        if r["type"] == 500 {
            assert_eq!(r["status"], 403, "{r}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still stored 5 s after the block: {r}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut alice_web = c.connect(1, "alice", "web").await;
    let list = alice_web.request(13, json!({})).await;
    assert_eq!(list["params"]["blocked"], json!(["mallory"]), "{list}");
    alice_web.request(35, json!({"userId": "mallory"})).await;
    let r = mallory
        .request(1, json!({"toMessageId": "alice", "message": "unblocked"}))
        .await;
    assert_eq!(r["type"], 0, "{r}");
}

#[tokio::test]
async fn group_administration_across_pods_on_postgresql() {
    let c = TestCluster::start_postgres(2).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut bob = c.connect(1, "bob", "d").await;
    let mut carol = c.connect(1, "carol", "d").await;
    let gid = alice.create_group("team", &["bob", "carol"]).await;
    let r = alice
        .request(
            31,
            json!({"groupId": gid, "userId": "bob", "role": "admin"}),
        )
        .await;
    assert_eq!(r["params"]["roles"]["bob"], "admin", "{r}");
    let r = bob
        .request(29, json!({"groupId": gid, "name": "core"}))
        .await;
    assert_eq!(r["params"]["name"], "core", "{r}");
    let r = bob
        .request(28, json!({"groupId": gid, "members": ["carol"]}))
        .await;
    assert_eq!(r["params"]["members"], json!(["alice", "bob"]), "{r}");
    let removed = carol.group_event("removed").await;
    assert_eq!(removed["msg"]["params"]["system"]["actor"], "bob");
    let renamed = alice.group_event("renamed").await;
    assert_eq!(renamed["msg"]["params"]["system"]["name"], "core");
    let r = alice
        .request(
            31,
            json!({"groupId": gid, "userId": "bob", "role": "owner"}),
        )
        .await;
    assert_eq!(
        r["params"]["roles"],
        json!({"alice": "admin", "bob": "owner"}),
        "{r}"
    );
    let r = bob.request(30, json!({"groupId": gid})).await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(
        alice.group_event("dissolved").await["msg"]["params"]["seq"],
        6
    );
    let e = alice
        .request(9, json!({"toMessageId": gid, "message": "gone?"}))
        .await;
    assert_eq!(e["status"], 404, "{e}");
}
