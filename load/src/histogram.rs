//! Latency histograms that merge exactly: log-linear buckets (every value below 128 µs exact,
//! above that 64 buckets per power of two, so a bucket is at most 1/64 ≈ 1.6 % wide), one
//! array layout everywhere. Percentiles of several processes or of several seconds come from the
//! summed buckets — never from averaging percentiles.
//!
//! [`AtomicHistogram`] is the shared, lock-free recorder the connection tasks write to;
//! [`Histogram`] is a plain copy of it that merges, subtracts (one second = two cumulative
//! snapshots apart) and serialises sparsely for the child processes' reports.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Values below this are their own bucket.
const EXACT: u64 = 128;
/// Buckets per power of two above [`EXACT`].
const SUB: u64 = 64;
/// The largest power of two kept apart: values from 2^40 µs (~12.7 days) on share the last bucket.
const MAX_POWER: u32 = 40;
/// Bucket count: 128 exact ones, then 64 for each power from 2^7 to 2^40.
pub const BUCKETS: usize = (EXACT + (MAX_POWER as u64 - 6) * SUB) as usize;

/// The bucket of `value`.
pub fn bucket_of(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    let power = (63 - value.leading_zeros()).min(MAX_POWER);
    let shift = power - 6;
    let mantissa = (value >> shift).min(2 * SUB - 1);
    (EXACT + u64::from(shift - 1) * SUB + (mantissa - SUB)) as usize
}

/// The largest value bucket `index` holds.
pub fn bucket_high(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT {
        return index;
    }
    let shift = (index - EXACT) / SUB + 1;
    let mantissa = (index - EXACT) % SUB + SUB;
    ((mantissa + 1) << shift) - 1
}

/// Counts by bucket plus the exact count, sum, min and max.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Sparse", into = "Sparse")]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
}

/// The serialised form: only the buckets in use, as `[index, count]`.
#[derive(Serialize, Deserialize)]
struct Sparse {
    count: u64,
    sum: u64,
    min: u64,
    max: u64,
    buckets: Vec<(usize, u64)>,
}

impl From<Histogram> for Sparse {
    fn from(h: Histogram) -> Self {
        let buckets = h
            .counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| (i, n))
            .collect();
        Sparse {
            count: h.count,
            sum: h.sum,
            min: h.min,
            max: h.max,
            buckets,
        }
    }
}

impl From<Sparse> for Histogram {
    fn from(s: Sparse) -> Self {
        let mut counts = Vec::new();
        for (i, n) in s.buckets.into_iter().filter(|&(i, _)| i < BUCKETS) {
            if counts.len() <= i {
                counts.resize(i + 1, 0);
            }
            counts[i] += n;
        }
        Histogram {
            counts,
            count: s.count,
            sum: s.sum,
            min: s.min,
            max: s.max,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, value: u64) {
        let i = bucket_of(value);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.min = if self.count == 0 {
            value
        } else {
            self.min.min(value)
        };
        self.count += 1;
        self.sum = self.sum.saturating_add(value);
        self.max = self.max.max(value);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// Adds `other`'s values.
    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.min = if self.count == 0 {
            other.min
        } else {
            self.min.min(other.min)
        };
        self.count += other.count;
        self.sum = self.sum.saturating_add(other.sum);
        self.max = self.max.max(other.max);
    }

    /// What was recorded after `earlier`, a snapshot of the same recorder: exact counts and sum,
    /// min and max as the buckets give them.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut counts = self.counts.clone();
        for (now, before) in counts.iter_mut().zip(&earlier.counts) {
            *now = now.saturating_sub(*before);
        }
        let first = counts.iter().position(|&n| n > 0);
        let last = counts.iter().rposition(|&n| n > 0);
        let (min, max) = match (first, last) {
            (Some(first), Some(last)) => {
                let max = bucket_high(last).min(self.max);
                (bucket_high(first).max(self.min).min(max), max)
            }
            _ => (0, 0),
        };
        Histogram {
            counts,
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum.saturating_sub(earlier.sum),
            min,
            max,
        }
    }

    /// Nearest-rank percentile: the bucket holding the value with at least `p` percent of the
    /// values at or below it, as its highest value (within [min, max]); 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0 * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_high(i).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

/// A histogram many tasks record into at once (relaxed atomics: counts are exact once the
/// writers are done, and close enough while they run).
pub struct AtomicHistogram {
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for AtomicHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AtomicHistogram({} values)",
            self.count.load(Ordering::Relaxed)
        )
    }
}

impl AtomicHistogram {
    pub fn record(&self, value: u64) {
        self.counts[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.min.fetch_min(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    /// A plain copy of what is recorded so far.
    pub fn snapshot(&self) -> Histogram {
        let mut counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let used = counts.iter().rposition(|&n| n > 0).map_or(0, |i| i + 1);
        counts.truncate(used);
        let count = counts.iter().sum();
        Histogram {
            counts,
            count,
            sum: self.sum.load(Ordering::Relaxed),
            min: if count == 0 {
                0
            } else {
                self.min.load(Ordering::Relaxed)
            },
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_128_and_within_1_6_percent_above() {
        for v in 0..EXACT {
            assert_eq!(bucket_high(bucket_of(v)), v);
        }
        let mut last = 0;
        for v in [128, 129, 1000, 65_535, 1 << 20, 123_456_789, 1 << 39] {
            let i = bucket_of(v);
            assert!(i >= last, "buckets grow with values");
            last = i;
            let high = bucket_high(i);
            assert!(high >= v, "{v} <= {high}");
            assert!((high - v) as f64 <= v as f64 / 64.0, "{v} -> {high}");
            assert_eq!(bucket_of(high), i, "{v}: high {high} in the same bucket");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut h = Histogram::default();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.percentile(50.0), 50);
        assert_eq!(h.percentile(99.0), 99);
        assert_eq!(h.percentile(100.0), 100);
        assert_eq!(h.percentile(0.0), 1);
        assert_eq!(h.mean(), 50.5);
        assert_eq!(Histogram::default().percentile(99.0), 0);
        let mut big = Histogram::default();
        big.record(10_000);
        // One value: its bucket's top clamped to the exact max.
        assert_eq!(big.percentile(50.0), 10_000);
    }

    #[test]
    fn merging_sums_buckets_instead_of_averaging_percentiles() {
        // Two processes: one saw 99 fast deliveries, the other one slow one.
        let mut fast = Histogram::default();
        for _ in 0..99 {
            fast.record(10);
        }
        let mut slow = Histogram::default();
        slow.record(5_000);
        let mut all = fast.clone();
        all.merge(&slow);
        assert_eq!(all.count(), 100);
        assert_eq!(all.percentile(99.0), 10);
        assert_eq!(all.percentile(100.0), 5_000);
        assert_eq!((all.min, all.max), (10, 5_000));
        let mut empty = Histogram::default();
        empty.merge(&slow);
        assert_eq!(empty, slow);
    }

    #[test]
    fn since_leaves_what_was_recorded_between_snapshots() {
        let live = AtomicHistogram::default();
        live.record(3);
        live.record(1_000);
        let first = live.snapshot();
        live.record(7);
        live.record(7);
        let second = live.snapshot().since(&first);
        assert_eq!((second.count(), second.sum), (2, 14));
        assert_eq!((second.min, second.max), (7, 7));
        assert_eq!(second.percentile(50.0), 7);
        let none = first.since(&first);
        assert_eq!((none.count(), none.percentile(99.0)), (0, 0));
    }

    #[test]
    fn serialises_sparsely_and_round_trips() {
        let mut h = Histogram::default();
        h.record(5);
        h.record(5);
        h.record(200_000);
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["buckets"].as_array().unwrap().len(), 2);
        assert_eq!(json["count"], 3);
        let back: Histogram = serde_json::from_value(json).unwrap();
        assert_eq!(back, h);
        assert_eq!(AtomicHistogram::default().snapshot(), Histogram::default());
    }
}
