//! A cluster of real `chat-gateway` processes on loopback: every pod its own process, all sharing
//! one PostgreSQL database, one Redis and the Pulsar-protocol test broker — a StatefulSet without
//! Kubernetes. Failure tests kill, freeze and starve these processes while the traffic helpers
//! here ([`Sender`], [`Device`]) keep messages flowing and record what every side saw.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_gateway::auth::Auth;
use futures_util::{SinkExt, StreamExt};
use pulsar_test_broker::BrokerHandle;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::gateway::{capitalize, GatewayProcess, SECRET};
use crate::{Client, TempDir};

/// Pulsar tenant and namespace of the test clusters (created through the broker's admin API).
const TENANT: &str = "public";
const NAMESPACE: &str = "chat";
/// How long a sender waits for a reply before it resends (same `clientMsgId`) on a new connection.
const REPLY_WAIT: Duration = Duration::from_secs(10);
/// Pause before a sender retries after an error or a failed connect.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// `n` gateway processes `pod-0` … `pod-{n-1}` in cluster mode.
pub struct ProcessCluster {
    pub pods: Vec<GatewayProcess>,
    pub broker: BrokerHandle,
    pub prefix: String,
    pub redis_url: String,
    pub database_url: String,
    pub auth: Auth,
    binary: String,
    extra: Vec<String>,
    dir: TempDir,
}

impl ProcessCluster {
    /// Starts the broker (tenant and namespace provisioned as the operator does), a fresh
    /// database on the test PostgreSQL server and `n` pods on `redis_url`, each with `extra`
    /// flags.
    pub async fn start(binary: &str, n: usize, redis_url: &str, extra: &[&str]) -> Self {
        let database_url = crate::postgres::database("proc").await;
        Self::start_on(binary, n, redis_url, &database_url, extra).await
    }

    /// [`ProcessCluster::start`] on the database at `database_url`.
    pub async fn start_on(
        binary: &str,
        n: usize,
        redis_url: &str,
        database_url: &str,
        extra: &[&str],
    ) -> Self {
        crate::init_logging();
        let broker = crate::cluster::start_broker(TENANT, NAMESPACE).await;
        let mut me = Self {
            pods: Vec::new(),
            broker,
            prefix: crate::redis::unique_prefix("proc"),
            redis_url: redis_url.to_owned(),
            database_url: database_url.to_owned(),
            auth: Auth::new(SECRET.as_bytes()),
            binary: binary.to_owned(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: TempDir::new("proc-cluster"),
        };
        // One at a time: the first one migrates the database, the others find it done.
        for i in 0..n {
            let pod = me.spawn_pod(&Self::name(i)).await;
            me.pods.push(pod);
        }
        me
    }

    pub fn name(i: usize) -> String {
        format!("pod-{i}")
    }

    /// Spawns pod `name` with the cluster's backends and waits until it is ready.
    pub async fn spawn_pod(&self, name: &str) -> GatewayProcess {
        let data_dir = self.dir.path().join(name);
        std::fs::create_dir_all(&data_dir).expect("pod data dir");
        let mut args: Vec<&str> = vec![
            "--database-url",
            &self.database_url,
            "--redis-url",
            &self.redis_url,
            "--pulsar-url",
            self.broker.service_url(),
            "--pulsar-admin-url",
            self.broker.admin_url(),
            "--pulsar-tenant",
            TENANT,
            "--pulsar-namespace",
            NAMESPACE,
            "--key-prefix",
            &self.prefix,
            "--drain-seconds",
            "1",
        ];
        args.extend(self.extra.iter().map(String::as_str));
        GatewayProcess::spawn_named(&self.binary, &data_dir, name, &args).await
    }

    pub fn ws_url(&self, i: usize) -> String {
        self.pods[i].ws_url()
    }

    pub fn token(&self, user: &str) -> String {
        self.auth
            .issue(user, Some(&capitalize(user)), false, 3600)
            .unwrap()
    }

    /// Connects `user`'s `device` to pod `i` and reads WELCOME.
    pub async fn connect(&self, i: usize, user: &str, device: &str) -> Client {
        Client::connect(&self.ws_url(i), &self.token(user), Some(device))
            .await
            .expect("connect")
    }

    /// The Redis key of a device's route (`{pod}|{epoch}`).
    pub fn route_key(&self, user: &str, device: &str) -> String {
        format!("{}:route:{user}:{device}", self.prefix)
    }

    /// The HTTP status of pod `i`'s `/readyz` (0: no answer within `wait`).
    pub async fn readyz(&self, i: usize, wait: Duration) -> u16 {
        let http = reqwest::Client::builder().timeout(wait).build().unwrap();
        match http.get(self.pods[i].admin_url("/readyz")).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// Waits until every pod's `/readyz` answers 200, each for up to ~20 s; `after` names what
    /// they are recovering from, for the failure message.
    pub async fn wait_all_ready(&self, after: &str) {
        for i in 0..self.pods.len() {
            let mut last = 0;
            for _ in 0..100 {
                last = self.readyz(i, Duration::from_secs(5)).await;
                if last == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert_eq!(last, 200, "pod-{i} /readyz {after}");
        }
    }
}

/// The connection epoch in a WELCOME: its `sessionId` is `{pod}_{user}_{epoch:x}`.
pub fn welcome_epoch(welcome: &Value) -> u64 {
    let session = welcome["params"]["sessionId"].as_str().expect("sessionId");
    let hex = session.rsplit('_').next().expect("epoch");
    u64::from_str_radix(hex, 16).expect("hex epoch")
}

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
        let deadline = tokio::time::Instant::now() + within;
        while self.stored() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} messages stored within {within:?}",
                self.stored()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
        cluster: &ProcessCluster,
        urls: Vec<String>,
        user: &str,
        to: Vec<String>,
        count: usize,
        pace: Duration,
        traffic: &Traffic,
    ) -> Self {
        let Traffic { stored, stop } = traffic.clone();
        let log = Arc::new(Mutex::new(SendLog::default()));
        let token = cluster.token(user);
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

/// One DELIVER (2) a device got.
#[derive(Clone, Debug)]
pub struct Pushed {
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub from: String,
    pub client_msg_id: Option<String>,
    /// The pod whose connection carried it.
    pub pod: String,
}

/// What a device saw.
#[derive(Default, Debug)]
pub struct DeviceLog {
    pub pushes: Vec<Pushed>,
    /// The pod of every connection it made, in order.
    pub connections: Vec<String>,
}

impl DeviceLog {
    pub fn message_ids(&self) -> BTreeSet<String> {
        self.pushes.iter().map(|p| p.message_id.clone()).collect()
    }
}

/// A recipient device: ACKs every DELIVER, heartbeats, and when its connection ends reconnects
/// to the next pod of its list (dead pods refuse; it moves on), as a client behind a Service
/// would. [`Device::reconnect`] makes it reconnect on purpose.
pub struct Device {
    pub user: String,
    pub device: String,
    pub log: Arc<Mutex<DeviceLog>>,
    reconnect: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Device {
    /// Connects to `urls[0]` (returns once WELCOME arrived) and keeps going until [`Device::stop`].
    pub async fn start(
        cluster: &ProcessCluster,
        urls: Vec<String>,
        user: &str,
        device: &str,
        heartbeat: Duration,
    ) -> Self {
        let token = cluster.token(user);
        let log = Arc::new(Mutex::new(DeviceLog::default()));
        let first = Client::connect(&urls[0], &token, Some(device))
            .await
            .expect("first connect");
        log.lock().unwrap().connections.push(pod_of(&first));
        let reconnect = Arc::new(tokio::sync::Notify::new());
        let stop = CancellationToken::new();
        let (log2, again, stop2, device2) = (
            log.clone(),
            reconnect.clone(),
            stop.clone(),
            device.to_owned(),
        );
        let task = tokio::spawn(async move {
            let mut conn = Some(first);
            let mut next = 1;
            while !stop2.is_cancelled() {
                let c = match conn.take() {
                    Some(c) => c,
                    None => {
                        let url = &urls[next % urls.len()];
                        next += 1;
                        match Client::connect(url, &token, Some(&device2)).await {
                            Ok(c) => {
                                log2.lock().unwrap().connections.push(pod_of(&c));
                                c
                            }
                            Err(_) => {
                                tokio::time::sleep(RETRY_PAUSE).await;
                                continue;
                            }
                        }
                    }
                };
                serve_device(c, &log2, &again, &stop2, heartbeat).await;
            }
        });
        Self {
            user: user.to_owned(),
            device: device.to_owned(),
            log,
            reconnect,
            stop,
            task,
        }
    }

    /// Drops the current connection and connects to the next pod of the list.
    pub fn reconnect(&self) {
        self.reconnect.notify_one();
    }

    pub async fn stop(self) -> Arc<Mutex<DeviceLog>> {
        self.stop.cancel();
        self.task.await.expect("device task");
        self.log
    }
}

fn pod_of(c: &Client) -> String {
    c.welcome["params"]["server"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Runs one connection of a [`Device`] until it ends, a reconnect is asked for, or `stop`.
async fn serve_device(
    mut c: Client,
    log: &Mutex<DeviceLog>,
    reconnect: &tokio::sync::Notify,
    stop: &CancellationToken,
    heartbeat: Duration,
) {
    let pod = pod_of(&c);
    let me = c.welcome["params"]["userId"].clone();
    let mut beat = tokio::time::interval(heartbeat);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = reconnect.notified() => return,
            _ = beat.tick() => {
                if c.ws.send(Message::Text(json!({"type": 3}).to_string().into())).await.is_err() {
                    return;
                }
            }
            frame = c.ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                };
                let Ok(env) = serde_json::from_str::<Value>(&text) else { continue };
                if env["msg"]["type"] != 2 {
                    continue;
                }
                let p = &env["msg"]["params"];
                let from = p["fromUser"]["openid"].as_str().unwrap_or_default().to_owned();
                log.lock().unwrap().pushes.push(Pushed {
                    message_id: env["messageId"].as_str().unwrap_or_default().to_owned(),
                    conversation_id: p["conversationId"].as_str().unwrap_or_default().to_owned(),
                    seq: p["seq"].as_i64().unwrap_or(-1),
                    from: from.clone(),
                    client_msg_id: p["clientMsgId"].as_str().map(str::to_owned),
                    pod: pod.clone(),
                });
                let ack = json!({"type": 15, "params": {
                    "from": "client", "msgid": env["messageId"], "fromUser": from, "toUser": me}});
                if c.ws.send(Message::Text(ack.to_string().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Every conversation of `user`, read back in full with SYNC (13) pages on a fresh connection
/// of its own: conversationId → the stored messages in the order SYNC returned them.
pub async fn sync_all(
    cluster: &ProcessCluster,
    pod: usize,
    user: &str,
) -> BTreeMap<String, Vec<Pushed>> {
    let mut c = cluster.connect(pod, user, "audit").await;
    c.send(json!({"type": 13, "requestId": "list", "params": {}}))
        .await;
    let list = c
        .recv_where("conversation list", |v| v["requestId"] == "list")
        .await;
    assert_eq!(list["type"], 14, "SYNC list: {list}");
    let mut out = BTreeMap::new();
    for conv in list["params"]["conversations"]
        .as_array()
        .expect("conversations")
    {
        let id = conv["conversationId"]
            .as_str()
            .expect("conversationId")
            .to_owned();
        let mut msgs: Vec<Pushed> = Vec::new();
        loop {
            let after = msgs.last().map_or(0, |m| m.seq);
            let rid = format!("sync-{id}-{after}");
            c.send(json!({"type": 13, "requestId": rid, "params": {
                "conversationId": id, "afterSeq": after, "limit": 200}}))
                .await;
            let page = c
                .recv_where("SYNC page", |v| v["requestId"] == rid.as_str())
                .await;
            assert_eq!(page["type"], 14, "SYNC page: {page}");
            for env in page["params"]["messages"].as_array().expect("messages") {
                let p = &env["msg"]["params"];
                msgs.push(Pushed {
                    message_id: env["messageId"].as_str().expect("messageId").to_owned(),
                    conversation_id: id.clone(),
                    seq: p["seq"].as_i64().expect("seq"),
                    from: p["fromUser"]["openid"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    client_msg_id: p["clientMsgId"].as_str().map(str::to_owned),
                    pod: String::new(),
                });
            }
            if page["params"]["hasMore"] != true {
                break;
            }
        }
        out.insert(id, msgs);
    }
    out
}

/// The reply-0 messages of `senders`, checked for idempotence: one messageId per clientMsgId.
/// Returns recipient → the messages stored for it.
pub fn stored_by_recipient(senders: &[Arc<Mutex<SendLog>>]) -> BTreeMap<String, Vec<Stored>> {
    let mut out: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for log in senders {
        let log = log.lock().unwrap();
        for (cmid, replies) in &log.replies {
            let first = &replies[0];
            assert!(
                replies.iter().all(|r| r == first),
                "clientMsgId {cmid} got different replies 0: {replies:?}"
            );
            let to = log.to.get(cmid).expect("a reply for a message sent");
            out.entry(to.clone()).or_default().push(first.clone());
        }
    }
    out
}

/// Checks what recipients saw against what was stored; returns a one-line summary.
///
/// - every stored message reached the user (some device of theirs) by push: none missing. A
///   device can miss one its sibling acked (catch-up starts above the user's `ackedSeq`); a
///   client SYNCs such gaps, as the check below does;
/// - a pushed messageId always carries its stored conversation and seq, and one clientMsgId of a
///   sender was only ever pushed under one messageId (duplicates share the messageId);
/// - each conversation, read back with SYNC, is strictly increasing and gap-free from seq 1 and
///   holds exactly the stored messages.
pub async fn check_delivery(
    cluster: &ProcessCluster,
    audit_pod: usize,
    stored: &BTreeMap<String, Vec<Stored>>,
    devices: &BTreeMap<String, Vec<Arc<Mutex<DeviceLog>>>>,
) -> String {
    let (mut total, mut pushes, mut duplicates, mut device_gaps) = (0, 0, 0, 0);
    for (user, msgs) in stored {
        let by_id: HashMap<&str, &Stored> =
            msgs.iter().map(|m| (m.message_id.as_str(), m)).collect();
        let logs = devices.get(user).map(Vec::as_slice).unwrap_or_default();
        let mut got: BTreeSet<String> = BTreeSet::new();
        let mut by_cmid: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
        for log in logs {
            let log = log.lock().unwrap();
            pushes += log.pushes.len();
            let ids = log.message_ids();
            duplicates += log.pushes.len() - ids.len();
            device_gaps += msgs.iter().filter(|m| !ids.contains(&m.message_id)).count();
            for p in &log.pushes {
                if let Some(s) = by_id.get(p.message_id.as_str()) {
                    assert_eq!(
                        (&p.conversation_id, p.seq),
                        (&s.conversation_id, s.seq),
                        "{user}: pushed {} with another conversation or seq than stored",
                        p.message_id
                    );
                }
                if let Some(c) = &p.client_msg_id {
                    by_cmid
                        .entry((p.from.clone(), c.clone()))
                        .or_default()
                        .insert(p.message_id.clone());
                }
                got.insert(p.message_id.clone());
            }
        }
        for (key, ids) in &by_cmid {
            assert_eq!(
                ids.len(),
                1,
                "{user}: {key:?} pushed under several messageIds: {ids:?}"
            );
        }
        let missing: Vec<&Stored> = msgs
            .iter()
            .filter(|m| !got.contains(&m.message_id))
            .collect();
        assert!(
            missing.is_empty(),
            "{user}: {} of {} messages that got reply 0 never arrived, e.g. {:?}",
            missing.len(),
            msgs.len(),
            &missing[..missing.len().min(5)]
        );
        total += msgs.len();

        // Read back: per conversation exactly the stored messages, seqs 1..=n in order.
        let synced = sync_all(cluster, audit_pod, user).await;
        let mut want: BTreeMap<&str, BTreeMap<i64, &str>> = BTreeMap::new();
        for m in msgs {
            want.entry(m.conversation_id.as_str())
                .or_default()
                .insert(m.seq, m.message_id.as_str());
        }
        for (conv, expected) in want {
            let read = synced
                .get(conv)
                .unwrap_or_else(|| panic!("{user}: SYNC lacks conversation {conv}"));
            let seqs: Vec<i64> = read.iter().map(|m| m.seq).collect();
            assert_eq!(
                seqs,
                (1..=read.len() as i64).collect::<Vec<_>>(),
                "{user}: conversation {conv} is not 1..n without gaps in order"
            );
            let read: BTreeMap<i64, &str> = read
                .iter()
                .map(|m| (m.seq, m.message_id.as_str()))
                .collect();
            assert_eq!(
                read, expected,
                "{user}: conversation {conv} holds other messages than stored"
            );
        }
    }
    format!(
        "{total} messages stored, all delivered ({pushes} pushes, {duplicates} duplicates, \
         {device_gaps} left to a device's SYNC because another device of the user acked them)"
    )
}

/// How many stored messages have not reached any device of their recipient yet.
pub fn missing(stored: &BTreeMap<String, Vec<Stored>>, devices: &[Device]) -> usize {
    let mut got: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for d in devices {
        got.entry(d.user.as_str())
            .or_default()
            .extend(d.log.lock().unwrap().message_ids());
    }
    stored
        .iter()
        .map(|(user, msgs)| {
            let got = got.get(user.as_str());
            msgs.iter()
                .filter(|m| !got.is_some_and(|g| g.contains(&m.message_id)))
                .count()
        })
        .sum()
}

/// Waits until nothing is [`missing`] or `within` passed; returns what is still missing.
pub async fn wait_delivered(
    stored: &BTreeMap<String, Vec<Stored>>,
    devices: &[Device],
    within: Duration,
) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = missing(stored, devices);
        if left == 0 || tokio::time::Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops every device; returns user → the logs of their devices.
pub async fn stop_all(devices: Vec<Device>) -> BTreeMap<String, Vec<Arc<Mutex<DeviceLog>>>> {
    let mut out: BTreeMap<String, Vec<Arc<Mutex<DeviceLog>>>> = BTreeMap::new();
    for d in devices {
        let user = d.user.clone();
        out.entry(user).or_default().push(d.stop().await);
    }
    out
}
