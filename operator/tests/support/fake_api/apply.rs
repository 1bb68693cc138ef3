//! PATCH: server-side apply is a JSON merge (fields left out of a later apply are not removed)
//! that creates a missing object and checks field ownership ([`ownership`](super::ownership));
//! strategic merge is a JSON merge too; merge patch and JSON patch are exact.

use std::collections::HashMap;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::kinds::Key;
use super::wire::{parse_body, ApiError, ApiResult};
use super::{Inner, State};

impl Inner {
    pub(super) fn patch(
        &self,
        state: &mut State,
        key: &Key,
        subresource: Option<&str>,
        query: &HashMap<String, String>,
        content_type: &str,
        body: &Bytes,
    ) -> ApiResult<Value> {
        let manager = query.get("fieldManager").cloned();
        let content_type = content_type.split(';').next().unwrap_or("").trim();
        let patch: Value = if content_type == "application/apply-patch+yaml" {
            parse_yaml_or_json(body)?
        } else {
            parse_body(body)?
        };
        match content_type {
            "application/apply-patch+yaml" => {
                let manager = manager.ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        "fieldManager is required for apply",
                    )
                })?;
                let force = query.get("force").is_some_and(|v| v == "true");
                self.apply(state, key, subresource, &manager, force, &patch)
            }
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                let old = state
                    .objects
                    .get(key)
                    .cloned()
                    .ok_or_else(|| ApiError::not_found(key))?;
                let mut new = old.clone();
                json_patch::merge(&mut new, &patch);
                self.update(state, key, old, new, subresource, manager)
            }
            "application/json-patch+json" => {
                self.json_patch(state, key, subresource, manager, patch)
            }
            other => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                format!("content type {other:?}"),
            )),
        }
    }

    /// Server-side apply by `manager`: creates the object when missing, else merges `patch` into
    /// it unless that would take a field from another manager (and `force` is off).
    fn apply(
        &self,
        state: &mut State,
        key: &Key,
        subresource: Option<&str>,
        manager: &str,
        force: bool,
        patch: &Value,
    ) -> ApiResult<Value> {
        let Some(old) = state.objects.get(key).cloned() else {
            let created = self.create(state, key, patch.clone(), subresource.is_none())?;
            state.record_apply(key, manager, patch);
            return Ok(created);
        };
        state.check_apply_conflicts(key, manager, &old, patch, force)?;
        let mut new = old.clone();
        json_patch::merge(&mut new, patch);
        let updated = self.update(state, key, old, new, subresource, None)?;
        state.record_apply(key, manager, patch);
        Ok(updated)
    }

    /// A JSON patch (RFC 6902), applied exactly.
    fn json_patch(
        &self,
        state: &mut State,
        key: &Key,
        subresource: Option<&str>,
        manager: Option<String>,
        patch: Value,
    ) -> ApiResult<Value> {
        let old = state
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key))?;
        let mut operations: json_patch::Patch = serde_json::from_value(patch)
            .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", err.to_string()))?;
        // As the apiserver does, a `test` for `null` passes on a missing path.
        operations.0.retain(|op| match op {
            json_patch::PatchOperation::Test(test) => {
                !(test.value.is_null() && old.pointer(test.path.as_str()).is_none())
            }
            _ => true,
        });
        let mut new = old.clone();
        json_patch::patch(&mut new, &operations).map_err(|err| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", err.to_string())
        })?;
        self.update(state, key, old, new, subresource, manager)
    }
}

/// An apply patch: YAML, of which JSON (what kubectl sends) is a subset.
pub(super) fn parse_yaml_or_json(body: &Bytes) -> ApiResult<Value> {
    parse_body(body).or_else(|_| {
        let text = std::str::from_utf8(body)
            .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", err.to_string()))?;
        serde_saphyr::from_str(text).map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("body is neither JSON nor YAML: {err}"),
            )
        })
    })
}
