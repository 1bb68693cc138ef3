//! Drain: how a pod goes away without losing a message or causing a reconnect storm.
//!
//! 1. Go unready and refuse new upgrades (503).
//! 2. Tell every connection DRAIN (22) with the seconds left and a `reconnectAfterMs` spread
//!    uniformly over the first half of the window, so the other pods see a ramp, not a storm.
//! 3. Clients reconnect elsewhere, then close; the new route's higher epoch fences the old one.
//! 4. At the deadline, whatever is left is flushed and closed with 1012.
//!
//! SIGTERM runs the same steps with the configured drain time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::hub::{DrainNotice, Hub, Outbound};

/// Share of the drain window over which reconnections are spread.
pub(crate) const RAMP_SHARE: f64 = 0.5;

/// This pod's drain: whether it started and its deadline. Shared by the upgrade handler, readiness
/// and `/admin/drain`; a drain is never called off.
#[derive(Default)]
pub struct Drain {
    draining: AtomicBool,
    deadline: std::sync::Mutex<Option<Instant>>,
}

impl Drain {
    /// Whether a drain started: upgrades are refused and readiness fails from then on.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The current drain's deadline, if draining.
    pub fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().expect("drain lock")
    }

    /// Starts draining (idempotent: a second call can only bring the deadline closer).
    /// Returns the deadline in force and how many connections were told.
    pub fn start(&self, hub: &Hub, window: Duration) -> (Instant, usize) {
        let requested = Instant::now() + window;
        let deadline = {
            let mut d = self.deadline.lock().expect("drain lock");
            let deadline = d.map_or(requested, |cur| cur.min(requested));
            *d = Some(deadline);
            deadline
        };
        self.draining.store(true, Ordering::SeqCst);
        let conns = hub.all();
        let n = conns.len();
        let ramp = deadline
            .saturating_duration_since(Instant::now())
            .mul_f64(RAMP_SHARE);
        for (i, (_, _, conn)) in conns.into_iter().enumerate() {
            conn.send(Outbound::Drain(Box::new(DrainNotice {
                deadline,
                reconnect_after: reconnect_delay(ramp, i, n),
            })));
        }
        tracing::info!(
            connections = n,
            window_ms = window.as_millis() as u64,
            "draining"
        );
        (deadline, n)
    }
}

/// The i-th of n connections reconnects after `ramp * i / n`: a uniform spread.
pub fn reconnect_delay(ramp: Duration, i: usize, n: usize) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    ramp.mul_f64(i as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_spread_uniformly_over_the_ramp() {
        let ramp = Duration::from_secs(10);
        let d: Vec<u64> = (0..5)
            .map(|i| reconnect_delay(ramp, i, 5).as_millis() as u64)
            .collect();
        assert_eq!(d, vec![0, 2000, 4000, 6000, 8000]);
        assert_eq!(reconnect_delay(ramp, 0, 0), Duration::ZERO);
    }

    #[tokio::test]
    async fn second_drain_only_shortens_the_deadline() {
        let (hub, drain) = (Hub::new(), Drain::default());
        let (first, _) = drain.start(&hub, Duration::from_secs(30));
        let (second, _) = drain.start(&hub, Duration::from_secs(60));
        assert_eq!(first, second);
        let (third, _) = drain.start(&hub, Duration::from_secs(1));
        assert!(third < first);
        assert!(drain.is_draining());
    }
}
