//! Senders: users sending 1:1 messages with `clientMsgId`s through a cluster whose pods fail
//! under them, resending what went unanswered, and the log of what each one was answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::RETRY_PAUSE;
use crate::fixtures::wait_until;
use crate::Client;

/// How long a sender waits for a reply before it resends (same `clientMsgId`) on a new connection.
const REPLY_WAIT: Duration = Duration::from_secs(10);

/// One reply 0 as a sender got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
}

impl Stored {
    fn from_params(p: &Value) -> Self {
        Self {
            message_id: p["messageId"].as_str().expect("messageId").to_owned(),
            conversation_id: p["conversationId"]
                .as_str()
                .expect("conversationId")
                .to_owned(),
            seq: p["seq"].as_i64().expect("seq"),
        }
    }
}

/// Everything one sender did.
#[derive(Default, Debug)]
pub struct SendLog {
    /// clientMsgId → recipient.
    pub to: BTreeMap<String, String>,
    /// clientMsgId → every reply 0 it got (a resend gets one more; all must be equal).
    pub replies: BTreeMap<String, Vec<Stored>>,
    /// ERROR frames, timeouts and lost connections, as text.
    pub errors: Vec<String>,
}

/// Shared by the senders of a test: how many messages got reply 0 so far, and the signal to
/// stop starting new ones.
#[derive(Clone, Default)]
pub struct Traffic {
    pub stored: Arc<AtomicUsize>,
    pub stop: CancellationToken,
}

impl Traffic {
    pub fn stored(&self) -> usize {
        self.stored.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` messages got reply 0.
    pub async fn wait_stored(&self, n: usize, within: Duration) {
        let every = Duration::from_millis(20);
        let done = wait_until(within, every, async || self.stored() >= n).await;
        assert!(
            done,
            "only {} of {n} messages stored within {within:?}",
            self.stored()
        );
    }
}

/// A user sending 1:1 messages with `clientMsgId`s, one at a time, resending (same id) whenever
/// a send errs, times out or its connection drops — what a careful client does.
pub struct Sender {
    pub log: Arc<Mutex<SendLog>>,
    task: JoinHandle<()>,
}

impl Sender {
    /// Sends `count` messages from `user` to `to` (round robin), `pace` apart, until done or
    /// `traffic.stop`; every reply 0 counts in `traffic.stored`. Connects to `urls[0]`, and after
    /// losing a connection to the next pod of the list.
    pub fn spawn(
        urls: Vec<String>,
        user: &str,
        to: Vec<String>,
        count: usize,
        pace: Duration,
        traffic: &Traffic,
    ) -> Self {
        let Traffic { stored, stop } = traffic.clone();
        let log = Arc::new(Mutex::new(SendLog::default()));
        let token = crate::fixtures::user_token(user);
        let (log2, user2) = (log.clone(), user.to_owned());
        let task = tokio::spawn(async move {
            let mut conn = Reconnecting {
                urls,
                next: 0,
                token,
                client: None,
            };
            for i in 0..count {
                if stop.is_cancelled() {
                    break;
                }
                let cmid = format!("{user2}-{i}");
                let target = to[i % to.len()].clone();
                log2.lock().unwrap().to.insert(cmid.clone(), target.clone());
                send_until_stored(&mut conn, &cmid, &target, &log2).await;
                stored.fetch_add(1, Ordering::Relaxed);
                if !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
            }
        });
        Self { log, task }
    }

    /// How many of its messages got reply 0 so far.
    pub fn stored(&self) -> usize {
        self.log.lock().unwrap().replies.len()
    }

    pub async fn join(self) -> Arc<Mutex<SendLog>> {
        self.task.await.expect("sender task");
        self.log
    }
}

/// A sender's connection: made to `urls[0]` first, then to the next pod of the list each time.
struct Reconnecting {
    urls: Vec<String>,
    next: usize,
    token: String,
    client: Option<Client>,
}

impl Reconnecting {
    async fn get(&mut self) -> anyhow::Result<&mut Client> {
        if self.client.is_none() {
            let url = &self.urls[self.next % self.urls.len()];
            self.next += 1;
            self.client = Some(Client::connect(url, &self.token, Some("sender")).await?);
        }
        Ok(self.client.as_mut().expect("connected"))
    }
}

/// Sends message `cmid` to `to` until a reply 0 for it arrives.
async fn send_until_stored(conn: &mut Reconnecting, cmid: &str, to: &str, log: &Mutex<SendLog>) {
    for attempt in 0.. {
        if attempt > 0 {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        let c = match conn.get().await {
            Ok(c) => c,
            Err(e) => {
                log.lock().unwrap().errors.push(format!("connect: {e}"));
                continue;
            }
        };
        let rid = format!("{cmid}/{attempt}");
        let frame = json!({"type": 1, "requestId": rid, "params": {
            "toMessageId": to, "message": format!("body of {cmid}"), "fileType": 0, "clientMsgId": cmid}});
        if c.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            log.lock()
                .unwrap()
                .errors
                .push(format!("{rid}: send failed"));
            conn.client = None;
            continue;
        }
        match read_reply(c, &rid, log).await {
            Ok(Some(reply)) if reply["type"] == 0 => return,
            Ok(Some(error)) => log.lock().unwrap().errors.push(format!("{rid}: {error}")),
            Ok(None) => {
                log.lock().unwrap().errors.push(format!("{rid}: no reply"));
                conn.client = None;
            }
            Err(e) => {
                log.lock().unwrap().errors.push(format!("{rid}: {e}"));
                conn.client = None;
            }
        }
    }
}

/// Reads until the frame answering `rid` (None: none within [`REPLY_WAIT`]). Every reply 0 seen
/// on the way, late ones of earlier attempts included, is logged under its `clientMsgId`.
async fn read_reply(
    c: &mut Client,
    rid: &str,
    log: &Mutex<SendLog>,
) -> anyhow::Result<Option<Value>> {
    let deadline = tokio::time::Instant::now() + REPLY_WAIT;
    loop {
        let frame = match tokio::time::timeout_at(deadline, c.ws.next()).await {
            Err(_) => return Ok(None),
            Ok(None) => anyhow::bail!("connection ended"),
            Ok(Some(Err(e))) => anyhow::bail!("read error: {e}"),
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Value>(&t)?,
            Ok(Some(Ok(Message::Close(f)))) => anyhow::bail!("closed: {f:?}"),
            Ok(Some(Ok(_))) => continue,
        };
        if frame["type"] == 0 {
            let p = &frame["params"];
            let cmid = p["clientMsgId"].as_str().unwrap_or_default().to_owned();
            log.lock()
                .unwrap()
                .replies
                .entry(cmid)
                .or_default()
                .push(Stored::from_params(p));
        }
        if frame["requestId"] == rid {
            return Ok(Some(frame));
        }
    }
}
