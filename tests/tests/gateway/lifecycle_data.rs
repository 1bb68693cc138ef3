//! The data lifecycle (DESIGN §11): erasing a user over the backend API; retention's purge.

use chat_tests::fixtures::{service_token, user_token};
use chat_tests::{Closed, TestGateway};
use serde_json::{json, Value};

async fn delete(url: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .delete(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DELETE {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn erasing_a_user_leaves_tombstones_hands_over_groups_and_closes_its_connections() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let r0 = alice.send_to("bob", "my secret", None).await;
    let gid = alice.create_group("team", &["bob"]).await;
    alice.send_to_group(&gid, "also secret", None).await;
    let url = gw.http("/api/users/alice");

    let (status, _) = delete(&url, &user_token("bob")).await;
    assert!(
        matches!(status, 401 | 403),
        "a user token may not erase: {status}"
    );
    let (status, body) = delete(&url, &service_token()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    let content = &body["content"];
    assert_eq!(
        (
            content["userId"].as_str(),
            content["messages"].as_u64(),
            content["groups"].as_u64()
        ),
        (Some("alice"), Some(2), Some(1)),
        "{body}"
    );
    assert!(content["kicked"].as_u64() >= Some(1), "{body}");
    assert_eq!(alice.closed().await, Closed::Code(4001));

    // bob: alice's messages read back as tombstones, and the group is his now.
    let conv = r0["params"]["conversationId"].as_str().unwrap();
    let page = bob
        .request(13, json!({"conversationId": conv, "afterSeq": 0}))
        .await;
    let m = &page["params"]["messages"][0]["msg"]["params"];
    assert_eq!(
        (m["message"].as_str(), m["recalled"].as_bool()),
        (Some(""), Some(true)),
        "{page}"
    );
    let role = bob
        .recv_where("bob made owner", |v| {
            v["msg"]["params"]["system"]["role"] == "owner"
        })
        .await;
    assert_eq!(role["msg"]["params"]["system"]["members"], json!(["bob"]));
    let r = bob
        .request(29, json!({"groupId": gid, "name": "bob's team"}))
        .await;
    assert_eq!(r["params"]["roles"], json!({"bob": "owner"}), "{r}");
    let list = bob.request(13, json!({})).await;
    let conversations = list["params"]["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 2, "{list}");
}
