//! Files on a real S3-compatible server (moto, started by the test; installed by
//! scripts/install-test-deps.sh): uploads go to the bucket, envelopes carry presigned URLs that a
//! plain HTTP client loads, downloads through the gateway stream from the bucket, and the
//! unsent-upload sweep deletes objects there.

use std::time::Duration;

use chat_tests::files::{fetch, png, send_file, upload};
use chat_tests::fixtures::{user_token, wait_until};
use chat_tests::{s3, TestGateway};

async fn gateway(
    bucket: &str,
    tune: impl FnOnce(&mut chat_gateway::config::ServeConfig),
) -> TestGateway {
    let server = s3::server();
    let url = format!("s3://{bucket}/uploads");
    TestGateway::start_with(|c| {
        c.files.object_store_url = Some(url);
        c.files.object_store_endpoint = Some(server.endpoint());
        c.files.object_store_access_key_id = Some(s3::ACCESS_KEY.into());
        c.files.object_store_secret_access_key = Some(s3::SECRET_KEY.into());
        tune(c);
    })
    .await
}

#[tokio::test]
async fn presigned_urls_serve_the_bucket_s_bytes_without_a_token() {
    let bucket = s3::server().bucket("files").await;
    let gw = gateway(&bucket, |_| {}).await;
    let bytes = png(9, 200_000);
    let (status, up) = upload(
        &gw.http(""),
        &user_token("alice"),
        "photo.png",
        "image/png",
        bytes.clone(),
    )
    .await;
    assert_eq!(status, 200, "{up}");
    let id = up["fileId"].as_str().unwrap().to_owned();

    let mut alice = gw.connect("alice", "d").await;
    let mut bob = gw.connect("bob", "d").await;
    assert_eq!(
        send_file(&mut alice, 1, "bob", &id, "s3-1").await["type"],
        0
    );
    let env = bob.push(2).await;
    let url = env["msg"]["params"]["file"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let endpoint = s3::server().endpoint();
    assert!(
        url.starts_with(&format!("{endpoint}/{bucket}/uploads/{id}?")),
        "{url}"
    );
    // moto serves without checking signatures, so this is what shows the URL is presigned.
    assert!(
        url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=7200"),
        "{url}"
    );

    let got = fetch(&url, None).await;
    assert_eq!(
        (got.status, got.body == bytes),
        (200, true),
        "status {}",
        got.status
    );
    assert_eq!(got.content_type, "image/png");
    assert!(got.disposition.starts_with("inline"), "{}", got.disposition);

    let api = gw.http(&format!("/api/files/{id}"));
    let through = fetch(&api, Some(&user_token("bob"))).await;
    assert_eq!((through.status, through.body == bytes), (200, true));
    assert_eq!(
        (through.nosniff.as_str(), through.csp.as_str()),
        ("nosniff", "sandbox")
    );
    assert_eq!(fetch(&api, Some(&user_token("carol"))).await.status, 404);
}

#[tokio::test]
async fn the_sweep_deletes_unsent_objects_from_the_bucket() {
    let bucket = s3::server().bucket("sweep").await;
    let gw = gateway(&bucket, |c| c.files.unsent_file_seconds = 1).await;
    let (_, up) = upload(
        &gw.http(""),
        &user_token("alice"),
        "doc.pdf",
        "application/pdf",
        b"%PDF-1.4".to_vec(),
    )
    .await;
    let id = up["fileId"].as_str().unwrap();
    let object = format!("{}/{bucket}/uploads/{id}", s3::server().endpoint());
    // moto accepts unsigned requests: the object's existence, read straight from the bucket.
    assert_eq!(
        fetch(&object, None).await.status,
        200,
        "the upload is in the bucket"
    );
    let gone = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || fetch(&object, None).await.status == 404,
    )
    .await;
    assert!(gone, "the unsent upload's object was not deleted");
}
