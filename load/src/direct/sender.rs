//! One sender: sends numbered messages to its recipient or group — paced on its [`Schedule`] or
//! keeping a window of sends outstanding — and times each until its reply 0 (durably stored).
//! A group's sender is a member too: it acks the other senders' messages as a [`Recipient`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{sleep_until, Instant};

use chat_client::connect::{classify, close, Event};
use chat_client::keepalive::{phase, Keepalive};
use chat_client::peek::{peek, request_id_text, Peek};
use chat_client::Connection;
use chat_protocol::{GroupId, UserId};

use super::recipient::{Recipient, RecipientReport};
use super::{Run, Window};
use crate::client::send_all;
use crate::live::Live;
use crate::pacing::Schedule;
use crate::protocol;
use crate::stats::Counts;

/// How a sender decides when to send.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Open-loop, at the schedule's times.
    Paced(Schedule),
    /// Closed-loop: keep this many sends without a reply outstanding.
    Window(usize),
}

/// What one sender saw.
#[derive(Debug, Default)]
pub struct SenderReport {
    pub sent: u64,
    pub sent_in_window: u64,
    pub stored_in_window: u64,
    /// `stored[n]`: message `n` got its reply 0.
    pub stored: Vec<bool>,
    pub errors: Counts<u16>,
    /// Sends with neither reply 0 nor an error by the end.
    pub unanswered: u64,
    /// Delivered notices (type 17) received.
    pub notices: u64,
    pub unparsed: u64,
    /// Why the connection ended early, if it did.
    pub ended: Option<String>,
    /// A group sender's deliveries (the other senders' messages).
    pub member: Option<RecipientReport>,
}

/// Where a sender's messages go.
#[derive(Debug, Clone)]
pub enum Target {
    /// SEND (1) to a user.
    User(UserId),
    /// SEND (9) to a group.
    Group(GroupId),
}

/// A sender's protocol state, free of I/O.
pub struct Sender {
    to: Target,
    member: Option<Recipient>,
    message_bytes: usize,
    window: Window,
    run: Arc<Run>,
    /// Message number → send time (µs since the run's start).
    outstanding: HashMap<u64, u64>,
    sending: bool,
    /// After an ERROR 429 (rate limited): no new window sends before this (µs since the start).
    resume_at_us: u64,
    report: SenderReport,
}

/// How long a window-mode sender holds off after an ERROR 429. Sending again at once, as the
/// freed slot invites, only meets the limit again (147k 429s in one 20-pair run); 50 ms lets
/// the server's token bucket refill a few sends' worth.
const RATE_LIMITED_PAUSE_US: u64 = 50_000;

impl Sender {
    /// A sender to user `to`, counted in `run.counters.sending` until it stops.
    pub fn new(to: String, message_bytes: usize, run: Arc<Run>) -> Self {
        let to = Target::User(UserId::parse(to).expect("the load's user ids are valid ids"));
        Self::to(to, None, message_bytes, run)
    }

    /// A sender to `to`; `member` takes the deliveries it receives.
    pub fn to(to: Target, member: Option<Recipient>, message_bytes: usize, run: Arc<Run>) -> Self {
        run.counters.sending.fetch_add(1, Ordering::Relaxed);
        Self {
            to,
            member,
            message_bytes,
            window: run.window,
            run,
            outstanding: HashMap::new(),
            resume_at_us: 0,
            sending: true,
            report: SenderReport::default(),
        }
    }

    pub fn sending(&self) -> bool {
        self.sending
    }

    /// Stops sending for good (replies are still read).
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.sending, false) {
            self.run.counters.sending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The SEND frame of the next message, sent at `now_us`.
    pub fn next_frame(&mut self, now_us: u64) -> String {
        let n = self.report.sent;
        self.report.sent += 1;
        if self.window.contains(now_us) {
            self.report.sent_in_window += 1;
        }
        self.report.stored.push(false);
        self.outstanding.insert(n, now_us);
        Live::add(&self.run.live.sent, 1);
        self.run
            .counters
            .outstanding
            .fetch_add(1, Ordering::Relaxed);
        let text = protocol::payload(now_us, self.message_bytes);
        match &self.to {
            Target::User(to) => protocol::send_frame(to, n, text),
            Target::Group(group) => protocol::group_send_frame(group, n, text),
        }
    }

    /// Paced mode: the frames of every message due by `elapsed` (recording how late each is) and
    /// when the next one is due, `None` once the schedule passes the end of sending.
    pub fn paced_batch(
        &mut self,
        schedule: &Schedule,
        elapsed: Duration,
    ) -> (Vec<String>, Option<Duration>) {
        let send_end = Duration::from_micros(self.window.end_us);
        let due = schedule.due(elapsed.min(send_end.saturating_sub(Duration::from_nanos(1))));
        let now_us = elapsed.as_micros() as u64;
        let mut frames = Vec::new();
        while self.report.sent < due {
            let late = elapsed.saturating_sub(schedule.at(self.report.sent));
            self.run.send_lag.record(late.as_micros() as u64);
            frames.push(self.next_frame(now_us));
        }
        let next_at = schedule.at(self.report.sent);
        (frames, (next_at < send_end).then_some(next_at))
    }

    /// Window mode: frames to fill the window of `size` outstanding sends.
    pub fn window_batch(&mut self, size: usize, now_us: u64) -> Vec<String> {
        (self.outstanding()..size)
            .map(|_| self.next_frame(now_us))
            .collect()
    }

    /// When a rate-limited sender may send again (µs since the start); 0 when it is not held.
    pub fn resume_at_us(&self) -> u64 {
        self.resume_at_us
    }

    /// The number of sends without a reply.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Applies one server frame received at `now_us`; returns the ACK of a delivery.
    pub fn on_text(&mut self, text: &str, now_us: u64) -> Option<String> {
        let frame = peek(text);
        if let (Some(member), Some(Peek::Deliver(_))) = (&mut self.member, &frame) {
            return member.on_peek(frame, now_us);
        }
        match frame {
            Some(Peek::Stored(stored)) => {
                let request_id = stored.request_id.map(request_id_text);
                let sent_us = self.answered(request_id)?;
                let n = request_id.and_then(protocol::request_number);
                if let Some(slot) = n.and_then(|n| self.report.stored.get_mut(n as usize)) {
                    *slot = true;
                }
                Live::add(&self.run.live.stored, 1);
                if self.window.contains(now_us) {
                    self.report.stored_in_window += 1;
                }
                if self.window.contains(sent_us) {
                    self.run
                        .store_latency
                        .record(now_us.saturating_sub(sent_us));
                }
            }
            Some(Peek::Error { status, request_id }) => {
                self.report.errors.add(status);
                if status == 429 {
                    self.resume_at_us = now_us + RATE_LIMITED_PAUSE_US;
                }
                Live::add(&self.run.live.errors, 1);
                self.answered(request_id.map(request_id_text));
            }
            Some(Peek::DeliveredNotice) => self.report.notices += 1,
            Some(_) => {}
            None => self.report.unparsed += 1,
        }
        None
    }

    /// Removes an answered send from the outstanding ones, returning its send time.
    fn answered(&mut self, request_id: Option<&str>) -> Option<u64> {
        let n = request_id.and_then(protocol::request_number)?;
        let sent_us = self.outstanding.remove(&n)?;
        self.run
            .counters
            .outstanding
            .fetch_sub(1, Ordering::Relaxed);
        Some(sent_us)
    }

    fn finish(mut self, ended: Option<String>) -> SenderReport {
        self.stop();
        self.report.unanswered = self.outstanding.len() as u64;
        self.run
            .counters
            .outstanding
            .fetch_sub(self.outstanding.len() as i64, Ordering::Relaxed);
        self.report.member = self.member.take().map(|m| m.finish(None));
        self.report.ended = ended;
        self.report
    }
}

/// Drives one sender's connection until the run shuts down.
pub async fn drive(
    conn: Connection,
    mut sender: Sender,
    mode: Mode,
    index: usize,
    heartbeat: Option<Duration>,
) -> SenderReport {
    let run = sender.run.clone();
    let (mut sink, mut stream) = conn.ws.split();
    let mut keepalive = Keepalive::new(&conn.welcome, heartbeat, phase(index));
    let paced = matches!(mode, Mode::Paced(_));
    let mut next_due = Box::pin(sleep_until(match mode {
        Mode::Paced(schedule) => run.base + schedule.at(0),
        Mode::Window(_) => run.base,
    }));
    let ended = loop {
        let sending = sender.sending();
        let held = sender.resume_at_us() > run.now_us();
        let window_open =
            matches!(mode, Mode::Window(w) if sending && !held && sender.outstanding() < w);
        let result: Result<(), String> = tokio::select! {
            biased;
            _ = run.shutdown.cancelled() => break None,
            item = stream.next() => match classify(item) {
                Event::Text(text) => match sender.on_text(&text, run.now_us()) {
                    Some(ack) => send_all(&mut sink, vec![ack]).await,
                    None => Ok(()),
                },
                Event::Ignore => Ok(()),
                Event::Ended(reason) => break Some(reason),
            },
            // A paced sender stops by its schedule, which ends with the window; only the
            // window mode needs telling.
            _ = run.stop_sending.cancelled(), if sending && !paced => {
                sender.stop();
                Ok(())
            }
            _ = &mut next_due, if sending && paced => {
                let Mode::Paced(schedule) = mode else { continue };
                let (frames, next_at) = sender.paced_batch(&schedule, Instant::now() - run.base);
                match next_at {
                    Some(at) => next_due.as_mut().reset(run.base + at),
                    None => sender.stop(),
                }
                send_all(&mut sink, frames).await
            }
            _ = async {}, if window_open => {
                let Mode::Window(size) = mode else { continue };
                let frames = sender.window_batch(size, run.now_us());
                send_all(&mut sink, frames).await
            }
            _ = tokio::time::sleep(Duration::from_micros(
                sender.resume_at_us().saturating_sub(run.now_us()),
            )), if held && !paced => Ok(()),
            frame = keepalive.next() => send_all(&mut sink, vec![frame.to_owned()]).await,
        };
        if let Err(reason) = result {
            break Some(reason);
        }
    };
    if ended.is_none() {
        close(sink, stream).await;
    }
    sender.finish(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender() -> Sender {
        Sender::new("bob".into(), 32, super::super::tests::run(1, 2))
    }

    #[test]
    fn reply_zero_completes_a_send() {
        let mut s = sender();
        let frame = s.next_frame(1_500_000);
        assert!(frame.contains(r#""requestId":"r0""#), "{frame}");
        assert_eq!(s.outstanding(), 1);
        assert_eq!(s.run.counters.outstanding.load(Ordering::Relaxed), 1);
        s.on_text(
            r#"{"type":0,"status":200,"params":{"seq":1},"requestId":"r0"}"#,
            1_504_000,
        );
        assert_eq!(s.outstanding(), 0);
        assert_eq!(s.run.live.stored.load(Ordering::Relaxed), 1);
        assert_eq!(s.run.live.sent.load(Ordering::Relaxed), 1);
        let run = s.run.clone();
        let report = s.finish(None);
        assert_eq!(report.stored, vec![true]);
        assert_eq!(
            (report.sent, report.sent_in_window, report.stored_in_window),
            (1, 1, 1)
        );
        assert_eq!(run.store_latency.snapshot().max(), 4_000);
    }

    #[test]
    fn warmup_sends_are_not_measured_and_errors_free_the_slot() {
        let mut s = sender();
        s.next_frame(100); // warm-up
        s.next_frame(1_000_100);
        s.on_text(
            r#"{"type":0,"status":200,"params":{},"requestId":"r0"}"#,
            1_000_200,
        );
        s.on_text(
            r#"{"type":500,"status":429,"params":{},"requestId":"r1"}"#,
            1_000_300,
        );
        s.on_text(
            r#"{"type":0,"status":200,"params":{},"requestId":"r9"}"#,
            1_000_400,
        );
        s.on_text("garbage", 1_000_500);
        assert_eq!(s.outstanding(), 0);
        // The 429 holds new window sends off for a while.
        assert_eq!(s.resume_at_us(), 1_000_300 + RATE_LIMITED_PAUSE_US);
        let run = s.run.clone();
        let report = s.finish(None);
        assert_eq!(report.stored, vec![true, false]);
        assert_eq!(run.store_latency.snapshot().count(), 0);
        assert_eq!(run.live.errors.load(Ordering::Relaxed), 1);
        assert_eq!(report.stored_in_window, 1);
        assert_eq!(report.errors.to_string(), "429: 1");
        assert_eq!((report.unparsed, report.unanswered), (1, 0));
    }

    #[test]
    fn paced_batches_catch_up_and_stop_at_the_end() {
        // 10 msgs/s for one sender; sending ends at 3 s (1 s warm-up + 2 s).
        let mut s = sender();
        let schedule = Schedule::for_sender(10.0, 1, 0);
        let (frames, next) = s.paced_batch(&schedule, Duration::ZERO);
        assert_eq!((frames.len(), next), (1, Some(Duration::from_millis(100))));
        // Woken 250 ms late: messages 1, 2 and 3 are due now.
        let (frames, next) = s.paced_batch(&schedule, Duration::from_millis(350));
        assert_eq!((frames.len(), next), (3, Some(Duration::from_millis(400))));
        let (frames, next) = s.paced_batch(&schedule, Duration::from_secs(10));
        assert_eq!((frames.len(), next), (26, None));
        let run = s.run.clone();
        let report = s.finish(None);
        assert_eq!(report.sent, 30);
        let lag = run.send_lag.snapshot();
        assert_eq!((lag.count(), lag.max()), (30, 9_600_000));
        let p50 = lag.percentile(50.0);
        assert!(
            (8_100_000..8_100_000 + 8_100_000 / 64).contains(&p50),
            "{p50}"
        );
    }

    #[test]
    fn window_batches_fill_the_window() {
        let mut s = sender();
        assert_eq!(s.window_batch(4, 0).len(), 4);
        assert_eq!(s.window_batch(4, 0).len(), 0);
        s.on_text(r#"{"type":0,"status":200,"params":{},"requestId":"r2"}"#, 5);
        assert_eq!(s.window_batch(4, 6).len(), 1);
        assert_eq!(s.outstanding(), 4);
    }

    #[test]
    fn unanswered_sends_are_counted_at_the_end() {
        let mut s = sender();
        s.next_frame(10);
        s.next_frame(20);
        let run = s.run.clone();
        assert_eq!(run.counters.sending.load(Ordering::Relaxed), 1);
        let report = s.finish(Some("close 1012".into()));
        assert_eq!(report.unanswered, 2);
        assert_eq!(run.counters.outstanding.load(Ordering::Relaxed), 0);
        assert_eq!(run.counters.sending.load(Ordering::Relaxed), 0);
        assert_eq!(report.ended.as_deref(), Some("close 1012"));
    }
}
