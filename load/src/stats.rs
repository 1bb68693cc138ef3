//! Latency samples and their percentiles, and error counts by status.
//!
//! Samples are kept whole (µs in a `Vec<u64>`, 8 bytes per message) and sorted once at the end:
//! a 20 s run at tens of thousands of messages per second is a few MB, and exact percentiles need
//! no bucket precision to explain.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// Latency samples in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u64>);

impl Samples {
    pub fn record(&mut self, micros: u64) {
        self.0.push(micros);
    }

    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Sorts the samples and summarises them.
    pub fn summary(mut self) -> Summary {
        self.0.sort_unstable();
        let sorted = &self.0;
        let ms = |us: u64| us as f64 / 1000.0;
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<u64>() as f64 / sorted.len() as f64 / 1000.0
        };
        Summary {
            count: sorted.len() as u64,
            p50_ms: ms(percentile(sorted, 50.0)),
            p90_ms: ms(percentile(sorted, 90.0)),
            p99_ms: ms(percentile(sorted, 99.0)),
            max_ms: ms(sorted.last().copied().unwrap_or(0)),
            mean_ms: mean,
        }
    }
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at least `p` percent of
/// the samples at or below it; 0 for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Latency samples with the time each was taken for (µs since the run began): summarised whole,
/// or step by step to see *when* a run was slow — a tail made of a few stalls reads differently
/// from one spread evenly.
#[derive(Debug, Default, Clone)]
pub struct Timeline(Vec<(u64, u64)>);

impl Timeline {
    pub fn record(&mut self, at_us: u64, micros: u64) {
        self.0.push((at_us, micros));
    }

    pub fn merge(&mut self, other: Timeline) {
        self.0.extend(other.0);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// All samples, whenever taken.
    pub fn summary(&self) -> Summary {
        Samples(self.0.iter().map(|&(_, micros)| micros).collect()).summary()
    }

    /// One summary per `step_us` from `start_us` on (samples taken before it are left out), in
    /// order; a step without samples has a summary of none.
    pub fn by_step(&self, start_us: u64, step_us: u64) -> Vec<Summary> {
        let mut steps: Vec<Samples> = Vec::new();
        for &(at, micros) in &self.0 {
            let Some(since) = at.checked_sub(start_us) else {
                continue;
            };
            let i = (since / step_us.max(1)) as usize;
            if steps.len() <= i {
                steps.resize_with(i + 1, Samples::default);
            }
            steps[i].record(micros);
        }
        steps.into_iter().map(Samples::summary).collect()
    }
}

/// Percentiles of one latency, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms, self.count
        )
    }
}

/// Counts by a key (an HTTP-like status, a close reason, a failure kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Counts<K: Ord>(BTreeMap<K, u64>);

impl<K: Ord> Default for Counts<K> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<K: Ord> Counts<K> {
    pub fn add(&mut self, key: K) {
        *self.0.entry(key).or_default() += 1;
    }

    pub fn merge(&mut self, other: Counts<K>) {
        for (key, n) in other.0 {
            *self.0.entry(key).or_default() += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl<K: Ord + fmt::Display> fmt::Display for Counts<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, (key, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{key}: {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), 50);
        assert_eq!(percentile(&sorted, 90.0), 90);
        assert_eq!(percentile(&sorted, 99.0), 99);
        assert_eq!(percentile(&sorted, 100.0), 100);
        assert_eq!(percentile(&sorted, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        // With 10 samples, p99 is the largest: 9.9 rounds up to rank 10.
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&ten, 99.0), 10);
        assert_eq!(percentile(&ten, 50.0), 5);
    }

    #[test]
    fn summary_sorts_merges_and_converts_to_ms() {
        let mut a = Samples::default();
        for us in [3000, 1000] {
            a.record(us);
        }
        let mut b = Samples::default();
        b.record(2000);
        b.record(4000);
        a.merge(b);
        let s = a.summary();
        assert_eq!(s.count, 4);
        assert_eq!(s.p50_ms, 2.0);
        assert_eq!(s.p99_ms, 4.0);
        assert_eq!(s.max_ms, 4.0);
        assert_eq!(s.mean_ms, 2.5);
        let empty = Samples::default().summary();
        assert_eq!((empty.count, empty.max_ms, empty.mean_ms), (0, 0.0, 0.0));
    }

    #[test]
    fn timeline_groups_by_step_from_the_start() {
        let mut t = Timeline::default();
        t.record(500_000, 9000); // before the start: left out
        t.record(1_000_000, 1000);
        t.record(1_999_999, 3000);
        t.record(3_500_000, 7000);
        let mut other = Timeline::default();
        other.record(1_200_000, 2000);
        t.merge(other);
        let s = t.by_step(1_000_000, 1_000_000);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].count, s[0].p50_ms, s[0].max_ms), (3, 2.0, 3.0));
        assert_eq!(s[1].count, 0);
        assert_eq!((s[2].count, s[2].p99_ms), (1, 7.0));
    }

    #[test]
    fn counts_merge_and_serialize_as_a_map() {
        let mut a = Counts::default();
        a.add(429u16);
        a.add(429);
        let mut b = Counts::default();
        b.add(500u16);
        b.add(429);
        a.merge(b);
        assert_eq!(a.total(), 4);
        assert_eq!(a.to_string(), "429: 3, 500: 1");
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"429":3,"500":1}"#);
        assert_eq!(Counts::<u16>::default().to_string(), "none");
    }
}
