//! The `scale` subresource of the custom resources whose CRD declares one (`kubectl scale
//! cc/demo --replicas=5`, an HPA): an `autoscaling/v1` Scale read from the object at the CRD's
//! `specReplicasPath`, `statusReplicasPath` and `labelSelectorPath`, and a write of it (merge or
//! JSON patch, or PUT) setting `specReplicasPath` on the object, a change of its spec like any
//! other (its `generation` moves on).

use std::collections::HashMap;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::custom::{self, at_path, set_path};
use super::kinds::{Key, Kind};
use super::wire::{parse_body, ApiError, ApiResult};
use super::Inner;

impl Inner {
    /// GET, PATCH or PUT on `key`'s `scale`.
    pub(super) fn serve_scale(
        &self,
        method: &Method,
        key: &Key,
        query: &HashMap<String, String>,
        content_type: &str,
        body: &Bytes,
    ) -> ApiResult<Value> {
        let kind = Kind::of(key);
        let paths = custom::scale(kind).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} has no scale subresource", kind.plural),
            )
        })?;
        let mut state = self.lock();
        let old = state
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key))?;
        let current = scale_of(&old, paths);
        let wanted = match *method {
            Method::GET => return Ok(current),
            Method::PUT => {
                let wanted = parse_body(body)?;
                let expected = wanted["metadata"]["resourceVersion"].as_str();
                if expected
                    .is_some_and(|rv| Some(rv) != old["metadata"]["resourceVersion"].as_str())
                {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "Conflict",
                        "the object has been modified",
                    ));
                }
                wanted
            }
            Method::PATCH => patched(&current, content_type, body)?,
            _ => {
                return Err(ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    format!("{method} is not supported on scale"),
                ))
            }
        };
        let replicas = wanted["spec"]["replicas"]
            .as_i64()
            .filter(|r| *r >= 0)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "spec.replicas: must be an integer, 0 or more",
                )
            })?;
        let mut new = old.clone();
        let spec_path = paths["specReplicasPath"]
            .as_str()
            .unwrap_or(".spec.replicas");
        set_path(&mut new, spec_path, json!(replicas));
        let manager = query.get("fieldManager").cloned();
        let stored = self.update(&mut state, key, old, new, None, manager)?;
        Ok(scale_of(&stored, paths))
    }
}

/// The `autoscaling/v1` Scale of `object`.
fn scale_of(object: &Value, paths: &Value) -> Value {
    let at = |field: &str| {
        paths[field]
            .as_str()
            .and_then(|path| at_path(object, path))
            .cloned()
    };
    let metadata = &object["metadata"];
    let mut status = json!({"replicas": at("statusReplicasPath").unwrap_or(json!(0))});
    if let Some(selector) = at("labelSelectorPath").filter(Value::is_string) {
        status["selector"] = selector;
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": {"replicas": at("specReplicasPath").unwrap_or(json!(0))},
        "status": status,
    })
}

/// `current` with the patch in `body` applied.
fn patched(current: &Value, content_type: &str, body: &Bytes) -> ApiResult<Value> {
    let patch = parse_body(body)?;
    let mut wanted = current.clone();
    match content_type.split(';').next().unwrap_or("").trim() {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            json_patch::merge(&mut wanted, &patch);
        }
        "application/json-patch+json" => {
            let operations: json_patch::Patch = serde_json::from_value(patch).map_err(|err| {
                ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", err.to_string())
            })?;
            json_patch::patch(&mut wanted, &operations).map_err(|err| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", err.to_string())
            })?;
        }
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("content type {other:?} on scale"),
            ))
        }
    }
    Ok(wanted)
}
