//! One recipient (a group member too): acks every delivery (as a real client must, or the
//! server resends), notes which of its senders' messages arrived, and times each from the send
//! time embedded in its text.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};

use chat_client::connect::{classify, close, Event};
use chat_client::keepalive::{phase, Keepalive};
use chat_client::peek::{peek, Peek};
use chat_client::Connection;

use super::{Run, Window};
use crate::client::send_all;
use crate::live::Live;
use crate::protocol;
use crate::stats::{Counts, Timeline};

/// Frames handled before the acks they produced are flushed: batches acks under load without
/// holding any back for long.
const MAX_BATCH: usize = 256;

/// What one recipient saw.
#[derive(Debug, Default)]
pub struct RecipientReport {
    /// `delivered[s][n]`: message `n` of sender `s` (of the ids given to [`Recipient::new`])
    /// arrived.
    pub delivered: Vec<Vec<bool>>,
    pub delivered_in_window: u64,
    /// With `--timeline-ms`: send to delivery, µs, by send time, for messages sent in the
    /// measured window.
    pub by_send_time: Timeline,
    /// Deliveries of a message already delivered (server resends, `retry: true` or not).
    pub duplicates: u64,
    /// Deliveries flagged `retry: true`.
    pub retries: u64,
    /// Deliveries that were not a numbered message from one of this recipient's senders.
    pub uncorrelated: u64,
    /// Errors the server answered acks with.
    pub errors: Counts<u16>,
    pub unparsed: u64,
    pub ended: Option<String>,
}

/// A recipient's protocol state, free of I/O.
pub struct Recipient {
    /// Sender id → its index.
    senders: HashMap<String, usize>,
    /// Keep latencies by send time (`--timeline-ms`).
    by_send_time: bool,
    window: Window,
    run: Arc<Run>,
    report: RecipientReport,
}

impl Recipient {
    /// A recipient of the messages of `senders` (one for 1:1, the other senders of a group).
    pub fn new(senders: &[String], timeline_ms: Option<u64>, run: Arc<Run>) -> Self {
        Self {
            senders: senders
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect(),
            by_send_time: timeline_ms.is_some(),
            window: run.window,
            run,
            report: RecipientReport {
                delivered: vec![Vec::new(); senders.len()],
                ..RecipientReport::default()
            },
        }
    }

    /// Applies one server frame received at `now_us`; returns the ACK to send, if any.
    pub fn on_text(&mut self, text: &str, now_us: u64) -> Option<String> {
        self.on_peek(peek(text), now_us)
    }

    /// [`Recipient::on_text`] of a frame already looked at.
    pub fn on_peek(&mut self, frame: Option<Peek<'_>>, now_us: u64) -> Option<String> {
        match frame {
            Some(Peek::Deliver(delivery)) => {
                // Acked whatever it is, or the server resends it; an id the protocol would
                // refuse cannot be acked (and is not the server's).
                let Ok(ack) = protocol::ack_frame(&delivery.message_id) else {
                    self.report.uncorrelated += 1;
                    return None;
                };
                // Group events (v1.1: created, added, …) come from `system`: acked, not counted.
                if delivery.from_user.as_ref() == "system" {
                    return Some(ack);
                }
                self.report.retries += u64::from(delivery.retry);
                let sender = self.senders.get(delivery.from_user.as_ref()).copied();
                let n = delivery
                    .client_msg_id
                    .as_deref()
                    .and_then(protocol::client_msg_number);
                let (Some(sender), Some(n)) = (sender, n) else {
                    self.report.uncorrelated += 1;
                    return Some(ack);
                };
                let (delivered, n) = (&mut self.report.delivered[sender], n as usize);
                if delivered.len() <= n {
                    delivered.resize(n + 1, false);
                }
                if std::mem::replace(&mut delivered[n], true) {
                    self.report.duplicates += 1;
                    return Some(ack);
                }
                let live = &self.run.live;
                Live::add(&live.completed, 1);
                if self.window.contains(now_us) {
                    self.report.delivered_in_window += 1;
                }
                if let Some(sent_us) = protocol::payload_sent_us(&delivery.message) {
                    let latency = now_us.saturating_sub(sent_us);
                    live.latency.record(latency);
                    if self.window.contains(sent_us) {
                        self.run.deliver_latency.record(latency);
                        if self.by_send_time {
                            self.report.by_send_time.record(sent_us, latency);
                        }
                    }
                }
                Some(ack)
            }
            Some(Peek::Error { status, .. }) => {
                self.report.errors.add(status);
                Live::add(&self.run.live.errors, 1);
                None
            }
            Some(_) => None,
            None => {
                self.report.unparsed += 1;
                None
            }
        }
    }

    pub fn finish(mut self, ended: Option<String>) -> RecipientReport {
        self.report.ended = ended;
        self.report
    }
}

/// Drives one recipient's connection until the run shuts down.
pub async fn drive(
    conn: Connection,
    mut recipient: Recipient,
    index: usize,
    heartbeat: Option<Duration>,
) -> RecipientReport {
    let run = recipient.run.clone();
    let (mut sink, mut stream) = conn.ws.split();
    let mut keepalive = Keepalive::new(&conn.welcome, heartbeat, phase(index));
    let ended = loop {
        let result = tokio::select! {
            biased;
            _ = run.shutdown.cancelled() => break None,
            item = stream.next() => {
                let mut acks = Vec::new();
                let mut ended = None;
                let mut next = Some(item);
                while let Some(item) = next.take() {
                    match classify(item) {
                        Event::Text(text) => acks.extend(recipient.on_text(&text, run.now_us())),
                        Event::Ignore => {}
                        Event::Ended(reason) => {
                            ended = Some(reason);
                            break;
                        }
                    }
                    if acks.len() < MAX_BATCH {
                        next = stream.next().now_or_never();
                    }
                }
                let sent = send_all(&mut sink, acks).await;
                match ended {
                    Some(reason) => break Some(reason),
                    None => sent,
                }
            }
            frame = keepalive.next() => send_all(&mut sink, vec![frame.to_owned()]).await,
        };
        if let Err(reason) = result {
            break Some(reason);
        }
    };
    if ended.is_none() {
        close(sink, stream).await;
    }
    recipient.finish(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn envelope(
        envelope_id: &str,
        from: &str,
        client_msg_id: &str,
        message: &str,
        retry: bool,
    ) -> String {
        serde_json::json!({
            "activeTime": 1, "from": "system", "messageId": envelope_id,
            "msg": {"type": 2, "status": 200, "params": {
                "toUser": {"openid": "bob", "loginStatus": "1", "userName": "bob"},
                "fromUser": {"openid": from, "loginStatus": "1", "userName": from},
                "message": message, "fileType": "0", "conversationId": "k", "seq": 1,
                "clientMsgId": client_msg_id}},
            "msgType": 1, "requestId": "q", "sessionId": "s", "to": ["bob"], "trigger": 1,
            "retry": retry
        })
        .to_string()
    }

    fn recipient() -> Recipient {
        Recipient::new(&["alice".into()], Some(100), super::super::tests::run(1, 2))
    }

    #[test]
    fn acks_and_times_each_delivery_once() {
        let mut r = recipient();
        let text = protocol::payload(1_200_000, 40);
        let ack = r
            .on_text(&envelope("e1", "alice", "c3", &text, false), 1_207_000)
            .unwrap();
        let ack: serde_json::Value = serde_json::from_str(&ack).unwrap();
        assert_eq!(
            ack,
            serde_json::json!({"type": 15, "params": {"from": "client", "msgid": "e1"}})
        );
        // A resend is acked again but counted once.
        assert!(r
            .on_text(&envelope("e1", "alice", "c3", &text, true), 1_300_000)
            .is_some());
        assert_eq!(r.run.live.completed.load(Ordering::Relaxed), 1);
        let run = r.run.clone();
        let report = r.finish(None);
        assert_eq!(report.delivered, vec![vec![false, false, false, true]]);
        assert_eq!(
            (
                report.duplicates,
                report.retries,
                report.delivered_in_window
            ),
            (1, 1, 1)
        );
        assert_eq!(run.deliver_latency.snapshot().max(), 7_000);
        assert_eq!(run.live.latency.snapshot().count(), 1);
        assert_eq!(report.by_send_time.len(), 1);
    }

    #[test]
    fn foreign_and_warmup_deliveries() {
        let mut r = recipient();
        assert!(r
            .on_text(&envelope("e1", "mallory", "c0", "t5 ", false), 10)
            .is_some());
        assert!(r
            .on_text(&envelope("e2", "alice", "x", "t5 ", false), 10)
            .is_some());
        assert!(r
            .on_text(&envelope("e3", "alice", "c0", "t5 ", false), 20)
            .is_some());
        assert_eq!(
            r.on_text(r#"{"type":16,"status":200,"params":{}}"#, 30),
            None
        );
        assert_eq!(
            r.on_text(r#"{"type":500,"status":429,"params":{}}"#, 30),
            None
        );
        let report = r.finish(None);
        assert_eq!(report.uncorrelated, 2);
        assert_eq!(report.delivered, vec![vec![true]]);
        assert_eq!(report.delivered_in_window, 0);
        assert_eq!(report.by_send_time.len(), 0);
        assert_eq!(report.errors.to_string(), "429: 1");
    }
}
