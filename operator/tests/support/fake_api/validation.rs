//! Strict field validation (`fieldValidation=Strict`, what kubectl sends by default) of custom
//! resources: a field their CRD's schema does not declare is refused with 400, as an apiserver
//! refuses it, and nothing is stored. Only unknown fields: types, formats, enums, minimums and
//! CEL rules are not checked here (`scripts/chart-test.sh` and `operator/tests/crd.rs` check
//! those against the CRD).

use std::collections::HashMap;

use http::StatusCode;
use serde_json::Value;

use super::custom;
use super::kinds::Kind;
use super::wire::{ApiError, ApiResult};

/// Refuses `object` (a create, replace or apply body) of `kind` when the request asks for strict
/// validation and it has fields its schema does not declare.
pub(super) fn check(kind: Kind, query: &HashMap<String, String>, object: &Value) -> ApiResult<()> {
    if query.get("fieldValidation").map(String::as_str) != Some("Strict") {
        return Ok(());
    }
    let Some(schema) = custom::schema(kind) else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    if let Some(fields) = object.as_object() {
        for (name, value) in fields {
            match &schema["properties"][name] {
                Value::Null if ["apiVersion", "kind", "metadata"].contains(&name.as_str()) => {}
                Value::Null => unknown.push(name.clone()),
                field => walk(field, value, name, &mut unknown),
            }
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {f:?}"))
        .collect();
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!(
            "{} in version {:?} cannot be handled as a {}: strict decoding error: {}",
            kind.kind,
            kind.api_version.rsplit('/').next().unwrap_or_default(),
            kind.kind,
            fields.join(", ")
        ),
    ))
}

/// Collects the paths under `path` of the fields of `value` that `schema` does not declare.
fn walk(schema: &Value, value: &Value, path: &str, unknown: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    match value {
        Value::Object(fields) => {
            let declared = schema["properties"].as_object();
            let map = &schema["additionalProperties"];
            for (name, field) in fields {
                let inner = format!("{path}.{name}");
                match declared.and_then(|d| d.get(name)) {
                    Some(field_schema) => walk(field_schema, field, &inner, unknown),
                    None if map.is_object() => walk(map, field, &inner, unknown),
                    None if declared.is_some() || map == &Value::Bool(false) => unknown.push(inner),
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(&schema["items"], item, &format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}
