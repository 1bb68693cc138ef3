//! A connection core and the instant it lives at, for the tests.

use std::time::Duration;

use chat_protocol::RequestId;
use serde_json::Value;
use tokio::time::Instant;

use super::{bob, settings, WALL};
use crate::hub::Outbound;
use crate::session::core::{Connection, Effect, Ending, Incoming};
use crate::session::ops::{Call, Done, Finished, Op};

/// A connection and the instant it lives at.
pub(super) struct Harness {
    pub(super) c: Connection,
    pub(super) now: Instant,
}

impl Harness {
    /// A connection past WELCOME with an empty backlog.
    pub(super) fn new() -> Self {
        let mut h = Self::fresh();
        let first = h.effects();
        assert_eq!(first.len(), 2, "{first:?}");
        h.finish(Ok(Done::Backlog(vec![])), None, true);
        h
    }

    pub(super) fn fresh() -> Self {
        let now = Instant::now();
        Self {
            c: Connection::new(settings(), bob(), now, WALL),
            now,
        }
    }

    /// A connection past WELCOME (returned) whose token expires at `token_expires_ms`.
    pub(super) fn with_token_expiring(token_expires_ms: i64) -> (Self, Vec<Effect>) {
        let now = Instant::now();
        let mut who = (*bob()).clone();
        who.token_expires_ms = token_expires_ms;
        let mut h = Self {
            c: Connection::new(settings(), std::sync::Arc::new(who), now, WALL),
            now,
        };
        let first = h.effects();
        h.finish(Ok(Done::Backlog(vec![])), None, true);
        (h, first)
    }

    pub(super) fn effects(&mut self) -> Vec<Effect> {
        std::iter::from_fn(|| self.c.poll_effect()).collect()
    }

    pub(super) fn text(&mut self, frame: Value) -> Vec<Effect> {
        self.c
            .handle_frame(Incoming::Text(&frame.to_string()), self.now);
        self.effects()
    }

    pub(super) fn event(&mut self, event: Outbound) -> Vec<Effect> {
        self.c.handle_event(event, self.now);
        self.effects()
    }

    pub(super) fn finish(
        &mut self,
        result: crate::Result<Done>,
        request_id: Option<RequestId>,
        silent: bool,
    ) -> Vec<Effect> {
        self.c.handle_finished(
            Finished {
                request_id,
                silent,
                result,
            },
            self.now,
        );
        self.effects()
    }

    /// Moves the clock by `d` and fires the timer if a deadline passed.
    pub(super) fn advance(&mut self, d: Duration) -> Vec<Effect> {
        self.now += d;
        if self.c.poll_timeout() <= self.now {
            self.c.handle_timeout(self.now);
        }
        self.effects()
    }
}

pub(super) fn call(op: Op, rid: &str) -> Effect {
    Effect::Call(Call {
        op,
        request_id: Some(RequestId::from(rid)),
    })
}

pub(super) fn close(code: u16, reason: &'static str) -> Effect {
    Effect::Close(Ending {
        close: Some((code, reason)),
        flush_inbox: false,
    })
}
