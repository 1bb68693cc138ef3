//! A token bucket for a connection's requests (ACK, HEARTBEAT and RENEW are not counted).

use tokio::time::Instant;

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
    use std::time::Duration;

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
