//! `spec.monitoring`: how Prometheus finds the gateways. Off unless asked for: a PodMonitor
//! (`monitoring.coreos.com/v1`, the Prometheus Operator's kind) only makes sense where that
//! operator runs, and the reconciler must not fail where its CRD is absent.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Monitoring of the gateway pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// A PodMonitor `<cc>-gateway` scraping every gateway pod's admin port `/metrics`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_monitor: Option<PodMonitorSpec>,
}

impl MonitoringSpec {
    /// The PodMonitor settings when one is wanted.
    pub fn enabled_pod_monitor(&self) -> Option<&PodMonitorSpec> {
        self.pod_monitor.as_ref().filter(|p| p.enabled)
    }
}

/// The PodMonitor the operator builds (owned by the ChatCluster, deleted when disabled).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    /// Create the PodMonitor; when false an existing one the ChatCluster owns is deleted.
    #[serde(default)]
    pub enabled: bool,
    /// Scrape interval, a Prometheus duration such as `30s` or `1m`.
    #[serde(default = "default_interval")]
    #[schemars(
        length(min = 2),
        regex(pattern = r"^(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$")
    )]
    pub interval: String,
    /// Extra labels on the PodMonitor, for a Prometheus whose `podMonitorSelector` picks
    /// monitors by label (kube-prometheus-stack: `release: <its release name>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Prometheus's own default scrape interval.
fn default_interval() -> String {
    "30s".into()
}

impl Default for PodMonitorSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: default_interval(),
            labels: BTreeMap::new(),
        }
    }
}
