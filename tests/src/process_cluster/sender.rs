//! Senders: users sending 1:1 messages with `clientMsgId`s through a cluster whose pods fail
//! under them — `chat_client::Client`s, which resend what went unanswered on a new connection —
//! and the log of what each one was answered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_client::{Client, Endpoints, Error, Event, Options};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::RETRY_PAUSE;
use crate::fixtures::wait_until;

/// How long a sender's connection may stay silent while a reply is owed before the sender moves
/// to the next pod and resends there (same `clientMsgId`).
const REPLY_WAIT: Duration = Duration::from_secs(10);

/// One reply 0 as a sender got it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
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
            let pods = Pods {
                urls: Arc::new(urls),
                next: Arc::default(),
            };
            let mut client = None;
            for i in 0..count {
                if stop.is_cancelled() {
                    break;
                }
                let cmid = format!("{user2}-{i}");
                let target = to[i % to.len()].clone();
                log2.lock().unwrap().to.insert(cmid.clone(), target.clone());
                send_until_stored(&mut client, &pods, &token, &cmid, &target, &log2).await;
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

/// The pods a sender connects to: `urls[0]` first, then the next of the list on every new
/// connection (shared by the client and the sender's own reconnects).
#[derive(Clone)]
struct Pods {
    urls: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
}

impl Endpoints for Pods {
    fn next_url(&mut self) -> Option<String> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.urls[i % self.urls.len()].clone())
    }
}

/// Sends message `cmid` to `to` until a reply 0 for it arrives. The client resends it itself
/// on each new connection; what it met on the way (ERRORs, lost connections) is logged.
async fn send_until_stored(
    client: &mut Option<Client>,
    pods: &Pods,
    token: &str,
    cmid: &str,
    to: &str,
    log: &Mutex<SendLog>,
) {
    for attempt in 0.. {
        if attempt > 0 {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        let c = match client {
            Some(c) => c,
            None => {
                let options = Options {
                    stall: REPLY_WAIT,
                    ..Options::new(token).device("sender")
                };
                match Client::connect(pods.clone(), options).await {
                    Ok(c) => client.insert(c),
                    Err(e) => {
                        log.lock().unwrap().errors.push(format!("connect: {e}"));
                        continue;
                    }
                }
            }
        };
        let result = c.send_to(to, &format!("body of {cmid}"), cmid).await;
        let lost = c.take_events().into_iter().filter_map(|e| match e {
            Event::Disconnected(reason) => Some(format!("{cmid}: {reason}")),
            _ => None,
        });
        log.lock().unwrap().errors.extend(lost);
        match result {
            Ok(r) => {
                let stored = Stored {
                    message_id: r.message_id,
                    conversation_id: r.conversation_id.into_string(),
                    seq: r.seq,
                };
                let mut log = log.lock().unwrap();
                log.replies.entry(cmid.to_owned()).or_default().push(stored);
                return;
            }
            Err(Error::Server(e)) => {
                let error = chat_protocol::server::error_json(&e, None);
                log.lock().unwrap().errors.push(format!("{cmid}: {error}"));
            }
            Err(e) => {
                log.lock().unwrap().errors.push(format!("{cmid}: {e}"));
                *client = None;
            }
        }
    }
}
