//! BLOCK's statements on SQLite's writer: the display names a run's 1:1 recipients need, with
//! whether each blocks anyone (one lookup, the one the run made before blocks existed), the
//! blocks among a run's `(recipient, sender)` pairs, and recording or removing a block.

use rusqlite::params;

use super::SqliteWriter;
use crate::error::Result;

impl SqliteWriter {
    /// `(user id, display name, blocks anyone)` of those of `ids` that have one.
    pub(in crate::store) fn names(&mut self, ids: &[&str]) -> Result<Vec<(String, String, bool)>> {
        let mut statement = self
            .0
            .prepare_cached("SELECT id, name, blocking FROM users WHERE id = ?1")?;
        let mut out = Vec::new();
        for id in ids {
            let rows = statement.query_map([id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)? != 0))
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    /// Those of the `(blocker, blocked)` pairs that are blocks.
    pub(in crate::store) fn blocked_pairs(
        &mut self,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>> {
        let mut statement = self
            .0
            .prepare_cached("SELECT 1 FROM blocks WHERE blocker = ?1 AND blocked = ?2")?;
        let mut out = Vec::new();
        for (blocker, blocked) in pairs {
            if statement.exists(params![blocker, blocked])? {
                out.push(((*blocker).to_owned(), (*blocked).to_owned()));
            }
        }
        Ok(out)
    }

    /// Records (`on`) or removes the block; returns whether `blocker` blocks anyone now.
    pub(in crate::store) fn set_block(
        &mut self,
        blocker: &str,
        blocked: &str,
        on: bool,
        now: i64,
    ) -> Result<bool> {
        if on {
            self.0
                .prepare_cached(
                    "INSERT INTO blocks (blocker, blocked, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (blocker, blocked) DO NOTHING",
                )?
                .execute(params![blocker, blocked, now])?;
        } else {
            self.0
                .prepare_cached("DELETE FROM blocks WHERE blocker = ?1 AND blocked = ?2")?
                .execute(params![blocker, blocked])?;
        }
        let blocking: bool = self
            .0
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker = ?1)")?
            .query_row([blocker], |row| row.get(0))?;
        // A user who never connected has no row yet: the flag creates it, named by its id
        // until it connects.
        self.0
            .prepare_cached(
                "INSERT INTO users (id, name, updated_at, blocking) VALUES (?1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET blocking = excluded.blocking",
            )?
            .execute(params![blocker, now, i64::from(blocking)])?;
        Ok(blocking)
    }
}
