//! A token bucket for a connection's requests (ACK, HEARTBEAT and RENEW are not counted), and
//! TYPING's own limit per conversation.

use std::collections::HashMap;
use std::time::Duration;

use chat_protocol::ConversationId;
use tokio::time::Instant;

/// TYPING frames one connection passes on per conversation: one a second (DESIGN §11); more
/// are dropped without a word.
const TYPING_EVERY: Duration = Duration::from_secs(1);
/// Conversations a connection remembers TYPING times for; past this, entries older than
/// [`TYPING_EVERY`] are forgotten (they no longer limit anything), and if all are recent the
/// frame is dropped: a client typing in more conversations at once than this is not a person.
const TYPING_REMEMBERED: usize = 64;

/// When each conversation last passed a TYPING frame. Empty, without an allocation, until the
/// first one: most connections never type.
#[derive(Default)]
pub(crate) struct TypingGate(HashMap<ConversationId, Instant>);

impl TypingGate {
    /// May a TYPING frame for `conversation` pass at `now`?
    pub(crate) fn allow(&mut self, conversation: &ConversationId, now: Instant) -> bool {
        let recent = |at: &Instant| now.saturating_duration_since(*at) < TYPING_EVERY;
        if let Some(at) = self.0.get_mut(conversation) {
            if recent(at) {
                return false;
            }
            *at = now;
            return true;
        }
        if self.0.len() >= TYPING_REMEMBERED {
            self.0.retain(|_, at| recent(at));
            if self.0.len() >= TYPING_REMEMBERED {
                return false;
            }
        }
        self.0.insert(conversation.clone(), now);
        true
    }
}

/// `rate` requests a second on average, bursts of up to `burst`.
pub(crate) struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// A full bucket at `now`.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            at: now,
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_passes_once_a_second_per_conversation() {
        let now = Instant::now();
        let (a, b) = (
            ConversationId::parse("grp:a").unwrap(),
            ConversationId::parse("grp:b").unwrap(),
        );
        let mut gate = TypingGate::default();
        assert!(gate.allow(&a, now));
        assert!(!gate.allow(&a, now + Duration::from_millis(999)));
        assert!(gate.allow(&b, now + Duration::from_millis(10)));
        assert!(gate.allow(&a, now + Duration::from_millis(1000)));
    }

    #[test]
    fn typing_in_too_many_conversations_at_once_is_dropped() {
        let now = Instant::now();
        let mut gate = TypingGate::default();
        let id = |i: usize| ConversationId::parse(format!("grp:{i}")).unwrap();
        for i in 0..TYPING_REMEMBERED {
            assert!(gate.allow(&id(i), now));
        }
        assert!(!gate.allow(&id(TYPING_REMEMBERED), now));
        // A second later the old entries no longer count.
        assert!(gate.allow(&id(TYPING_REMEMBERED), now + TYPING_EVERY));
    }

    #[test]
    fn rate_limit_refills_over_time() {
        let now = Instant::now();
        let mut r = RateLimit::new(10, 2, now);
        assert!(r.allow(now) && r.allow(now));
        assert!(!r.allow(now));
        assert!(r.allow(now + Duration::from_millis(100)));
        assert!(!r.allow(now + Duration::from_millis(100)));
    }
}
