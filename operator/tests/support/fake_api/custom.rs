//! What the fake API server takes from the CustomResourceDefinition the operator generates
//! (`ChatCluster::crd()`, the same one `crds/` holds): short names and categories for discovery,
//! the printer columns for Table output, the scale subresource's paths and the schema for OpenAPI.
//! Read from the CRD, not restated, so a change of the CRD reaches kubectl here as it would on a
//! real cluster.

use std::sync::OnceLock;

use chat_operator::crd::ChatCluster;
use kube::CustomResourceExt;
use serde_json::Value;

use super::kinds::Kind;

/// The CRDs installed on this server, as JSON.
fn definitions() -> &'static [Value] {
    static CRDS: OnceLock<Vec<Value>> = OnceLock::new();
    CRDS.get_or_init(|| vec![serde_json::to_value(ChatCluster::crd()).expect("a CRD serializes")])
}

/// The CRD of `kind` and its entry for `kind`'s version, when `kind` is a custom resource.
pub(super) fn definition(kind: Kind) -> Option<(&'static Value, &'static Value)> {
    let (group, version) = kind.api_version.split_once('/')?;
    definitions().iter().find_map(|crd| {
        let spec = &crd["spec"];
        if spec["group"] != group || spec["names"]["kind"] != kind.kind {
            return None;
        }
        let entry = spec["versions"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == version)?;
        Some((crd, entry))
    })
}

/// `spec.names` of `kind`'s CRD: `shortNames`, `categories`, `singular`.
pub(super) fn names(kind: Kind) -> Option<&'static Value> {
    definition(kind).map(|(crd, _)| &crd["spec"]["names"])
}

/// `additionalPrinterColumns` of `kind`'s version, when it is a custom resource.
pub(super) fn printer_columns(kind: Kind) -> Option<&'static [Value]> {
    definition(kind).map(|(_, version)| {
        version["additionalPrinterColumns"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
    })
}

/// `subresources.scale` of `kind`'s version: `specReplicasPath`, `statusReplicasPath` and
/// (optionally) `labelSelectorPath`.
pub(super) fn scale(kind: Kind) -> Option<&'static Value> {
    definition(kind)
        .map(|(_, version)| &version["subresources"]["scale"])
        .filter(|scale| scale.is_object())
}

/// `schema.openAPIV3Schema` of `kind`'s version.
pub(super) fn schema(kind: Kind) -> Option<&'static Value> {
    definition(kind).map(|(_, version)| &version["schema"]["openAPIV3Schema"])
}

/// The value at a simple JSONPath (`.status.readyReplicas`) of `object`, as the printer columns
/// and the scale paths of this CRD use them; `None` when absent.
pub(super) fn at_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.')
        .split('.')
        .try_fold(object, |value, field| value.get(field))
        .filter(|value| !value.is_null())
}

/// Sets the value at a simple JSONPath (`.spec.replicas`), creating the objects on the way.
pub(super) fn set_path(object: &mut Value, path: &str, value: Value) {
    let target = path
        .trim_start_matches('.')
        .split('.')
        .fold(object, |value, field| &mut value[field]);
    *target = value;
}
