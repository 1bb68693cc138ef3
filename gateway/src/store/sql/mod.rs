//! Statements over sqlx, written once: one text, `$N` parameters (over lists, numbered in
//! order), `VALUES` lists joined through their `column1…` names, `ON CONFLICT`,
//! `UPDATE … FROM … RETURNING`. Both backends' readers run `reads.rs`; `writes.rs` and
//! `groups.rs` are PostgreSQL's writer's (SQLite's writer calls SQLite in place,
//! `sqlite/writer.rs`).
//!
//! They are plain functions of [`Shared`], called by the backends' `Backend` implementations;
//! a writer's hot path lives in its backend's files. The message row is in [`rows`].

pub(super) mod rows;

mod blocks;
mod groups;
mod reads;
mod writes;

use std::fmt::Write;
use std::marker::PhantomData;

/// The shared statements over the sqlx driver `DB`: a namespace, not a value. Generic over the
/// driver, they need a dozen sqlx bounds (an executor, encodings, decodings) that Rust does not
/// carry from a trait to the code using it; so each file of them states the bounds once, on its
/// `impl` block, and only the backends, where `DB` is a concrete driver, call them.
pub(super) struct Shared<DB>(PhantomData<DB>);

/// Parameter `n` (from 1) of a statement over lists.
pub(super) fn param(n: usize) -> String {
    format!("${n}")
}

/// `($1, $2), ($3, $4), …`: `rows` tuples of `width` parameters, the first numbered `from`. One
/// tuple is an `IN` list; several, a `VALUES` list. In such a statement, parameters appear in
/// the text in the order they are bound. Only PostgreSQL's writer builds statements over lists
/// (SQLite's loops over single-row statements, `sqlite/writer.rs`).
pub(super) fn tuples(rows: usize, width: usize, from: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 6);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "${}", from + r * width + c);
        }
        sql.push(')');
    }
    sql
}
