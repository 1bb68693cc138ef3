//! Uploads and downloads over real HTTP, and a SEND that carries a file, for the file tests.

use serde_json::{json, Value};

use crate::Client;

/// A download: status, the headers the file tests check, and the body.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub content_type: String,
    pub disposition: String,
    pub nosniff: String,
    pub csp: String,
    pub body: Vec<u8>,
}

/// `POST {base}/api/files` with `token`, the body, its type and `X-File-Name`: status and JSON.
pub async fn upload(
    base: &str,
    token: &str,
    name: &str,
    mime: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/files"))
        .bearer_auth(token)
        .header("content-type", mime)
        .header("x-file-name", name)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload to {base}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// GETs `url` (with `token` as bearer if given).
pub async fn fetch(url: &str, token: Option<&str>) -> Fetched {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let (nosniff, csp) = (
        header("x-content-type-options"),
        header("content-security-policy"),
    );
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Fetched {
        status,
        content_type,
        disposition,
        nosniff,
        csp,
        body,
    }
}

/// `url` as a client resolves it against the gateway `base` (the embedded store's are relative).
pub fn absolute(base: &str, url: &str) -> String {
    if url.starts_with('/') {
        format!("{base}{url}")
    } else {
        url.to_owned()
    }
}

/// `client` sends `file_id` to `to` (type 1, or 9 to a group); returns the answer (reply 0 or
/// ERROR), matched by requestId.
pub async fn send_file(
    client: &mut Client,
    kind: u64,
    to: &str,
    file_id: &str,
    rid: &str,
) -> Value {
    let frame = json!({"type": kind, "requestId": rid, "params": {
        "toMessageId": to, "message": "see this", "fileType": 1, "file": {"fileId": file_id},
        "clientMsgId": rid}});
    client.send(frame).await;
    client
        .recv_where(&format!("answer to {rid}"), |v| {
            v["requestId"] == rid && v.get("msg").is_none()
        })
        .await
}

/// Bytes that look like a PNG and are different for every `n`.
pub fn png(n: u8, len: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(n)));
    b
}
