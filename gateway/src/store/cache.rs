//! The writer-local cache: what the writer knows without asking the database again.
//!
//! Conversations known to exist (they are never deleted, so this holds whatever other writers
//! do) and users' display names and whether each blocks anyone (trusted for the backend's
//! `NAMES_TTL`: a block stored by another pod's writer counts here within it). The writer clears it
//! whenever a batch rolls back (it may hold what the rollback undid) and it starts over when it
//! grows past its limit.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Entries the cache holds before it starts over.
const CACHE_LIMIT: usize = 1 << 20;

pub(super) struct Cache {
    conversations: HashSet<String>,
    names: HashMap<String, String>,
    /// Whether each user blocks anyone, read with its name (and trusted as long).
    blocking: HashMap<String, bool>,
    names_since: Instant,
    names_ttl: Option<Duration>,
}

impl Cache {
    /// An empty cache whose names are trusted for `names_ttl` (`None`: as long as it lives).
    pub(super) fn new(names_ttl: Option<Duration>) -> Self {
        Self {
            conversations: HashSet::new(),
            names: HashMap::new(),
            blocking: HashMap::new(),
            names_since: Instant::now(),
            names_ttl,
        }
    }

    /// Forgets everything (after a rollback).
    pub(super) fn clear(&mut self) {
        *self = Self::new(self.names_ttl);
    }

    pub(super) fn conversations(&self) -> &HashSet<String> {
        &self.conversations
    }

    pub(super) fn add_conversations<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        self.conversations
            .extend(ids.into_iter().map(str::to_owned));
    }

    pub(super) fn names(&self) -> &HashMap<String, String> {
        &self.names
    }

    pub(super) fn add_names(&mut self, names: impl IntoIterator<Item = (String, String)>) {
        self.names.extend(names);
    }

    pub(super) fn blocking(&self) -> &HashMap<String, bool> {
        &self.blocking
    }

    /// Names read from the database, with whether each user blocks anyone.
    pub(super) fn add_users(&mut self, users: impl IntoIterator<Item = (String, String, bool)>) {
        for (id, name, blocking) in users {
            self.blocking.insert(id.clone(), blocking);
            self.names.insert(id, name);
        }
    }

    /// A BLOCK or UNBLOCK this writer stored: whether `user` blocks anyone now.
    pub(super) fn set_blocking(&mut self, user: &str, blocking: bool) {
        self.blocking.insert(user.to_owned(), blocking);
    }

    /// Drops what is too old or too much; runs before each transaction.
    pub(super) fn trim(&mut self) {
        if self.conversations.len() > CACHE_LIMIT {
            self.conversations.clear();
        }
        let expired = self
            .names_ttl
            .is_some_and(|ttl| self.names_since.elapsed() > ttl);
        if expired || self.names.len() > CACHE_LIMIT {
            self.names.clear();
            self.blocking.clear();
            self.names_since = Instant::now();
        }
    }
}
