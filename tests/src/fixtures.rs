//! The fixtures every test shares, written once: the test secret and its tokens, unique names,
//! temp dirs and free ports, the gateway config tests start from, connecting a user, the
//! "two users exchange a message" check, HTTP calls on a gateway's ports, waiting for a
//! condition with a deadline, and the message and status helpers of the store tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chat_gateway::auth::Auth;
use chat_gateway::config::ServeConfig;
use chat_gateway::store::NewMessage;
use serde_json::Value;

use crate::Client;

/// The JWT secret of every test gateway, in process or not.
pub const SECRET: &str = "test-secret-0123456789abcdef";

/// How long a user token is valid: longer than any test.
const TOKEN_TTL_SECONDS: u64 = 3600;

/// A name no other test and no other test process uses: `{pid}-{n}`.
pub fn unique_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory; the clock in its name keeps a directory a crashed run of an earlier
    /// process with the same pid left behind from being reused.
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!("chat-test-{tag}-{}-{nanos:x}", unique_id()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port (bound then released; the server binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test config: loopback port 0 for both ports, the test secret, pod `pod-0`, a 2 s drain,
/// other timers left at their defaults.
pub fn test_config(dir: &Path) -> ServeConfig {
    let mut cfg = ServeConfig::embedded(dir);
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin_listen = "127.0.0.1:0".parse().unwrap();
    cfg.store.jwt_secret = Some(SECRET.to_owned());
    cfg.pod_name = Some("pod-0".to_owned());
    cfg.drain_seconds = 2;
    cfg
}

/// Signs and checks tokens with [`SECRET`].
pub fn auth() -> Auth {
    Auth::new(SECRET.as_bytes())
}

/// A token for `user`, whose display name is the id capitalized (`alice` → `Alice`).
pub fn user_token(user: &str) -> String {
    auth()
        .issue(user, Some(&capitalize(user)), false, TOKEN_TTL_SECONDS)
        .unwrap()
}

/// A service token, as the HTTP push and kick API require.
pub fn service_token() -> String {
    auth().issue("ops", None, true, TOKEN_TTL_SECONDS).unwrap()
}

pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Connects `user`'s `device` to the WebSocket endpoint `ws_url` and reads WELCOME.
pub async fn connect(ws_url: &str, user: &str, device: &str) -> Client {
    Client::connect(ws_url, &user_token(user), Some(device))
        .await
        .unwrap_or_else(|e| panic!("connect {user}:{device} to {ws_url}: {e}"))
}

/// `from` sends `text` to `to_user`, whose connection `to` must get it pushed; returns the push.
pub async fn exchange(from: &mut Client, to: &mut Client, to_user: &str, text: &str) -> Value {
    let reply = from.send_to(to_user, text, None).await;
    let env = to.push(2).await;
    assert_eq!(env["msg"]["params"]["message"], text, "{env}");
    assert_eq!(env["messageId"], reply["params"]["messageId"], "{env}");
    env
}

/// POSTs `body` as JSON to `url` (with `token` as bearer if given); returns the status and the
/// JSON answer (null when it is not JSON).
pub async fn post_json(url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// GETs `url` and returns its JSON answer.
pub async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// The HTTP status `url` answers (0: no answer within `wait`).
pub async fn status_of(url: &str, wait: Duration) -> u16 {
    let http = reqwest::Client::builder().timeout(wait).build().unwrap();
    match http.get(url).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// Calls `check` every `every` until it is true (returns true) or `within` passed (false).
pub async fn wait_until(
    within: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until `readyz_url` answers 200, for up to `within`; panics naming `what` if it does
/// not.
pub async fn wait_ready(readyz_url: &str, within: Duration, what: &str) {
    let ready = wait_until(within, Duration::from_millis(50), async || {
        status_of(readyz_url, Duration::from_secs(5)).await == 200
    })
    .await;
    assert!(
        ready,
        "{what}: {readyz_url} did not answer 200 within {within:?}"
    );
}

/// A 1:1 or group message for the store API, from `from` (display name: the id in capitals).
pub fn new_message(from: &str, to: &str, body: &str, client_msg_id: Option<&str>) -> NewMessage {
    NewMessage {
        from: from.into(),
        from_name: from.to_uppercase(),
        to: to.into(),
        body: body.into(),
        file_type: 0,
        file: None,
        client_msg_id: client_msg_id.map(Into::into),
        request_id: format!("req-{body}"),
    }
}

/// 200, or the error's status.
pub fn status<T>(r: chat_gateway::Result<T>) -> u16 {
    r.map(|_| 200).unwrap_or_else(|e| e.status())
}
