//! The paced send schedule of fixed-rate runs: the total rate is split evenly over the senders and
//! each sender is offset by its share of one interval, so the merged stream of sends is evenly
//! spaced at `1/rate` instead of arriving in bursts of one message per sender.
//!
//! The schedule is open-loop: a sender that wakes late sends everything that has fallen due and
//! the lateness is reported, so a slow server cannot quietly lower the offered rate.

use std::time::Duration;

/// Times are kept in picoseconds so `interval = senders / rate` needs no floating point after
/// construction and `due` agrees exactly with `at`.
const PS_PER_NS: u128 = 1_000;
const PS_PER_S: f64 = 1e12;

/// Send times of one sender, relative to the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    offset_ps: u128,
    interval_ps: u128,
}

impl Schedule {
    /// The schedule of sender `index` of `senders` when all of them together send `total_rate`
    /// messages per second.
    pub fn for_sender(total_rate: f64, senders: usize, index: usize) -> Self {
        assert!(total_rate > 0.0 && senders > 0 && index < senders);
        let interval_ps = ((senders as f64 * PS_PER_S / total_rate).round() as u128).max(1);
        Self {
            offset_ps: interval_ps * index as u128 / senders as u128,
            interval_ps,
        }
    }

    /// When message `k` (from 0) is due.
    pub fn at(&self, k: u64) -> Duration {
        let ps = self.offset_ps + self.interval_ps * u128::from(k);
        Duration::from_nanos((ps / PS_PER_NS) as u64)
    }

    /// How many messages are due by `elapsed`: the number of `k` with `at(k) <= elapsed`.
    pub fn due(&self, elapsed: Duration) -> u64 {
        // `at` truncates to whole nanoseconds, so compare in whole nanoseconds as well.
        let elapsed_ps = (elapsed.as_nanos() + 1) * PS_PER_NS - 1;
        if elapsed_ps < self.offset_ps {
            return 0;
        }
        ((elapsed_ps - self.offset_ps) / self.interval_ps + 1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_interleave_evenly() {
        let (rate, senders) = (2000.0, 200);
        let mut times: Vec<Duration> = (0..senders)
            .flat_map(|i| {
                let s = Schedule::for_sender(rate, senders, i);
                (0..10).map(move |k| s.at(k))
            })
            .collect();
        times.sort();
        // 200 senders at 10/s each: every 0.5 ms one message, with no two at once.
        assert_eq!(times.len(), 2000);
        assert_eq!(times[0], Duration::ZERO);
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_micros(500));
        }
        assert_eq!(*times.last().unwrap(), Duration::from_micros(999_500));
    }

    #[test]
    fn one_second_holds_the_rate() {
        let (rate, senders) = (3000.0, 7);
        let total: u64 = (0..senders)
            .map(|i| Schedule::for_sender(rate, senders, i).due(Duration::from_nanos(999_990_000)))
            .sum();
        assert_eq!(total, 3000);
    }

    #[test]
    fn due_agrees_with_at() {
        let s = Schedule::for_sender(3.0, 2, 1);
        assert_eq!(s.at(0), Duration::from_nanos(333_333_333));
        assert_eq!(s.at(1), Duration::from_secs(1));
        assert_eq!(s.due(Duration::ZERO), 0);
        assert_eq!(s.due(s.at(0) - Duration::from_nanos(1)), 0);
        for k in 0..50 {
            assert_eq!(s.due(s.at(k)), k + 1, "k = {k}");
            assert_eq!(s.due(s.at(k + 1) - Duration::from_nanos(1)), k + 1);
        }
    }

    #[test]
    fn high_rates_catch_up_in_batches() {
        // 1M msgs/s over 4 senders: 4 µs apart each; a sender waking 1 ms in owes 250.
        let s = Schedule::for_sender(1_000_000.0, 4, 0);
        assert_eq!(s.due(Duration::from_micros(999)), 250);
        assert_eq!(s.due(Duration::from_millis(1)), 251);
    }
}
