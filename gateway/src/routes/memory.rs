//! In-process route table. Share one instance between several in-process gateways and they act
//! as pods of one cluster.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::RouteTable;
use crate::delivery::DeviceRoute;
use crate::error::Result;

/// user → device → (pod, epoch)
type Table = HashMap<String, HashMap<String, (String, u64)>>;

/// The embedded route table: maps in this process. Pods that share one instance see each other's
/// devices, as they would through Redis.
#[derive(Default)]
pub struct MemoryRoutes {
    routes: Mutex<Table>,
    pods: Mutex<BTreeSet<String>>,
}

impl MemoryRoutes {
    /// A table with no routes and no pods.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RouteTable for MemoryRoutes {
    async fn register(&self, route: &DeviceRoute) -> Result<Option<DeviceRoute>> {
        let mut routes = self.routes.lock().expect("route table lock");
        let previous = routes
            .entry(route.user.clone())
            .or_default()
            .insert(route.device.clone(), (route.pod.clone(), route.epoch));
        Ok(previous
            .filter(|(_, epoch)| *epoch != route.epoch)
            .map(|(pod, epoch)| DeviceRoute {
                user: route.user.clone(),
                device: route.device.clone(),
                pod,
                epoch,
            }))
    }

    async fn unregister(&self, route: &DeviceRoute) -> Result<bool> {
        let mut routes = self.routes.lock().expect("route table lock");
        let Some(devices) = routes.get_mut(&route.user) else {
            return Ok(false);
        };
        let matches = devices
            .get(&route.device)
            .is_some_and(|(_, epoch)| *epoch == route.epoch);
        if matches {
            devices.remove(&route.device);
            if devices.is_empty() {
                routes.remove(&route.user);
            }
        }
        Ok(matches)
    }

    async fn refresh(&self, route: &DeviceRoute) -> Result<()> {
        let mut routes = self.routes.lock().expect("route table lock");
        let devices = routes.entry(route.user.clone()).or_default();
        // Re-create only if absent: a newer connection elsewhere must not be overwritten.
        devices
            .entry(route.device.clone())
            .or_insert_with(|| (route.pod.clone(), route.epoch));
        Ok(())
    }

    async fn lookup(&self, users: &[String]) -> Result<Vec<DeviceRoute>> {
        let routes = self.routes.lock().expect("route table lock");
        let mut out = Vec::new();
        for user in users {
            if let Some(devices) = routes.get(user) {
                for (device, (pod, epoch)) in devices {
                    out.push(DeviceRoute {
                        user: user.clone(),
                        device: device.clone(),
                        pod: pod.clone(),
                        epoch: *epoch,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn pods(&self) -> Result<Vec<String>> {
        Ok(self
            .pods
            .lock()
            .expect("pods lock")
            .iter()
            .cloned()
            .collect())
    }

    async fn heartbeat(&self, pod: &str) -> Result<bool> {
        Ok(self.pods.lock().expect("pods lock").insert(pod.to_owned()))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(pod: &str, epoch: u64) -> DeviceRoute {
        DeviceRoute {
            user: "u".into(),
            device: "d".into(),
            pod: pod.into(),
            epoch,
        }
    }

    #[tokio::test]
    async fn stale_epoch_does_not_remove_newer_route() {
        let t = MemoryRoutes::new();
        assert_eq!(t.register(&r("a", 1)).await.unwrap(), None);
        assert_eq!(t.register(&r("b", 2)).await.unwrap(), Some(r("a", 1)));
        assert!(
            !t.unregister(&r("a", 1)).await.unwrap(),
            "pod a closing late must not remove b's route"
        );
        assert_eq!(t.lookup(&["u".into()]).await.unwrap(), vec![r("b", 2)]);
        assert!(t.unregister(&r("b", 2)).await.unwrap());
        assert!(t.lookup(&["u".into()]).await.unwrap().is_empty());
    }
}
