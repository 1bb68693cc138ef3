//! One ordered record of the side effects of a test, across the fake API server and the backend
//! fakes, so a test can say "pod 4 was drained before the StatefulSet shrank to 4".

use std::sync::{Arc, Mutex};

/// Entries like `PATCH StatefulSet/demo-gateway replicas=4` or `drain demo-gateway-4`.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    /// Appends an entry.
    pub fn record(&self, entry: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(entry.into());
    }

    /// Every entry so far, oldest first.
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The index of the first entry at or after `from` that `matches`.
    pub fn find(&self, from: usize, matches: impl Fn(&str) -> bool) -> Option<usize> {
        self.entries()
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, e)| matches(e))
            .map(|(i, _)| i)
    }

    /// The index of the first entry at or after `from` that is `entry`, or `entry` followed by
    /// details (`drain demo-gateway-2` finds `drain demo-gateway-2 deadlineSeconds=30`); panics
    /// with the whole journal when there is none.
    pub fn position(&self, from: usize, entry: &str) -> usize {
        let detailed = format!("{entry} ");
        self.find(from, |e| e == entry || e.starts_with(&detailed))
            .unwrap_or_else(|| {
                panic!(
                    "no {entry:?} in the journal after {from}: {:#?}",
                    self.entries()
                )
            })
    }

    /// The entries from `from` on that start with `prefix`.
    pub fn starting_with(&self, from: usize, prefix: &str) -> Vec<String> {
        self.entries()[from..]
            .iter()
            .filter(|e| e.starts_with(prefix))
            .cloned()
            .collect()
    }
}
