//! Protocol v1.1 (DESIGN §11) on the embedded default: READ marks and the conversation list,
//! TYPING. (Across pods and on PostgreSQL: tests/cluster.rs.)

use std::time::Duration;

use chat_tests::{Client, TestGateway};
use serde_json::{json, Value};

/// SYNC's conversation list entry for `conversation`.
async fn listed(c: &mut Client, conversation: &str) -> Value {
    let r = c.request(13, json!({})).await;
    assert_eq!(r["type"], 14, "{r}");
    r["params"]["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["conversationId"] == conversation)
        .unwrap_or_else(|| panic!("{conversation} not listed: {r}"))
        .clone()
}

/// Nothing but `kind`-less frames for a while: no push of type `kind` arrives.
async fn no_push(c: &mut Client, kind: u64, wait: Duration) {
    while let Some(v) = c.quiet_for(wait).await {
        assert_ne!(v["msg"]["type"], kind, "unexpected push {v}");
    }
}

#[tokio::test]
async fn read_moves_up_only_clamps_and_tells_the_other_devices_and_the_peer() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let mut bob_web = gw.connect("bob", "web").await;
    let mut conversation = String::new();
    for i in 1..=3 {
        let r = alice.send_to("bob", &format!("m{i}"), None).await;
        conversation = r["params"]["conversationId"].as_str().unwrap().to_owned();
    }
    for c in [&mut bob, &mut bob_web] {
        for _ in 0..3 {
            let env = c.push(2).await;
            c.ack(&env).await;
        }
    }
    // Before any READ: the sender has read what it sent; the recipient has 3 unread.
    let b = listed(&mut bob, &conversation).await;
    assert_eq!(
        (b["readSeq"].as_i64(), b["unread"].as_i64()),
        (Some(0), Some(3)),
        "{b}"
    );
    assert_eq!(b["peerReadSeq"], 3, "{b}");
    let a = listed(&mut alice, &conversation).await;
    assert_eq!(
        (a["readSeq"].as_i64(), a["unread"].as_i64()),
        (Some(3), Some(0)),
        "{a}"
    );
    assert_eq!(a["peerReadSeq"], 0, "{a}");

    let r = bob
        .request(18, json!({"conversationId": conversation, "seq": 2}))
        .await;
    assert_eq!(
        (r["type"].as_u64(), r["status"].as_u64()),
        (Some(18), Some(200)),
        "{r}"
    );
    assert_eq!(
        r["params"],
        json!({"conversationId": conversation, "readSeq": 2})
    );
    for c in [&mut alice, &mut bob_web] {
        let n = c.push(19).await;
        assert_eq!(
            n["msg"]["params"],
            json!({"conversationId": conversation, "userId": "bob", "readSeq": 2})
        );
        assert_eq!(
            n["messageId"].as_str().unwrap().len(),
            32,
            "a fresh id: {n}"
        );
    }
    // A lower seq changes nothing and tells no one; a seq past the end is clamped.
    let r = bob
        .request(18, json!({"conversationId": conversation, "seq": 1}))
        .await;
    assert_eq!(r["params"]["readSeq"], 2, "{r}");
    no_push(&mut alice, 19, Duration::from_millis(300)).await;
    let r = bob
        .request(18, json!({"conversationId": conversation, "seq": 99}))
        .await;
    assert_eq!(r["params"]["readSeq"], 3, "{r}");
    assert_eq!(alice.push(19).await["msg"]["params"]["readSeq"], 3);
    no_push(&mut bob, 19, Duration::from_millis(300)).await;

    let b = listed(&mut bob, &conversation).await;
    assert_eq!(
        (b["readSeq"].as_i64(), b["unread"].as_i64()),
        (Some(3), Some(0)),
        "{b}"
    );
    let a = listed(&mut alice, &conversation).await;
    assert_eq!(
        (a["peerReadSeq"].as_i64(), a["peerAckedSeq"].as_i64()),
        (Some(3), Some(3)),
        "{a}"
    );
    // Sending advances the sender's own readSeq; the peer's unread grows.
    bob.send_to("alice", "back", None).await;
    let a = listed(&mut alice, &conversation).await;
    assert_eq!(
        (a["readSeq"].as_i64(), a["unread"].as_i64()),
        (Some(3), Some(1)),
        "{a}"
    );
    assert_eq!(listed(&mut bob, &conversation).await["readSeq"], 4);
}

#[tokio::test]
async fn read_refuses_strangers_and_bad_frames_and_the_connection_lives_on() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let r = alice.send_to("bob", "hi", None).await;
    let conversation = r["params"]["conversationId"].as_str().unwrap().to_owned();
    let mut eve = gw.connect("eve", "phone").await;
    let e = eve
        .request(18, json!({"conversationId": conversation, "seq": 1}))
        .await;
    assert_eq!(
        (e["type"].as_u64(), e["status"].as_u64()),
        (Some(500), Some(403)),
        "{e}"
    );
    for bad in [
        json!({"conversationId": conversation}),
        json!({"conversationId": conversation, "seq": -1}),
        json!({"conversationId": conversation, "seq": "2"}),
        json!({"seq": 1}),
    ] {
        let e = alice.request(18, bad.clone()).await;
        assert_eq!(
            (e["type"].as_u64(), e["status"].as_u64()),
            (Some(500), Some(400)),
            "{bad}: {e}"
        );
    }
    let r = alice
        .request(18, json!({"conversationId": conversation, "seq": 1}))
        .await;
    assert_eq!(r["params"]["readSeq"], 1, "{r}");
}

#[tokio::test]
async fn typing_reaches_the_other_participants_once_a_second_and_is_not_answered() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut alice_web = gw.connect("alice", "web").await;
    let mut bob = gw.connect("bob", "phone").await;
    let mut carol = gw.connect("carol", "phone").await;
    let gid = alice.create_group("g", &["bob", "carol"]).await;
    let conversation = format!("grp:{gid}");
    let typing = |state: &str| json!({"type": 24, "params": {"conversationId": conversation, "state": state}});
    alice.send(typing("start")).await;
    for c in [&mut bob, &mut carol] {
        let n = c.push(25).await;
        assert_eq!(
            n["msg"]["params"],
            json!({"conversationId": conversation, "userId": "alice", "state": "start"})
        );
    }
    // Within the second: dropped without a word.
    alice.send(typing("stop")).await;
    no_push(&mut bob, 25, Duration::from_millis(400)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    alice.send(typing("stop")).await;
    assert_eq!(bob.push(25).await["msg"]["params"]["state"], "stop");
    // The typer's own devices are not told, and TYPING has no reply.
    no_push(&mut alice_web, 25, Duration::from_millis(200)).await;
    while let Some(v) = alice.quiet_for(Duration::from_millis(200)).await {
        assert!(v.get("msg").is_some(), "TYPING got an answer: {v}");
    }

    // In a 1:1 conversation, the peer.
    let r = bob.send_to("carol", "psst", None).await;
    let dm = r["params"]["conversationId"].as_str().unwrap().to_owned();
    bob.send(json!({"type": 24, "params": {"conversationId": dm, "state": "start"}}))
        .await;
    let n = carol
        .recv_where("bob typing", |v| {
            v["msg"]["type"] == 25 && v["msg"]["params"]["conversationId"] == dm.as_str()
        })
        .await;
    assert_eq!(n["msg"]["params"]["userId"], "bob");
    // Not a participant: 403; malformed: 400; the connection stays.
    alice
        .send(json!({"type": 24, "requestId": "t1", "params": {"conversationId": dm, "state": "start"}}))
        .await;
    let e = alice.error().await;
    assert_eq!(
        (e["status"].as_u64(), e["requestId"].as_str()),
        (Some(403), Some("t1")),
        "{e}"
    );
    alice
        .send(json!({"type": 24, "requestId": "t2", "params": {"conversationId": dm, "state": "maybe"}}))
        .await;
    let e = alice.error().await;
    assert_eq!(
        (e["status"].as_u64(), e["requestId"].as_str()),
        (Some(400), Some("t2")),
        "{e}"
    );
    assert_eq!(
        alice.send_to("bob", "still here", None).await["status"],
        200
    );
}

#[tokio::test]
async fn recall_makes_a_tombstone_everywhere_and_tells_every_participant() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut alice_web = gw.connect("alice", "web").await;
    let mut bob = gw.connect("bob", "phone").await;
    let r0 = alice.send_to("bob", "oops, wrong chat", Some("c-1")).await;
    let (id, conversation, seq) = (
        r0["params"]["messageId"].clone(),
        r0["params"]["conversationId"].clone(),
        r0["params"]["seq"].clone(),
    );
    let env = bob.push(2).await;
    bob.ack(&env).await;
    let r = alice.request(32, json!({"messageId": id})).await;
    assert_eq!(
        (r["type"].as_u64(), r["status"].as_u64()),
        (Some(32), Some(200)),
        "{r}"
    );
    let expected = json!({"messageId": id, "conversationId": conversation, "seq": seq});
    assert_eq!(r["params"], expected);
    for c in [&mut bob, &mut alice_web] {
        let n = c.recv_where("RECALLED", |v| v["msg"]["type"] == 33).await;
        assert_eq!(n["msg"]["params"], expected);
        assert_ne!(n["messageId"], id, "a notification has its own id");
    }
    // SYNC reads the tombstone.
    let page = bob
        .request(13, json!({"conversationId": conversation, "afterSeq": 0}))
        .await;
    let m = &page["params"]["messages"][0]["msg"]["params"];
    assert_eq!(
        (m["recalled"].as_bool(), m["message"].as_str()),
        (Some(true), Some("")),
        "{page}"
    );
    // Again: 200, nobody told twice. Someone else's: 403; unknown: 404.
    let again = alice.request(32, json!({"messageId": id})).await;
    assert_eq!(again["status"], 200, "{again}");
    no_push(&mut bob, 33, Duration::from_millis(300)).await;
    let e = bob.request(32, json!({"messageId": id})).await;
    assert_eq!(
        (e["type"].as_u64(), e["status"].as_u64()),
        (Some(500), Some(403)),
        "{e}"
    );
    let e = bob
        .request(32, json!({"messageId": "0123456789abcdef0123456789abcdef"}))
        .await;
    assert_eq!(e["status"], 404, "{e}");
    let e = bob.request(32, json!({})).await;
    assert_eq!(e["status"], 400, "{e}");
}

#[tokio::test]
async fn a_recalled_group_message_reaches_a_late_member_as_a_tombstone() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let gid = alice.create_group("g", &["bob", "carol"]).await;
    let r0 = alice.send_to_group(&gid, "never mind", None).await;
    alice
        .request(32, json!({"messageId": r0["params"]["messageId"]}))
        .await;
    // carol was offline: catch-up brings the tombstone.
    let mut carol = gw.connect("carol", "phone").await;
    let env = carol.user_push(10).await;
    assert_eq!(env["messageId"], r0["params"]["messageId"]);
    assert_eq!(env["msg"]["params"]["recalled"], true, "{env}");
    assert_eq!(env["msg"]["params"]["message"], "", "{env}");
}

#[tokio::test]
async fn recall_after_the_window_is_refused() {
    let gw = TestGateway::start_with(|cfg| cfg.recall_seconds = 0).await;
    let mut alice = gw.connect("alice", "phone").await;
    let r0 = alice.send_to("bob", "for good", None).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let e = alice
        .request(32, json!({"messageId": r0["params"]["messageId"]}))
        .await;
    assert_eq!(
        (e["type"].as_u64(), e["status"].as_u64()),
        (Some(500), Some(403)),
        "{e}"
    );
    assert!(
        e["params"]["message"]
            .as_str()
            .unwrap()
            .contains("too late"),
        "{e}"
    );
}
