//! PURE. A rate limit as GCRA (the generic cell rate algorithm): one number, the theoretical
//! arrival time, kept in an atomic, so a bucket shared by several connections is checked with
//! one compare-and-swap and no lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// `rate` events a second on average, bursts of up to `burst`, as times in ns since `base`.
#[derive(Debug, Clone, Copy)]
pub struct Gcra {
    /// The time one event costs (1 / rate), in ns.
    interval: u64,
    /// How far ahead of now the theoretical arrival time may run: `burst` events' worth.
    tolerance: u64,
}

impl Gcra {
    /// `rate` a second, bursts of `burst` (at least 1). `rate` 0: no limit (`None`).
    pub fn new(rate: u32, burst: u32) -> Option<Self> {
        if rate == 0 {
            return None;
        }
        let interval = 1_000_000_000 / u64::from(rate);
        Some(Self {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1))),
        })
    }

    /// The decision for one event at `now` (ns) given the stored arrival time `tat`: the new
    /// arrival time to store, or `None` when the event is over the limit.
    pub fn next(&self, tat: u64, now: u64) -> Option<u64> {
        let next = tat.max(now).saturating_add(self.interval);
        (next - now <= self.tolerance).then_some(next)
    }

    /// How long an arrival time is remembered: past `tat` the bucket is full again, so an
    /// entry whose `tat` is behind now can be forgotten.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.tolerance)
    }
}

/// A [`Gcra`] bucket shared by several users of it (one user's connections on this pod).
#[derive(Debug)]
pub struct SharedBucket {
    limit: Gcra,
    base: Instant,
    tat: AtomicU64,
}

impl SharedBucket {
    /// A full bucket; times are measured from `base`.
    pub fn new(limit: Gcra, base: Instant) -> Self {
        Self {
            limit,
            base,
            tat: AtomicU64::new(0),
        }
    }

    /// Takes one event's room at `now`, if there is room.
    pub fn allow(&self, now: Instant) -> bool {
        let now = now.saturating_duration_since(self.base).as_nanos() as u64;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let Some(next) = self.limit.next(tat, now) else {
                return false;
            };
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let bucket = SharedBucket::new(Gcra::new(10, 3).unwrap(), start);
        assert!((0..3).all(|_| bucket.allow(start)), "the burst");
        assert!(!bucket.allow(start), "over the burst");
        assert!(!bucket.allow(start + Duration::from_millis(99)));
        assert!(
            bucket.allow(start + Duration::from_millis(100)),
            "one more 100 ms on"
        );
        assert!(!bucket.allow(start + Duration::from_millis(100)));
        // Idle for long: the burst is back, not more.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.allow(later)));
        assert!(!bucket.allow(later));
    }

    #[test]
    fn zero_rate_is_no_limit_and_the_window_is_the_burst() {
        assert!(Gcra::new(0, 10).is_none());
        let g = Gcra::new(100, 1000).unwrap();
        assert_eq!(g.window(), Duration::from_secs(10));
    }

    #[test]
    fn shared_by_threads_it_never_passes_more_than_the_burst() {
        let start = Instant::now();
        let bucket = std::sync::Arc::new(SharedBucket::new(Gcra::new(1, 50).unwrap(), start));
        let passed: usize = (0..4)
            .map(|_| {
                let b = bucket.clone();
                std::thread::spawn(move || (0..100).filter(|_| b.allow(start)).count())
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(passed, 50);
    }
}
