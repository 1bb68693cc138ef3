//! Fan-out planning: which devices are on this pod, and one event per other pod that holds any.

use std::collections::BTreeMap;

/// Where one device is connected.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct DeviceRoute {
    /// The connected user (the token's `sub`).
    pub user: String,
    /// The device the client named at the upgrade; a user has at most one connection per device.
    pub device: String,
    /// The pod that holds the connection: events for the device go to its inbox.
    pub pod: String,
    /// The connection's epoch: a reconnect gets a higher one, so an event or a removal meant for
    /// the old connection cannot reach or remove the new one.
    pub epoch: u64,
}

/// Devices split by pod: those on this pod are delivered in-process, each other pod gets one event.
#[derive(Debug, Default, PartialEq)]
pub struct FanoutPlan {
    /// Targets on this pod: handed to their sessions through the hub, no bus hop.
    pub local: Vec<DeviceRoute>,
    /// Targets on other pods, by pod: one bus event each.
    pub remote: BTreeMap<String, Vec<DeviceRoute>>,
}

/// Plans the fan-out of one event to `routes`, leaving out `skip` (the sending device itself).
/// Never one event per member and never a broadcast: exactly one per pod that holds a target.
pub fn plan_fanout(
    local_pod: &str,
    routes: Vec<DeviceRoute>,
    skip: Option<(&str, &str)>,
) -> FanoutPlan {
    let mut plan = FanoutPlan::default();
    for r in routes {
        if skip.is_some_and(|(u, d)| r.user == u && r.device == d) {
            continue;
        }
        if r.pod == local_pod {
            plan.local.push(r);
        } else {
            plan.remote.entry(r.pod.clone()).or_default().push(r);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_groups_by_pod_and_skips_sender_device() {
        let r = |u: &str, d: &str, p: &str| DeviceRoute {
            user: u.into(),
            device: d.into(),
            pod: p.into(),
            epoch: 1,
        };
        let plan = plan_fanout(
            "p0",
            vec![
                r("a", "phone", "p0"),
                r("a", "web", "p1"),
                r("b", "x", "p1"),
                r("c", "y", "p2"),
                r("a", "laptop", "p0"),
            ],
            Some(("a", "phone")),
        );
        assert_eq!(plan.local, vec![r("a", "laptop", "p0")]);
        assert_eq!(plan.remote.len(), 2);
        assert_eq!(
            plan.remote["p1"],
            vec![r("a", "web", "p1"), r("b", "x", "p1")]
        );
        assert_eq!(plan.remote["p2"], vec![r("c", "y", "p2")]);
    }
}
