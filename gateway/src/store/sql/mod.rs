//! The statements both backends run as they are written: one text, `$N` parameters (over lists,
//! the backend's [`Placeholder`]s), `VALUES` lists joined through their `column1…` names,
//! `ON CONFLICT`, `UPDATE … FROM … RETURNING`.
//!
//! They are plain functions of [`Shared`], called by each backend's [`Backend`] implementation;
//! what only one backend runs — the writer's hot path above all — lives in that backend's file.
//! The rows both read are in [`rows`].

pub(super) mod rows;

mod groups;
mod reads;
mod writes;

use std::fmt::Write;
use std::marker::PhantomData;

use super::backend::Backend;

/// The shared statements over the sqlx driver `DB`: a namespace, not a value. Generic over the
/// driver, they need a dozen sqlx bounds (an executor, encodings, decodings) that Rust does not
/// carry from a trait to the code using it; so each file of them states the bounds once, on its
/// `impl` block, and only the backends, where `DB` is a concrete driver, call them.
pub(super) struct Shared<DB>(PhantomData<DB>);

/// How a backend writes the parameters of a statement over a list, whose count depends on the
/// list's length.
#[derive(Debug, Clone, Copy)]
pub enum Placeholder {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?`, numbered by position (SQLite). sqlx binds a numbered or named SQLite parameter after
    /// looking its name up, a linear search in SQLite — quadratic in the thousands of parameters
    /// of a batch insert (once most of the writer's time).
    Positional,
}

impl Placeholder {
    /// Appends parameter `n` (from 1).
    fn push(self, sql: &mut String, n: usize) {
        match self {
            Placeholder::Numbered => {
                let _ = write!(sql, "${n}");
            }
            Placeholder::Positional => sql.push('?'),
        }
    }
}

/// Parameter `n` (from 1) of a statement over lists on `DB`.
pub(super) fn param<DB: Backend>(n: usize) -> String {
    let mut sql = String::new();
    DB::PLACEHOLDER.push(&mut sql, n);
    sql
}

/// `($1, $2), ($3, $4), …`: `rows` tuples of `width` parameters, the first numbered `from`. One
/// tuple is an `IN` list; several, a `VALUES` list. In such a statement, parameters appear in
/// the text in the order they are bound (SQLite's `?` are numbered by position).
pub(super) fn tuples<DB: Backend>(rows: usize, width: usize, from: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 6);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            DB::PLACEHOLDER.push(&mut sql, from + r * width + c);
        }
        sql.push(')');
    }
    sql
}
