//! promtool (Debian's `prometheus` package) on what the gateway and the operator export, and the
//! metric names the chart's dashboard and alerts use.
//!
//! `check_metrics` runs `promtool check metrics` (names, HELP text, units, `_total` on counters)
//! on a live `/metrics`; [`used_metrics`] lists every `chat_*` series the dashboard's queries and
//! the alert rules read, and [`assert_exported`] checks them against a live `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// How to get promtool, for the failure message.
pub const INSTALL_HINT: &str =
    "promtool is missing: apt-get install prometheus (scripts/install-test-deps.sh installs it)";

/// The chart's dashboard.
pub fn dashboard_path() -> PathBuf {
    repo().join("charts/chatcluster/dashboards/chatcluster.json")
}

/// The chart's alert rules (Prometheus rule-file format; the PrometheusRule embeds its groups).
pub fn rules_path() -> PathBuf {
    repo().join("charts/chatcluster/files/prometheus-rules.yaml")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The promtool binary; panics with [`INSTALL_HINT`] when there is none.
pub fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

/// `promtool check metrics` on `exposition`; panics with promtool's findings when it has any.
pub fn check_metrics(exposition: &str) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("writing to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "promtool check metrics ({}):\n{findings}\n--- the exposition:\n{exposition}",
        out.status
    );
}

/// `promtool check rules` on `path`; panics unless it succeeds.
pub fn check_rules(path: &Path) {
    let out = Command::new(promtool())
        .args(["check", "rules"])
        .arg(path)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check rules {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The series an exposition declares (`# TYPE name type`), with their type.
pub fn exported(exposition: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// The `chat_*` names in a PromQL text (label names such as `chatcluster` do not start so).
fn chat_names(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("chat_"))
        .map(str::to_owned)
}

/// Every `chat_*` name the dashboard's queries (panel targets and template variables) and the
/// alert rules use. Panics when the dashboard is not JSON or has a panel without queries.
pub fn used_metrics() -> BTreeSet<String> {
    let text = std::fs::read_to_string(dashboard_path()).expect("reading the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("dashboard panels");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"].as_array().map_or(0, Vec::len);
        assert!(targets > 0, "panel {:?} has no queries", panel["title"]);
    }
    let mut queries = Vec::new();
    collect_queries(&dashboard, &mut queries);
    let text = std::fs::read_to_string(rules_path()).expect("reading the alert rules");
    // Every line but the comments: expressions, and annotations that name series.
    let rules: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let names: BTreeSet<String> = queries
        .iter()
        .map(String::as_str)
        .chain([rules.as_str()])
        .flat_map(chat_names)
        .collect();
    assert!(names.len() > 10, "too few metric names found: {names:?}");
    names
}

/// The strings under `expr`, `query` and `definition` keys anywhere in `value`.
fn collect_queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "query" | "definition", Value::String(s)) => out.push(s.clone()),
                    _ => collect_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_queries(v, out)),
        _ => {}
    }
}

/// Panics unless every name of `used` is a series of `exposition`: a name itself, or the
/// `_bucket`/`_sum`/`_count` series of a histogram it declares.
pub fn assert_exported(used: &BTreeSet<String>, exposition: &str, who: &str) {
    let exported = exported(exposition);
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| {
            let histogram_part = ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .and_then(|base| exported.get(base))
                    .is_some_and(|kind| kind == "histogram" || kind == "summary")
            });
            !exported.contains_key(name.as_str()) && !histogram_part
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard or alerts use {missing:?}, which the {who}'s /metrics does not export; \
         it exports {:?}",
        exported.keys().collect::<Vec<_>>()
    );
}
