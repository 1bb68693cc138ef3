//! Protocol v1.1 (DESIGN §11) on the embedded default: BLOCK / UNBLOCK (34/35) and presence
//! (26/27). (Across pods, and a pod that dies: tests/cluster.rs, tests/cluster_process.rs.)

use std::time::Duration;

use chat_tests::{Client, TestGateway};
use serde_json::{json, Value};

/// Long enough for a notice that is on its way to arrive.
const SETTLE: Duration = Duration::from_millis(300);

/// Subscribes `c` to `users`; returns the reply's `presence` list.
async fn subscribe(c: &mut Client, users: &[&str]) -> Vec<Value> {
    let r = c.request(26, json!({ "users": users })).await;
    assert_eq!(
        (r["type"].as_u64(), r["status"].as_u64()),
        (Some(26), Some(200)),
        "{r}"
    );
    r["params"]["presence"].as_array().unwrap().clone()
}

/// The next PRESENCE notice's params.
async fn presence(c: &mut Client) -> Value {
    c.push(27).await["msg"]["params"].clone()
}

/// No PRESENCE notice arrives for a while.
async fn no_presence(c: &mut Client) {
    while let Some(v) = c.quiet_for(SETTLE).await {
        assert_ne!(v["msg"]["type"], 27, "unexpected presence notice {v}");
    }
}

/// An ERROR with `status` answering a frame of type `kind` with `params`.
async fn refused(c: &mut Client, kind: u64, params: Value, status: u64) -> Value {
    let r = c.request(kind, params.clone()).await;
    assert_eq!(
        (r["type"].as_u64(), r["status"].as_u64()),
        (Some(500), Some(status)),
        "{kind} {params}: {r}"
    );
    r
}

/// `a` and `b` share a 1:1 conversation (one message from `a`, delivered and acked).
async fn befriend(a: &mut Client, b: &mut Client, b_user: &str) {
    a.send_to(b_user, "hi", None).await;
    let env = b.push(2).await;
    b.ack(&env).await;
}

#[tokio::test]
async fn a_block_refuses_1to1_sends_until_unblocked_and_is_listed() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "d").await;
    let mut mallory = gw.connect("mallory", "d").await;
    befriend(&mut mallory, &mut alice, "alice").await;

    let r = alice.request(34, json!({"userId": "mallory"})).await;
    assert_eq!(r["params"], json!({"userId": "mallory"}), "{r}");
    assert_eq!(
        (r["type"].as_u64(), r["status"].as_u64()),
        (Some(34), Some(200))
    );
    // Idempotent.
    let again = alice.request(34, json!({"userId": "mallory"})).await;
    assert_eq!(again["type"], 34, "{again}");

    let e = refused(
        &mut mallory,
        1,
        json!({"toMessageId": "alice", "message": "spam"}),
        403,
    )
    .await;
    assert_eq!(e["params"]["code"], "forbidden", "{e}");
    // Alice may still write to mallory; mallory's connection survives the refusal.
    alice.send_to("mallory", "stop it", None).await;
    mallory.push(2).await;
    let list = alice.request(13, json!({})).await;
    assert_eq!(list["params"]["blocked"], json!(["mallory"]), "{list}");
    let theirs = mallory.request(13, json!({})).await;
    assert_eq!(theirs["params"]["blocked"], json!([]), "{theirs}");

    let r = alice.request(35, json!({"userId": "mallory"})).await;
    assert_eq!(
        (r["type"].as_u64(), r["params"].clone()),
        (Some(35), json!({"userId": "mallory"})),
        "{r}"
    );
    let again = alice.request(35, json!({"userId": "mallory"})).await;
    assert_eq!(again["type"], 35, "{again}");
    mallory.send_to("alice", "sorry", None).await;
    assert_eq!(alice.push(2).await["msg"]["params"]["message"], "sorry");
    let list = alice.request(13, json!({})).await;
    assert_eq!(list["params"]["blocked"], json!([]), "{list}");
}

#[tokio::test]
async fn a_block_stops_only_the_blocked_sender() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "d").await;
    let mut bob = gw.connect("bob", "d").await;
    let mut mallory = gw.connect("mallory", "d").await;
    // A block of someone who never wrote, and of a user who never connected.
    alice.request(34, json!({"userId": "mallory"})).await;
    alice.request(34, json!({"userId": "ghost"})).await;
    refused(
        &mut mallory,
        1,
        json!({"toMessageId": "alice", "message": "x"}),
        403,
    )
    .await;
    bob.send_to("alice", "from bob", None).await;
    assert_eq!(alice.push(2).await["msg"]["params"]["message"], "from bob");
    // Mallory to someone else, and a repeat after the refusal, go on as ever.
    mallory.send_to("bob", "to bob", None).await;
    assert_eq!(bob.push(2).await["msg"]["params"]["message"], "to bob");
    refused(
        &mut mallory,
        1,
        json!({"toMessageId": "alice", "message": "y", "clientMsgId": "c1"}),
        403,
    )
    .await;
    let list = alice.request(13, json!({})).await;
    assert_eq!(
        list["params"]["blocked"],
        json!(["ghost", "mallory"]),
        "{list}"
    );
}

#[tokio::test]
async fn bad_block_and_subscribe_frames_get_400_and_the_connection_survives() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "d").await;
    refused(&mut alice, 34, json!({"userId": "alice"}), 400).await;
    refused(&mut alice, 35, json!({"userId": "alice"}), 400).await;
    refused(&mut alice, 34, json!({}), 400).await;
    refused(&mut alice, 34, json!({"userId": 7}), 400).await;
    refused(&mut alice, 35, json!({"userId": ""}), 400).await;
    refused(&mut alice, 34, json!({"userId": "x".repeat(129)}), 400).await;
    refused(&mut alice, 26, json!({}), 400).await;
    refused(&mut alice, 26, json!({"users": "bob"}), 400).await;
    refused(&mut alice, 26, json!({"users": ["bob", 3]}), 400).await;
    let many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    let e = refused(&mut alice, 26, json!({ "users": many }), 400).await;
    assert!(
        e["params"]["message"].as_str().unwrap().contains("500"),
        "{e}"
    );
    // Exactly 500 is fine; the connection is still usable.
    let ok: Vec<String> = (0..500).map(|i| format!("u{i}")).collect();
    let r = alice.request(26, json!({ "users": ok })).await;
    assert_eq!(
        r["params"]["presence"].as_array().unwrap().len(),
        500,
        "{r}"
    );
    let list = alice.request(13, json!({})).await;
    assert_eq!(list["params"]["blocked"], json!([]), "{list}");
}

#[tokio::test]
async fn presence_follows_the_first_device_in_and_the_last_device_out() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "d").await;
    let mut bob = gw.connect("bob", "phone").await;
    befriend(&mut alice, &mut bob, "bob").await;
    let now = subscribe(&mut alice, &["bob"]).await;
    assert_eq!(
        now,
        vec![json!({"userId": "bob", "online": true, "lastSeen": null})]
    );

    // A second device: no notice. One of two leaving: no notice.
    let web = gw.connect("bob", "web").await;
    no_presence(&mut alice).await;
    drop(web);
    no_presence(&mut alice).await;
    // The last one leaving: offline, with lastSeen.
    let before = chat_gateway::model::now_ms();
    drop(bob);
    let off = presence(&mut alice).await;
    assert_eq!(
        (off["userId"].as_str(), off["online"].as_bool()),
        (Some("bob"), Some(false)),
        "{off}"
    );
    let seen = off["lastSeen"].as_i64().expect("lastSeen");
    assert!(
        seen >= before - 1000 && seen <= chat_gateway::model::now_ms(),
        "{off}"
    );
    let now = subscribe(&mut alice, &["bob"]).await;
    assert_eq!(
        now,
        vec![json!({"userId": "bob", "online": false, "lastSeen": seen})]
    );
    // The first one back: online.
    let tablet = gw.connect("bob", "tablet").await;
    assert_eq!(
        presence(&mut alice).await,
        json!({"userId": "bob", "online": true, "lastSeen": null})
    );

    // Unsubscribed: nothing more.
    assert!(subscribe(&mut alice, &[]).await.is_empty());
    drop(tablet);
    no_presence(&mut alice).await;
}

#[tokio::test]
async fn a_new_set_replaces_the_old_one() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "d").await;
    let mut bob = gw.connect("bob", "d").await;
    let mut carol = gw.connect("carol", "d").await;
    befriend(&mut bob, &mut alice, "alice").await;
    befriend(&mut carol, &mut alice, "alice").await;
    subscribe(&mut alice, &["bob"]).await;
    let now = subscribe(&mut alice, &["carol", "carol"]).await;
    assert_eq!(
        now,
        vec![json!({"userId": "carol", "online": true, "lastSeen": null})]
    );
    drop(bob);
    no_presence(&mut alice).await;
    drop(carol);
    assert_eq!(presence(&mut alice).await["userId"], "carol");
}

#[tokio::test]
async fn only_users_who_share_a_conversation_and_do_not_block_are_shown() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "d").await;
    let mut bob = gw.connect("bob", "d").await;
    let stranger = gw.connect("stranger", "d").await;
    let mut carol = gw.connect("carol", "d").await;
    befriend(&mut bob, &mut alice, "alice").await;
    // Carol shares a group with alice, no 1:1.
    carol.create_group("g", &["alice"]).await;
    let now = subscribe(&mut alice, &["bob", "stranger", "carol", "nobody"]).await;
    let online: Vec<(String, bool, Value)> = now
        .iter()
        .map(|p| {
            (
                p["userId"].as_str().unwrap().to_owned(),
                p["online"].as_bool().unwrap(),
                p["lastSeen"].clone(),
            )
        })
        .collect();
    assert_eq!(
        online,
        vec![
            ("bob".into(), true, Value::Null),
            ("stranger".into(), false, Value::Null),
            ("carol".into(), true, Value::Null),
            ("nobody".into(), false, Value::Null),
        ]
    );
    // The stranger's comings and goings are not told.
    drop(stranger);
    no_presence(&mut alice).await;

    // Bob blocks alice: she sees him offline at once, and hears nothing of him after.
    bob.request(34, json!({"userId": "alice"})).await;
    assert_eq!(
        presence(&mut alice).await,
        json!({"userId": "bob", "online": false, "lastSeen": null})
    );
    let now = subscribe(&mut alice, &["bob"]).await;
    assert_eq!(
        now,
        vec![json!({"userId": "bob", "online": false, "lastSeen": null})]
    );
    // While blocked, bob's last device leaving and his first coming back are not told.
    drop(bob);
    no_presence(&mut alice).await;
    let mut bob = gw.connect("bob", "web").await;
    no_presence(&mut alice).await;
    // Unblocked: alice sees him as he is at once, and his changes again.
    bob.request(35, json!({"userId": "alice"})).await;
    assert_eq!(
        presence(&mut alice).await,
        json!({"userId": "bob", "online": true, "lastSeen": null})
    );
    drop(bob);
    let off = presence(&mut alice).await;
    assert_eq!(off["online"], false);
    assert!(off["lastSeen"].is_i64(), "{off}");
}
