//! Bad input: every malformed thing a client can send gets the specified error or close code, and
//! the server keeps serving everyone else.

use chat_client::TokenIn;
use chat_tests::fixtures::{self, user_token};
use chat_tests::Closed;
use chat_tests::{Client, TestGateway};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// Everyone else still chats: a fresh pair exchanges a message.
async fn others_still_served(gw: &TestGateway) {
    let mut x = gw.connect("xavier", "d").await;
    let mut y = gw.connect("yvonne", "d").await;
    fixtures::exchange(&mut x, &mut y, "yvonne", "still up?").await;
}

#[tokio::test]
async fn recoverable_errors_reply_500_and_keep_the_connection() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("alice", "phone").await;
    let cases: Vec<(&str, u64)> = vec![
        ("{not json", 400),
        ("[]", 400),
        ("42", 400),
        (r#"{"type": 99, "requestId": "u"}"#, 400),
        (r#"{"type": "1"}"#, 400),
        (r#"{"type": 1e999}"#, 400),
        (r#"{"type": 123456789012345678901234567890}"#, 400),
        (r#"{"type": 1, "params": {"message": "no recipient"}}"#, 400),
        (
            r#"{"type": 1, "params": {"toMessageId": ["bob"], "message": "x"}}"#,
            400,
        ),
        (
            r#"{"type": 1, "params": {"toMessageId": "bob", "message": 5}}"#,
            400,
        ),
        (
            r#"{"type": 1, "params": {"toMessageId": "bob", "message": "x", "fileType": 99999999999999999999}}"#,
            400,
        ),
        (
            r#"{"type": 1, "params": {"toMessageId": "bob", "message": "x", "clientMsgId": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}"#,
            400,
        ),
        (
            r#"{"type": 13, "params": {"conversationId": "dm:alice:bob", "afterSeq": 1e30}}"#,
            400,
        ),
        (
            r#"{"type": 13, "params": {"conversationId": "dm:alice:bob", "limit": -5}}"#,
            400,
        ),
        (r#"{"type": 15, "params": {"from": "client"}}"#, 400),
        (r#"{"type": 8, "params": {"members": "bob"}}"#, 400),
        (
            r#"{"type": 9, "params": {"toMessageId": "no-such-group", "message": "x"}}"#,
            404,
        ),
        (
            r#"{"type": 15, "params": {"msgid": "00000000000000000000000000000000"}}"#,
            404,
        ),
        (
            r#"{"type": 13, "params": {"conversationId": "dm:carol:dave"}}"#,
            403,
        ),
    ];
    for (text, status) in cases {
        c.send_text(text).await;
        let e = c.error().await;
        assert_eq!(e["type"], 500, "{text}");
        assert_eq!(e["status"], status, "{text}: {e}");
        assert!(
            e["params"]["code"].is_string() && e["params"]["message"].is_string(),
            "{e}"
        );
    }
    // The same connection still works.
    c.send(json!({"type": 3, "requestId": "alive"})).await;
    assert_eq!(c.reply(4).await["requestId"], "alive");
    c.send_to("bob", "after all that", None).await;
}

#[tokio::test]
async fn error_echoes_request_id() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("alice", "phone").await;
    c.send(json!({"type": 1, "params": {}, "requestId": "r-77"}))
        .await;
    let e = c.error().await;
    assert_eq!(
        (e["status"].as_u64(), e["requestId"].as_str()),
        (Some(400), Some("r-77"))
    );
}

#[tokio::test]
async fn only_a_recipient_may_ack_and_only_participants_may_sync() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut mallory = gw.connect("mallory", "phone").await;
    let r = alice.send_to("bob", "private", None).await;
    let id = r["params"]["messageId"].as_str().unwrap();
    mallory.send(json!({"type": 15, "params": {"from": "client", "msgid": id, "fromUser": "alice", "toUser": "bob"}})).await;
    assert_eq!(mallory.error().await["status"], 403);
    mallory.send(json!({"type": 13, "params": {"conversationId": r["params"]["conversationId"], "afterSeq": 0}})).await;
    assert_eq!(mallory.error().await["status"], 403);
    // A spoofed fromUser is ignored: the sender is the token's user.
    let mut bob = gw.connect("bob", "phone").await;
    mallory.send(json!({"type": 1, "params": {"toMessageId": "bob", "message": "it's alice", "fromUser": "alice"}})).await;
    mallory.reply(0).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(
            bob.push(2).await["msg"]["params"]["fromUser"]["openid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    seen.sort();
    assert_eq!(seen, ["alice", "mallory"]);
}

#[tokio::test]
async fn binary_frame_closes_1003() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("alice", "phone").await;
    c.ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(c.closed().await, Closed::Code(1003));
    others_still_served(&gw).await;
}

#[tokio::test]
async fn frame_over_64k_closes_1009() {
    let gw = TestGateway::start().await;
    for size in [64 * 1024 + 1, 200 * 1024] {
        let mut c = gw.connect("alice", "phone").await;
        let text = format!(
            r#"{{"type":1,"params":{{"toMessageId":"bob","message":"{}"}}}}"#,
            "x".repeat(size)
        );
        c.send_text(&text).await;
        assert_eq!(c.closed().await, Closed::Code(1009), "size {size}");
    }
    // Just under the limit is fine.
    let mut c = gw.connect("alice", "phone").await;
    c.send_to("bob", &"y".repeat(60 * 1024), None).await;
    others_still_served(&gw).await;
}

#[tokio::test]
async fn invalid_utf8_closes_1007() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("alice", "phone").await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    c.ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(c.closed().await, Closed::Code(1007));
    others_still_served(&gw).await;
}

async fn upgrade_status(gw: &TestGateway, query: &str) -> u16 {
    match tokio_tungstenite::connect_async(format!("{}{query}", gw.ws_url())).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn bad_tokens_get_401_without_upgrade() {
    let gw = TestGateway::start().await;
    let other = chat_gateway::auth::Auth::new(b"wrong-secret")
        .issue("alice", None, false, 60)
        .unwrap();
    let expired = fixtures::auth()
        .sign(&chat_gateway::auth::Claims {
            sub: "alice".into(),
            name: None,
            exp: 1_000_000_000,
            iat: None,
            role: None,
        })
        .unwrap();
    assert_eq!(upgrade_status(&gw, "").await, 401, "missing");
    assert_eq!(
        upgrade_status(&gw, "?token=garbage").await,
        401,
        "malformed"
    );
    assert_eq!(
        upgrade_status(&gw, &format!("?token={other}")).await,
        401,
        "wrong signature"
    );
    assert_eq!(
        upgrade_status(&gw, &format!("?token={expired}")).await,
        401,
        "expired"
    );
    assert_eq!(
        upgrade_status(
            &gw,
            &format!("?token={}&device=bad%20device", user_token("a"))
        )
        .await,
        400,
        "bad device id"
    );
    assert_eq!(
        upgrade_status(
            &gw,
            &format!("?token={}&device={}", user_token("a"), "d".repeat(65))
        )
        .await,
        400,
        "device too long"
    );
    // The Authorization header works too.
    let c = Client::connect_with(&gw.ws_url(), &user_token("alice"), None, TokenIn::Header)
        .await
        .expect("bearer header accepted");
    assert_eq!(c.welcome["type"], 20);
    others_still_served(&gw).await;
}

#[tokio::test]
async fn rate_limit_answers_429_and_recovers() {
    let gw = TestGateway::start_with(|c| {
        c.rate_limit_per_second = 5;
        c.rate_burst = 5;
    })
    .await;
    let mut c = gw.connect("alice", "phone").await;
    for i in 0..8 {
        c.send(json!({"type": 13, "requestId": i})).await;
    }
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let f = c.reply(14).await;
        statuses.push(if f["type"] == 500 {
            f["status"].as_u64().unwrap()
        } else {
            200
        });
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    c.send(json!({"type": 13, "requestId": "later"})).await;
    assert_eq!(c.reply(14).await["type"], 14);
}

#[tokio::test]
async fn client_close_is_clean_and_client_list_survives() {
    let gw = TestGateway::start().await;
    let mut c = gw.connect("alice", "d").await;
    c.ws.close(None).await.unwrap();
    others_still_served(&gw).await;
}
