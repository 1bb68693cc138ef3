//! The HTTP API (push, kick, dev login, page) and the admin port.

use chat_tests::fixtures::{get_json, post_json, service_token, user_token};
use chat_tests::Closed;
use chat_tests::TestGateway;
use serde_json::json;

#[tokio::test]
async fn message_send_pushes_to_online_devices_and_reports_not_exist() {
    let gw = TestGateway::start().await;
    let mut bob1 = gw.connect("bob", "phone").await;
    let mut bob2 = gw.connect("bob", "web").await;
    let body =
        json!({"to": ["bob", "nobody"], "msg": {"key1": "value", "n": [1, 2]}, "sendToAll": false});
    let (status, answer) = post_json(&gw.http("/message/send"), Some(&service_token()), body).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"success": true, "statusCode": 200, "content": {"notExist": ["nobody"]}, "msg": "ok"})
    );
    for c in [&mut bob1, &mut bob2] {
        let env = c.recv_where("http push", |v| v["trigger"] == 2).await;
        assert_eq!(
            env["msg"],
            json!({"key1": "value", "n": [1, 2]}),
            "msg is the posted object as is"
        );
        assert_eq!(
            (env["msgType"].as_i64(), env["from"].as_str()),
            (Some(1), Some("system"))
        );
        assert_eq!(env["messageId"].as_str().unwrap().len(), 32);
        assert!(env["requestId"].is_string());
        assert_eq!(env["to"], json!(["bob"]));
    }
}

#[tokio::test]
async fn send_to_all_reaches_every_connection() {
    let gw = TestGateway::start().await;
    let mut a = gw.connect("alice", "d").await;
    let mut b = gw.connect("bob", "d").await;
    let (status, answer) = post_json(
        &gw.http("/message/send"),
        Some(&service_token()),
        json!({"to": [], "msg": {"all": true}, "sendToAll": true}),
    )
    .await;
    assert_eq!((status, &answer["content"]["notExist"]), (200, &json!([])));
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.recv_where("broadcast", |v| v["trigger"] == 2).await["msg"],
            json!({"all": true})
        );
    }
}

#[tokio::test]
async fn http_api_requires_a_service_token() {
    let gw = TestGateway::start().await;
    let body = json!({"to": ["bob"], "msg": {}});
    assert_eq!(
        post_json(&gw.http("/message/send"), None, body.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        post_json(&gw.http("/message/send"), Some("junk"), body.clone())
            .await
            .0,
        401
    );
    let (status, err) =
        post_json(&gw.http("/message/send"), Some(&user_token("alice")), body).await;
    assert_eq!(status, 403);
    assert_eq!(err["code"], "forbidden");
    assert_eq!(
        post_json(
            &gw.http("/api/users/bob/kick"),
            Some(&user_token("alice")),
            json!({})
        )
        .await
        .0,
        403
    );
    let resp = reqwest::Client::new()
        .post(gw.http("/message/send"))
        .bearer_auth(service_token())
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

#[tokio::test]
async fn kick_closes_every_device_of_the_user() {
    let gw = TestGateway::start().await;
    let mut b1 = gw.connect("bob", "phone").await;
    let mut b2 = gw.connect("bob", "web").await;
    let mut alice = gw.connect("alice", "phone").await;
    let (status, answer) = post_json(
        &gw.http("/api/users/bob/kick"),
        Some(&service_token()),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["content"]["kicked"], 2);
    for c in [&mut b1, &mut b2] {
        assert_eq!(c.reply(23).await["params"]["reason"], "logout");
        assert_eq!(c.closed().await, Closed::Code(4001));
    }
    alice.send(json!({"type": 3})).await;
    assert_eq!(alice.reply(4).await["type"], 4, "other users unaffected");
}

#[tokio::test]
async fn dev_login_is_off_by_default_and_issues_working_tokens_when_on() {
    let off = TestGateway::start().await;
    assert_eq!(
        post_json(&off.http("/dev/login"), None, json!({"user": "alice"}))
            .await
            .0,
        404
    );
    let on = TestGateway::start_with(|c| c.dev_login = true).await;
    let (status, body) = post_json(
        &on.http("/dev/login"),
        None,
        json!({"user": "alice", "name": "Alice"}),
    )
    .await;
    assert_eq!(status, 200);
    let c = chat_tests::Client::connect(&on.ws_url(), body["token"].as_str().unwrap(), Some("web"))
        .await
        .unwrap();
    assert_eq!(c.welcome["params"]["userId"], "alice");
}

#[tokio::test]
async fn browser_page_is_served() {
    let gw = TestGateway::start().await;
    let resp = reqwest::get(gw.http("/")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(resp.text().await.unwrap().contains("<script"));
}

#[tokio::test]
async fn admin_endpoints() {
    let gw = TestGateway::start().await;
    let _c = gw.connect("alice", "phone").await;
    let get = |p: &str| reqwest::get(gw.admin_url(p));
    assert_eq!(get("/healthz").await.unwrap().status().as_u16(), 200);
    assert_eq!(get("/readyz").await.unwrap().status().as_u16(), 200);
    let status = get_json(&gw.admin_url("/admin/status")).await;
    assert_eq!(
        status,
        json!({"pod": "pod-0", "connections": 1, "draining": false, "moving": 0})
    );
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    for series in ["chat_connections", "chat_store_commit_seconds"] {
        assert!(
            metrics.contains(series),
            "{series} missing from /metrics:\n{metrics}"
        );
    }
    // The admin API is not on the public port.
    assert_eq!(
        reqwest::get(gw.http("/admin/status"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}

#[tokio::test]
async fn kick_reason_can_be_admin_and_repeated_users_are_pushed_once() {
    let gw = TestGateway::start().await;
    let mut bob = gw.connect("bob", "phone").await;
    let body = json!({"to": ["bob", "bob"], "msg": {"n": 1}});
    let (_, answer) = post_json(&gw.http("/message/send"), Some(&service_token()), body).await;
    assert_eq!(answer["content"]["notExist"], json!([]));
    bob.recv_where("push", |v| v["trigger"] == 2).await;
    assert!(
        bob.quiet_for(std::time::Duration::from_millis(300))
            .await
            .is_none(),
        "one push per device"
    );
    let (status, _) = post_json(
        &gw.http("/api/users/bob/kick"),
        Some(&service_token()),
        json!({"reason": "bogus"}),
    )
    .await;
    assert_eq!(status, 400);
    post_json(
        &gw.http("/api/users/bob/kick"),
        Some(&service_token()),
        json!({"reason": "admin"}),
    )
    .await;
    assert_eq!(bob.reply(23).await["params"]["reason"], "admin");
    assert_eq!(bob.closed().await, Closed::Code(4001));
}
