//! Field ownership, only as far as Lease-based leader election (kube-lease-manager) needs it: each
//! field manager owns the leaf fields it applied or changed, and a non-forced apply that would
//! change a field another manager owns gets 409 Conflict. That is how, of two operator replicas
//! applying their `holderIdentity` to a free Lease at once, only one takes it.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::Value;

use super::kinds::Key;
use super::wire::{ApiError, ApiResult};
use super::State;

/// Separates the keys of a [`leaves`] path: label and annotation keys hold dots and slashes.
const SEP: char = '\u{1f}';

impl State {
    /// A non-forced apply conflicts when it would change a field another manager set.
    pub(super) fn check_apply_conflicts(
        &self,
        key: &Key,
        manager: &str,
        old: &Value,
        patch: &Value,
        force: bool,
    ) -> ApiResult<()> {
        if force {
            return Ok(());
        }
        let Some(owners) = self.owners.get(key) else {
            return Ok(());
        };
        for (path, value) in leaves(patch) {
            if lookup(old, &path) == Some(&value) {
                continue;
            }
            if let Some((other, _)) = owners
                .iter()
                .find(|(m, paths)| m.as_str() != manager && paths.contains(&path))
            {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Apply failed with 1 conflict: conflict with \"{other}\": {}",
                        path.replace(SEP, ".")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// After an apply, the manager owns exactly the fields it applied, and nobody else does.
    pub(super) fn record_apply(&mut self, key: &Key, manager: &str, patch: &Value) {
        let paths: BTreeSet<String> = leaves(patch).into_iter().map(|(p, _)| p).collect();
        let owners = self.owners.entry(key.clone()).or_default();
        for (other, owned) in owners.iter_mut() {
            if other != manager {
                owned.retain(|p| !paths.contains(p));
            }
        }
        owners.insert(manager.to_owned(), paths);
    }

    /// After an update, the manager owns the fields it changed.
    pub(super) fn take_ownership(&mut self, key: &Key, manager: &str, old: &Value, new: &Value) {
        let changed: BTreeSet<String> = leaves(new)
            .into_iter()
            .filter(|(path, value)| lookup(old, path) != Some(value))
            .map(|(path, _)| path)
            .collect();
        let owners = self.owners.entry(key.clone()).or_default();
        for (other, owned) in owners.iter_mut() {
            if other != manager {
                owned.retain(|p| !changed.contains(p));
            }
        }
        owners
            .entry(manager.to_owned())
            .or_default()
            .extend(changed);
    }

    /// Fields that no longer exist have no owner.
    pub(super) fn prune_ownership(&mut self, key: &Key, object: &Value) {
        if let Some(owners) = self.owners.get_mut(key) {
            for owned in owners.values_mut() {
                owned.retain(|p| lookup(object, p).is_some());
            }
        }
    }
}

/// The leaves of a JSON object as (`a.b.c` path, value); arrays are leaves. `apiVersion`, `kind`
/// and the object's identity are nobody's fields.
fn leaves(value: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(fields) => {
                for (k, v) in fields {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}{SEP}{k}")
                    };
                    walk(&path, v, out);
                }
            }
            Value::Null => {}
            leaf => out.push((prefix.to_owned(), leaf.clone())),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    let identity = ["name", "namespace", "resourceVersion"].map(|f| format!("metadata{SEP}{f}"));
    out.retain(|(path, _)| path != "apiVersion" && path != "kind" && !identity.contains(path));
    out
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split(SEP)
        .try_fold(value, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}
