//! How a [`Client`] runs: each turn writes what the session asks, then waits for a frame, a
//! keepalive or a timer; connections lost, reconnects with backoff, and the DRAIN handover.

use std::time::Duration;

use chat_protocol::KickReason;
use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use super::link::{connected, sleep_until, wake, Connecting, LinkWake, Opened};
use super::{Client, FIRST_BACKOFF, MAX_BACKOFF};
use crate::connect::{classify, Event as Read};
use crate::error::{Error, Result};
use crate::session::{Effect, Event};

/// What ended a turn's wait.
enum Woke {
    /// A frame or keepalive on the current (false) or old (true) connection.
    Link(bool, LinkWake),
    /// The connect in progress finished.
    Connected(Box<Opened>),
    /// A timer is due.
    Timer,
}

impl Client {
    /// One turn: write what the session asks, then wait for a frame, a keepalive or a timer.
    pub(super) async fn step(&mut self) -> Result<()> {
        self.flush(false).await;
        if let Some(reason) = &self.ended {
            return Err(Error::Closed(reason.clone()));
        }
        let wake_at = self.next_wake();
        let woke = {
            let Self {
                link,
                old,
                connecting,
                ..
            } = self;
            tokio::select! {
                w = wake(link.as_mut()) => Woke::Link(false, w),
                w = wake(old.as_mut()) => Woke::Link(true, w),
                r = connected(connecting.as_mut()) => Woke::Connected(r),
                _ = sleep_until(wake_at) => Woke::Timer,
            }
        };
        match woke {
            Woke::Link(from_old, LinkWake::Read(item)) => self.read(from_old, item).await,
            Woke::Link(from_old, LinkWake::Beat(frame)) => {
                let link = if from_old {
                    &mut self.old
                } else {
                    &mut self.link
                };
                if let Some(l) = link {
                    if let Err(reason) = l.write(frame.to_owned()).await {
                        self.lost(from_old, reason);
                    }
                }
            }
            Woke::Connected(result) => self.connect_done(result).await,
            Woke::Timer => self.timers(),
        }
        Ok(())
    }

    async fn read(&mut self, from_old: bool, item: Option<Result<Message, tungstenite::Error>>) {
        match classify(item) {
            Read::Text(text) => {
                let now = Instant::now();
                if let Some(l) = if from_old {
                    &mut self.old
                } else {
                    &mut self.link
                } {
                    l.last_read = now;
                }
                // A frame this client cannot read is skipped: the protocol lets servers add
                // frame types (v1.1) that older clients ignore.
                let _ = self.session.on_text(&text, now.into_std());
                self.flush(from_old).await;
            }
            Read::Ignore => {
                if let Some(l) = if from_old {
                    &mut self.old
                } else {
                    &mut self.link
                } {
                    l.last_read = Instant::now();
                }
            }
            Read::Ended(reason) => self.lost(from_old, reason),
        }
    }

    /// Carries out the session's effects; `from_old`: they answer a frame of the old
    /// connection of a handover, whose KICKED `replaced` is the handover's expected end.
    ///
    /// Cancel-safe, as every await of a turn is (callers race [`Client::next_event`] against
    /// their own timers): the effects are taken from the session without awaiting, and a frame
    /// leaves the outbox only once written.
    async fn flush(&mut self, from_old: bool) {
        self.take_effects(from_old);
        while let Some(text) = self.outbox.front().cloned() {
            let Some(l) = &mut self.link else {
                // Nowhere to write: the SENDs among these are written again on the next
                // connection; ACKs are owed again when the messages come again.
                self.outbox.clear();
                return;
            };
            match l.write(text).await {
                Ok(()) => {
                    self.outbox.pop_front();
                }
                Err(reason) => self.lost(false, reason),
            }
        }
    }

    fn take_effects(&mut self, from_old: bool) {
        while let Some(effect) = self.session.poll() {
            match effect {
                Effect::Write(text) => self.outbox.push_back(text),
                Effect::Event(Event::Kicked(KickReason::Replaced))
                    if from_old || self.handing_over() => {}
                Effect::Event(e) => self.events.push_back(e),
                Effect::Reconnect { after } => {
                    if self.options.follow_drain && !from_old {
                        self.handover_at = Some(Instant::now() + after);
                    }
                }
            }
        }
    }

    fn lost(&mut self, from_old: bool, reason: String) {
        if from_old {
            self.old = None;
            return;
        }
        self.link = None;
        self.outbox.clear();
        self.generation += 1;
        // The new connection of a handover registered before its connect finished here, and
        // the server closed the old one (KICKED `replaced`, 4001): the expected end, not a loss.
        if self.handing_over() {
            return;
        }
        self.events.push_back(Event::Disconnected(reason.clone()));
        // 1000 (logged out) and 4001 (kicked) are final, DESIGN §4 of docs/protocol.md.
        if reason == "close 1000" || reason == "close 4001" {
            self.ended = Some(reason);
            return;
        }
        if self.handover_at.is_none() && self.connecting.is_none() {
            self.retry_at = Some(Instant::now() + self.jitter());
        }
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let session = self.session.next_timeout().map(Instant::from_std);
        let stall = self
            .link
            .as_ref()
            .filter(|_| self.session.in_flight() > 0)
            .map(|l| l.last_read + self.options.stall);
        [session, self.handover_at, self.retry_at, stall]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(far)
    }

    /// A DRAIN handover's new connection is being opened.
    fn handing_over(&self) -> bool {
        self.connecting.as_ref().is_some_and(|c| c.handover)
    }

    /// Fires what is due: gap SYNCs, a stalled connection given up, and the start of a
    /// connect (DRAIN handover or reconnect), which then runs across turns.
    fn timers(&mut self) {
        let now = Instant::now();
        self.session.on_timeout(now.into_std());
        let stalled = self.link.as_ref().is_some_and(|l| {
            self.session.in_flight() > 0 && now >= l.last_read + self.options.stall
        });
        if stalled {
            let reason = format!(
                "no frame for {:?} while answers are owed",
                self.options.stall
            );
            self.lost(false, reason);
        }
        if self.connecting.is_some() {
            return;
        }
        let handover = self.handover_at.is_some_and(|at| at <= now);
        if handover || self.retry_at.is_some_and(|at| at <= now) {
            self.handover_at = None;
            self.retry_at = None;
            match self.endpoints.next_url() {
                Some(url) => {
                    let options = self.options.clone();
                    self.connecting = Some(Connecting::start(url, options, handover));
                }
                None => self.retry_at = Some(now + self.jitter()),
            }
        }
    }

    /// A connect finished. A handover's new connection becomes the current one and the old
    /// one is closed (and read until it ends); unanswered SENDs are written again on it.
    async fn connect_done(&mut self, result: Box<Opened>) {
        let Some(Connecting { handover, .. }) = self.connecting.take() else {
            return;
        };
        let (link, welcome) = match *result {
            Ok(ok) => ok,
            Err(_) => {
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                let at = Instant::now() + self.jitter();
                match handover && self.link.is_some() {
                    true => self.handover_at = Some(at),
                    false => self.retry_at = Some(at),
                }
                return;
            }
        };
        self.backoff = FIRST_BACKOFF;
        self.servers.push(welcome.server.clone());
        self.events.push_back(Event::Connected(welcome.clone()));
        self.welcome = welcome;
        self.outbox.clear();
        let previous = self.link.replace(link);
        self.session.connected();
        if handover {
            self.old = previous;
            if let Some(old) = &mut self.old {
                let _ = old.sink.send(Message::Close(None)).await;
            }
        }
    }

    /// The backoff with full jitter (xorshift: no need for a cryptographic generator here).
    fn jitter(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.backoff.mul_f64((self.seed % 1000) as f64 / 1000.0)
    }
}
