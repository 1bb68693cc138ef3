//! One test per row of the protocol's frame table (DESIGN.md §3).

use chat_tests::fixtures::user_token;
use chat_tests::TestGateway;
use serde_json::json;

#[tokio::test]
async fn welcome_is_the_first_frame() {
    let gw = TestGateway::start().await;
    let c = gw.connect("alice", "phone").await;
    let p = &c.welcome["params"];
    assert_eq!(c.welcome["status"], 200);
    assert_eq!(p["userId"], "alice");
    assert_eq!(p["deviceId"], "phone");
    assert_eq!(p["server"], "pod-0");
    assert_eq!(p["timelife"], 1800);
    assert_eq!(p["heartbeat"], 30);
    assert!(p["sessionId"].as_str().unwrap().len() > 4);
    assert!(p["expiresAt"].as_i64().unwrap() > 1_700_000_000_000);
}

#[tokio::test]
async fn the_seeds_path_serves_the_same_endpoint_with_the_same_token_rules() {
    let gw = TestGateway::start().await;
    let url = gw.ws_url().replace("/ws", "/websocket");
    assert!(url.ends_with("/websocket"));
    let mut alice = chat_tests::Client::connect(&url, &user_token("alice"), Some("seed"))
        .await
        .unwrap();
    assert_eq!(alice.welcome["params"]["userId"], "alice");
    let mut bob = gw.connect("bob", "phone").await;
    let r0 = alice.send_to("bob", "over the seeds' path", None).await;
    assert_eq!(r0["status"], 200);
    let push = bob.push(2).await;
    assert_eq!(push["msg"]["params"]["message"], "over the seeds' path");
    // No token, or a bad one: 401 and no upgrade, as on /ws.
    for query in ["", "?token=not-a-jwt"] {
        let err = tokio_tungstenite::connect_async(format!("{url}{query}"))
            .await
            .expect_err("upgraded without a valid token");
        match err {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                assert_eq!(resp.status(), 401, "{query}")
            }
            other => panic!("expected HTTP 401, got {other}"),
        }
    }
}

#[tokio::test]
async fn device_is_assigned_when_missing() {
    let gw = TestGateway::start().await;
    let c = chat_tests::Client::connect(&gw.ws_url(), &user_token("alice"), None)
        .await
        .unwrap();
    let d = c.welcome["params"]["deviceId"].as_str().unwrap();
    assert!(!d.is_empty() && d.len() <= 64);
}

#[tokio::test]
async fn send_received_deliver_ack_delivered() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let r0 = alice.send_to("bob", "hello", Some("c-1")).await;
    assert_eq!(r0["status"], 200);
    let p = &r0["params"];
    assert_eq!(p["message"], "hello");
    assert_eq!(p["seq"], 1);
    assert_eq!(p["clientMsgId"], "c-1");
    assert_eq!(p["messageId"].as_str().unwrap().len(), 32);
    assert!(p["date"].is_string());
    let conv = p["conversationId"].as_str().unwrap().to_owned();

    let env = bob.push(2).await;
    assert_eq!(env["messageId"], p["messageId"]);
    assert_eq!(env["from"], "system");
    assert_eq!(
        (
            env["msgType"].as_i64(),
            env["trigger"].as_i64(),
            env["retry"].as_bool()
        ),
        (Some(1), Some(1), Some(false))
    );
    assert_eq!(env["to"], json!(["bob"]));
    assert_eq!(env["sessionId"], bob.welcome["params"]["sessionId"]);
    let mp = &env["msg"]["params"];
    assert_eq!(env["msg"]["status"], 200);
    assert_eq!(
        mp["fromUser"],
        json!({"openid": "alice", "loginStatus": "1", "userName": "Alice"})
    );
    assert_eq!(mp["toUser"]["openid"], "bob");
    assert_eq!(mp["toUser"]["userName"], "Bob");
    assert_eq!(mp["message"], "hello");
    assert_eq!(mp["fileType"], "0");
    assert_eq!(mp["conversationId"], conv.as_str());
    assert_eq!(mp["seq"], 1);
    assert_eq!(mp["clientMsgId"], "c-1");

    bob.ack(&env).await;
    let r16 = bob.reply(16).await;
    assert_eq!(r16["type"], 16);
    assert_eq!(r16["params"]["message"], env["messageId"]);
    assert!(r16["params"]["date"].is_string());

    let d = alice.push(17).await;
    let dp = &d["msg"]["params"];
    assert_eq!(dp["messageId"], p["messageId"]);
    assert_eq!(dp["conversationId"], conv.as_str());
    assert_eq!(dp["seq"], 1);
    assert_eq!(dp["by"], "bob");
    assert_ne!(
        d["messageId"], p["messageId"],
        "the notice has its own envelope id"
    );
}

#[tokio::test]
async fn register_checks_openid_and_logs_out() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    alice.send(json!({"type": 7, "params": {"openid": "alice", "userName": "Alice A.", "loginStatus": "1"}, "requestId": "reg"})).await;
    let r = alice.reply(7).await;
    assert_eq!(
        (r["type"].as_i64(), r["requestId"].as_str()),
        (Some(7), Some("reg"))
    );
    assert_eq!(r["params"]["userName"], "Alice A.");

    alice.send(json!({"type": 7, "params": {"openid": "mallory", "userName": "x", "loginStatus": "1"}})).await;
    let e = alice.error().await;
    assert_eq!(e["status"], 403);

    alice
        .send(json!({"type": 7, "params": {"openid": "alice", "loginStatus": "0"}}))
        .await;
    let r = alice.reply(7).await;
    assert_eq!(r["params"]["loginStatus"], "0");
    assert_eq!(alice.closed().await, chat_tests::Closed::Code(1000));
}

#[tokio::test]
async fn group_create_send_add_leave() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let mut carol = gw.connect("carol", "phone").await;

    alice
        .send(json!({"type": 8, "params": {"name": "team", "members": ["bob"]}, "requestId": "g"}))
        .await;
    let g = alice.reply(8).await;
    assert_eq!(g["type"], 8);
    let gid = g["params"]["groupId"].as_str().unwrap().to_owned();
    assert_eq!(g["params"]["name"], "team");
    assert_eq!(g["params"]["members"], json!(["alice", "bob"]));

    // The creation is the group's first message (v1.1), to every member.
    let created = bob.group_event("created").await;
    let p = &created["msg"]["params"];
    assert_eq!(
        (p["seq"].as_i64(), p["message"].as_str()),
        (Some(1), Some(""))
    );
    assert_eq!(p["fromUser"]["openid"], "system");
    assert_eq!(
        p["system"],
        json!({"event": "created", "actor": "alice", "members": ["alice", "bob"], "name": "team"})
    );
    assert_eq!(
        g["params"]["roles"],
        json!({"alice": "owner", "bob": "member"})
    );

    alice.send(json!({"type": 9, "params": {"toMessageId": gid, "message": "hi team", "fileType": 0}, "requestId": "s1"})).await;
    let r0 = alice.reply(0).await;
    assert_eq!(r0["params"]["seq"], 2);
    let env = bob.user_push(10).await;
    let p = &env["msg"]["params"];
    assert_eq!(p["groupId"], gid.as_str());
    assert_eq!(p["fromUser"]["openid"], "alice");
    assert_eq!(p["message"], "hi team");
    assert_eq!(p["seq"], 2);
    assert_eq!(p["conversationId"], r0["params"]["conversationId"]);

    // carol is not a member: 403 on send.
    carol
        .send(json!({"type": 9, "params": {"toMessageId": gid, "message": "let me in"}}))
        .await;
    assert_eq!(carol.error().await["status"], 403);

    bob.send(
        json!({"type": 11, "params": {"groupId": gid, "members": ["carol"]}, "requestId": "add"}),
    )
    .await;
    let r = bob.reply(11).await;
    assert_eq!(r["type"], 11);
    assert_eq!(r["params"]["members"], json!(["alice", "bob", "carol"]));

    // carol joined after seq 2: the event that added her (seq 3) is the first she can read.
    let added = carol.group_event("added").await;
    assert_eq!(added["msg"]["params"]["seq"], 3);
    assert_eq!(
        added["msg"]["params"]["system"],
        json!({"event": "added", "actor": "bob", "members": ["carol"]})
    );
    carol.send(json!({"type": 13, "params": {"conversationId": r0["params"]["conversationId"], "afterSeq": 0}})).await;
    let s = carol.reply(14).await;
    let seqs: Vec<i64> = s["params"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg"]["params"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3]);
    bob.send(json!({"type": 9, "params": {"toMessageId": gid, "message": "welcome carol"}}))
        .await;
    bob.reply(0).await;
    let env = carol.user_push(10).await;
    assert_eq!(env["msg"]["params"]["seq"], 4);

    carol
        .send(json!({"type": 12, "params": {"groupId": gid}, "requestId": "bye"}))
        .await;
    let r = carol.reply(12).await;
    assert_eq!(
        (r["type"].as_i64(), r["params"]["groupId"].as_str()),
        (Some(12), Some(gid.as_str()))
    );
    // A member who leaves receives its own `left`.
    assert_eq!(carol.group_event("left").await["msg"]["params"]["seq"], 5);
    carol
        .send(json!({"type": 9, "params": {"toMessageId": gid, "message": "still here?"}}))
        .await;
    assert_eq!(carol.error().await["status"], 403);
}

#[tokio::test]
async fn heartbeat_and_renew() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    alice.send(json!({"type": 3, "requestId": 7})).await;
    let r = alice.reply(4).await;
    assert_eq!(r["type"], 4);
    assert_eq!(r["requestId"], 7);
    assert!(r["params"]["date"].is_string());

    alice.send(json!({"type": 21})).await;
    let r = alice.reply(21).await;
    assert_eq!(r["params"]["timelife"], 1800);
    assert!(
        r["params"]["expiresAt"].as_i64().unwrap()
            > alice.welcome["params"]["expiresAt"].as_i64().unwrap() - 1000
    );
}

#[tokio::test]
async fn sync_lists_conversations_and_pages() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut conv = String::new();
    for i in 0..5 {
        let r = alice.send_to("bob", &format!("m{i}"), None).await;
        conv = r["params"]["conversationId"].as_str().unwrap().to_owned();
    }
    alice.send(json!({"type": 13, "requestId": "list"})).await;
    let list = alice.reply(14).await;
    let convs = list["params"]["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["conversationId"], conv.as_str());
    assert_eq!(convs[0]["lastSeq"], 5);
    assert_eq!(
        convs[0]["ackedSeq"], 5,
        "own messages count as acked for the sender"
    );

    let mut bob = gw.connect("bob", "phone").await;
    bob.send(json!({"type": 13, "params": {"conversationId": conv, "afterSeq": 1, "limit": 2}, "requestId": "p1"})).await;
    let page = bob
        .recv_where("sync page", |v| v["requestId"] == "p1")
        .await;
    assert_eq!(page["type"], 14);
    assert_eq!(page["params"]["conversationId"], conv.as_str());
    assert_eq!(page["params"]["hasMore"], true);
    let seqs: Vec<i64> = page["params"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg"]["params"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![2, 3]);
    bob.send(json!({"type": 13, "params": {"conversationId": conv, "afterSeq": 3, "limit": 200}, "requestId": "p2"})).await;
    let page = bob
        .recv_where("sync page 2", |v| v["requestId"] == "p2")
        .await;
    assert_eq!(page["params"]["hasMore"], false);
    assert_eq!(page["params"]["messages"].as_array().unwrap().len(), 2);
}
