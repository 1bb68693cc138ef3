//! Files (DESIGN §11): upload, SEND with a file, the envelope's signed URL, downloads and their
//! access rules and headers, the size limit and the unsent-upload sweep, on SQLite and
//! PostgreSQL. (The S3 store: tests/tests/files_s3.rs.)

use std::time::Duration;

use chat_tests::files::{absolute, fetch, png, send_file, upload};
use chat_tests::fixtures::user_token;
use chat_tests::{postgres, TestGateway};
use serde_json::json;

/// Upload → SEND with the file → the recipient's push, the sender's other device, SYNC and
/// catch-up all carry `file` with a URL that serves the bytes without a token.
async fn round_trip(gw: &TestGateway) {
    let base = gw.http("");
    let bytes = png(1, 3000);
    let (status, up) = upload(
        &base,
        &user_token("alice"),
        "cat pic.png",
        "image/png",
        bytes.clone(),
    )
    .await;
    assert_eq!(status, 200, "{up}");
    let id = up["fileId"].as_str().unwrap().to_owned();
    assert_eq!(
        up,
        json!({"fileId": id, "name": "cat pic.png", "size": bytes.len(), "mime": "image/png"})
    );

    let mut alice = gw.connect("alice", "phone").await;
    let mut alice_web = gw.connect("alice", "web").await;
    let mut bob = gw.connect("bob", "phone").await;
    let r0 = send_file(&mut alice, 1, "bob", &id, "f-1").await;
    assert_eq!(
        (r0["type"].as_i64(), r0["status"].as_i64()),
        (Some(0), Some(200)),
        "{r0}"
    );
    for c in [&mut bob, &mut alice_web] {
        let env = c.push(2).await;
        let file = &env["msg"]["params"]["file"];
        assert_eq!(env["msg"]["params"]["fileType"], "1");
        assert_eq!(
            (&file["fileId"], &file["name"], &file["size"], &file["mime"]),
            (
                &json!(id),
                &json!("cat pic.png"),
                &json!(bytes.len()),
                &json!("image/png")
            ),
            "{env}"
        );
        let got = fetch(&absolute(&base, file["url"].as_str().unwrap()), None).await;
        assert_eq!((got.status, got.body == bytes), (200, true), "{got:?}");
        assert_eq!(
            (
                got.content_type.as_str(),
                got.nosniff.as_str(),
                got.csp.as_str()
            ),
            ("image/png", "nosniff", "sandbox")
        );
        assert!(got.disposition.starts_with("inline"), "{}", got.disposition);
    }
    // The same clientMsgId again: the first reply, nothing delivered twice.
    let again = send_file(&mut alice, 1, "bob", &id, "f-1").await;
    assert_eq!(again["params"]["messageId"], r0["params"]["messageId"]);

    let conv = r0["params"]["conversationId"].as_str().unwrap();
    bob.send(
        json!({"type": 13, "params": {"conversationId": conv, "afterSeq": 0}, "requestId": "s"}),
    )
    .await;
    let page = bob.recv_where("sync", |v| v["requestId"] == "s").await;
    let file = &page["params"]["messages"][0]["msg"]["params"]["file"];
    assert_eq!(file["fileId"], id.as_str(), "{page}");
    let got = fetch(&absolute(&base, file["url"].as_str().unwrap()), None).await;
    assert_eq!((got.status, got.body == bytes), (200, true));

    drop(bob);
    let mut carol_group = gw.connect("carol", "phone").await;
    let group = alice.create_group("pics", &["carol"]).await;
    let r0 = send_file(&mut alice, 9, &group, &id, "f-2").await;
    assert_eq!(r0["type"], 0, "{r0}");
    let env = carol_group.user_push(10).await;
    assert_eq!(env["msg"]["params"]["file"]["fileId"], id.as_str(), "{env}");
    // Catch-up on connect: bob was away when nothing new came, so connect a new device of carol.
    let mut carol_tab = gw.connect("carol", "tab").await;
    let env = carol_tab.user_push(10).await;
    assert!(
        env["msg"]["params"]["file"]["url"]
            .as_str()
            .unwrap()
            .contains(&id),
        "{env}"
    );
}

#[tokio::test]
async fn a_file_goes_from_upload_to_every_envelope_on_sqlite() {
    let gw = TestGateway::start().await;
    round_trip(&gw).await;
}

#[tokio::test]
async fn a_file_goes_from_upload_to_every_envelope_on_postgres() {
    let url = postgres::database("files").await;
    let gw = TestGateway::start_with(|c| c.store.database_url = Some(url)).await;
    round_trip(&gw).await;
}

/// Only the uploader and the conversation's participants download; only the uploader sends it.
async fn access_rules(gw: &TestGateway) {
    let base = gw.http("");
    let (_, up) = upload(
        &base,
        &user_token("alice"),
        "notes.html",
        "text/html",
        b"<script>x</script>".to_vec(),
    )
    .await;
    let id = up["fileId"].as_str().unwrap().to_owned();
    let api = gw.http(&format!("/api/files/{id}"));
    assert_eq!(
        fetch(&api, Some(&user_token("alice"))).await.status,
        200,
        "the uploader, unsent"
    );
    assert_eq!(
        fetch(&api, Some(&user_token("bob"))).await.status,
        404,
        "not sent to bob yet"
    );
    assert_eq!(fetch(&api, None).await.status, 401);

    let mut mallory = gw.connect("mallory", "d").await;
    let err = send_file(&mut mallory, 1, "bob", &id, "steal").await;
    assert_eq!(
        (err["type"].as_i64(), err["status"].as_i64()),
        (Some(500), Some(403)),
        "{err}"
    );
    let err = send_file(
        &mut mallory,
        1,
        "bob",
        "0123456789abcdef0123456789abcdef",
        "none",
    )
    .await;
    assert_eq!(err["status"], 404, "{err}");
    mallory.send(json!({"type": 1, "requestId": "bad", "params": {"toMessageId": "bob", "message": "", "file": "x"}})).await;
    let err = mallory
        .recv_where("bad file", |v| v["requestId"] == "bad")
        .await;
    assert_eq!(err["status"], 400, "{err}");
    assert_eq!(
        mallory.send_to("bob", "still here", None).await["type"],
        0,
        "connection survives"
    );

    let mut alice = gw.connect("alice", "d").await;
    assert_eq!(send_file(&mut alice, 1, "bob", &id, "ok").await["type"], 0);
    let bob = fetch(&api, Some(&user_token("bob"))).await;
    assert_eq!(
        (bob.status, bob.body.as_slice()),
        (200, &b"<script>x</script>"[..])
    );
    assert!(
        bob.disposition.starts_with("attachment"),
        "{}",
        bob.disposition
    );
    assert_eq!(
        (bob.nosniff.as_str(), bob.csp.as_str()),
        ("nosniff", "sandbox")
    );
    assert_eq!(
        fetch(&api, Some(&user_token("carol"))).await.status,
        404,
        "a stranger"
    );
    let forged = gw.http(&format!("/files/{id}?expires=99999999999&sig=00"));
    assert_eq!(fetch(&forged, None).await.status, 404);
}

#[tokio::test]
async fn files_reach_only_their_uploader_and_participants_on_sqlite() {
    access_rules(&TestGateway::start().await).await;
}

#[tokio::test]
async fn files_reach_only_their_uploader_and_participants_on_postgres() {
    let url = postgres::database("files_acl").await;
    access_rules(&TestGateway::start_with(|c| c.store.database_url = Some(url)).await).await;
}

#[tokio::test]
async fn uploads_over_the_limit_get_413_declared_or_streamed() {
    let gw = TestGateway::start_with(|c| c.files.max_file_bytes = 1000).await;
    let base = gw.http("");
    let token = user_token("alice");
    let (status, err) = upload(
        &base,
        &token,
        "big.bin",
        "application/octet-stream",
        vec![7; 1001],
    )
    .await;
    assert_eq!(status, 413, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("1000 bytes"),
        "{err}"
    );
    // No Content-Length: the limit holds while the body streams in.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..5).map(|_| Ok(vec![1u8; 300])).collect();
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/files"))
        .bearer_auth(&token)
        .header("x-file-name", "stream.bin")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let (status, ok) = upload(
        &base,
        &token,
        "fits.bin",
        "application/octet-stream",
        vec![7; 1000],
    )
    .await;
    assert_eq!((status, &ok["size"]), (200, &json!(1000)));
    let (status, _) = upload(&base, "junk", "x", "text/plain", vec![1]).await;
    assert_eq!(status, 401);
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/files"))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400, "X-File-Name is required");
}

#[tokio::test]
async fn unsent_uploads_are_swept_and_sent_ones_stay() {
    let gw = TestGateway::start_with(|c| c.files.unsent_file_seconds = 1).await;
    let base = gw.http("");
    let token = user_token("alice");
    let (_, kept) = upload(&base, &token, "kept.png", "image/png", png(2, 10)).await;
    let (_, swept) = upload(&base, &token, "swept.png", "image/png", png(3, 10)).await;
    let mut alice = gw.connect("alice", "d").await;
    assert_eq!(
        send_file(&mut alice, 1, "bob", kept["fileId"].as_str().unwrap(), "k").await["type"],
        0
    );
    let url =
        |f: &serde_json::Value| gw.http(&format!("/api/files/{}", f["fileId"].as_str().unwrap()));
    let gone = chat_tests::fixtures::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || fetch(&url(&swept), Some(&token)).await.status == 404,
    )
    .await;
    assert!(gone, "the unsent upload was not swept");
    assert_eq!(
        fetch(&url(&kept), Some(&token)).await.status,
        200,
        "a sent upload stays"
    );
    let file = gw
        .dir
        .path()
        .join("files")
        .join(swept["fileId"].as_str().unwrap());
    assert!(!file.exists(), "its bytes are gone too");
}

/// What retention and user erasure call: the row goes (nobody is served the file, messages read
/// back without it), then the bytes; deleting again is fine.
#[tokio::test]
async fn delete_removes_a_files_row_and_its_bytes() {
    let dir = chat_tests::TempDir::new("files-delete");
    let cfg = chat_tests::fixtures::test_config(dir.path());
    chat_gateway::store::sqlite::SqliteStore::migrate(dir.path())
        .await
        .unwrap();
    let files = chat_gateway::files::Files::from_config(&cfg, "secret")
        .await
        .unwrap();
    let body =
        futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"hello"))]);
    let f = files
        .upload("alice", "a.txt".into(), "text/plain".into(), body)
        .await
        .unwrap();
    assert_eq!(files.readable("alice", &f.id).await.unwrap().size, 5);
    let path = dir.path().join("files").join(&f.id);
    assert!(path.exists(), "the bytes are under the data dir");
    files.delete(&f.id).await.unwrap();
    let err = files.readable("alice", &f.id).await.unwrap_err();
    assert_eq!(err.status(), 404);
    assert!(!path.exists(), "the bytes are gone");
    files.delete(&f.id).await.expect("deleting again is fine");
}

/// DESIGN §11 RECALL: a recalled message reads back without `file`, and the file is served to
/// nobody but its uploader.
#[tokio::test]
async fn a_recalled_message_s_file_reaches_only_its_uploader() {
    let gw = TestGateway::start().await;
    let (_, up) = upload(
        &gw.http(""),
        &user_token("alice"),
        "p.png",
        "image/png",
        png(4, 10),
    )
    .await;
    let id = up["fileId"].as_str().unwrap().to_owned();
    let mut alice = gw.connect("alice", "d").await;
    let r0 = send_file(&mut alice, 1, "bob", &id, "r").await;
    let api = gw.http(&format!("/api/files/{id}"));
    assert_eq!(fetch(&api, Some(&user_token("bob"))).await.status, 200);
    let r = alice
        .request(32, json!({"messageId": r0["params"]["messageId"]}))
        .await;
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(fetch(&api, Some(&user_token("bob"))).await.status, 404);
    assert_eq!(fetch(&api, Some(&user_token("alice"))).await.status, 200);
    let mut bob = gw.connect("bob", "d").await;
    let conv = r0["params"]["conversationId"].as_str().unwrap();
    bob.send(json!({"type": 13, "params": {"conversationId": conv}, "requestId": "s"}))
        .await;
    let page = bob.recv_where("sync", |v| v["requestId"] == "s").await;
    let params = &page["params"]["messages"][0]["msg"]["params"];
    assert_eq!(params["recalled"], true, "{page}");
    assert!(params.get("file").is_none(), "{page}");
}
