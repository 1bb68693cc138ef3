//! What a pod knows of `{p}:table`, the route table's birth (see the parent module): whether a
//! lookup saw the table this pod registered into, settled.

use super::TABLE_SETTLE;
use crate::error::{Error, Result};

/// What this pod knows of `{p}:table`.
#[derive(Default)]
pub(super) struct Table {
    /// The birth its last heartbeat read (none before the first).
    known: Option<String>,
    /// Whether it has seen the table replaced (Redis lost it) since it started.
    rebuilt: bool,
}

impl Table {
    /// A heartbeat read `birth`: whether the table is another than the one this pod had.
    pub(super) fn beat(&mut self, birth: String) -> bool {
        let replaced = self.known.as_ref().is_some_and(|k| *k != birth);
        self.rebuilt |= replaced;
        self.known = Some(birth);
        replaced
    }

    /// Whether a lookup that read `birth` (`""`: none) saw the whole table at `now_ms`.
    pub(super) fn check(&self, birth: &str, now_ms: i64) -> Result<()> {
        let Some(known) = &self.known else {
            return Ok(());
        };
        if birth != known {
            return Err(Error::Unavailable(
                "route table: emptied since this pod's last heartbeat (Redis restarted?); \
                 waiting for the pods to register their connections again"
                    .into(),
            ));
        }
        let born = birth
            .rsplit_once('|')
            .and_then(|(_, ms)| ms.parse::<i64>().ok())
            .unwrap_or(0);
        let age = now_ms.saturating_sub(born);
        if self.rebuilt && age < TABLE_SETTLE.as_millis() as i64 {
            return Err(Error::Unavailable(format!(
                "route table: rebuilt {age} ms ago; waiting for the pods to register their \
                 connections again"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_fails_on_a_table_emptied_or_rebuilt_moments_ago() {
        let mut t = Table::default();
        // Before its first heartbeat a pod has nothing to compare with.
        assert!(t.check("", 0).is_ok());
        assert!(!t.beat("a|1000".into()));
        assert!(t.check("a|1000", 2_000).is_ok(), "first contact: no wait");
        assert!(t.check("", 2_000).is_err(), "emptied: no birth");
        assert!(t.check("b|2000", 2_500).is_err(), "another table");
        assert!(t.beat("b|2000".into()), "the heartbeat sees it replaced");
        let settle = TABLE_SETTLE.as_millis() as i64;
        assert!(
            t.check("b|2000", 2_000 + settle - 1).is_err(),
            "still settling"
        );
        assert!(t.check("b|2000", 2_000 + settle).is_ok());
        assert!(!t.beat("b|2000".into()));
    }
}
