//! Events seen through the core `v1` API. The operator writes `events.k8s.io/v1` Events (kube's
//! `Recorder`); `kubectl describe` reads `v1` Events with a field selector on `involvedObject`. A
//! real apiserver stores both as one resource; here a `v1` list also holds every
//! `events.k8s.io/v1` Event in its `v1` form, as the apiserver converts it.

use serde_json::{json, Value};

use super::kinds::Kind;
use super::wire::Selector;
use super::Inner;

impl Inner {
    /// The `v1` EventList of `namespace` (or all) that `selector` matches, both kinds of Event.
    pub(super) fn list_core_events(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Value {
        let everything = Selector::default();
        let mut list = self.list(kind, namespace, &everything);
        let newer = Kind::by_kind("events.k8s.io/v1", "Event").expect("known kind");
        let converted = self.list(newer, namespace, &everything)["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(core_view)
            .collect::<Vec<_>>();
        let items: Vec<Value> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .cloned()
            .chain(converted)
            .filter(|event| selector.matches(event))
            .collect();
        list["items"] = json!(items);
        list
    }
}

/// An `events.k8s.io/v1` Event as `v1` shows it.
fn core_view(event: &Value) -> Value {
    let series = &event["series"];
    let count = series["count"]
        .as_i64()
        .or_else(|| event["deprecatedCount"].as_i64())
        .unwrap_or(1);
    let first = first_present(&[&event["deprecatedFirstTimestamp"], &event["eventTime"]]);
    let last = first_present(&[
        &series["lastObservedTime"],
        &event["deprecatedLastTimestamp"],
        &event["eventTime"],
    ]);
    let mut core = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": event["metadata"],
        "involvedObject": event["regarding"],
        "related": event["related"],
        "reason": event["reason"],
        "message": event["note"],
        "type": event["type"],
        "action": event["action"],
        "source": {"component": event["reportingController"]},
        "reportingComponent": event["reportingController"],
        "reportingInstance": event["reportingInstance"],
        "eventTime": event["eventTime"],
        "firstTimestamp": trim_micro(&first),
        "lastTimestamp": trim_micro(&last),
        "count": count,
    });
    if series.is_object() {
        core["series"] = series.clone();
    }
    if let Some(fields) = core.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    core
}

fn first_present(candidates: &[&Value]) -> Value {
    candidates
        .iter()
        .find(|v| v.is_string())
        .map_or(Value::Null, |v| (*v).clone())
}

/// A `MicroTime` (`…:05.123456Z`) as a `Time` (`…:05Z`), which `firstTimestamp` and
/// `lastTimestamp` are.
fn trim_micro(time: &Value) -> Value {
    match time.as_str() {
        Some(text) => json!(match text.split_once('.') {
            Some((seconds, _)) => format!("{seconds}Z"),
            None => text.to_owned(),
        }),
        None => Value::Null,
    }
}
