//! The delivery guarantees of DESIGN.md §4, one test (or more) each.

use std::collections::HashSet;
use std::time::Duration;

use chat_tests::TestGateway;
use serde_json::{json, Value};

fn seq(v: &Value) -> i64 {
    v["msg"]["params"]["seq"]
        .as_i64()
        .or_else(|| v["params"]["seq"].as_i64())
        .expect("seq")
}

#[tokio::test]
async fn seq_is_strictly_increasing_under_concurrent_senders() {
    let gw = TestGateway::start().await;
    let mut handles = Vec::new();
    for (me, peer) in [("alice", "bob"), ("bob", "alice")] {
        for dev in ["d1", "d2"] {
            let mut c = gw.connect(me, dev).await;
            handles.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..25 {
                    let r = c.send_to(peer, &format!("{me}-{dev}-{i}"), None).await;
                    seqs.push(r["params"]["seq"].as_i64().unwrap());
                }
                seqs
            }));
        }
    }
    let mut all = Vec::new();
    for h in handles {
        let seqs = h.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one sender sees increasing seqs: {seqs:?}"
        );
        all.extend(seqs);
    }
    all.sort();
    assert_eq!(
        all,
        (1..=100).collect::<Vec<_>>(),
        "seqs are exactly 1..=100: no duplicate, no gap"
    );
}

#[tokio::test]
async fn resend_with_same_client_msg_id_returns_first_reply_and_delivers_once() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let first = alice.send_to("bob", "once", Some("c-42")).await;
    let again = alice.send_to("bob", "once (resent)", Some("c-42")).await;
    assert_eq!(first["params"]["messageId"], again["params"]["messageId"]);
    assert_eq!(first["params"]["seq"], again["params"]["seq"]);
    assert_eq!(
        again["params"]["message"], "once",
        "the first reply, as stored"
    );
    let env = bob.push(2).await;
    bob.ack(&env).await;
    bob.reply(16).await;
    let next = alice.send_to("bob", "two", Some("c-43")).await;
    assert_eq!(next["params"]["seq"], 2, "the duplicate allocated no seq");
    let env2 = bob.push(2).await;
    assert_eq!(
        env2["msg"]["params"]["message"], "two",
        "nothing was delivered twice"
    );
}

#[tokio::test]
async fn unacked_message_is_resent_once_with_retry_flag() {
    let gw = TestGateway::start_with(|c| c.ack_timeout_ms = 300).await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    alice.send_to("bob", "ack me", None).await;
    let first = bob.push(2).await;
    assert_eq!(first["retry"], false);
    let retry = bob.push(2).await;
    assert_eq!(retry["retry"], true);
    assert_eq!(retry["messageId"], first["messageId"]);
    // A resent message is not resent again.
    let more = bob.quiet_for(Duration::from_millis(1000)).await;
    assert!(more.is_none(), "no third send: {more:?}");
    // Not acked: it comes again on the next connect (catch-up).
    drop(bob);
    let mut bob = gw.connect("bob", "phone").await;
    let again = bob.push(2).await;
    assert_eq!(again["messageId"], first["messageId"]);
}

#[tokio::test]
async fn acked_message_is_not_resent() {
    let gw = TestGateway::start_with(|c| c.ack_timeout_ms = 300).await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    alice.send_to("bob", "x", None).await;
    let env = bob.push(2).await;
    bob.ack(&env).await;
    bob.reply(16).await;
    assert!(bob.quiet_for(Duration::from_millis(800)).await.is_none());
}

#[tokio::test]
async fn acked_seq_advances_only_over_a_contiguous_prefix() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    for i in 1..=3 {
        alice.send_to("bob", &format!("m{i}"), None).await;
    }
    let envs = [bob.push(2).await, bob.push(2).await, bob.push(2).await];
    let acked = |list: &Value| {
        list["params"]["conversations"][0]["ackedSeq"]
            .as_i64()
            .unwrap()
    };
    // Ack 3 and 1: ackedSeq is 1 (2 is missing).
    for i in [2, 0] {
        bob.ack(&envs[i]).await;
        bob.reply(16).await;
    }
    bob.send(json!({"type": 13, "requestId": "l1"})).await;
    assert_eq!(
        acked(&bob.recv_where("list", |v| v["requestId"] == "l1").await),
        1
    );
    bob.ack(&envs[1]).await;
    bob.reply(16).await;
    bob.send(json!({"type": 13, "requestId": "l2"})).await;
    assert_eq!(
        acked(&bob.recv_where("list", |v| v["requestId"] == "l2").await),
        3
    );
}

#[tokio::test]
async fn offline_messages_are_pushed_after_welcome_oldest_first() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    for i in 1..=3 {
        alice.send_to("bob", &format!("m{i}"), None).await;
    }
    let mut bob = gw.connect("bob", "phone").await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let env = bob.push(2).await;
        got.push(env["msg"]["params"]["message"].as_str().unwrap().to_owned());
        bob.ack(&env).await;
    }
    assert_eq!(got, ["m1", "m2", "m3"]);
    for _ in 0..3 {
        bob.reply(16).await;
    }
    drop(bob);
    let mut bob = gw.connect("bob", "phone").await;
    assert!(
        bob.quiet_for(Duration::from_millis(500)).await.is_none(),
        "acked messages are not pushed again"
    );
}

#[tokio::test]
async fn catch_up_larger_than_the_window_arrives_complete_and_in_order() {
    let gw = TestGateway::start_with(|c| c.ack_window = 4).await;
    let mut alice = gw.connect("alice", "phone").await;
    for i in 1..=30 {
        alice.send_to("bob", &format!("m{i}"), None).await;
    }
    let mut bob = gw.connect("bob", "phone").await;
    let mut seqs = Vec::new();
    while seqs.len() < 30 {
        let env = bob.push(2).await;
        seqs.push(seq(&env));
        bob.ack(&env).await;
    }
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
}

#[tokio::test]
async fn live_messages_beyond_the_window_wait_for_acks() {
    let gw = TestGateway::start_with(|c| c.ack_window = 2).await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    for i in 1..=5 {
        alice.send_to("bob", &format!("m{i}"), None).await;
    }
    let a = bob.push(2).await;
    let b = bob.push(2).await;
    assert!(
        bob.quiet_for(Duration::from_millis(300)).await.is_none(),
        "window of 2 is full"
    );
    bob.ack(&a).await;
    bob.ack(&b).await;
    let mut seqs = vec![seq(&a), seq(&b)];
    while seqs.len() < 5 {
        let env = bob.push(2).await;
        seqs.push(seq(&env));
        bob.ack(&env).await;
    }
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn sender_other_devices_receive_copies_but_not_the_sending_device() {
    let gw = TestGateway::start().await;
    let mut phone = gw.connect("alice", "phone").await;
    let mut laptop = gw.connect("alice", "laptop").await;
    let mut bob = gw.connect("bob", "phone").await;
    let r = phone.send_to("bob", "from my phone", None).await;
    let copy = laptop.push(2).await;
    assert_eq!(copy["messageId"], r["params"]["messageId"]);
    assert_eq!(copy["msg"]["params"]["fromUser"]["openid"], "alice");
    assert_eq!(copy["to"], json!(["alice"]));
    bob.push(2).await;
    let stray = phone.quiet_for(Duration::from_millis(300)).await;
    assert!(
        stray.is_none(),
        "the sending device gets reply 0 only: {stray:?}"
    );
}

#[tokio::test]
async fn every_online_device_of_the_recipient_gets_it_and_delivered_comes_once() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob1 = gw.connect("bob", "phone").await;
    let mut bob2 = gw.connect("bob", "web").await;
    let r = alice.send_to("bob", "to both", None).await;
    let e1 = bob1.push(2).await;
    let e2 = bob2.push(2).await;
    assert_eq!(e1["messageId"], e2["messageId"]);
    assert_ne!(e1["sessionId"], e2["sessionId"]);
    bob1.ack(&e1).await;
    bob2.ack(&e2).await;
    bob1.reply(16).await;
    bob2.reply(16).await;
    let d = alice.push(17).await;
    assert_eq!(d["msg"]["params"]["messageId"], r["params"]["messageId"]);
    let again = alice.quiet_for(Duration::from_millis(500)).await;
    assert!(again.is_none(), "17 once per message: {again:?}");
}

#[tokio::test]
async fn group_messages_reach_every_member_device_including_sender_others() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut alice_web = gw.connect("alice", "web").await;
    let mut bob = gw.connect("bob", "phone").await;
    let mut carol = gw.connect("carol", "phone").await;
    let gid = alice.create_group("g", &["bob", "carol"]).await;
    let r0 = alice.send_to_group(&gid, "all", Some("g-1")).await;
    let mut ids = HashSet::new();
    for c in [&mut alice_web, &mut bob, &mut carol] {
        let env = c.user_push(10).await;
        assert_eq!(env["msg"]["params"]["groupId"], gid.as_str());
        ids.insert(env["messageId"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one stored message, one id");
    assert!(ids.contains(r0["params"]["messageId"].as_str().unwrap()));
}

#[tokio::test]
async fn ack_by_any_recipient_device_counts_for_the_user() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob_phone = gw.connect("bob", "phone").await;
    alice.send_to("bob", "m", None).await;
    let env = bob_phone.push(2).await;
    bob_phone.ack(&env).await;
    bob_phone.reply(16).await;
    // bob's other device, connecting later, is not pushed what bob already acked.
    let mut bob_web = gw.connect("bob", "web").await;
    assert!(bob_web
        .quiet_for(Duration::from_millis(400))
        .await
        .is_none());
}

/// A sender that disconnects right after sending (an app sent to the background) does not wait
/// for reply 0; the message is stored all the same, and its recipients' connected devices must
/// get it live, not at their next catch-up.
#[tokio::test]
async fn a_send_whose_sender_left_before_reply_0_still_reaches_online_recipients() {
    let gw = TestGateway::start().await;
    let mut bob = gw.connect("bob", "phone").await;
    let mut alice = gw.connect("alice", "phone").await;
    alice
        .send(json!({"type": 1, "requestId": "r-last",
            "params": {"toMessageId": "bob", "message": "bye", "fileType": 0, "clientMsgId": "last"}}))
        .await;
    drop(alice);
    let env = bob.push(2).await;
    assert_eq!(env["msg"]["params"]["message"], "bye");
}
