//! Chat users on real WebSocket connections: `chat_client::Client`s, the careful client
//! (DESIGN §3, §4, §7) — they connect through the [`Service`] (a Ready pod that is not
//! terminating), heartbeat and renew their timelife, ACK every delivery, send with a
//! `clientMsgId` and resend it (same id) until a reply 0 comes, and follow DRAIN (22): wait
//! `reconnectAfterMs`, open the new connection (same user and device), then close the old one —
//! unless told not to, like an app that predates DRAIN. Everything they see goes in one
//! [`Ledger`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_client::{Client, Error, Event, Options};
use chat_protocol::envelope::{Envelope, PushMsg};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kubelet::Kubelet;
use crate::support::fake_api::FakeApi;
use crate::support::is_serving;

/// Pause between one message's reply 0 and the next message of the same user.
const SEND_PAUSE: Duration = Duration::from_millis(100);
/// A connection silent this long while a SEND waits for reply 0 is given up for another pod,
/// where the SEND is written again (same `clientMsgId`).
const RESEND_AFTER: Duration = Duration::from_secs(3);
/// Longest wait for a connection and its WELCOME.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a user keeps trying to reach any pod before giving up.
const CONNECT_GIVE_UP: Duration = Duration::from_secs(30);
/// The one device each user has.
const DEVICE: &str = "phone";

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The client Service: round-robin over the pods that are Ready and not terminating, as the
/// Service's endpoints are.
#[derive(Clone)]
pub struct Service {
    api: FakeApi,
    kubelet: Kubelet,
    namespace: String,
    next: Arc<AtomicUsize>,
}

impl Service {
    pub fn new(api: FakeApi, kubelet: Kubelet, namespace: &str) -> Self {
        Self {
            api,
            kubelet,
            namespace: namespace.to_owned(),
            next: Arc::default(),
        }
    }

    /// A serving pod's public address and name.
    pub fn pick(&self) -> Option<(SocketAddr, String)> {
        let endpoints: Vec<(SocketAddr, String)> = self
            .api
            .list("v1", "Pod", &self.namespace)
            .iter()
            .filter(|p| is_serving(p))
            .filter_map(|p| {
                let name = p["metadata"]["name"].as_str()?;
                let endpoint = self.kubelet.endpoint(name)?;
                (endpoint.uid == p["metadata"]["uid"].as_str()?)
                    .then(|| (endpoint.public, name.to_owned()))
            })
            .collect();
        if endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
        Some(endpoints[i].clone())
    }
}

/// One message that got reply 0.
#[derive(Clone, Debug)]
struct Sent {
    message_id: String,
    to: String,
}

/// What every user saw.
#[derive(Default, Debug)]
pub struct Ledger {
    /// `clientMsgId` → its reply 0.
    acknowledged: HashMap<String, Sent>,
    /// `messageId` → how often its recipient's client passed it on (it de-duplicates: once).
    delivered: HashMap<String, u32>,
    /// Broken promises seen on the wire (a resend answered with another `messageId`, …).
    pub problems: Vec<String>,
    /// DRAIN frames received.
    pub drains: usize,
    /// Connections the users moved off a draining pod themselves.
    pub moves: usize,
    /// Connections that ended without the user asking, by close code (`None`: no close frame).
    pub lost_connections: HashMap<Option<u16>, usize>,
    /// Connections per pod name, over the whole test.
    pub connections_by_pod: HashMap<String, usize>,
    /// ERROR (500) frames, by code.
    pub errors: HashMap<String, usize>,
}

impl Ledger {
    /// Messages that got reply 0.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged.len()
    }

    /// The `messageId`s that got reply 0 and never reached their recipient.
    pub fn missing(&self) -> Vec<String> {
        let mut missing: Vec<String> = self
            .acknowledged
            .iter()
            .filter(|(_, sent)| !self.delivered.contains_key(&sent.message_id))
            .map(|(cmid, sent)| format!("{} ({cmid} to {})", sent.message_id, sent.to))
            .collect();
        missing.sort();
        missing
    }

    /// The counters, for messages (the maps of ids are too long to print).
    pub fn summary(&self) -> String {
        format!(
            "{} messages acknowledged, {} missing, {} duplicate deliveries; {} DRAIN frames, \
             {} moves, connections ended otherwise {:?}, errors {:?}, connections by pod {:?}, \
             problems {:?}",
            self.acknowledged(),
            self.missing().len(),
            self.duplicates(),
            self.drains,
            self.moves,
            self.lost_connections,
            self.errors,
            self.connections_by_pod,
            self.problems,
        )
    }

    /// Deliveries of a `messageId` the recipient had already got.
    pub fn duplicates(&self) -> u32 {
        self.delivered.values().map(|n| n - 1).sum()
    }

    fn on_reply(&mut self, client_msg_id: &str, message_id: &str, to: &str) {
        let sent = self
            .acknowledged
            .entry(client_msg_id.to_owned())
            .or_insert_with(|| Sent {
                message_id: message_id.to_owned(),
                to: to.to_owned(),
            });
        if sent.message_id != message_id {
            self.problems.push(format!(
                "{client_msg_id} got reply 0 with {} and later with {message_id}",
                sent.message_id
            ));
        }
    }

    fn on_delivery(&mut self, envelope: &Envelope, me: &str) {
        let message_id = envelope.message_id.as_str();
        let PushMsg::Deliver(params) = &envelope.msg else {
            self.problems
                .push(format!("{me} got a group message: {envelope:?}"));
            return;
        };
        if params.to_user.openid != me {
            self.problems
                .push(format!("{me} got a message for someone else: {envelope:?}"));
        }
        if let Some(cmid) = params.client_msg_id.as_deref() {
            if let Some(sent) = self.acknowledged.get(cmid) {
                if sent.message_id != message_id {
                    self.problems.push(format!(
                        "{cmid} was acknowledged as {} but delivered as {message_id}",
                        sent.message_id
                    ));
                }
            }
        }
        *self.delivered.entry(message_id.to_owned()).or_default() += 1;
    }
}

/// A user's credentials and the peer it writes to.
pub struct User {
    pub name: String,
    pub token: String,
    pub peer: String,
    /// Whether its app follows DRAIN. One that does not (an old app version) stays until the
    /// drain deadline closes it with 1012, and then reconnects.
    pub follows_drain: bool,
}

/// Runs `user` until `quit`: sends while `sending` is not cancelled, receives and ACKs always.
pub async fn run(
    user: User,
    service: Service,
    ledger: Arc<Mutex<Ledger>>,
    sending: CancellationToken,
    quit: CancellationToken,
) {
    let mut me = Chat {
        user,
        service,
        ledger,
        draining: false,
    };
    let Some(mut client) = me.connect().await else {
        return;
    };
    let mut sent = 0_u64;
    while !quit.is_cancelled() {
        if !sending.is_cancelled() {
            sent += 1;
            let cmid = format!("{}-{sent}", me.user.name);
            let text = format!("hello {sent}");
            tokio::select! {
                done = me.send(&mut client, &cmid, &text) => if !done { return },
                () = quit.cancelled() => break,
            }
        }
        // Between sends, and once sending stopped, receive.
        let pause = tokio::time::sleep(SEND_PAUSE);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                event = client.next_event() => match event {
                    Ok(event) => me.record(event),
                    Err(_) => match me.connect().await {
                        Some(c) => client = c,
                        None => return,
                    },
                },
                () = &mut pause, if !sending.is_cancelled() => break,
                () = quit.cancelled() => break,
            }
        }
    }
    client.close().await;
}

/// One user's side of the test.
struct Chat {
    user: User,
    service: Service,
    ledger: Arc<Mutex<Ledger>>,
    /// A DRAIN was followed: the next connection is a move.
    draining: bool,
}

impl Chat {
    /// A client through the Service, WELCOME read; `None` (a problem noted) when no pod took
    /// it for [`CONNECT_GIVE_UP`].
    async fn connect(&mut self) -> Option<Client> {
        let options = Options {
            follow_drain: self.user.follows_drain,
            stall: RESEND_AFTER,
            connect_timeout: CONNECT_TIMEOUT,
            ..Options::new(self.user.token.clone()).device(DEVICE)
        };
        let started = Instant::now();
        loop {
            let service = self.service.clone();
            let endpoints = move || service.pick().map(|(addr, _)| format!("ws://{addr}/ws"));
            if let Ok(client) = Client::connect(endpoints, options.clone()).await {
                self.draining = false;
                self.connected(&client.welcome().server);
                return Some(client);
            }
            if started.elapsed() > CONNECT_GIVE_UP {
                lock(&self.ledger).problems.push(format!(
                    "{} reached no pod for {CONNECT_GIVE_UP:?}",
                    self.user.name
                ));
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends until reply 0 (the client resends on new connections itself; an ERROR is counted
    /// and the send tried again, same `clientMsgId`). False when no pod could be reached.
    async fn send(&mut self, client: &mut Client, cmid: &str, text: &str) -> bool {
        loop {
            let result = client.send_to(&self.user.peer, text, cmid).await;
            for event in client.take_events() {
                self.record(event);
            }
            match result {
                Ok(r) => {
                    let peer = &self.user.peer;
                    lock(&self.ledger).on_reply(cmid, &r.message_id, peer);
                    return true;
                }
                Err(Error::Server(e)) => {
                    *lock(&self.ledger).errors.entry(e.code).or_default() += 1;
                    tokio::time::sleep(SEND_PAUSE).await;
                }
                Err(_) => match self.connect().await {
                    Some(c) => *client = c,
                    None => return false,
                },
            }
        }
    }

    fn record(&mut self, event: Event) {
        match event {
            Event::Message(envelope) => {
                lock(&self.ledger).on_delivery(&envelope, &self.user.name);
            }
            Event::Drain(_) => {
                lock(&self.ledger).drains += 1;
                self.draining = self.user.follows_drain;
            }
            Event::Connected(welcome) => {
                if std::mem::take(&mut self.draining) {
                    lock(&self.ledger).moves += 1;
                }
                self.connected(&welcome.server);
            }
            Event::Disconnected(reason) => {
                self.draining = false;
                let code = reason.strip_prefix("close ").and_then(|c| c.parse().ok());
                *lock(&self.ledger).lost_connections.entry(code).or_default() += 1;
            }
            Event::Error { error, .. } => {
                *lock(&self.ledger).errors.entry(error.code).or_default() += 1;
            }
            _ => {}
        }
    }

    fn connected(&self, pod: &str) {
        *lock(&self.ledger)
            .connections_by_pod
            .entry(pod.to_owned())
            .or_default() += 1;
    }
}
