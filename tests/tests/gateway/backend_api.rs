//! The backend API: `POST /api/messages` stores and delivers as a WebSocket SEND (seq,
//! idempotency, receipts, as a user or as `system`), `GET /api/conversations/{id}/messages` reads
//! history; a service token is required and bad input gets clear 4xx answers.

use chat_tests::fixtures::{post_json, service_token, user_token};
use chat_tests::{Client, TestGateway};
use serde_json::{json, Value};

async fn post(gw: &TestGateway, body: Value) -> (u16, Value) {
    post_json(&gw.http("/api/messages"), Some(&service_token()), body).await
}

/// GETs a history page with `token`; returns the status and the answer.
async fn get(gw: &TestGateway, conversation: &str, query: &str, token: &str) -> (u16, Value) {
    let url = gw.http(&format!(
        "/api/conversations/{}/messages{query}",
        encode(conversation)
    ));
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_backend_sends_as_a_user_with_seq_idempotency_and_receipts() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let body = json!({"from": "alice", "to": "bob", "message": "from the backend",
                      "fileType": 0, "clientMsgId": "b-1"});
    let (status, answer) = post(&gw, body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["success"].as_bool(), answer["statusCode"].as_u64()),
        (Some(true), Some(200))
    );
    assert_eq!(answer["msg"], "ok");
    let content = &answer["content"];
    assert_eq!(content["seq"], 1);
    assert_eq!(content["messageId"].as_str().unwrap().len(), 32);

    let env = bob.push(2).await;
    assert_eq!(env["messageId"], content["messageId"]);
    assert_eq!(env["msg"]["params"]["fromUser"]["openid"], "alice");
    assert_eq!(env["msg"]["params"]["message"], "from the backend");
    assert_eq!(
        env["msg"]["params"]["conversationId"],
        content["conversationId"]
    );
    let copy = alice.push(2).await;
    assert_eq!(
        copy["messageId"], content["messageId"],
        "the sender's devices get it too"
    );

    bob.ack(&env).await;
    bob.reply(16).await;
    let delivered = alice.push(17).await;
    assert_eq!(
        delivered["msg"]["params"]["messageId"],
        content["messageId"]
    );
    assert_eq!(delivered["msg"]["params"]["by"], "bob");

    let (status, again) = post(&gw, body).await;
    assert_eq!(
        (status, &again["content"]),
        (200, content),
        "the first result again"
    );
    assert!(bob
        .quiet_for(std::time::Duration::from_millis(300))
        .await
        .is_none());
    let (_, next) = post(&gw, json!({"from": "alice", "to": "bob", "message": "2"})).await;
    assert_eq!(next["content"]["seq"], 2);
}

#[tokio::test]
async fn system_posts_to_a_user_and_to_any_group() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let (status, answer) = post(
        &gw,
        json!({"from": "system", "to": "bob", "message": "welcome"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let env = bob.push(2).await;
    assert_eq!(env["msg"]["params"]["fromUser"]["openid"], "system");
    assert_eq!(env["messageId"], answer["content"]["messageId"]);
    bob.ack(&env).await;

    let group = alice.create_group("g", &["bob"]).await;
    let (status, answer) = post(
        &gw,
        json!({"from": "system", "groupId": group, "message": "maintenance at 5", "fileType": "0"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    for c in [&mut alice, &mut bob] {
        // The group's creation event (10 with `system`) comes first.
        let env = c
            .recv_where("the system's group message", |v| {
                v["msg"]["type"] == 10 && v["msg"]["params"]["message"] == "maintenance at 5"
            })
            .await;
        assert_eq!(env["msg"]["params"]["groupId"], group.as_str());
        assert_eq!(env["msg"]["params"]["message"], "maintenance at 5");
    }
}

#[tokio::test]
async fn a_token_for_system_cannot_connect() {
    let gw = TestGateway::start().await;
    let refused = Client::connect(&gw.ws_url(), &user_token("system"), Some("d")).await;
    let err = refused.err().expect("no upgrade for system").to_string();
    assert!(err.contains("403"), "{err}");
}

#[tokio::test]
async fn history_pages_through_a_conversation() {
    let gw = TestGateway::start().await;
    let mut conversation = String::new();
    for i in 1..=5 {
        let (_, a) = post(
            &gw,
            json!({"from": "alice", "to": "bob", "message": format!("m{i}")}),
        )
        .await;
        conversation = a["content"]["conversationId"].as_str().unwrap().to_owned();
    }
    let service = service_token();
    let (status, page) = get(&gw, &conversation, "?afterSeq=0&limit=2", &service).await;
    assert_eq!(status, 200, "{page}");
    let content = &page["content"];
    assert_eq!(content["conversationId"], conversation.as_str());
    assert_eq!(content["hasMore"], true);
    let seqs: Vec<_> = content["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg"]["params"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2]);
    assert_eq!(content["messages"][0]["msg"]["params"]["message"], "m1");
    assert_eq!(content["messages"][0]["msg"]["type"], 2);

    let (_, last) = get(&gw, &conversation, "?afterSeq=4", &service).await;
    assert_eq!(last["content"]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(last["content"]["hasMore"], false);
    let (_, none) = get(&gw, &conversation, "?afterSeq=5&limit=200", &service).await;
    assert_eq!(none["content"]["messages"], json!([]));
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let group = alice.create_group("g", &["bob"]).await;
    let cases = [
        (json!({"to": "bob", "message": "x"}), 400, "\"from\""),
        (json!({"from": "alice", "message": "x"}), 400, "exactly one"),
        (
            json!({"from": "alice", "to": "bob", "groupId": group, "message": "x"}),
            400,
            "exactly one",
        ),
        (json!({"from": "alice", "to": "bob"}), 400, "\"message\""),
        (
            json!({"from": "alice", "to": "bob", "message": "x", "fileType": "img"}),
            400,
            "fileType",
        ),
        (
            json!({"from": "alice", "to": "bob", "message": "x", "clientMsgId": ""}),
            400,
            "clientMsgId",
        ),
        (
            json!({"from": "alice", "to": "system", "message": "x"}),
            400,
            "system",
        ),
        (
            json!({"from": "alice", "groupId": "nope", "message": "x"}),
            404,
            "no group",
        ),
        (
            json!({"from": "carol", "groupId": group, "message": "x"}),
            403,
            "not a member",
        ),
    ];
    for (body, status, says) in cases {
        let (got, err) = post(&gw, body.clone()).await;
        assert_eq!(got, status, "{body} → {err}");
        assert!(
            err["message"].as_str().unwrap().contains(says),
            "{body} → {err}"
        );
    }
    let (status, err) = post_json(&gw.http("/api/messages"), None, json!({})).await;
    assert_eq!(status, 401, "{err}");
    let user = user_token("alice");
    let body = json!({"from": "alice", "to": "bob", "message": "x"});
    let (status, err) = post_json(&gw.http("/api/messages"), Some(&user), body).await;
    assert_eq!((status, err["code"].as_str()), (403, Some("forbidden")));

    let service = service_token();
    let (status, _) = get(&gw, "dm:nobody:none", "", &service).await;
    assert_eq!(status, 404);
    let (status, err) = get(&gw, &format!("grp:{group}"), "?limit=201", &service).await;
    assert_eq!(status, 400, "{err}");
    let (status, _) = get(&gw, &format!("grp:{group}"), "?afterSeq=-1", &service).await;
    assert_eq!(status, 400);
    let (status, _) = get(&gw, &format!("grp:{group}"), "", &user).await;
    assert_eq!(status, 403);
}
