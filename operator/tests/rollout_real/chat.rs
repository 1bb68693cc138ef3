//! Chat users on real WebSocket connections, written as a careful client is (DESIGN §3, §4, §7):
//! they connect through the [`Service`] (a Ready pod that is not terminating), heartbeat and renew
//! their timelife, ACK every delivery, send with a `clientMsgId` and resend it (same id) until a
//! reply 0 comes, and follow DRAIN (22): wait `reconnectAfterMs`, open the new connection (same
//! user and device), then close the old one — unless told not to, like an app that predates DRAIN. Everything they see goes in one [`Ledger`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::kubelet::Kubelet;
use crate::support::fake_api::FakeApi;
use crate::support::is_serving;

/// Pause between one message's reply 0 and the next message of the same user.
const SEND_PAUSE: Duration = Duration::from_millis(100);
/// A SEND without reply 0 for this long is sent again (same `clientMsgId`).
const RESEND_AFTER: Duration = Duration::from_secs(3);
/// Longest wait for a connection and its WELCOME.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a user keeps trying to reach any pod before giving up.
const CONNECT_GIVE_UP: Duration = Duration::from_secs(30);
/// Longest wait for one frame to be written.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The one device each user has.
const DEVICE: &str = "phone";

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

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
    /// `messageId` → how often its recipient got it.
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

    fn on_delivery(&mut self, envelope: &Value, me: &str) {
        let Some(message_id) = envelope["messageId"].as_str() else {
            self.problems
                .push(format!("a delivery without messageId: {envelope}"));
            return;
        };
        let params = &envelope["msg"]["params"];
        if params["toUser"]["openid"] != me {
            self.problems
                .push(format!("{me} got a message for someone else: {envelope}"));
        }
        if let Some(cmid) = params["clientMsgId"].as_str() {
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

/// What a connection's reader task reports.
enum Event {
    Frame(u64, Value),
    Closed(u64, Option<u16>),
}

/// One open connection: where it goes and how to write to it.
struct Conn {
    id: u64,
    sink: Sink,
}

/// The one SEND waiting for its reply 0.
struct Outgoing {
    client_msg_id: String,
    frame: Value,
    sent_at: Instant,
}

/// Runs `user` until `quit`: sends while `sending` is not cancelled, receives and ACKs always.
pub async fn run(
    user: User,
    service: Service,
    ledger: Arc<Mutex<Ledger>>,
    sending: CancellationToken,
    quit: CancellationToken,
) {
    let mut session = Session {
        user,
        service,
        ledger,
        events: mpsc::unbounded_channel(),
        next_conn: 0,
        heartbeat: Duration::from_secs(30),
        timelife: Duration::from_secs(1800),
    };
    let Some(mut current) = session.connect().await else {
        return;
    };
    let mut leaving: Option<Conn> = None;
    let mut switch_at: Option<Instant> = None;
    let mut pending: Option<Outgoing> = None;
    let mut sent = 0_u64;
    let mut next_send = Instant::now();
    let mut next_heartbeat = Instant::now() + session.heartbeat;
    let mut next_renew = Instant::now() + session.timelife / 2;
    loop {
        let now = Instant::now();
        if pending.is_none() && !sending.is_cancelled() && now >= next_send {
            sent += 1;
            let client_msg_id = format!("{}-{sent}", session.user.name);
            let frame = json!({"type": 1, "requestId": client_msg_id, "params": {
                "toMessageId": session.user.peer, "message": format!("hello {sent}"),
                "fileType": 0, "clientMsgId": client_msg_id}});
            write(&mut current, &frame).await;
            pending = Some(Outgoing {
                client_msg_id,
                frame,
                sent_at: now,
            });
        }
        if let Some(out) = pending.as_mut().filter(|o| now >= o.sent_at + RESEND_AFTER) {
            write(&mut current, &out.frame).await;
            out.sent_at = now;
        }
        if now >= next_heartbeat {
            write(&mut current, &json!({"type": 3, "params": {}})).await;
            next_heartbeat = now + session.heartbeat;
        }
        if now >= next_renew {
            write(&mut current, &json!({"type": 21, "params": {}})).await;
            next_renew = now + session.timelife / 2;
        }
        if switch_at.is_some_and(|at| now >= at) {
            // DESIGN §7 step 3: the new connection first, then close the old one.
            switch_at = None;
            let Some(new) = session.connect().await else {
                return;
            };
            let mut old = std::mem::replace(&mut current, new);
            let _ = tokio::time::timeout(WRITE_TIMEOUT, old.sink.close()).await;
            leaving = Some(old);
            lock(&session.ledger).moves += 1;
            if let Some(out) = pending.as_mut() {
                write(&mut current, &out.frame).await;
                out.sent_at = Instant::now();
            }
            next_renew = Instant::now() + session.timelife / 2;
        }
        let mut wake = next_heartbeat.min(next_renew);
        if let Some(out) = &pending {
            wake = wake.min(out.sent_at + RESEND_AFTER);
        } else if !sending.is_cancelled() {
            wake = wake.min(next_send);
        }
        if let Some(at) = switch_at {
            wake = wake.min(at);
        }
        let event = tokio::select! {
            event = session.events.1.recv() => event,
            () = tokio::time::sleep_until(wake) => continue,
            () = quit.cancelled() => break,
        };
        let Some(event) = event else { break };
        match event {
            Event::Frame(conn, frame) => {
                match frame["type"].as_u64() {
                    Some(0) => {
                        let params = &frame["params"];
                        let cmid = params["clientMsgId"].as_str().unwrap_or_default();
                        let message_id = params["messageId"].as_str().unwrap_or_default();
                        lock(&session.ledger).on_reply(cmid, message_id, &session.user.peer);
                        if pending.as_ref().is_some_and(|o| o.client_msg_id == cmid) {
                            pending = None;
                            next_send = Instant::now() + SEND_PAUSE;
                        }
                    }
                    Some(22) if conn == current.id && session.user.follows_drain => {
                        lock(&session.ledger).drains += 1;
                        let after = frame["params"]["reconnectAfterMs"].as_u64().unwrap_or(0);
                        switch_at = Some(Instant::now() + Duration::from_millis(after));
                    }
                    Some(22) => lock(&session.ledger).drains += 1,
                    Some(500) => {
                        let code = frame["params"]["code"].as_str().unwrap_or("?").to_owned();
                        *lock(&session.ledger).errors.entry(code).or_default() += 1;
                    }
                    _ if frame["msg"]["type"] == 2 => {
                        lock(&session.ledger).on_delivery(&frame, &session.user.name);
                        let ack = json!({"type": 15, "params": {"from": "client",
                            "msgid": frame["messageId"],
                            "fromUser": frame["msg"]["params"]["fromUser"]["openid"],
                            "toUser": session.user.name}});
                        // On the current connection, also for one that came on the connection being
                        // left (closed by now): acks count per user and device.
                        write(&mut current, &ack).await;
                    }
                    _ => {}
                }
            }
            Event::Closed(conn, _) if leaving.as_ref().is_some_and(|c| c.id == conn) => {
                leaving = None;
            }
            Event::Closed(conn, code) if conn == current.id => {
                *lock(&session.ledger)
                    .lost_connections
                    .entry(code)
                    .or_default() += 1;
                switch_at = None;
                let Some(new) = session.connect().await else {
                    return;
                };
                current = new;
                if let Some(out) = pending.as_mut() {
                    write(&mut current, &out.frame).await;
                    out.sent_at = Instant::now();
                }
                next_renew = Instant::now() + session.timelife / 2;
            }
            Event::Closed(..) => {}
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, current.sink.close()).await;
}

struct Session {
    user: User,
    service: Service,
    ledger: Arc<Mutex<Ledger>>,
    events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    next_conn: u64,
    /// From the last WELCOME.
    heartbeat: Duration,
    timelife: Duration,
}

impl Session {
    /// A new connection through the Service, WELCOME read; `None` (a problem noted) when no pod
    /// took it for [`CONNECT_GIVE_UP`].
    async fn connect(&mut self) -> Option<Conn> {
        let started = Instant::now();
        loop {
            if let Some((addr, pod)) = self.service.pick() {
                let url = format!("ws://{addr}/ws?token={}&device={DEVICE}", self.user.token);
                if let Ok(Ok((ws, welcome))) =
                    tokio::time::timeout(CONNECT_TIMEOUT, open(&url)).await
                {
                    let params = &welcome["params"];
                    self.heartbeat =
                        Duration::from_secs(params["heartbeat"].as_u64().unwrap_or(30).max(1));
                    self.timelife =
                        Duration::from_secs(params["timelife"].as_u64().unwrap_or(1800).max(1));
                    *lock(&self.ledger)
                        .connections_by_pod
                        .entry(pod)
                        .or_default() += 1;
                    self.next_conn += 1;
                    let id = self.next_conn;
                    let (sink, mut stream) = ws.split();
                    let events = self.events.0.clone();
                    tokio::spawn(async move {
                        let code = loop {
                            match stream.next().await {
                                Some(Ok(Message::Text(text))) => {
                                    let frame = serde_json::from_str(&text).unwrap_or(Value::Null);
                                    if events.send(Event::Frame(id, frame)).is_err() {
                                        return;
                                    }
                                }
                                Some(Ok(Message::Close(frame))) => {
                                    break frame.map(|f| u16::from(f.code));
                                }
                                Some(Ok(_)) => {}
                                None | Some(Err(_)) => break None,
                            }
                        };
                        let _ = events.send(Event::Closed(id, code));
                    });
                    return Some(Conn { id, sink });
                }
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
}

/// Opens a WebSocket and reads its first frame, which must be WELCOME (20).
async fn open(url: &str) -> anyhow::Result<(WebSocketStream<MaybeTlsStream<TcpStream>>, Value)> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text)?;
                anyhow::ensure!(frame["type"] == 20, "first frame {frame}");
                return Ok((ws, frame));
            }
            Some(Ok(Message::Close(_))) | None => anyhow::bail!("closed before WELCOME"),
            Some(Err(err)) => return Err(err.into()),
            Some(Ok(_)) => {}
        }
    }
}

/// Writes `frame`; a failure is left to the reader, which reports the connection closed.
async fn write(conn: &mut Conn, frame: &Value) {
    let _ = tokio::time::timeout(
        WRITE_TIMEOUT,
        conn.sink.send(Message::Text(frame.to_string().into())),
    )
    .await;
}
