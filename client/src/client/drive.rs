//! How a [`Client`] runs: each turn writes what the session asks, then waits for a frame, a
//! keepalive or a timer; connections lost, reconnects with backoff, and the DRAIN handover.

use std::time::Duration;

use chat_protocol::KickReason;
use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use super::link::{self, sleep_until, wake, Link, LinkWake};
use super::{Client, FIRST_BACKOFF, MAX_BACKOFF};
use crate::connect::{classify, Event as Read};
use crate::error::{Error, Result};
use crate::session::{Effect, Event};

impl Client {
    /// One turn: write what the session asks, then wait for a frame, a keepalive or a timer.
    pub(super) async fn step(&mut self) -> Result<()> {
        self.flush(false).await;
        if let Some(reason) = &self.ended {
            return Err(Error::Closed(reason.clone()));
        }
        let wake_at = self.next_wake();
        let woke = {
            let Self { link, old, .. } = self;
            tokio::select! {
                w = wake(link.as_mut()) => Some((false, w)),
                w = wake(old.as_mut()) => Some((true, w)),
                _ = sleep_until(wake_at) => None,
            }
        };
        match woke {
            Some((from_old, LinkWake::Read(item))) => self.read(from_old, item).await,
            Some((from_old, LinkWake::Beat(frame))) => {
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
            None => self.timers().await,
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
    async fn flush(&mut self, from_old: bool) {
        while let Some(effect) = self.session.poll() {
            match effect {
                Effect::Write(text) => {
                    if let Some(l) = &mut self.link {
                        if let Err(reason) = l.write(text).await {
                            self.lost(false, reason);
                        }
                    }
                }
                Effect::Event(Event::Kicked(KickReason::Replaced)) if from_old => {}
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
        self.generation += 1;
        self.events.push_back(Event::Disconnected(reason.clone()));
        // 1000 (logged out) and 4001 (kicked) are final, DESIGN §4 of docs/protocol.md.
        if reason == "close 1000" || reason == "close 4001" {
            self.ended = Some(reason);
            return;
        }
        if self.handover_at.is_none() {
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

    async fn timers(&mut self) {
        let now = Instant::now();
        self.session.on_timeout(now.into_std());
        if self.handover_at.is_some_and(|at| at <= now) {
            self.handover_at = None;
            self.handover().await;
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            self.reconnect().await;
        }
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
    }

    /// DRAIN: the new connection first, then the old one is closed (read until it ends).
    async fn handover(&mut self) {
        match self.open_next().await {
            Ok(link) => {
                if let Some(mut old) = self.link.replace(link) {
                    let _ = old.sink.send(Message::Close(None)).await;
                    self.old = Some(old);
                }
                self.session.connected();
            }
            Err(_) if self.link.is_some() => {
                self.handover_at = Some(Instant::now() + self.jitter());
            }
            Err(_) => self.retry_at = Some(Instant::now() + self.jitter()),
        }
    }

    async fn reconnect(&mut self) {
        match self.open_next().await {
            Ok(link) => {
                self.link = Some(link);
                self.session.connected();
            }
            Err(_) => self.retry_at = Some(Instant::now() + self.jitter()),
        }
    }

    async fn open_next(&mut self) -> Result<Link> {
        let url = self
            .endpoints
            .next_url()
            .ok_or_else(|| Error::Closed("no endpoint to connect to".into()))?;
        let (link, welcome) = match link::open(&url, &self.options).await {
            Ok(ok) => ok,
            Err(e) => {
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                return Err(e);
            }
        };
        self.backoff = FIRST_BACKOFF;
        self.servers.push(welcome.server.clone());
        self.events.push_back(Event::Connected(welcome.clone()));
        self.welcome = welcome;
        Ok(link)
    }

    /// The backoff with full jitter (xorshift: no need for a cryptographic generator here).
    fn jitter(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.backoff.mul_f64((self.seed % 1000) as f64 / 1000.0)
    }
}
