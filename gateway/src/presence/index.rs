//! Which connections of this pod watch whose presence: plain maps, no I/O, unit-tested.
//!
//! Each watching connection is named by its `(user, device, epoch)`; each watched user maps to
//! its watchers here, with whether each may see it (DESIGN §11: a user who shares no
//! conversation with the watcher, or blocks it, is always shown offline). A connection that
//! never subscribes has no entry at all: the state lives here, not in the connection.

use std::collections::HashMap;

/// A connection that watches: its user, device and epoch (a newer connection of the device
/// is another watcher).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Watcher {
    /// The watching user.
    pub user: String,
    /// Its device.
    pub device: String,
    /// The connection's epoch.
    pub epoch: u64,
}

/// One watched user's watchers here.
#[derive(Debug, Default)]
struct Watched {
    /// Each watcher, with whether it may see the user.
    watchers: HashMap<Watcher, bool>,
    /// The stamp (ms) of the last change applied: an older one arriving late is dropped.
    stamp: i64,
}

/// The pod's presence subscriptions.
#[derive(Debug, Default)]
pub struct Index {
    watched: HashMap<String, Watched>,
    /// `(user, device)` → the connection's epoch and the users it watches.
    sets: HashMap<(String, String), (u64, Vec<String>)>,
}

impl Index {
    /// Makes `users` (each with whether `watcher` may see it) the watcher's whole set,
    /// replacing the set it, or an older connection of its device, had. Returns what changed
    /// for the pod: +1 for each user nobody here watched before, -1 for each nobody here
    /// watches any more.
    pub fn replace(&mut self, watcher: &Watcher, users: Vec<(String, bool)>) -> Vec<(String, i64)> {
        let key = (watcher.user.clone(), watcher.device.clone());
        let mut deltas = Vec::new();
        if let Some((epoch, old)) = self.sets.remove(&key) {
            self.forget(&key, epoch, &old, &mut deltas);
        }
        if users.is_empty() {
            return net(deltas);
        }
        let mut names = Vec::with_capacity(users.len());
        for (user, visible) in users {
            let w = self.watched.entry(user.clone()).or_insert_with(|| {
                deltas.push((user.clone(), 1));
                Watched::default()
            });
            w.watchers.insert(watcher.clone(), visible);
            names.push(user);
        }
        self.sets.insert(key, (watcher.epoch, names));
        net(deltas)
    }

    /// Drops the connection's set, if the device's set is still that connection's. Returns
    /// -1 for each user nobody here watches any more.
    pub fn remove(&mut self, user: &str, device: &str, epoch: u64) -> Vec<(String, i64)> {
        let key = (user.to_owned(), device.to_owned());
        let mut deltas = Vec::new();
        if self.sets.get(&key).is_some_and(|(e, _)| *e == epoch) {
            let (epoch, old) = self.sets.remove(&key).expect("checked");
            self.forget(&key, epoch, &old, &mut deltas);
        }
        deltas
    }

    fn forget(
        &mut self,
        (user, device): &(String, String),
        epoch: u64,
        watched: &[String],
        deltas: &mut Vec<(String, i64)>,
    ) {
        let watcher = Watcher {
            user: user.clone(),
            device: device.clone(),
            epoch,
        };
        for name in watched {
            if let Some(w) = self.watched.get_mut(name) {
                w.watchers.remove(&watcher);
                if w.watchers.is_empty() {
                    self.watched.remove(name);
                    deltas.push((name.clone(), -1));
                }
            }
        }
    }

    /// A change of `user`'s presence stamped `stamp`: the watchers that may see it, or none
    /// when a later change was applied already.
    pub fn changed(&mut self, user: &str, stamp: i64) -> Vec<Watcher> {
        let Some(w) = self.watched.get_mut(user) else {
            return Vec::new();
        };
        if stamp < w.stamp {
            return Vec::new();
        }
        w.stamp = stamp;
        w.watchers
            .iter()
            .filter(|(_, visible)| **visible)
            .map(|(watcher, _)| watcher.clone())
            .collect()
    }

    /// `viewer` may now see `user` (`visible`) or not: the connections of `viewer` watching
    /// `user` whose view changed.
    pub fn set_view(&mut self, viewer: &str, user: &str, visible: bool) -> Vec<Watcher> {
        let Some(w) = self.watched.get_mut(user) else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        for (watcher, seen) in w.watchers.iter_mut() {
            if watcher.user == viewer && *seen != visible {
                *seen = visible;
                changed.push(watcher.clone());
            }
        }
        changed
    }

    /// How many users are watched here (the gauge).
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// Whether nobody watches anyone here.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }
}

/// `deltas` with each user's -1 and +1 cancelled (a set replaced by one that keeps a user).
fn net(deltas: Vec<(String, i64)>) -> Vec<(String, i64)> {
    let mut sum: HashMap<String, i64> = HashMap::new();
    for (user, d) in deltas {
        *sum.entry(user).or_default() += d;
    }
    let mut out: Vec<(String, i64)> = sum.into_iter().filter(|(_, d)| *d != 0).collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(user: &str, device: &str, epoch: u64) -> Watcher {
        Watcher {
            user: user.into(),
            device: device.into(),
            epoch,
        }
    }

    fn users(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|(u, v)| (u.to_string(), *v)).collect()
    }

    fn d(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(u, d)| (u.to_string(), *d)).collect()
    }

    #[test]
    fn a_set_replaces_the_last_one_and_only_visible_watchers_hear() {
        let mut index = Index::default();
        let deltas = index.replace(&w("a", "d", 1), users(&[("bob", true), ("eve", false)]));
        assert_eq!(deltas, d(&[("bob", 1), ("eve", 1)]));
        assert_eq!(index.changed("bob", 10), vec![w("a", "d", 1)]);
        assert!(index.changed("eve", 10).is_empty(), "eve is hidden from a");
        let deltas = index.replace(&w("a", "d", 1), users(&[("carl", true), ("eve", false)]));
        assert_eq!(deltas, d(&[("bob", -1), ("carl", 1)]), "eve stays watched");
        assert!(index.changed("bob", 11).is_empty());
        assert_eq!(index.len(), 2);
        // Another connection watching carl: the pod's interest is counted once.
        assert!(index
            .replace(&w("x", "d", 1), users(&[("carl", true)]))
            .is_empty());
        assert_eq!(
            index.replace(&w("a", "d", 1), Vec::new()),
            d(&[("eve", -1)])
        );
        assert_eq!(index.remove("x", "d", 1), d(&[("carl", -1)]));
        assert!(index.is_empty());
    }

    #[test]
    fn only_the_connection_that_subscribed_removes_its_set() {
        let mut index = Index::default();
        index.replace(&w("a", "d", 2), users(&[("bob", true)]));
        index.remove("a", "d", 1);
        assert_eq!(index.changed("bob", 1), vec![w("a", "d", 2)]);
        index.remove("a", "d", 2);
        assert!(index.is_empty());
    }

    #[test]
    fn a_late_older_change_is_dropped() {
        let mut index = Index::default();
        index.replace(&w("a", "d", 1), users(&[("bob", true)]));
        assert_eq!(index.changed("bob", 20).len(), 1);
        assert!(index.changed("bob", 19).is_empty());
        assert_eq!(index.changed("bob", 20).len(), 1);
    }

    #[test]
    fn a_block_hides_and_an_unblock_shows_again() {
        let mut index = Index::default();
        index.replace(&w("a", "d", 1), users(&[("bob", true)]));
        index.replace(&w("c", "d", 1), users(&[("bob", true)]));
        assert_eq!(index.set_view("a", "bob", false), vec![w("a", "d", 1)]);
        assert!(
            index.set_view("a", "bob", false).is_empty(),
            "already hidden"
        );
        assert_eq!(index.changed("bob", 1), vec![w("c", "d", 1)]);
        assert_eq!(index.set_view("a", "bob", true), vec![w("a", "d", 1)]);
        assert_eq!(index.changed("bob", 2).len(), 2);
    }
}
