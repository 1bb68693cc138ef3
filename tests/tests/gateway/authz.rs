//! Authorisation everywhere (issue 17 point 10): no user reads, acks, syncs, recalls, marks or
//! downloads what is not theirs — a stranger never, a former group member only up to the event
//! that ended its membership — and the service API answers no client token. Every check over
//! real WebSockets and real HTTP.

use chat_tests::files::{fetch, upload};
use chat_tests::fixtures::{post_json, service_token, user_token};
use chat_tests::{Client, TestGateway};
use serde_json::{json, Value};

/// The ERROR status of `r`, asserting it is an ERROR.
fn status(r: &Value) -> u64 {
    assert_eq!(r["type"], 500, "expected an ERROR, got {r}");
    r["status"].as_u64().unwrap_or(0)
}

/// A SYNC page's seqs.
async fn synced_seqs(c: &mut Client, conversation: &str) -> Result<Vec<i64>, Value> {
    let r = c
        .request(13, json!({"conversationId": conversation, "afterSeq": 0}))
        .await;
    if r["type"] != 14 {
        return Err(r);
    }
    Ok(r["params"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg"]["params"]["seq"].as_i64().unwrap())
        .collect())
}

/// A stranger to a 1:1 conversation can neither ACK, SYNC, READ-mark, TYPE into nor RECALL
/// anything of it.
#[tokio::test]
async fn a_stranger_touches_nothing_of_a_conversation_it_is_not_in() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let mut eve = gw.connect("eve", "phone").await;
    let sent = alice.send_to("bob", "for bob only", None).await;
    let env = bob.push(2).await;
    let (msgid, conversation) = (
        env["messageId"].as_str().unwrap().to_owned(),
        sent["params"]["conversationId"]
            .as_str()
            .unwrap()
            .to_owned(),
    );

    let ack = eve.request(15, json!({"msgid": msgid})).await;
    assert_eq!(status(&ack), 403, "ACK of someone else's message: {ack}");
    let sync = synced_seqs(&mut eve, &conversation).await.unwrap_err();
    assert_eq!(status(&sync), 403, "SYNC of someone else's conversation");
    let read = eve
        .request(18, json!({"conversationId": conversation, "seq": 1}))
        .await;
    assert_eq!(status(&read), 403, "READ in someone else's conversation");
    let typing = eve
        .request(
            24,
            json!({"conversationId": conversation, "state": "start"}),
        )
        .await;
    assert_eq!(
        status(&typing),
        403,
        "TYPING into someone else's conversation"
    );
    let recall = eve.request(32, json!({"messageId": msgid})).await;
    assert_eq!(status(&recall), 403, "RECALL of someone else's message");
    // The recipient may not recall the sender's message either.
    let recall = bob.request(32, json!({"messageId": msgid})).await;
    assert_eq!(status(&recall), 403, "RECALL by the recipient");
    // And the list eve syncs does not name the conversation.
    let list = eve.request(13, json!({})).await;
    assert_eq!(list["params"]["conversations"], json!([]), "{list}");
    // The message is untouched: bob still acks it.
    bob.ack(&env).await;
    assert_eq!(bob.reply(16).await["type"], 16);
}

/// A user who left a group, and one who was removed, read and ACK the group's messages up to the
/// event that ended their membership and nothing after it; they can no longer send, mark it
/// read, type in it, or add anyone.
#[tokio::test]
async fn former_group_members_ack_and_read_only_up_to_their_leaving() {
    let gw = TestGateway::start().await;
    let mut owner = gw.connect("owner", "phone").await;
    let mut leaver = gw.connect("leaver", "phone").await;
    let mut removed = gw.connect("removed", "phone").await;
    let group = owner.create_group("g", &["leaver", "removed"]).await;
    let conversation = format!("grp:{group}");
    let before = owner.send_to_group(&group, "before", None).await;
    let before_env = leaver.user_push(10).await;
    assert_eq!(before_env["messageId"], before["params"]["messageId"]);
    let before_removed = removed.user_push(10).await;

    let left = leaver.request(12, json!({"groupId": group})).await;
    assert_eq!(left["type"], 12, "{left}");
    let kicked = owner
        .request(28, json!({"groupId": group, "members": ["removed"]}))
        .await;
    assert_eq!(kicked["type"], 28, "{kicked}");
    let removed_event = removed.group_event("removed").await;
    let after = owner.send_to_group(&group, "after", None).await;
    let after_id = after["params"]["messageId"].as_str().unwrap().to_owned();
    let after_seq = after["params"]["seq"].as_i64().unwrap();

    for c in [&mut leaver, &mut removed] {
        // What came after the membership ended: no ACK, no SYNC of it.
        let ack = c.request(15, json!({"msgid": after_id})).await;
        assert_eq!(status(&ack), 403, "ACK after leaving: {ack}");
        let seqs = synced_seqs(c, &conversation)
            .await
            .expect("SYNC up to leaving");
        assert!(
            !seqs.contains(&after_seq) && !seqs.is_empty(),
            "a former member reads up to its leaving only: {seqs:?}"
        );
        // No longer a member: no send, no READ, no TYPING, no ADD.
        let send = c
            .request(9, json!({"toMessageId": group, "message": "still here?"}))
            .await;
        assert_eq!(status(&send), 403, "{send}");
        let read = c
            .request(18, json!({"conversationId": conversation, "seq": 1}))
            .await;
        assert_eq!(status(&read), 403, "{read}");
        let typing = c
            .request(
                24,
                json!({"conversationId": conversation, "state": "start"}),
            )
            .await;
        assert_eq!(status(&typing), 403, "{typing}");
        let add = c
            .request(11, json!({"groupId": group, "members": ["eve"]}))
            .await;
        assert_eq!(status(&add), 403, "{add}");
    }
    // What they could read, they may still ACK.
    leaver.ack(&before_env).await;
    assert_eq!(leaver.reply(16).await["type"], 16);
    removed.ack(&before_removed).await;
    assert_eq!(removed.reply(16).await["type"], 16);
    removed.ack(&removed_event).await;
    assert_eq!(removed.reply(16).await["type"], 16, "its own removal");
}

/// Files: only the uploader and those who could read a message carrying it download it; a
/// stranger, a member who joined later and a member who left before it get 404.
#[tokio::test]
async fn files_reach_only_those_who_could_read_the_message_carrying_them() {
    let gw = TestGateway::start().await;
    let base = gw.http("");
    let mut owner = gw.connect("fowner", "phone").await;
    let mut leaver = gw.connect("fleaver", "phone").await;
    let group = owner.create_group("files", &["fleaver"]).await;
    let (status_code, before) = upload(
        &base,
        &user_token("fowner"),
        "before.txt",
        "text/plain",
        b"before".to_vec(),
    )
    .await;
    assert_eq!(status_code, 200, "{before}");
    let send_file = |id: &Value| json!({"toMessageId": group, "message": "file", "fileType": 4, "file": {"fileId": id}});
    let r = owner.request(9, send_file(&before["fileId"])).await;
    assert_eq!(r["type"], 0, "{r}");
    leaver.user_push(10).await;
    let left = leaver.request(12, json!({"groupId": group})).await;
    assert_eq!(left["type"], 12, "{left}");
    let (_, after) = upload(
        &base,
        &user_token("fowner"),
        "after.txt",
        "text/plain",
        b"after".to_vec(),
    )
    .await;
    let r = owner.request(9, send_file(&after["fileId"])).await;
    assert_eq!(r["type"], 0, "{r}");
    let added = owner
        .request(11, json!({"groupId": group, "members": ["flate"]}))
        .await;
    assert_eq!(added["type"], 11, "{added}");

    let url = |f: &Value| gw.http(&format!("/api/files/{}", f["fileId"].as_str().unwrap()));
    let get = |f: &Value, user: &str| {
        let (url, token) = (url(f), user_token(user));
        async move { fetch(&url, Some(&token)).await.status }
    };
    assert_eq!(get(&before, "fowner").await, 200, "the uploader");
    assert_eq!(get(&after, "fowner").await, 200, "the uploader");
    assert_eq!(
        get(&before, "fleaver").await,
        200,
        "sent while it was a member"
    );
    assert_eq!(get(&after, "fleaver").await, 404, "sent after it left");
    assert_eq!(get(&before, "flate").await, 404, "sent before it joined");
    assert_eq!(get(&before, "fstranger").await, 404, "never a member");
    assert_eq!(
        fetch(&url(&before), None).await.status,
        401,
        "no token at all"
    );
}

/// The service API (push, kick, erase, the backend API's send and history) answers a service
/// token only: a client token gets 403, no token 401 — and nothing happens.
#[tokio::test]
async fn the_service_api_refuses_client_tokens() {
    let gw = TestGateway::start().await;
    let mut alice = gw.connect("salice", "phone").await;
    let mut bob = gw.connect("sbob", "phone").await;
    let sent = alice.send_to("sbob", "hi", None).await;
    bob.push(2).await;
    let conversation = sent["params"]["conversationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = user_token("salice");
    let encoded = conversation.replace(':', "%3A");
    let posts = [
        (
            "/message/send",
            json!({"to": ["sbob"], "msg": {"forged": true}}),
        ),
        ("/api/users/sbob/kick", json!({})),
        (
            "/api/messages",
            json!({"from": "sbob", "to": "salice", "message": "forged"}),
        ),
    ];
    for (path, body) in posts {
        let (code, answer) = post_json(&gw.http(path), Some(&client), body.clone()).await;
        assert_eq!(code, 403, "{path} with a client token: {answer}");
        let (code, answer) = post_json(&gw.http(path), None, body).await;
        assert_eq!(code, 401, "{path} without a token: {answer}");
    }
    let http = reqwest::Client::new();
    let history = gw.http(&format!("/api/conversations/{encoded}/messages"));
    let erase = gw.http("/api/users/sbob");
    for (what, req) in [
        ("history", http.get(&history).bearer_auth(&client)),
        ("erase", http.delete(&erase).bearer_auth(&client)),
    ] {
        let code = req.send().await.unwrap().status().as_u16();
        assert_eq!(code, 403, "{what} with a client token");
    }
    // Nothing happened: bob is still connected and got no forged push; the service token works.
    assert!(bob
        .quiet_for(std::time::Duration::from_millis(300))
        .await
        .is_none());
    let code = http
        .get(&history)
        .bearer_auth(service_token())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(code, 200, "history with the service token");
}
