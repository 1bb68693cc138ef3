//! The status subresource, for the kinds that have one (Pods, Services, StatefulSets, PDBs,
//! Ingresses, Namespaces, ChatClusters): writes to `/status` change only `status`, and writes to
//! the object keep the stored `status`. (The `scale` subresource is in [`scale`](super::scale).)

use serde_json::Value;

use super::kinds::Kind;
use super::objects::set_or_remove;

/// A client creating an object of a kind with a status subresource cannot set its status.
pub(super) fn drop_status_on_create(kind: Kind, object: &mut Value) {
    if kind.status_subresource {
        if let Some(fields) = object.as_object_mut() {
            fields.remove("status");
        }
    }
}

/// What a write of `new` over `old` stores: for the `status` subresource, `old` with `new`'s
/// status; for the object itself, of a kind with a status subresource, `new` with `old`'s status.
pub(super) fn split_status(
    kind: Kind,
    old: &Value,
    mut new: Value,
    subresource: Option<&str>,
) -> Value {
    if subresource == Some("status") {
        let status = new.get("status").cloned().unwrap_or(Value::Null);
        new = old.clone();
        set_or_remove(&mut new, "status", status);
    } else if kind.status_subresource {
        set_or_remove(
            &mut new,
            "status",
            old.get("status").cloned().unwrap_or(Value::Null),
        );
    }
    new
}
