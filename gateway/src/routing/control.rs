//! The router's control paths: re-registering this pod's routes after the table lost them,
//! kicks, and the HTTP `/message/send` pushes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chat_protocol::KickReason;

use super::{Payload, Router};
use crate::bus::BusEvent;
use crate::delivery::DeviceRoute;
use crate::error::Result;
use crate::hub::Outbound;
use crate::model::{now_ms, HttpPush};
use crate::presence::{PresenceEvent, Targets};

impl Router {
    /// After the route table lost this pod (a Redis restarted or flushed) or failed a write
    /// (a route registration or refresh while it was down): registers every connection here
    /// again — never over a newer connection's route — and has each session whose route was
    /// missing re-read its backlog, so what was stored meanwhile arrives now instead of at the
    /// device's next reconnect. Sessions whose routes were there lost nothing (failed lookups
    /// wait in the senders' retry queues).
    pub async fn reannounce(&self) {
        let conns = self.hub.all();
        if conns.is_empty() {
            return;
        }
        let mut back = Vec::new();
        let mut to = Vec::new();
        let mut created = 0usize;
        for (user, device, conn) in &conns {
            let route = DeviceRoute {
                user: user.clone(),
                device: device.clone(),
                pod: self.pod.clone(),
                epoch: conn.epoch,
            };
            match self.routes.refresh(&route).await {
                Ok(refreshed) => {
                    if let Some(watchers) = refreshed.back_online {
                        back.push(PresenceEvent::online(user, now_ms()));
                        to.extend(watchers);
                    }
                    if refreshed.created {
                        created += 1;
                        conn.resync();
                    }
                }
                Err(e) => {
                    // The next heartbeat tries once more.
                    tracing::warn!(error = %e, "re-registering routes failed");
                    self.reannounce_later();
                    break;
                }
            }
        }
        // Users whose routes were reaped while this pod was cut off are online again.
        to.sort();
        to.dedup();
        self.presence.announce(Targets::Pods(to), back);
        if created > 0 {
            tracing::info!(
                connections = conns.len(),
                registered_again = created,
                "routes missing from the route table registered again; their backlogs re-read"
            );
        }
    }

    /// Kicks the exact connections named (by epoch) that live on this process.
    pub fn kick_local(&self, devices: &[DeviceRoute], reason: KickReason) {
        for d in devices {
            if let Some(conn) = self
                .hub
                .get(&d.user, &d.device)
                .filter(|c| c.epoch == d.epoch)
            {
                conn.send(Outbound::Kick(reason));
            }
        }
    }

    /// Kicks the given connections wherever they are.
    pub async fn kick(&self, devices: Vec<DeviceRoute>, reason: KickReason) -> Result<()> {
        let mut by_pod: BTreeMap<String, Vec<DeviceRoute>> = BTreeMap::new();
        for d in devices {
            by_pod.entry(d.pod.clone()).or_default().push(d);
        }
        for (pod, devices) in by_pod {
            if pod == self.pod {
                self.kick_local(&devices, reason);
            } else {
                self.bus
                    .publish(&pod, BusEvent::Kick { devices, reason })
                    .await?;
            }
        }
        Ok(())
    }

    /// Closes every device of `user`, cluster-wide. Returns how many connections were told.
    pub async fn kick_user(&self, user: &str, reason: KickReason) -> Result<usize> {
        let routes = self.routes.lookup(&[user.to_owned()]).await?;
        let n = routes.len();
        self.kick(routes, reason).await?;
        Ok(n)
    }

    /// `/message/send`: pushes to every online device of `users`; returns the users with none.
    pub async fn push(&self, push: HttpPush, users: &[String]) -> Result<Vec<String>> {
        // Each user once, whatever the caller passed: one push per device, a sorted notExist.
        let users: Vec<String> = users
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let routes = self.routes.lookup(&users).await?;
        let online: BTreeSet<&str> = routes.iter().map(|r| r.user.as_str()).collect();
        let not_exist: Vec<String> = users
            .iter()
            .filter(|u| !online.contains(u.as_str()))
            .cloned()
            .collect();
        self.dispatch(Payload::Push(Arc::new(push)), routes, None, 0)
            .await;
        Ok(not_exist)
    }

    /// `/message/send` with `sendToAll`: every device on every pod, one event per pod.
    pub async fn push_all(&self, push: HttpPush) -> Result<()> {
        self.push_local(&push);
        for pod in self.routes.pods().await? {
            if pod != self.pod {
                let event = BusEvent::PushAll { push: push.clone() };
                self.bus.publish(&pod, event).await?;
            }
        }
        Ok(())
    }

    pub(super) fn push_local(&self, push: &HttpPush) {
        let notice = Arc::new(push.prepare());
        for (_, _, conn) in self.hub.all() {
            conn.send(Outbound::Notice(notice.clone()));
        }
    }
}
