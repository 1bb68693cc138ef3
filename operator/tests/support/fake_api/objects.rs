//! The object store: objects as JSON under their [`Key`], each write at the next
//! `resourceVersion` (one global counter) and told to the watches; `uid`, `generation` (bumped
//! when anything but metadata and status changes) and `creationTimestamp` set by the server.
//! A write that changes nothing is not stored and sends no event.
//!
//! Deletion: objects with finalizers get a `deletionTimestamp` and go when the last finalizer is
//! removed; pods terminate gracefully (the [`kubelet`](super::kubelet) removes them); owned objects
//! are garbage-collected (background propagation) when their owner goes.

use std::time::Instant;

use http::StatusCode;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::kinds::{Key, Kind};
use super::status::{drop_status_on_create, split_status};
use super::watch::Change;
use super::wire::{ApiError, ApiResult, Selector};
use super::{Inner, State};

/// Metadata fields a client cannot change by writing the object.
const SERVER_SET: [&str; 7] = [
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "resourceVersion",
];

impl Inner {
    /// The objects of `kind` (in `namespace`, or all) that `selector` matches, as a `…List`.
    pub(super) fn list(&self, kind: Kind, namespace: Option<&str>, selector: &Selector) -> Value {
        let state = self.lock();
        let items: Vec<Value> = state
            .objects
            .iter()
            .filter(|(key, object)| {
                key.is(kind)
                    && namespace.is_none_or(|ns| key.namespace == ns)
                    && selector.matches(object)
            })
            .map(|(_, object)| object.clone())
            .collect();
        json!({
            "apiVersion": kind.api_version,
            "kind": format!("{}List", kind.kind),
            "metadata": {"resourceVersion": state.resource_version.to_string()},
            "items": items,
        })
    }

    /// Stores `object` at the next resourceVersion and tells the watches.
    pub(super) fn store(
        &self,
        state: &mut State,
        key: &Key,
        mut object: Value,
        type_: &'static str,
    ) -> Value {
        state.resource_version += 1;
        let rv = state.resource_version;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if type_ == "DELETED" {
            state.objects.remove(key);
            state.owners.remove(key);
        } else {
            state.objects.insert(key.clone(), object.clone());
        }
        self.publish(
            state,
            Change {
                resource_version: rv,
                type_,
                key: key.clone(),
                object: object.clone(),
            },
        );
        self.wake.notify_one();
        object
    }

    /// Creates the object at `key`: by a client (`from_client`, which cannot set a status the
    /// subresource owns) or by the emulated controllers.
    pub(super) fn create(
        &self,
        state: &mut State,
        key: &Key,
        mut object: Value,
        from_client: bool,
    ) -> ApiResult<Value> {
        if state.objects.contains_key(key) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} {:?} already exists", key.kind, key.name),
            ));
        }
        let kind = Kind::of(key);
        if from_client {
            drop_status_on_create(kind, &mut object);
        }
        state.next_uid += 1;
        object["apiVersion"] = json!(key.api_version);
        object["kind"] = json!(key.kind);
        let metadata = &mut object["metadata"];
        metadata["name"] = json!(key.name);
        if kind.namespaced {
            metadata["namespace"] = json!(key.namespace);
        }
        metadata["uid"] = json!(format!("uid-{:06}", state.next_uid));
        metadata["generation"] = json!(1);
        metadata["creationTimestamp"] = json!(now());
        if key.kind == "Pod" {
            state.pod_created.insert(key.clone(), Instant::now());
        }
        Ok(self.store(state, key, object, "ADDED"))
    }

    /// Replaces the stored `old` with `new` (the whole object, or only its status for the
    /// `status` subresource), keeping what clients cannot change.
    pub(super) fn update(
        &self,
        state: &mut State,
        key: &Key,
        old: Value,
        new: Value,
        subresource: Option<&str>,
        manager: Option<String>,
    ) -> ApiResult<Value> {
        let mut new = split_status(Kind::of(key), &old, new, subresource);
        new["apiVersion"] = old["apiVersion"].clone();
        new["kind"] = old["kind"].clone();
        for field in SERVER_SET {
            set_or_remove(
                &mut new["metadata"],
                field,
                old["metadata"].get(field).cloned().unwrap_or(Value::Null),
            );
        }
        if new == old {
            return Ok(old);
        }
        if without_metadata_and_status(&new) != without_metadata_and_status(&old) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(generation + 1);
        }
        if let Some(manager) = manager {
            state.take_ownership(key, &manager, &old, &new);
        }
        state.prune_ownership(key, &new);
        let stored = self.store(state, key, new, "MODIFIED");
        if stored["metadata"].get("deletionTimestamp").is_some()
            && finalizers(&stored).is_empty()
            && key.kind != "Pod"
        {
            self.remove(state, key);
        }
        Ok(stored)
    }

    /// DELETE: marks the object as deleting when finalizers (or a pod's graceful termination)
    /// hold it, else removes it.
    pub(super) fn delete(&self, state: &mut State, key: &Key) -> ApiResult<Value> {
        let object = state
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key))?;
        let held = !finalizers(&object).is_empty() || key.kind == "Pod";
        if !held {
            return Ok(self.remove(state, key));
        }
        if object["metadata"].get("deletionTimestamp").is_some() {
            return Ok(object);
        }
        let mut marked = object;
        marked["metadata"]["deletionTimestamp"] = json!(now());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        if key.kind == "Pod" {
            state.pod_deleted.insert(key.clone(), Instant::now());
        }
        Ok(self.store(state, key, marked, "MODIFIED"))
    }

    /// Removes the object and, like the garbage collector, deletes what it owned.
    pub(super) fn remove(&self, state: &mut State, key: &Key) -> Value {
        let Some(object) = state.objects.get(key).cloned() else {
            return Value::Null;
        };
        state.pod_created.remove(key);
        state.pod_deleted.remove(key);
        let removed = self.store(state, key, object, "DELETED");
        let uid = removed["metadata"]["uid"].as_str().unwrap_or("").to_owned();
        let owned: Vec<Key> = state
            .objects
            .iter()
            .filter(|(k, o)| k.namespace == key.namespace && owned_by(o, &json!(uid)))
            .map(|(k, _)| k.clone())
            .collect();
        for child in owned {
            let _ = self.delete(state, &child);
        }
        removed
    }
}

/// Whether `object` has an owner reference to the object with `uid`.
pub(super) fn owned_by(object: &Value, uid: &Value) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|owners| owners.iter().any(|r| r["uid"] == *uid))
}

pub(super) fn finalizers(object: &Value) -> Vec<Value> {
    object["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

pub(super) fn set_or_remove(object: &mut Value, field: &str, value: Value) {
    if let Some(fields) = object.as_object_mut() {
        if value.is_null() {
            fields.remove(field);
        } else {
            fields.insert(field.to_owned(), value);
        }
    }
}

fn without_metadata_and_status(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(fields) = copy.as_object_mut() {
        fields.remove("metadata");
        fields.remove("status");
    }
    copy
}

fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
