//! `POST /admin/rebalance`: a partial drain that moves some connections while the pod stays ready.

use std::time::Duration;

use chat_tests::fixtures::{get_json, post_json, status_of};
use chat_tests::{Closed, TestGateway};
use serde_json::json;

#[tokio::test]
async fn rebalance_drains_the_oldest_connections_and_the_pod_stays_ready() {
    let gw = TestGateway::start().await;
    let mut oldest = gw.connect("alice", "phone").await;
    let mut older = gw.connect("bob", "phone").await;
    let mut newest = gw.connect("carol", "phone").await;
    let (status, body) = post_json(
        &gw.admin_url("/admin/rebalance"),
        None,
        json!({"connections": 2, "paceSeconds": 2}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["moving"], 2, "{body}");
    assert_eq!(body["connections"], 3, "{body}");
    assert_eq!(body["paceSeconds"], 2, "{body}");
    let mut delays = Vec::new();
    for c in [&mut oldest, &mut older] {
        let drain = c.reply(22).await;
        assert_eq!(drain["params"]["reason"], "drain", "{drain}");
        assert!(
            drain["params"]["timelife"].as_u64().unwrap() <= 2,
            "{drain}"
        );
        delays.push(drain["params"]["reconnectAfterMs"].as_u64().unwrap());
    }
    delays.sort_unstable();
    assert_eq!(delays, [0, 500], "spread over half the pace");
    assert_eq!(
        newest.quiet_for(Duration::from_millis(300)).await,
        None,
        "the newest connection stays"
    );
    // Still ready, still taking upgrades; the moving ones are counted.
    assert_eq!(
        status_of(&gw.admin_url("/readyz"), Duration::from_secs(2)).await,
        200
    );
    let status = get_json(&gw.admin_url("/admin/status")).await;
    assert_eq!(status["draining"], false, "{status}");
    assert_eq!(status["moving"], 2, "{status}");
    let _dave = gw.connect("dave", "phone").await;
    // Asked again, only the ones not moving yet go.
    let (_, again) = post_json(
        &gw.admin_url("/admin/rebalance"),
        None,
        json!({"connections": 1, "paceSeconds": 30}),
    )
    .await;
    assert_eq!(again["moving"], 1, "{again}");
    assert_eq!(newest.reply(22).await["params"]["reason"], "drain");
    // Those that did not move are closed at the end of the pace, as in a drain.
    assert_eq!(oldest.closed().await, Closed::Code(1012));
    assert_eq!(older.closed().await, Closed::Code(1012));
    let status = get_json(&gw.admin_url("/admin/status")).await;
    assert_eq!(status["moving"], 1, "{status}");
    assert_eq!(status["connections"], 2, "{status}");
}

#[tokio::test]
async fn rebalance_refuses_bad_bodies_and_a_draining_pod() {
    let gw = TestGateway::start().await;
    let _c = gw.connect("alice", "phone").await;
    let url = gw.admin_url("/admin/rebalance");
    for (body, says) in [
        (json!({}), "missing field `connections`"),
        (json!({"connections": 0}), "connections must be at least 1"),
        (json!({"connections": -1}), "invalid body"),
        (
            json!({"connections": 1, "paceSeconds": 0}),
            "paceSeconds must be from 1 to 86400",
        ),
        (
            json!({"connections": 1, "paceSeconds": 86401}),
            "paceSeconds must be from 1",
        ),
    ] {
        let (status, answer) = post_json(&url, None, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{body}: {answer}"
        );
    }
    let status = get_json(&gw.admin_url("/admin/status")).await;
    assert_eq!(
        status["moving"], 0,
        "nothing moved on a refused call: {status}"
    );
    post_json(
        &gw.admin_url("/admin/drain"),
        None,
        json!({"deadlineSeconds": 30}),
    )
    .await;
    let (status, answer) = post_json(&url, None, json!({"connections": 1})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("draining"),
        "{answer}"
    );
}
