//! Recipient devices: connections that ACK every push, heartbeat, and move to another pod when
//! theirs goes away, with the log of every push they got and every pod they were on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::RETRY_PAUSE;
use crate::Client;

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
    pub async fn start(urls: Vec<String>, user: &str, device: &str, heartbeat: Duration) -> Self {
        let token = crate::fixtures::user_token(user);
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
/// Stops every device; returns user → the logs of their devices.
pub async fn stop_all(devices: Vec<Device>) -> BTreeMap<String, Vec<Arc<Mutex<DeviceLog>>>> {
    let mut out: BTreeMap<String, Vec<Arc<Mutex<DeviceLog>>>> = BTreeMap::new();
    for d in devices {
        let user = d.user.clone();
        out.entry(user).or_default().push(d.stop().await);
    }
    out
}
