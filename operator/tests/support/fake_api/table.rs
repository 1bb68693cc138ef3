//! Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), what `kubectl get`
//! prints: a `Name` column, then a custom resource's `additionalPrinterColumns` from its CRD
//! (values at their JSONPaths, dates as ages like `42s`), or for the built-in kinds the columns
//! an apiserver gives a kind without its own printer (`Name`, `Created At`). Each row carries the
//! object as `includeObject` asks: `None`, `Metadata` (the default) or `Object`.

use std::collections::HashMap;

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::custom;
use super::kinds::Kind;

/// Whether the client prefers a `meta.k8s.io/v1` Table to the objects themselves.
pub(super) fn wanted(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.contains(&"v=v1")
    })
}

/// `value` (one object or a `…List`) of `kind` as a Table.
pub(super) fn render(kind: Kind, value: &Value, query: &HashMap<String, String>) -> Value {
    let objects: Vec<&Value> = match value["items"].as_array() {
        Some(items) => items.iter().collect(),
        None => vec![value],
    };
    let columns = columns(kind);
    let include = query
        .get("includeObject")
        .map_or("Metadata", String::as_str);
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|object| {
            let cells: Vec<Value> = columns.iter().map(|c| cell(c, object)).collect();
            let mut row = json!({"cells": cells});
            match include {
                "None" => {}
                "Object" => row["object"] = object.clone(),
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object["metadata"],
                    });
                }
            }
            row
        })
        .collect();
    let definitions: Vec<Value> = columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.type_,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": value["metadata"]["resourceVersion"]},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

/// One column: its definition and where its cells come from.
struct Column {
    name: String,
    type_: String,
    format: String,
    description: String,
    priority: i64,
    json_path: String,
}

fn columns(kind: Kind) -> Vec<Column> {
    let name = Column {
        name: "Name".into(),
        type_: "string".into(),
        format: "name".into(),
        description: "Name must be unique within a namespace.".into(),
        priority: 0,
        json_path: ".metadata.name".into(),
    };
    let Some(printer_columns) = custom::printer_columns(kind) else {
        let created = Column {
            name: "Created At".into(),
            type_: "date".into(),
            format: String::new(),
            description: "When the object was created.".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        };
        return vec![name, created];
    };
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let mut columns = vec![name];
    columns.extend(printer_columns.iter().map(|c| Column {
        name: text(&c["name"]),
        type_: text(&c["type"]),
        format: text(&c["format"]),
        description: text(&c["description"]),
        priority: c["priority"].as_i64().unwrap_or(0),
        json_path: text(&c["jsonPath"]),
    }));
    columns
}

/// The cell of `column` for `object`: the value at its path (`null` when absent), a date as the
/// age an apiserver prints for it.
fn cell(column: &Column, object: &Value) -> Value {
    let Some(value) = custom::at_path(object, &column.json_path) else {
        return Value::Null;
    };
    if column.type_ != "date" || column.name == "Created At" {
        return value.clone();
    }
    let age = value
        .as_str()
        .and_then(|text| text.parse::<Timestamp>().ok())
        .map(|at| Timestamp::now().as_second() - at.as_second());
    json!(age.map_or_else(|| "<unknown>".to_owned(), human_duration))
}

/// An age as `kubectl` and the apiserver write it: `42s`, `3m12s`, `25m`, `5h3m`, `30h`, `12d`.
fn human_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    match seconds {
        s if s < 120 => format!("{s}s"),
        _ if minutes < 10 && seconds % 60 != 0 => format!("{minutes}m{}s", seconds % 60),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 && minutes % 60 != 0 => format!("{hours}h{}m", minutes % 60),
        _ if hours < 48 => format!("{hours}h"),
        _ => format!("{}d", hours / 24),
    }
}
