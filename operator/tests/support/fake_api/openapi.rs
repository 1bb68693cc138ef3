//! OpenAPI v3, as far as kubectl reads it: `/openapi/v3` lists one document per group version,
//! and each document has the paths of its kinds, every operation tagged with
//! `x-kubernetes-group-version-kind` and the writes taking a `fieldValidation` parameter. That is
//! how kubectl (1.27 and later) learns the server validates fields itself, so `kubectl apply`
//! sends `fieldValidation=Strict` instead of validating on the client. The schema of a custom
//! resource is its CRD's `openAPIV3Schema` (so `kubectl explain cc.spec` works); the built-in kinds
//! get an open object schema. `/openapi/v2` (which kubectl only reads as protobuf) is an empty
//! Swagger document.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{json, Map, Value};

use super::custom;
use super::kinds::Kind;

/// `/openapi/v2`: valid, empty.
pub(super) fn v2() -> Value {
    json!({"swagger": "2.0", "info": {"title": "chatcluster fake", "version": "v1"}, "paths": {}})
}

/// `/openapi/v3`: the document of each group version, by `api/v1` or `apis/{group}/{version}`.
pub(super) fn v3_index() -> Value {
    let mut paths = Map::new();
    for kind in Kind::all() {
        let path = document_path(kind);
        if paths.contains_key(&path) {
            continue;
        }
        if let Some(document) = v3(&path) {
            let mut hasher = DefaultHasher::new();
            document.to_string().hash(&mut hasher);
            let url = format!("/openapi/v3/{path}?hash={:016X}", hasher.finish());
            paths.insert(path, json!({"serverRelativeURL": url}));
        }
    }
    json!({"paths": paths})
}

/// The document of `path` (`api/v1`, `apis/chatcluster.dev/v1alpha1`), if any kind is there.
pub(super) fn v3(path: &str) -> Option<Value> {
    let kinds: Vec<Kind> = Kind::all().filter(|k| document_path(*k) == path).collect();
    if kinds.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for kind in kinds {
        let name = schema_name(kind);
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        let prefix = format!("/{path}");
        let (collection, item) = if kind.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{}", kind.plural),
                format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", kind.plural),
            )
        } else {
            (
                format!("{prefix}/{}", kind.plural),
                format!("{prefix}/{}/{{name}}", kind.plural),
            )
        };
        paths.insert(
            collection,
            json!({
                "get": operation(kind, "list", &reference, false),
                "post": operation(kind, "post", &reference, true),
            }),
        );
        paths.insert(
            item,
            json!({
                "get": operation(kind, "get", &reference, false),
                "put": operation(kind, "put", &reference, true),
                "patch": operation(kind, "patch", &reference, true),
                "delete": operation(kind, "delete", &reference, false),
            }),
        );
        schemas.insert(name, schema(kind));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "chatcluster fake", "version": "v1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `api/v1` or `apis/{group}/{version}`.
fn document_path(kind: Kind) -> String {
    if kind.group().is_empty() {
        format!("api/{}", kind.api_version)
    } else {
        format!("apis/{}", kind.api_version)
    }
}

/// `dev.chatcluster.v1alpha1.ChatCluster`, `io.k8s.api.apps.v1.StatefulSet`, as an apiserver
/// names them.
fn schema_name(kind: Kind) -> String {
    let version = kind
        .api_version
        .rsplit('/')
        .next()
        .unwrap_or(kind.api_version);
    match kind.group() {
        "" => format!("io.k8s.api.core.{version}.{}", kind.kind),
        group if custom::schema(kind).is_some() => {
            let reversed: Vec<&str> = group.split('.').rev().collect();
            format!("{}.{version}.{}", reversed.join("."), kind.kind)
        }
        group => {
            let short = group.split('.').next().unwrap_or(group);
            format!("io.k8s.api.{short}.{version}.{}", kind.kind)
        }
    }
}

fn gvk(kind: Kind) -> Value {
    let version = kind
        .api_version
        .rsplit('/')
        .next()
        .unwrap_or(kind.api_version);
    json!({"group": kind.group(), "version": version, "kind": kind.kind})
}

/// One operation; `writes` ones take `fieldValidation`, `fieldManager` and `dryRun`.
fn operation(kind: Kind, verb: &str, reference: &Value, writes: bool) -> Value {
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string"}});
    let mut parameters = vec![query("pretty")];
    if writes {
        parameters.extend(["dryRun", "fieldManager", "fieldValidation"].map(query));
    }
    if verb == "patch" {
        parameters.push(query("force"));
    }
    json!({
        "operationId": format!("{verb}{}", kind.kind),
        "parameters": parameters,
        "responses": {"200": {
            "description": "OK",
            "content": {"application/json": {"schema": reference}},
        }},
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": gvk(kind),
    })
}

/// The CRD's schema of a custom resource (with `apiVersion` and `kind`), an open object for the
/// built-in kinds.
fn schema(kind: Kind) -> Value {
    let mut schema = custom::schema(kind)
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    if schema["properties"].is_object() {
        schema["properties"]["apiVersion"] = json!({"type": "string"});
        schema["properties"]["kind"] = json!({"type": "string"});
        schema["properties"]["metadata"] = json!({"type": "object"});
    }
    schema["x-kubernetes-group-version-kind"] = json!([gvk(kind)]);
    schema
}
