//! Connection lifecycle: heartbeat timeout, timelife, duplicate login, drain.

use std::time::Duration;

use chat_gateway::config::DuplicateLogin;
use chat_tests::fixtures::{self, get_json, post_json, user_token};
use chat_tests::Closed;
use chat_tests::TestGateway;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// `POST /admin/drain` with a deadline of `seconds`: the status and the answer.
async fn drain(gw: &TestGateway, seconds: u64) -> (u16, Value) {
    let body = json!({"deadlineSeconds": seconds});
    post_json(&gw.admin_url("/admin/drain"), None, body).await
}

#[tokio::test]
async fn silence_for_three_heartbeats_closes_4000() {
    let gw = TestGateway::start_with(|c| c.heartbeat_seconds = 1).await;
    let mut quiet = gw.connect("alice", "phone").await;
    let mut chatty = gw.connect("bob", "phone").await;
    let started = tokio::time::Instant::now();
    let beat = tokio::spawn(async move {
        for _ in 0..5 {
            chatty.send(json!({"type": 3})).await;
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
        chatty
    });
    assert_eq!(quiet.closed().await, Closed::Code(4000));
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "not before 3 intervals: {:?}",
        started.elapsed()
    );
    let mut chatty = beat.await.unwrap();
    chatty.send(json!({"type": 3, "requestId": "still"})).await;
    assert_eq!(
        chatty.recv_where("hb", |v| v["requestId"] == "still").await["type"],
        4,
        "heartbeats keep it open"
    );
}

#[tokio::test]
async fn websocket_pings_are_answered_and_count_as_activity() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("alice", "phone").await;
    c.ws.send(Message::Ping(b"hi".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Pong(p))) = c.ws.next().await {
                return p;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&pong[..], b"hi");
}

#[tokio::test]
async fn timelife_without_renew_closes_4002_and_renew_extends_it() {
    let gw = TestGateway::start_with(|c| c.timelife_seconds = 1).await;
    let mut lazy = gw.connect("alice", "phone").await;
    let mut renewing = gw.connect("bob", "phone").await;
    assert_eq!(lazy.welcome["params"]["timelife"], 1);
    let keep = tokio::spawn(async move {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(600)).await;
            renewing.send(json!({"type": 21})).await;
            let r = renewing.reply(21).await;
            assert_eq!(r["params"]["timelife"], 1);
        }
        renewing
    });
    assert_eq!(lazy.closed().await, Closed::Code(4002));
    let mut renewing = keep.await.unwrap();
    renewing
        .send(json!({"type": 3, "requestId": "alive"}))
        .await;
    assert_eq!(
        renewing
            .recv_where("hb", |v| v["requestId"] == "alive")
            .await["type"],
        4
    );
}

#[tokio::test]
async fn duplicate_login_replaces_the_old_connection() {
    let gw = TestGateway::start().await;
    let mut old = gw.connect("alice", "phone").await;
    let mut new = gw.connect("alice", "phone").await;
    assert_eq!(old.reply(23).await["params"]["reason"], "replaced");
    assert_eq!(old.closed().await, Closed::Code(4001));
    // The old socket's cleanup must not remove the new connection's route.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut bob = gw.connect("bob", "phone").await;
    fixtures::exchange(&mut bob, &mut new, "alice", "to the new one").await;
}

#[tokio::test]
async fn duplicate_login_can_be_rejected_with_409() {
    let gw = TestGateway::start_with(|c| c.duplicate_login = DuplicateLogin::Reject).await;
    let _first = gw.connect("alice", "phone").await;
    let err = tokio_tungstenite::connect_async(format!(
        "{}?token={}&device=phone",
        gw.ws_url(),
        user_token("alice")
    ))
    .await
    .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status().as_u16(), 409)
        }
        other => panic!("expected 409, got {other}"),
    }
    // Another device of the same user is fine.
    gw.connect("alice", "laptop").await;
}

#[tokio::test]
async fn admin_drain_tells_clients_goes_unready_and_closes_1012_at_the_deadline() {
    let gw = TestGateway::start().await;
    let mut clients = Vec::new();
    for i in 0..4 {
        clients.push(gw.connect(&format!("u{i}"), "d").await);
    }
    let (status, body) = drain(&gw, 2).await;
    assert_eq!(status, 202);
    assert_eq!(
        (body["draining"].as_bool(), body["connections"].as_u64()),
        (Some(true), Some(4))
    );

    let mut delays = Vec::new();
    for c in clients.iter_mut() {
        let d = c.reply(22).await;
        assert_eq!(d["params"]["reason"], "drain");
        assert!(d["params"]["timelife"].as_u64().unwrap() <= 2);
        delays.push(d["params"]["reconnectAfterMs"].as_u64().unwrap());
    }
    delays.sort();
    assert!(
        delays.iter().all(|d| *d <= 1000),
        "spread over the first half of the window: {delays:?}"
    );
    assert!(
        delays.windows(2).all(|w| w[0] < w[1]),
        "spread, not all at once: {delays:?}"
    );

    assert_eq!(
        reqwest::get(gw.admin_url("/readyz"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        503
    );
    let status = get_json(&gw.admin_url("/admin/status")).await;
    assert_eq!(status["draining"], true);
    let refused =
        tokio_tungstenite::connect_async(format!("{}?token={}", gw.ws_url(), user_token("late")))
            .await
            .unwrap_err();
    assert!(
        matches!(refused, tokio_tungstenite::tungstenite::Error::Http(r) if r.status().as_u16() == 503)
    );

    // Messages keep flowing during the drain window.
    let (a, b) = clients.split_at_mut(1);
    fixtures::exchange(&mut a[0], &mut b[0], "u1", "during drain").await;

    for c in clients.iter_mut() {
        assert_eq!(c.closed().await, Closed::Code(1012));
    }
}

#[tokio::test]
async fn clients_that_move_during_drain_leave_no_connection_behind() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("alice", "phone").await;
    drain(&gw, 30).await;
    c.reply(22).await;
    c.ws.close(None).await.unwrap();
    let status = gw.admin_url("/admin/status");
    let gone = fixtures::wait_until(
        Duration::from_secs(3),
        Duration::from_millis(50),
        async || get_json(&status).await["connections"] == 0,
    )
    .await;
    assert!(gone, "connection count did not reach 0");
}

#[tokio::test]
async fn renew_during_drain_reports_the_time_left_and_drain_still_closes_1012() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("alice", "phone").await;
    drain(&gw, 1).await;
    c.reply(22).await;
    c.send(json!({"type": 21})).await;
    let r = c.reply(21).await;
    assert!(r["params"]["timelife"].as_u64().unwrap() <= 1, "{r}");
    assert_eq!(c.closed().await, Closed::Code(1012));
}

#[tokio::test]
async fn a_member_leaving_during_catch_up_gets_all_up_to_its_left_and_nothing_after() {
    let gw = TestGateway::start_with(|c| c.ack_window = 1).await;
    let mut alice = gw.connect("alice", "phone").await;
    let gid = alice.create_group("g", &["bob"]).await;
    for i in 0..5 {
        alice.send_to_group(&gid, &format!("g{i}"), None).await;
    }
    alice.send_to("bob", "direct after", None).await;
    let mut bob = gw.connect("bob", "phone").await;
    let direct = bob.push(2).await;
    bob.ack(&direct).await;
    let first = bob.push(10).await;
    bob.send(json!({"type": 12, "params": {"groupId": gid}, "requestId": "leave"}))
        .await;
    bob.recv_where("leave reply", |v| v["requestId"] == "leave")
        .await;
    bob.ack(&first).await;
    // The catch-up goes on up to bob's own `left` (seq 7: created, five messages, left), one
    // at a time (window 1), and stops there.
    let mut seqs = vec![first["msg"]["params"]["seq"].as_i64().unwrap()];
    loop {
        let env = bob.push(10).await;
        bob.ack(&env).await;
        seqs.push(env["msg"]["params"]["seq"].as_i64().unwrap());
        if env["msg"]["params"]["system"]["event"] == "left" {
            break;
        }
    }
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    alice.send_to_group(&gid, "after bob left", None).await;
    alice.send_to("bob", "still here", None).await;
    assert_eq!(bob.push(2).await["msg"]["params"]["message"], "still here");
    while let Some(frame) = bob.quiet_for(std::time::Duration::from_millis(500)).await {
        assert_ne!(
            frame["msg"]["type"], 10,
            "a group message after leaving: {frame}"
        );
    }
}
