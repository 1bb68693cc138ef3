//! A real HTTP receiver for the offline-push webhook: an axum server on a free loopback port in
//! the test process. It checks every request's signature, and answers by its [`Mode`]: accept,
//! fail with 500, or hang past the gateway's timeout — by turns at random.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::fixtures::wait_until;

/// The secret the test gateways sign with.
pub const WEBHOOK_SECRET: &str = "webhook-test-secret";
/// How long a hanging answer waits: far past any test gateway's POST timeout.
const HANG: Duration = Duration::from_secs(30);

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// 200 to everything.
    Accept,
    /// 500 to everything.
    Fail,
    /// Per request: 500 with probability `fail`, a hang with probability `hang`, else 200.
    Flaky { fail: f64, hang: f64 },
}

#[derive(Default)]
struct Seen {
    /// Accepted deliveries by `X-Chat-Delivery`, each body as posted (a repeat adds one more).
    accepted: BTreeMap<String, Vec<Value>>,
}

struct Shared {
    mode: Mutex<Mode>,
    seen: Mutex<Seen>,
    requests: AtomicUsize,
    bad_signatures: AtomicUsize,
    draws: AtomicU32,
}

/// The running receiver (stops with the test process).
pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
}

impl Receiver {
    pub async fn start(mode: Mode) -> Self {
        Self::start_with(mode, None).await
    }

    /// An `https://` receiver with `tls`'s certificate (a CA made by the test).
    pub async fn start_tls(mode: Mode, tls: pulsar_test_broker::ServerTls) -> Self {
        Self::start_with(mode, Some(tls)).await
    }

    async fn start_with(mode: Mode, tls: Option<pulsar_test_broker::ServerTls>) -> Self {
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            seen: Mutex::default(),
            requests: AtomicUsize::new(0),
            bad_signatures: AtomicUsize::new(0),
            draws: AtomicU32::new(0),
        });
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = match tls {
            Some(tls) => {
                let listener = pulsar_test_broker::TlsListener::new(listener, tls);
                tokio::spawn(async move { axum::serve(listener, app).await });
                format!("https://localhost:{port}/hook")
            }
            None => {
                tokio::spawn(async move { axum::serve(listener, app).await });
                format!("http://127.0.0.1:{port}/hook")
            }
        };
        Self { url, shared }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Every request received, whatever the answer.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::Relaxed)
    }

    pub fn bad_signatures(&self) -> usize {
        self.shared.bad_signatures.load(Ordering::Relaxed)
    }

    /// The distinct `X-Chat-Delivery` values accepted (de-duplicated, as a receiver does).
    pub fn delivered(&self) -> BTreeSet<String> {
        self.shared
            .seen
            .lock()
            .unwrap()
            .accepted
            .keys()
            .cloned()
            .collect()
    }

    /// The bodies accepted for one delivery.
    pub fn bodies(&self, delivery: &str) -> Vec<Value> {
        let seen = self.shared.seen.lock().unwrap();
        seen.accepted.get(delivery).cloned().unwrap_or_default()
    }

    /// Waits until every one of `expected` was accepted; panics with what is missing.
    pub async fn wait_for(&self, expected: &BTreeSet<String>, within: Duration) {
        let done = wait_until(within, Duration::from_millis(50), async || {
            self.delivered().is_superset(expected)
        })
        .await;
        let missing: Vec<_> = expected.difference(&self.delivered()).cloned().collect();
        assert!(
            done,
            "webhook deliveries missing after {within:?}: {missing:?} ({} requests)",
            self.requests()
        );
    }
}

/// Points `cfg` at `url` with test timings: a 300 ms POST timeout, a 50 ms first backoff, a
/// 60 s retry window, and a 60 s ack timeout.
pub fn configure(cfg: &mut chat_gateway::config::ServeConfig, url: &str) {
    cfg.webhook.offline_webhook_url = Some(url.to_owned());
    cfg.webhook.offline_webhook_secret = Some(WEBHOOK_SECRET.to_owned());
    cfg.webhook.offline_webhook_timeout_ms = 300;
    cfg.webhook.offline_webhook_backoff_ms = 50;
    cfg.webhook.offline_webhook_retry_seconds = 60;
    // No device gives a push up unacked during a test unless the test says so: that, too,
    // would post an event (group creation events reach the creator's device, unacked).
    cfg.ack_timeout_ms = 60_000;
}

/// `X-Chat-Delivery` of `message_id` for `user`.
pub fn delivery(message_id: &str, user: &str) -> String {
    format!("{message_id}:{user}")
}

/// Does `header` hold `sha256=<hex HMAC-SHA256 of body>` with [`WEBHOOK_SECRET`]?
pub fn signature_ok(header: Option<&str>, body: &[u8]) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if !signature_ok(header("x-chat-signature"), &body) {
        shared.bad_signatures.fetch_add(1, Ordering::Relaxed);
        return StatusCode::UNAUTHORIZED;
    }
    let mode = *shared.mode.lock().unwrap();
    let draw = next_draw(&shared.draws);
    match mode {
        Mode::Fail => return StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Flaky { fail, .. } if draw < fail => return StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Flaky { fail, hang } if draw < fail + hang => {
            tokio::time::sleep(HANG).await;
            return StatusCode::OK;
        }
        _ => {}
    }
    let Some(id) = header("x-chat-delivery").map(str::to_owned) else {
        return StatusCode::BAD_REQUEST;
    };
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared
        .seen
        .lock()
        .unwrap()
        .accepted
        .entry(id)
        .or_default()
        .push(value);
    StatusCode::OK
}

/// A uniform draw in [0, 1): a xorshift over a counter seeded from the clock, so each run
/// answers differently and no extra crate is needed.
fn next_draw(counter: &AtomicU32) -> f64 {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut x = (u64::from(seed) << 32 | u64::from(n)) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x % 1_000_000) as f64 / 1_000_000.0
}
