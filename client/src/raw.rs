//! The low-level mode, for tests: one connection whose frames are read and written as JSON
//! exactly as they are on the wire, so a test can send bad input, watch exact frames and close
//! codes, and decide itself when to ACK. Its readers panic with what they were waiting for
//! when a frame does not come: a test wants that message, not an error to unwrap.
//!
//! Applications use [`crate::Client`], which acks, de-duplicates, resends and reconnects.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::connect::{Connector, TokenIn, Ws};
use crate::error::{Error, Result};

/// How long a read waits for an expected frame.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long [`RawClient::closed`] waits for the server to close.
const CLOSE_WAIT: Duration = Duration::from_secs(15);

/// One connection, frames as JSON values.
pub struct RawClient {
    /// The socket, for what the helpers do not cover (pings, binary or broken frames, close).
    pub ws: Ws,
    /// WELCOME as the server wrote it.
    pub welcome: Value,
    /// Frames read while looking for another one, returned by later reads first.
    pending: VecDeque<Value>,
}

/// What ended a connection.
#[derive(Debug, PartialEq)]
pub enum Closed {
    /// A close frame with this code.
    Code(u16),
    /// Closed without a close frame (reset or EOF).
    Abrupt,
}

impl RawClient {
    /// Connects to `url` with `token` in the query as `device` and reads WELCOME, which must
    /// be the first frame.
    pub async fn connect(url: &str, token: &str, device: Option<&str>) -> Result<Self> {
        Self::connect_with(url, token, device, TokenIn::Query).await
    }

    /// [`RawClient::connect`] with the token where `token_in` says.
    pub async fn connect_with(
        url: &str,
        token: &str,
        device: Option<&str>,
        token_in: TokenIn,
    ) -> Result<Self> {
        let connector = Connector::resolve(url)
            .await?
            .token_in(token_in)
            .timeout(WAIT);
        let conn = connector.connect(0, token, device).await?;
        let welcome = serde_json::from_str(&conn.welcome_text).map_err(Error::Frame)?;
        Ok(Self {
            ws: conn.ws,
            welcome,
            pending: VecDeque::new(),
        })
    }

    /// Sends `frame` as it is.
    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// Sends `text` as one text frame, whatever it holds.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_owned().into()))
            .await
            .expect("send");
    }

    /// The next frame, whatever it is.
    pub async fn recv(&mut self) -> Value {
        if let Some(v) = self.pending.pop_front() {
            return v;
        }
        match tokio::time::timeout(WAIT, self.read_socket()).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => panic!("waiting for a frame: {e}"),
            Err(_) => panic!("waiting for a frame: none within {WAIT:?}"),
        }
    }

    /// The next frame matching `pred`; others are kept for later reads.
    pub async fn recv_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut skipped = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(pos) = self.pending.iter().position(&pred) {
                let v = self.pending.remove(pos).expect("found");
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

    async fn read_socket(&mut self) -> Result<Value> {
        loop {
            match self.ws.next().await {
                None => return Err(Error::Closed("eof".into())),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(&t).map_err(Error::Frame)
                }
                Some(Ok(Message::Close(f))) => return Err(Error::Closed(format!("{f:?}"))),
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

    /// A push envelope of type `kind` carrying a user's message: group events (v1.1, a DELIVER
    /// GROUP with `system`) are skipped, and kept for later reads.
    pub async fn user_push(&mut self, kind: u64) -> Value {
        self.recv_where(&format!("push {kind} of a user's message"), |v| {
            v["msg"]["type"] == kind && v["msg"]["params"].get("system").is_none()
        })
        .await
    }

    /// The next group event (v1.1) `event` (`created`, `added`, `removed`, `left`, …).
    pub async fn group_event(&mut self, event: &str) -> Value {
        self.recv_where(&format!("group event {event}"), |v| {
            v["msg"]["type"] == 10 && v["msg"]["params"]["system"]["event"] == event
        })
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
        let r = self.request(kind, params).await;
        assert_eq!(r["type"], answer, "reply to {kind}: {r}");
        r
    }

    /// Sends a frame of type `kind` with `params` and a fresh `requestId`; returns the frame
    /// answering it (a reply or an ERROR), whatever its type.
    pub async fn request(&mut self, kind: u64, params: Value) -> Value {
        // Unique in the process: a push envelope carries its sender's requestId, which must
        // not pass for the answer to another client's request.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let rid = format!("raw-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.send(json!({"type": kind, "params": params, "requestId": rid}))
            .await;
        self.recv_where(&format!("reply to {kind}"), |v| {
            v["requestId"] == rid.as_str() && v.get("msg").is_none()
        })
        .await
    }

    /// ACKs a push envelope as the seeds do.
    pub async fn ack(&mut self, envelope: &Value) {
        let me = self.welcome["params"]["userId"].clone();
        let from = &envelope["msg"]["params"]["fromUser"]["openid"];
        self.send(json!({"type": 15, "params": {
            "from": "client", "msgid": envelope["messageId"], "fromUser": from, "toUser": me}}))
            .await;
    }

    /// Reads until the server closes; returns how.
    pub async fn closed(&mut self) -> Closed {
        let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
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

    /// The next push of `kind` within `within`, dropping other frames; `None` when none came.
    pub async fn push_within(&mut self, kind: u64, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.quiet_for(left).await?;
            if frame["msg"]["type"] == kind {
                return Some(frame);
            }
        }
    }

    /// The next frame if one arrives within `d`.
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
