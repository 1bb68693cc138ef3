//! One recipient: acks every delivery (as a real client must, or the server resends), notes which
//! of its sender's messages arrived, and times each from the send time embedded in its text.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};

use chat_client::connect::{classify, close, Event};
use chat_client::keepalive::{phase, Keepalive};
use chat_client::peek::{peek, Peek};
use chat_client::Connection;

use super::sender::send_all;
use super::{Run, Window};
use crate::protocol;
use crate::stats::{Counts, Timeline};

/// Frames handled before the acks they produced are flushed: batches acks under load without
/// holding any back for long.
const MAX_BATCH: usize = 256;

/// What one recipient saw.
#[derive(Debug, Default)]
pub struct RecipientReport {
    /// `delivered[n]`: message `n` of this recipient's sender arrived.
    pub delivered: Vec<bool>,
    pub delivered_in_window: u64,
    /// Send to delivery, µs, by send time, for messages sent in the measured window.
    pub deliver_latency: Timeline,
    /// Deliveries of a message already delivered (server resends, `retry: true` or not).
    pub duplicates: u64,
    /// Deliveries flagged `retry: true`.
    pub retries: u64,
    /// Deliveries that were not a numbered message from this recipient's sender.
    pub uncorrelated: u64,
    /// Errors the server answered acks with.
    pub errors: Counts<u16>,
    pub unparsed: u64,
    pub ended: Option<String>,
}

/// A recipient's protocol state, free of I/O.
pub struct Recipient {
    sender_id: String,
    window: Window,
    run: Arc<Run>,
    report: RecipientReport,
}

impl Recipient {
    pub fn new(sender_id: String, run: Arc<Run>) -> Self {
        Self {
            sender_id,
            window: run.window,
            run,
            report: RecipientReport::default(),
        }
    }

    /// Applies one server frame received at `now_us`; returns the ACK to send, if any.
    pub fn on_text(&mut self, text: &str, now_us: u64) -> Option<String> {
        match peek(text) {
            Some(Peek::Deliver(delivery)) => {
                // Acked whatever it is, or the server resends it; an id the protocol would
                // refuse cannot be acked (and is not the server's).
                let Ok(ack) = protocol::ack_frame(&delivery.message_id) else {
                    self.report.uncorrelated += 1;
                    return None;
                };
                self.report.retries += u64::from(delivery.retry);
                let n = delivery
                    .client_msg_id
                    .as_deref()
                    .and_then(protocol::client_msg_number)
                    .filter(|_| delivery.from_user == self.sender_id);
                let Some(n) = n else {
                    self.report.uncorrelated += 1;
                    return Some(ack);
                };
                let n = n as usize;
                if self.report.delivered.len() <= n {
                    self.report.delivered.resize(n + 1, false);
                }
                if std::mem::replace(&mut self.report.delivered[n], true) {
                    self.report.duplicates += 1;
                    return Some(ack);
                }
                self.run.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if self.window.contains(now_us) {
                    self.report.delivered_in_window += 1;
                }
                if let Some(sent_us) = protocol::payload_sent_us(&delivery.message) {
                    if self.window.contains(sent_us) {
                        self.report
                            .deliver_latency
                            .record(sent_us, now_us.saturating_sub(sent_us));
                    }
                }
                Some(ack)
            }
            Some(Peek::Error { status, .. }) => {
                self.report.errors.add(status);
                None
            }
            Some(_) => None,
            None => {
                self.report.unparsed += 1;
                None
            }
        }
    }

    fn finish(mut self, ended: Option<String>) -> RecipientReport {
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
        let run = Arc::new(Run::new(Duration::from_secs(1), Duration::from_secs(2)));
        Recipient::new("alice".into(), run)
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
        assert_eq!(r.run.counters.delivered.load(Ordering::Relaxed), 1);
        let report = r.finish(None);
        assert_eq!(report.delivered, vec![false, false, false, true]);
        assert_eq!(
            (
                report.duplicates,
                report.retries,
                report.delivered_in_window
            ),
            (1, 1, 1)
        );
        assert_eq!(report.deliver_latency.summary().max_ms, 7.0);
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
        assert_eq!(report.delivered, vec![true]);
        assert_eq!(report.delivered_in_window, 0);
        assert_eq!(report.deliver_latency.len(), 0);
        assert_eq!(report.errors.to_string(), "429: 1");
    }
}
