//! A real WebSocket client for tests (tokio-tungstenite), with helpers to read typed frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected frame.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub welcome: Value,
    /// Frames read while looking for another one, returned by later reads first.
    pending: std::collections::VecDeque<Value>,
}

/// What ended a connection.
#[derive(Debug, PartialEq)]
pub enum Closed {
    Code(u16),
    /// Closed without a close frame (reset or EOF).
    Abrupt,
}

impl Client {
    /// Connects and reads WELCOME (type 20), which must be the first frame.
    pub async fn connect(url: &str, token: &str, device: Option<&str>) -> anyhow::Result<Self> {
        let mut full = format!("{url}?token={token}");
        if let Some(d) = device {
            full.push_str(&format!("&device={d}"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(full).await?;
        let mut c = Self {
            ws,
            welcome: Value::Null,
            pending: Default::default(),
        };
        let first = c.next_frame().await?;
        anyhow::ensure!(
            first["type"] == 20,
            "first frame must be WELCOME, got {first}"
        );
        c.welcome = first;
        Ok(c)
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    async fn next_frame(&mut self) -> anyhow::Result<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Ok(v);
        }
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => anyhow::bail!("no frame within {WAIT:?}"),
                Ok(None) => anyhow::bail!("connection ended"),
                Ok(Some(Err(e))) => anyhow::bail!("read error: {e}"),
                Ok(Some(Ok(Message::Text(t)))) => return Ok(serde_json::from_str(&t)?),
                Ok(Some(Ok(Message::Close(f)))) => anyhow::bail!("closed: {f:?}"),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next frame, whatever it is.
    pub async fn recv(&mut self) -> Value {
        self.next_frame().await.expect("frame")
    }

    /// The next frame matching `pred`; others are kept for later reads.
    pub async fn recv_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut skipped = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.pending.iter().position(&pred) {
                let v = self.pending.remove(pos).unwrap();
                self.pending.extend(skipped);
                return v;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = match tokio::time::timeout(left, self.read_socket()).await {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => panic!("waiting for {what}: {e}; skipped {skipped:?}"),
                Err(_) => panic!("waiting for {what}: timed out; skipped {skipped:?}"),
            };
            if pred(&frame) {
                self.pending.extend(skipped);
                return frame;
            }
            skipped.push(frame);
        }
    }

    async fn read_socket(&mut self) -> anyhow::Result<Value> {
        loop {
            match self.ws.next().await {
                None => anyhow::bail!("connection ended"),
                Some(Err(e)) => anyhow::bail!("read error: {e}"),
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
                Some(Ok(Message::Close(f))) => anyhow::bail!("closed: {f:?}"),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// A reply of type `kind` (status 200) or an ERROR.
    pub async fn reply(&mut self, kind: u64) -> Value {
        self.recv_where(&format!("reply {kind}"), |v| {
            v["type"] == kind || v["type"] == 500
        })
        .await
    }

    /// A push envelope whose `msg.type` is `kind`.
    pub async fn push(&mut self, kind: u64) -> Value {
        self.recv_where(&format!("push {kind}"), |v| v["msg"]["type"] == kind)
            .await
    }

    /// An ERROR (500) frame.
    pub async fn error(&mut self) -> Value {
        self.recv_where("error", |v| v["type"] == 500).await
    }

    /// Sends a 1:1 message and returns reply 0.
    pub async fn send_to(&mut self, to: &str, text: &str, client_msg_id: Option<&str>) -> Value {
        let mut params = json!({"toMessageId": to, "message": text, "fileType": 0});
        if let Some(c) = client_msg_id {
            params["clientMsgId"] = json!(c);
        }
        self.call(1, params, 0).await
    }

    /// Sends a message to group `group_id` and returns reply 0.
    pub async fn send_to_group(
        &mut self,
        group_id: &str,
        text: &str,
        client_msg_id: Option<&str>,
    ) -> Value {
        let mut params = json!({"toMessageId": group_id, "message": text});
        if let Some(c) = client_msg_id {
            params["clientMsgId"] = json!(c);
        }
        self.call(9, params, 0).await
    }

    /// Creates group `name` with `members` (the caller is added as its owner); returns its id.
    pub async fn create_group(&mut self, name: &str, members: &[&str]) -> String {
        let r = self
            .call(8, json!({"name": name, "members": members}), 8)
            .await;
        r["params"]["groupId"].as_str().expect("groupId").to_owned()
    }

    /// Sends a frame of type `kind` with `params` and a fresh `requestId`; returns the frame
    /// answering it, which must be of type `answer`.
    async fn call(&mut self, kind: u64, params: Value, answer: u64) -> Value {
        let rid = format!("r-{}", crate::fixtures::unique_id());
        self.send(json!({"type": kind, "params": params, "requestId": rid}))
            .await;
        let r = self
            .recv_where(&format!("reply to {kind}"), |v| {
                v["requestId"] == rid.as_str()
            })
            .await;
        assert_eq!(r["type"], answer, "reply to {kind}: {r}");
        r
    }

    /// ACKs a push envelope as the seeds do.
    pub async fn ack(&mut self, envelope: &Value) {
        let me = self.welcome["params"]["userId"].clone();
        self.send(json!({"type": 15, "params": {
            "from": "client", "msgid": envelope["messageId"], "fromUser": envelope["msg"]["params"]["fromUser"]["openid"], "toUser": me}}))
            .await;
    }

    /// Reads until the server closes; returns how.
    pub async fn closed(&mut self) -> Closed {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => panic!("connection still open"),
                Ok(None) | Ok(Some(Err(_))) => return Closed::Abrupt,
                Ok(Some(Ok(Message::Close(Some(f))))) => return Closed::Code(u16::from(f.code)),
                Ok(Some(Ok(Message::Close(None)))) => {
                    return Closed::Code(u16::from(CloseCode::Status))
                }
                Ok(Some(Ok(Message::Text(t)))) => self
                    .pending
                    .push_back(serde_json::from_str(&t).unwrap_or(Value::Null)),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Frames read while waiting for the close.
    pub fn leftover(&self) -> Vec<Value> {
        self.pending.iter().cloned().collect()
    }

    /// Nothing arrives within `d` (besides frames matching `ignore`).
    pub async fn quiet_for(&mut self, d: Duration) -> Option<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Some(v);
        }
        match tokio::time::timeout(d, self.read_socket()).await {
            Ok(Ok(v)) => Some(v),
            _ => None,
        }
    }
}
