//! Group administration (v1.1, DESIGN §11: 28–31): roles, and every change stored as a group
//! event in the group's conversation.

use chat_tests::{Client, TestGateway};
use serde_json::{json, Value};

fn status(v: &Value) -> (Option<u64>, Option<u64>) {
    (v["type"].as_u64(), v["status"].as_u64())
}

async fn sync_seqs(c: &mut Client, conversation: &str) -> Vec<i64> {
    let page = c
        .request(13, json!({"conversationId": conversation, "afterSeq": 0}))
        .await;
    page["params"]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|m| m["msg"]["params"]["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn owners_and_admins_remove_members_who_receive_their_removal_and_nothing_after() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let mut carol = gw.connect("carol", "phone").await;
    let mut dave = gw.connect("dave", "phone").await;
    let gid = alice.create_group("team", &["bob", "carol", "dave"]).await;
    let conversation = format!("grp:{gid}");
    let r = alice
        .request(
            31,
            json!({"groupId": gid, "userId": "bob", "role": "admin"}),
        )
        .await;
    assert_eq!(status(&r), (Some(31), Some(200)), "{r}");
    assert_eq!(
        r["params"]["roles"],
        json!({"alice": "owner", "bob": "admin", "carol": "member", "dave": "member"})
    );
    let e = carol
        .request(28, json!({"groupId": gid, "members": ["dave"]}))
        .await;
    assert_eq!(
        status(&e),
        (Some(500), Some(403)),
        "a member may not remove: {e}"
    );
    // An admin may not remove the owner or another admin.
    let r = alice
        .request(
            31,
            json!({"groupId": gid, "userId": "carol", "role": "admin"}),
        )
        .await;
    assert_eq!(r["status"], 200, "{r}");
    for target in ["alice", "carol"] {
        let e = bob
            .request(28, json!({"groupId": gid, "members": [target]}))
            .await;
        assert_eq!(e["status"], 403, "{target}: {e}");
    }
    let r = bob
        .request(28, json!({"groupId": gid, "members": ["dave"]}))
        .await;
    assert_eq!(status(&r), (Some(28), Some(200)), "{r}");
    assert_eq!(r["params"]["members"], json!(["alice", "bob", "carol"]));
    assert!(r["params"]["roles"].get("dave").is_none(), "{r}");
    for c in [&mut alice, &mut carol, &mut dave] {
        let e = c.group_event("removed").await;
        assert_eq!(
            e["msg"]["params"]["system"],
            json!({"event": "removed", "actor": "bob", "members": ["dave"]})
        );
        assert_eq!(
            e["msg"]["params"]["seq"], 4,
            "created 1, roles 2 and 3, removed 4"
        );
    }
    // dave: no more sends, no later messages, but reads up to his removal.
    let e = dave
        .request(9, json!({"toMessageId": gid, "message": "hello?"}))
        .await;
    assert_eq!(e["status"], 403, "{e}");
    alice.send_to_group(&gid, "without dave", None).await;
    assert_eq!(carol.user_push(10).await["msg"]["params"]["seq"], 5);
    assert_eq!(sync_seqs(&mut dave, &conversation).await, [1, 2, 3, 4]);
    assert_eq!(sync_seqs(&mut carol, &conversation).await, [1, 2, 3, 4, 5]);
    // Not a member any more: not listed, and ERROR for anything about the group.
    let e = dave.request(29, json!({"groupId": gid, "name": "x"})).await;
    assert_eq!(e["status"], 403, "{e}");
}

#[tokio::test]
async fn rename_set_role_hand_over_and_dissolve() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let mut carol = gw.connect("carol", "phone").await;
    let gid = alice.create_group("team", &["bob", "carol"]).await;
    let e = carol
        .request(29, json!({"groupId": gid, "name": "mine"}))
        .await;
    assert_eq!(e["status"], 403, "{e}");
    let e = bob
        .request(
            31,
            json!({"groupId": gid, "userId": "carol", "role": "admin"}),
        )
        .await;
    assert_eq!(e["status"], 403, "only the owner sets roles: {e}");
    let r = alice
        .request(29, json!({"groupId": gid, "name": "renamed"}))
        .await;
    assert_eq!(
        (status(&r), r["params"]["name"].as_str()),
        ((Some(29), Some(200)), Some("renamed"))
    );
    let ev = bob.group_event("renamed").await;
    assert_eq!(
        ev["msg"]["params"]["system"],
        json!({"event": "renamed", "actor": "alice", "members": [], "name": "renamed"})
    );
    let list = bob.request(13, json!({})).await;
    assert_eq!(
        list["params"]["conversations"][0]["name"], "renamed",
        "{list}"
    );
    // Handing ownership over: the old owner becomes an admin.
    let r = alice
        .request(
            31,
            json!({"groupId": gid, "userId": "bob", "role": "owner"}),
        )
        .await;
    assert_eq!(
        r["params"]["roles"],
        json!({"alice": "admin", "bob": "owner", "carol": "member"}),
        "{r}"
    );
    let ev = carol.group_event("role").await;
    assert_eq!(
        ev["msg"]["params"]["system"],
        json!({"event": "role", "actor": "alice", "members": ["bob"], "role": "owner"})
    );
    let e = alice.request(30, json!({"groupId": gid})).await;
    assert_eq!(e["status"], 403, "only the owner dissolves: {e}");
    let e = bob
        .request(
            31,
            json!({"groupId": gid, "userId": "bob", "role": "member"}),
        )
        .await;
    assert_eq!(e["status"], 400, "{e}");
    let r = bob.request(30, json!({"groupId": gid})).await;
    assert_eq!(r["params"], json!({"groupId": gid}), "{r}");
    for c in [&mut alice, &mut carol] {
        let ev = c.group_event("dissolved").await;
        assert_eq!(ev["msg"]["params"]["system"]["actor"], "bob");
    }
    let e = alice
        .request(9, json!({"toMessageId": gid, "message": "anyone?"}))
        .await;
    assert_eq!(e["status"], 404, "sends to a dissolved group: {e}");
    let e = alice
        .request(11, json!({"groupId": gid, "members": ["dave"]}))
        .await;
    assert_eq!(e["status"], 404, "{e}");
    let list = carol.request(13, json!({})).await;
    assert_eq!(list["params"]["conversations"], json!([]), "{list}");
}

#[tokio::test]
async fn an_owner_who_leaves_hands_over_to_the_longest_standing_admin() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut dave = gw.connect("dave", "phone").await;
    let gid = alice.create_group("team", &["bob", "carol"]).await;
    alice
        .request(11, json!({"groupId": gid, "members": ["dave"]}))
        .await;
    // dave joined last but is an admin: admins come first.
    for (user, role) in [("dave", "admin"), ("carol", "member")] {
        let r = alice
            .request(31, json!({"groupId": gid, "userId": user, "role": role}))
            .await;
        assert_eq!(r["status"], 200, "{r}");
    }
    let r = alice.request(12, json!({"groupId": gid})).await;
    assert_eq!(status(&r), (Some(12), Some(200)), "{r}");
    let left = alice.group_event("left").await;
    assert_eq!(left["msg"]["params"]["system"]["members"], json!(["alice"]));
    let role = dave
        .recv_where("dave made owner", |v| {
            v["msg"]["params"]["system"]["role"] == "owner"
        })
        .await;
    assert_eq!(
        role["msg"]["params"]["system"],
        json!({"event": "role", "actor": "alice", "members": ["dave"], "role": "owner"})
    );
    let r = dave
        .request(29, json!({"groupId": gid, "name": "dave's"}))
        .await;
    assert_eq!(
        r["params"]["roles"],
        json!({"bob": "member", "carol": "member", "dave": "owner"}),
        "{r}"
    );
}

#[tokio::test]
async fn bad_group_administration_frames_get_clear_errors() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let gid = alice.create_group("team", &["bob"]).await;
    for (kind, params, want) in [
        (
            31,
            json!({"groupId": gid, "userId": "bob", "role": "king"}),
            400,
        ),
        (
            31,
            json!({"groupId": gid, "userId": "zed", "role": "admin"}),
            404,
        ),
        (28, json!({"groupId": gid}), 400),
        (28, json!({"groupId": gid, "members": ["zed"]}), 404),
        (28, json!({"groupId": gid, "members": ["alice"]}), 400),
        (29, json!({"groupId": gid, "name": "  "}), 400),
        (30, json!({"groupId": "no-such-group"}), 404),
    ] {
        let e = alice.request(kind, params.clone()).await;
        assert_eq!(status(&e), (Some(500), Some(want)), "{kind} {params}: {e}");
    }
    assert_eq!(
        alice.send_to_group(&gid, "still fine", None).await["status"],
        200
    );
}
