//! Discovery, as kubectl reads it before any other request: `/version`, `/api`, `/apis` and one
//! `APIResourceList` per group version, built from the kinds this server serves ([`kinds`]) and,
//! for custom resources, from their CRD ([`custom`]: short names such as `cc`, categories, the
//! `status` and `scale` subresources). Only the legacy (unaggregated) documents: a kubectl asking
//! for aggregated discovery (`as=APIGroupDiscoveryList`) gets these and falls back to them, as it
//! does with an apiserver older than 1.26.
//!
//! [`kinds`]: super::kinds
//! [`custom`]: super::custom

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::custom;
use super::kinds::Kind;
use super::openapi;

/// What this server calls itself on `/version`.
const VERSION: (&str, &str) = ("1", "33");

/// Verbs of every kind: no `deletecollection`, which nothing here calls.
const VERBS: [&str; 7] = [
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// The short names kubectl knows the built-in kinds by (a real apiserver's, for those served).
const SHORT_NAMES: &[(&str, &str)] = &[
    ("pods", "po"),
    ("services", "svc"),
    ("configmaps", "cm"),
    ("events", "ev"),
    ("namespaces", "ns"),
    ("statefulsets", "sts"),
    ("poddisruptionbudgets", "pdb"),
    ("ingresses", "ing"),
    ("networkpolicies", "netpol"),
];

/// The discovery or OpenAPI document at `path`, if `path` names one.
pub(super) fn document(path: &str) -> Option<Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => Some(version()),
        ["api"] => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [],
        })),
        ["apis"] => Some(groups()),
        ["api", "v1"] => resources("v1"),
        ["apis", group, version] => resources(&format!("{group}/{version}")),
        ["openapi", "v2"] => Some(openapi::v2()),
        ["openapi", "v3"] => Some(openapi::v3_index()),
        ["openapi", "v3", rest @ ..] => openapi::v3(&rest.join("/")),
        _ => None,
    }
}

fn version() -> Value {
    json!({
        "major": VERSION.0,
        "minor": VERSION.1,
        "gitVersion": format!("v{}.{}.0-chatcluster-fake", VERSION.0, VERSION.1),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "none",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// `/apis`: every named group, each with its one version.
fn groups() -> Value {
    let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for kind in Kind::all().filter(|k| !k.group().is_empty()) {
        let list = versions.entry(kind.group()).or_default();
        if !list.contains(&kind.api_version) {
            list.push(kind.api_version);
        }
    }
    let groups: Vec<Value> = versions
        .into_iter()
        .map(|(name, group_versions)| {
            let versions: Vec<Value> = group_versions
                .iter()
                .map(|gv| json!({"groupVersion": gv, "version": gv.rsplit('/').next()}))
                .collect();
            json!({"name": name, "preferredVersion": versions[0], "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The `APIResourceList` of `api_version`, or `None` when no kind is served in it.
fn resources(api_version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for kind in Kind::all().filter(|k| k.api_version == api_version) {
        resources.push(resource(kind));
        if kind.status_subresource {
            resources.push(subresource(kind, "status", None));
        }
        if custom::scale(kind).is_some() {
            resources.push(subresource(
                kind,
                "scale",
                Some(("autoscaling", "v1", "Scale")),
            ));
        }
    }
    (!resources.is_empty()).then(|| {
        json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": api_version,
            "resources": resources,
        })
    })
}

fn resource(kind: Kind) -> Value {
    let mut resource = json!({
        "name": kind.plural,
        "singularName": kind.kind.to_lowercase(),
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": VERBS,
    });
    if let Some(names) = custom::names(kind) {
        for field in ["shortNames", "categories"] {
            if names[field].is_array() {
                resource[field] = names[field].clone();
            }
        }
        resource["singularName"] = names["singular"].clone();
    } else if let Some((_, short)) = SHORT_NAMES.iter().find(|(p, _)| *p == kind.plural) {
        resource["shortNames"] = json!([short]);
    }
    resource
}

/// `{plural}/{name}`; `scale` is of another group's kind.
fn subresource(kind: Kind, name: &str, of: Option<(&str, &str, &str)>) -> Value {
    let mut resource = json!({
        "name": format!("{}/{name}", kind.plural),
        "singularName": "",
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": ["get", "patch", "update"],
    });
    if let Some((group, version, kind)) = of {
        resource["group"] = json!(group);
        resource["version"] = json!(version);
        resource["kind"] = json!(kind);
    }
    resource
}
