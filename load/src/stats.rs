//! Summaries of latency histograms, latencies kept by send time for `--timeline-ms`, and error
//! counts by status.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;

/// Percentiles of one latency, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Summary {
    /// The summary of a histogram of microseconds.
    pub fn of(h: &Histogram) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: h.count(),
            p50_ms: ms(h.percentile(50.0)),
            p90_ms: ms(h.percentile(90.0)),
            p99_ms: ms(h.percentile(99.0)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
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

/// Latency samples with the time each message was sent (µs since the run began), to see *when*
/// a run was slow: a tail made of a few stalls reads differently from one spread evenly.
#[derive(Debug, Default, Clone)]
pub struct Timeline(Vec<(u64, u64)>);

impl Timeline {
    pub fn record(&mut self, at_us: u64, micros: u64) {
        self.0.push((at_us, micros));
    }

    /// Adds another connection's samples.
    pub fn extend(&mut self, other: Timeline) {
        self.0.extend(other.0);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// One histogram per `step_us` from `start_us` on (samples taken before it are left out), in
    /// order; a step without samples has an empty one.
    pub fn by_step(&self, start_us: u64, step_us: u64) -> Vec<Histogram> {
        let mut steps: Vec<Histogram> = Vec::new();
        for &(at, micros) in &self.0 {
            let Some(since) = at.checked_sub(start_us) else {
                continue;
            };
            let i = (since / step_us.max(1)) as usize;
            if steps.len() <= i {
                steps.resize_with(i + 1, Histogram::default);
            }
            steps[i].record(micros);
        }
        steps
    }
}

/// Adds histograms step by step (several recipients' or processes' timelines).
pub fn merge_steps(into: &mut Vec<Histogram>, other: &[Histogram]) {
    if into.len() < other.len() {
        into.resize_with(other.len(), Histogram::default);
    }
    for (mine, theirs) in into.iter_mut().zip(other) {
        mine.merge(theirs);
    }
}

/// Counts by a key (an HTTP-like status, a close reason, a failure kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    fn summary_in_milliseconds() {
        let mut h = Histogram::default();
        for us in [100, 50, 20, 30] {
            h.record(us);
        }
        let s = Summary::of(&h);
        assert_eq!(s.count, 4);
        assert_eq!(s.p50_ms, 0.03);
        assert_eq!(s.p99_ms, 0.1);
        assert_eq!(s.max_ms, 0.1);
        assert_eq!(s.mean_ms, 0.05);
        let empty = Summary::of(&Histogram::default());
        assert_eq!((empty.count, empty.max_ms, empty.mean_ms), (0, 0.0, 0.0));
    }

    #[test]
    fn timeline_groups_by_step_from_the_start() {
        let mut t = Timeline::default();
        t.record(500_000, 90); // before the start: left out
        t.record(1_000_000, 10);
        t.record(1_999_999, 30);
        t.record(3_500_000, 70);
        let mut other = Timeline::default();
        other.record(1_200_000, 20);
        let mut s = t.by_step(1_000_000, 1_000_000);
        merge_steps(&mut s, &other.by_step(1_000_000, 1_000_000));
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].count(), s[0].percentile(50.0), s[0].max()),
            (3, 20, 30)
        );
        assert_eq!(s[1].count(), 0);
        assert_eq!((s[2].count(), s[2].percentile(99.0)), (1, 70));
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
