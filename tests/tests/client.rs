//! chat-client against real gateways: the typed client's sends, acks, de-duplication, groups,
//! SYNC and RENEW on one gateway, and its DRAIN handover between two pods — the new connection
//! opened before the old one closes, nothing lost, nothing passed on twice.

use std::collections::BTreeSet;
use std::time::Duration;

use chat_client::{Client, Event, Options, RoundRobin};
use chat_protocol::envelope::PushMsg;
use chat_protocol::server::SyncReply;
use chat_tests::cluster::TestCluster;
use chat_tests::fixtures::{post_json, user_token};
use chat_tests::TestGateway;
use serde_json::json;

async fn client(urls: Vec<String>, user: &str, device: &str) -> Client {
    let options = Options::new(user_token(user)).device(device);
    Client::connect(RoundRobin::new(urls), options)
        .await
        .expect("connect")
}

/// The next message event, skipping notices and connection events.
async fn next_message(c: &mut Client) -> Box<chat_protocol::Envelope> {
    let wait = async {
        loop {
            if let Event::Message(m) = c.next_event().await.expect("event") {
                return m;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .expect("a message within 5 s")
}

fn text(m: &chat_protocol::Envelope) -> &str {
    match &m.msg {
        PushMsg::Deliver(d) => &d.message,
        PushMsg::DeliverGroup(g) => &g.message,
        other => panic!("not a message: {other:?}"),
    }
}

#[tokio::test]
async fn sends_acks_groups_sync_and_renew_on_one_gateway() {
    let gw = TestGateway::start().await;
    let mut alice = client(vec![gw.ws_url()], "alice", "phone").await;
    let mut bob = client(vec![gw.ws_url()], "bob", "phone").await;
    assert_eq!(alice.welcome().user_id, "alice");

    let r0 = alice.send_to("bob", "hello", "k-1").await.unwrap();
    assert_eq!((r0.seq, r0.client_msg_id.as_deref()), (1, Some("k-1")));
    let again = alice.send_to("bob", "hello", "k-1").await.unwrap();
    assert_eq!(again, r0, "a resend gets the first reply 0");
    let m = next_message(&mut bob).await;
    assert_eq!(
        (m.message_id.as_str(), text(&m)),
        (r0.message_id.as_str(), "hello")
    );
    // bob's client acked it: alice hears DELIVERED.
    let delivered = loop {
        if let Event::Delivered(d) = alice.next_event().await.unwrap() {
            break d;
        }
    };
    assert_eq!(
        (delivered.message_id.as_str(), delivered.by.as_str()),
        (r0.message_id.as_str(), "bob")
    );

    let group = alice.create_group("team", &["bob"]).await.unwrap();
    let g0 = alice
        .send_to_group(group.group_id.as_str(), "hi team", "g-1")
        .await
        .unwrap();
    // The group's creation is its first message (v1.1), then alice's.
    let created = next_message(&mut bob).await;
    assert_eq!(text(&created), "");
    let m = next_message(&mut bob).await;
    assert_eq!(text(&m), "hi team");
    let list = bob.conversations().await.unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let page = bob.sync(g0.conversation_id.as_str(), 0, 10).await.unwrap();
    let SyncReply::Page {
        messages, has_more, ..
    } = page
    else {
        panic!("a page")
    };
    assert_eq!((messages.len(), has_more), (2, false));
    assert_eq!(
        bob.leave_group(group.group_id.as_str()).await.unwrap(),
        group.group_id
    );
    let err = bob
        .send_to_group(group.group_id.as_str(), "still here?", "g-2")
        .await
        .unwrap_err();
    assert!(matches!(err, chat_client::Error::Server(e) if e.status == 403));
    assert_eq!(alice.renew().await.unwrap().timelife, 1800);
}

/// Pod 0 drains while bob sends to alice: alice's client opens its new connection (pod 1)
/// after `reconnectAfterMs` and only then closes the old one; every message reaches it once.
#[tokio::test]
async fn drain_hands_over_to_another_pod_without_a_gap_or_a_duplicate() {
    let c = TestCluster::start(2).await;
    let (pod0, pod1) = (c.pod(0).ws_url(), c.pod(1).ws_url());
    let mut alice = client(vec![pod0, pod1.clone()], "alice", "phone").await;
    let mut bob = client(vec![pod1], "bob", "phone").await;
    let (status, _) = post_json(
        &c.pod(0).admin("/admin/drain"),
        None,
        json!({"deadlineSeconds": 10}),
    )
    .await;
    assert_eq!(status, 202);

    let mut sent = BTreeSet::new();
    let mut got = BTreeSet::new();
    let mut events = Vec::new();
    for i in 0..40 {
        let r = bob
            .send_to("alice", &format!("m{i}"), &format!("k-{i}"))
            .await
            .unwrap();
        sent.insert(r.message_id);
        // alice reads what has come so far, and moves pods meanwhile.
        while let Ok(Ok(e)) =
            tokio::time::timeout(Duration::from_millis(20), alice.next_event()).await
        {
            if let Event::Message(m) = &e {
                assert!(
                    got.insert(m.message_id.clone()),
                    "{} passed on twice",
                    m.message_id
                );
            }
            events.push(e);
        }
    }
    while got.len() < sent.len() {
        let m = next_message(&mut alice).await;
        assert!(
            got.insert(m.message_id.clone()),
            "{} passed on twice",
            m.message_id
        );
    }
    assert_eq!(got, sent);
    assert_eq!(alice.servers(), ["pod-0", "pod-1"], "{events:?}");
    assert!(
        events.iter().any(|e| matches!(e, Event::Drain(_))),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Disconnected(_) | Event::Kicked(_))),
        "the handover loses no connection: {events:?}"
    );
}

/// An app that races the client against its own short timers (polling `next_event` with a
/// timeout) still gets reconnected: a connect runs across calls, not inside one. Here the app
/// predates DRAIN, so it stays on pod 0 until the drain deadline closes it with 1012.
#[tokio::test]
async fn a_caller_racing_the_client_against_short_timers_still_reconnects() {
    let c = TestCluster::start(2).await;
    let (pod0, pod1) = (c.pod(0).ws_url(), c.pod(1).ws_url());
    let options = Options {
        follow_drain: false,
        ..Options::new(user_token("alice")).device("phone")
    };
    let mut alice = Client::connect(RoundRobin::new(vec![pod0, pod1.clone()]), options)
        .await
        .expect("connect");
    let mut bob = client(vec![pod1], "bob", "phone").await;
    let drain = json!({"deadlineSeconds": 1});
    post_json(&c.pod(0).admin("/admin/drain"), None, drain).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut events = Vec::new();
    while alice.servers().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reconnected: {events:?}"
        );
        if let Ok(event) =
            tokio::time::timeout(Duration::from_micros(200), alice.next_event()).await
        {
            events.push(event.expect("event"));
        }
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Disconnected(r) if r == "close 1012")),
        "{events:?}"
    );
    let r = bob.send_to("alice", "after the move", "k-1").await.unwrap();
    let m = next_message(&mut alice).await;
    assert_eq!(m.message_id, r.message_id);
}
