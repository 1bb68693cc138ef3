//! Live delivery survives faults that fall between a message's commit and its fan-out: a
//! recipient that stays online gets the message on the connection it has, not at its next
//! reconnect (issue 17, point 2).

use std::time::Duration;

use chat_gateway::store::NewMessage;
use chat_tests::cluster::TestCluster;
use chat_tests::redis::RedisServer;
use serde_json::{json, Value};

/// The next push of `kind` within `within`, skipping other frames; `None` when none came.
async fn push_within(
    client: &mut chat_tests::Client,
    kind: u64,
    within: Duration,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = client.quiet_for(left).await?;
        if frame["msg"]["type"] == kind {
            return Some(frame);
        }
    }
}

/// Sends `text` to `to` and waits `within` for its reply 0.
async fn send_within(
    client: &mut chat_tests::Client,
    to: &str,
    client_msg_id: &str,
    within: Duration,
) -> Value {
    client
        .send(json!({"type": 1, "requestId": client_msg_id,
            "params": {"toMessageId": to, "message": client_msg_id, "clientMsgId": client_msg_id}}))
        .await;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = client
            .quiet_for(left)
            .await
            .unwrap_or_else(|| panic!("no reply to {client_msg_id} within {within:?}"));
        if frame["requestId"] == client_msg_id && frame["type"] != 2 {
            assert_eq!(frame["type"], 0, "{frame}");
            return frame;
        }
    }
}

#[tokio::test]
async fn a_resend_whose_first_fan_out_died_reaches_the_online_recipient() {
    let c = TestCluster::start(2).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut bob = c.connect(1, "bob", "d").await;
    // The first attempt was committed, and its pod died before the fan-out: stored, never pushed.
    let first = c
        .store
        .send_direct(NewMessage {
            from: "alice".into(),
            from_name: "alice".into(),
            to: "bob".into(),
            body: "hello".into(),
            file_type: 0,
            file: None,
            client_msg_id: Some("c-1".into()),
            request_id: "r-1".into(),
        })
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(
        push_within(&mut bob, 2, Duration::from_millis(500))
            .await
            .is_none(),
        "nothing was fanned out yet"
    );
    // The client resends with the same clientMsgId on another pod and gets the first reply...
    let reply = alice.send_to("bob", "hello", Some("c-1")).await;
    assert_eq!(
        reply["params"]["messageId"],
        first.message.message_id.as_str()
    );
    // ...and bob, online all along, gets the message now on the connection he has.
    let env = push_within(&mut bob, 2, Duration::from_secs(10))
        .await
        .expect("the resend re-pushed the message bob lacked");
    assert_eq!(env["messageId"], first.message.message_id.as_str());
    bob.ack(&env).await;
    // A device that acked it gets nothing again (DESIGN §4.3).
    let again = alice.send_to("bob", "hello", Some("c-1")).await;
    assert_eq!(
        again["params"]["messageId"],
        first.message.message_id.as_str()
    );
    assert!(
        push_within(&mut bob, 2, Duration::from_millis(1500))
            .await
            .is_none(),
        "an acked message was pushed again"
    );
}

#[tokio::test]
async fn a_hung_redis_holds_remote_fan_out_back_but_not_local_delivery() {
    let redis = RedisServer::start_own();
    let c = TestCluster::start_on_redis(2, redis.url()).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut bob = c.connect(0, "bob", "d").await;
    let mut carol = c.connect(1, "carol", "d").await;
    redis.pause(true);
    // The route table does not answer: alice's messages are stored (SQLite) and answered (the
    // first after the lookup's timeout, the next at once)...
    let to_bob = send_within(&mut alice, "bob", "b-1", Duration::from_secs(10)).await;
    let to_carol = send_within(&mut alice, "carol", "c-1", Duration::from_secs(2)).await;
    assert_eq!(to_carol["type"], 0, "{to_carol}");
    // ...bob, on alice's pod, gets his at once...
    let env = push_within(&mut bob, 2, Duration::from_secs(5))
        .await
        .expect("local delivery goes on while Redis hangs");
    assert_eq!(env["messageId"], to_bob["params"]["messageId"]);
    // ...carol's waits for the route table, and arrives live once it answers again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.pause(false);
    let env = push_within(&mut carol, 2, Duration::from_secs(15))
        .await
        .expect("the held fan-out reached carol after Redis answered again");
    assert_eq!(env["messageId"], to_carol["params"]["messageId"]);
}
