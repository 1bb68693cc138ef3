//! In-process route table. Share one instance between several in-process gateways and they act
//! as pods of one cluster.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Departed, Refreshed, Registered, Removed, RouteTable, UserPresence};
use crate::delivery::DeviceRoute;
use crate::error::Result;
use crate::model::now_ms;

/// user → device → (pod, epoch)
type Table = HashMap<String, HashMap<String, (String, u64)>>;

/// The embedded route table: maps in this process. Pods that share one instance see each other's
/// devices, as they would through Redis. `lastSeen` is kept here too: it lasts as long as the
/// process (an embedded gateway that restarts reports everyone as never seen).
#[derive(Default)]
pub struct MemoryRoutes {
    routes: Mutex<Table>,
    pods: Mutex<BTreeSet<String>>,
    last_seen: Mutex<HashMap<String, i64>>,
    /// user → pod → how many times the pod said it watches the user (kept when above 0).
    watchers: Mutex<HashMap<String, HashMap<String, i64>>>,
}

impl MemoryRoutes {
    /// The pods watching `user`.
    fn watchers_of(&self, user: &str) -> Vec<String> {
        let watchers = self.watchers.lock().expect("watchers lock");
        watchers
            .get(user)
            .map(|pods| pods.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes the user's device if `keep` says so; the user's `lastSeen` when it was its last.
    fn remove_device(
        &self,
        routes: &mut Table,
        user: &str,
        device: &str,
        keep: impl Fn(&(String, u64)) -> bool,
    ) -> (bool, Option<i64>) {
        let Some(devices) = routes.get_mut(user) else {
            return (false, None);
        };
        if devices.get(device).is_none_or(keep) {
            return (false, None);
        }
        devices.remove(device);
        if !devices.is_empty() {
            return (true, None);
        }
        routes.remove(user);
        let now = now_ms();
        let mut seen = self.last_seen.lock().expect("last seen lock");
        seen.insert(user.to_owned(), now);
        (true, Some(now))
    }
}

impl MemoryRoutes {
    /// A table with no routes and no pods.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RouteTable for MemoryRoutes {
    async fn register(&self, route: &DeviceRoute) -> Result<Registered> {
        let mut routes = self.routes.lock().expect("route table lock");
        let devices = routes.entry(route.user.clone()).or_default();
        let first = devices.is_empty();
        let previous = devices.insert(route.device.clone(), (route.pod.clone(), route.epoch));
        let replaced = previous
            .filter(|(_, epoch)| *epoch != route.epoch)
            .map(|(pod, epoch)| DeviceRoute {
                user: route.user.clone(),
                device: route.device.clone(),
                pod,
                epoch,
            });
        let watchers = if first {
            self.watchers_of(&route.user)
        } else {
            Vec::new()
        };
        Ok(Registered {
            replaced,
            first,
            watchers,
        })
    }

    async fn unregister(&self, route: &DeviceRoute) -> Result<Removed> {
        let mut routes = self.routes.lock().expect("route table lock");
        let (removed, last_seen) =
            self.remove_device(&mut routes, &route.user, &route.device, |(_, epoch)| {
                *epoch != route.epoch
            });
        let watchers = match last_seen {
            Some(_) => self.watchers_of(&route.user),
            None => Vec::new(),
        };
        Ok(Removed {
            removed,
            last_seen,
            watchers,
        })
    }

    async fn watch(&self, pod: &str, deltas: &[(String, i64)]) -> Result<()> {
        let mut watchers = self.watchers.lock().expect("watchers lock");
        for (user, delta) in deltas {
            let pods = watchers.entry(user.clone()).or_default();
            let n = pods.entry(pod.to_owned()).or_default();
            *n += delta;
            if *n <= 0 {
                pods.remove(pod);
                if pods.is_empty() {
                    watchers.remove(user);
                }
            }
        }
        Ok(())
    }

    async fn refresh(&self, route: &DeviceRoute) -> Result<Refreshed> {
        let mut routes = self.routes.lock().expect("route table lock");
        let devices = routes.entry(route.user.clone()).or_default();
        let first = devices.is_empty();
        // Re-create only if absent: a newer connection elsewhere must not be overwritten.
        let mut created = false;
        devices.entry(route.device.clone()).or_insert_with(|| {
            created = true;
            (route.pod.clone(), route.epoch)
        });
        drop(routes);
        Ok(Refreshed {
            created,
            back_online: first.then(|| self.watchers_of(&route.user)),
        })
    }

    async fn presence(&self, users: &[String]) -> Result<Vec<UserPresence>> {
        let routes = self.routes.lock().expect("route table lock");
        let seen = self.last_seen.lock().expect("last seen lock");
        Ok(users
            .iter()
            .map(|u| {
                let online = routes.contains_key(u);
                UserPresence {
                    online,
                    last_seen: (!online).then(|| seen.get(u).copied()).flatten(),
                }
            })
            .collect())
    }

    async fn silent_pods(&self, _before_ms: i64) -> Result<Vec<String>> {
        // Pods sharing this table live in this process: none dies while the others run.
        Ok(Vec::new())
    }

    async fn reap(&self, pod: &str, _silent_before: Option<i64>) -> Result<Vec<Departed>> {
        let mut routes = self.routes.lock().expect("route table lock");
        let held: Vec<(String, String)> = routes
            .iter()
            .flat_map(|(user, devices)| {
                devices
                    .iter()
                    .filter(|(_, (p, _))| p == pod)
                    .map(move |(device, _)| (user.clone(), device.clone()))
            })
            .collect();
        let mut left = Vec::new();
        for (user, device) in held {
            let (_, last_seen) = self.remove_device(&mut routes, &user, &device, |_| false);
            if let Some(at) = last_seen {
                left.push((user, at));
            }
        }
        drop(routes);
        let mut watchers = self.watchers.lock().expect("watchers lock");
        watchers.retain(|_, pods| {
            pods.remove(pod);
            !pods.is_empty()
        });
        drop(watchers);
        Ok(left
            .into_iter()
            .map(|(user, last_seen)| Departed {
                watchers: self.watchers_of(&user),
                user,
                last_seen,
            })
            .collect())
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
        assert_eq!(t.register(&r("a", 1)).await.unwrap().replaced, None);
        assert_eq!(
            t.register(&r("b", 2)).await.unwrap().replaced,
            Some(r("a", 1))
        );
        assert!(
            !t.unregister(&r("a", 1)).await.unwrap().removed,
            "pod a closing late must not remove b's route"
        );
        assert_eq!(t.lookup(&["u".into()]).await.unwrap(), vec![r("b", 2)]);
        assert!(t.unregister(&r("b", 2)).await.unwrap().removed);
        assert!(t.lookup(&["u".into()]).await.unwrap().is_empty());
    }
}
