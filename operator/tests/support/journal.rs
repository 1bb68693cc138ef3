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
}
