//! Getting events to devices wherever they are connected: this process's hub, or another pod's
//! inbox on the bus. The same path serves the embedded default (every route points here) and the
//! cluster (routes in Redis, inboxes on Pulsar).
//!
//! A stored message's push body is serialised once, where it was stored
//! ([`Payload::message`]): every device of this process shares it, and each other pod's bus event
//! carries it, so that pod writes the same text around its devices' fields. Notices are
//! prepared once per pod (their envelope ids are fresh per device anyway).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use chat_protocol::KickReason;

use crate::bus::{Bus, BusEvent, MAX_HOPS};
use crate::delivery::{plan_fanout, DeviceRoute};
use crate::error::Result;
use crate::hub::{Hub, Outbound};
use crate::model::{now_ms, DeliveredNotice, HttpPush, Prepared, StoredMessage};
use crate::notice::Notice;
use crate::presence::{Presence, PresenceEvent, Targets};
use crate::routes::RouteTable;

/// Something to hand to devices.
#[derive(Clone)]
pub enum Payload {
    /// A stored message with its push serialised once, for every device on every pod.
    Message(Arc<Prepared>),
    /// A DELIVERED (17) notice for the sender's devices: written, not acked.
    Delivered(Arc<DeliveredNotice>),
    /// An HTTP `/message/send` notification: written, not acked.
    Push(Arc<HttpPush>),
    /// A v1.1 notification (READ, TYPING): written, not acked.
    Notice(Arc<Notice>),
}

impl Payload {
    /// A stored message, its push body serialised here, once.
    pub fn message(message: StoredMessage) -> Self {
        Payload::Message(Arc::new(Prepared::new(Arc::new(message))))
    }

    /// What local sessions get: the push serialised once, shared by every device here.
    fn outbound(&self) -> Outbound {
        match self {
            Payload::Message(m) => Outbound::Message(m.clone()),
            Payload::Delivered(n) => Outbound::Notice(Arc::new(n.prepare())),
            Payload::Push(p) => Outbound::Notice(Arc::new(p.prepare())),
            Payload::Notice(n) => Outbound::Notice(Arc::new(n.prepare())),
        }
    }

    fn event(&self, devices: Vec<DeviceRoute>, hops: u8) -> BusEvent {
        match self {
            Payload::Message(m) => BusEvent::Deliver {
                message: (*m.message).clone(),
                devices,
                hops,
                push: Some(m.push.body().clone()),
            },
            Payload::Delivered(n) => BusEvent::Delivered {
                notice: (**n).clone(),
                devices,
                hops,
            },
            Payload::Push(p) => BusEvent::Push {
                push: (**p).clone(),
                devices,
                hops,
            },
            Payload::Notice(n) => BusEvent::Notice {
                notice: (**n).clone(),
                devices,
                hops,
            },
        }
    }
}

/// Delivers events to devices on any pod: the route table says where they are, the hub reaches
/// this process's, the bus every other pod's.
pub struct Router {
    pod: String,
    hub: Arc<Hub>,
    routes: Arc<dyn RouteTable>,
    bus: Arc<dyn Bus>,
    presence: Arc<Presence>,
}

impl Router {
    /// The router of pod `pod`.
    pub fn new(
        pod: String,
        hub: Arc<Hub>,
        routes: Arc<dyn RouteTable>,
        bus: Arc<dyn Bus>,
        presence: Arc<Presence>,
    ) -> Self {
        Self {
            pod,
            hub,
            routes,
            bus,
            presence,
        }
    }

    /// Hands `payload` to every connected device of `users`, except the device `skip`.
    pub async fn deliver(
        &self,
        payload: Payload,
        users: &[String],
        skip: Option<(&str, &str)>,
    ) -> Result<()> {
        self.deliver_noting(payload, users, skip, &[])
            .await
            .map(drop)
    }

    /// [`Router::deliver`], and which of `watch` had no connected device, from the same route
    /// lookup (the offline push: no second lookup on a send's path; nothing more when `watch`
    /// is empty).
    pub async fn deliver_noting(
        &self,
        payload: Payload,
        users: &[String],
        skip: Option<(&str, &str)>,
        watch: &[&str],
    ) -> Result<Vec<String>> {
        let started = std::time::Instant::now();
        let routes = self.routes.lookup(users).await?;
        metrics::histogram!("chat_route_lookup_seconds").record(started.elapsed().as_secs_f64());
        let offline = if watch.is_empty() {
            Vec::new()
        } else {
            let online: HashSet<&str> = routes.iter().map(|r| r.user.as_str()).collect();
            watch
                .iter()
                .filter(|u| !online.contains(**u))
                .map(|u| (*u).to_owned())
                .collect()
        };
        self.dispatch(payload, routes, skip, 0).await;
        metrics::histogram!("chat_fanout_seconds").record(started.elapsed().as_secs_f64());
        Ok(offline)
    }

    /// Local devices get the payload in-process; each other pod gets one event for its devices.
    async fn dispatch(
        &self,
        payload: Payload,
        routes: Vec<DeviceRoute>,
        skip: Option<(&str, &str)>,
        hops: u8,
    ) {
        let plan = plan_fanout(&self.pod, routes, skip);
        if !plan.local.is_empty() {
            let outbound = payload.outbound();
            for r in &plan.local {
                if let Some(conn) = self.hub.get(&r.user, &r.device) {
                    conn.send(outbound.clone());
                }
            }
        }
        for (pod, devices) in plan.remote {
            if let Err(e) = self.bus.publish(&pod, payload.event(devices, hops)).await {
                // The message itself is stored; the device catches up when it reconnects.
                tracing::warn!(pod, error = %e, "forwarding failed");
            }
        }
    }

    /// An event consumed from this pod's inbox.
    pub async fn on_bus_event(&self, event: BusEvent) {
        match event {
            BusEvent::Deliver {
                message,
                devices,
                hops,
                push,
            } => {
                let message = Arc::new(message);
                let prepared = match push {
                    Some(body) => Prepared::with_body(message, body),
                    None => Prepared::new(message),
                };
                let payload = Payload::Message(Arc::new(prepared));
                self.deliver_here(payload, devices, hops).await
            }
            BusEvent::Delivered {
                notice,
                devices,
                hops,
            } => {
                self.deliver_here(Payload::Delivered(Arc::new(notice)), devices, hops)
                    .await
            }
            BusEvent::Push {
                push,
                devices,
                hops,
            } => {
                self.deliver_here(Payload::Push(Arc::new(push)), devices, hops)
                    .await
            }
            BusEvent::Notice {
                notice,
                devices,
                hops,
            } => {
                self.deliver_here(Payload::Notice(Arc::new(notice)), devices, hops)
                    .await
            }
            BusEvent::Presence { events } => self.presence.apply(&events),
            BusEvent::PushAll { push } => self.push_local(&push),
            BusEvent::Kick { devices, reason } => self.kick_local(&devices, reason),
        }
    }

    /// Delivers to the named devices here; devices that moved are looked up again and forwarded.
    async fn deliver_here(&self, payload: Payload, devices: Vec<DeviceRoute>, hops: u8) {
        let mut moved: BTreeSet<(String, String)> = BTreeSet::new();
        let mut outbound = None;
        for d in devices {
            match self.hub.get(&d.user, &d.device) {
                Some(conn) => conn.send(outbound.get_or_insert_with(|| payload.outbound()).clone()),
                None => {
                    moved.insert((d.user, d.device));
                }
            }
        }
        if moved.is_empty() || hops >= MAX_HOPS {
            return;
        }
        let users: Vec<String> = moved
            .iter()
            .map(|(u, _)| u.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        match self.routes.lookup(&users).await {
            Ok(routes) => {
                let routes = routes
                    .into_iter()
                    .filter(|r| {
                        r.pod != self.pod && moved.contains(&(r.user.clone(), r.device.clone()))
                    })
                    .collect();
                self.dispatch(payload, routes, None, hops + 1).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-routing failed; devices catch up on reconnect")
            }
        }
    }

    /// After the route table lost this pod (a Redis restarted or flushed): registers every
    /// connection here again — never over a newer connection's route — and has each session
    /// re-read its backlog, so what was stored while the routes were missing arrives now instead
    /// of at the device's next reconnect.
    pub async fn reannounce(&self) {
        let conns = self.hub.all();
        if conns.is_empty() {
            return;
        }
        let mut back = Vec::new();
        let mut to = Vec::new();
        for (user, device, conn) in &conns {
            let route = DeviceRoute {
                user: user.clone(),
                device: device.clone(),
                pod: self.pod.clone(),
                epoch: conn.epoch,
            };
            match self.routes.refresh(&route).await {
                Ok(Some(watchers)) => {
                    back.push(PresenceEvent::online(user, now_ms()));
                    to.extend(watchers);
                }
                Ok(None) => {}
                Err(e) => {
                    // The next heartbeat finds the pod missing again and tries once more.
                    tracing::warn!(error = %e, "re-registering routes failed");
                    break;
                }
            }
        }
        // Users whose routes were reaped while this pod was cut off are online again.
        to.sort();
        to.dedup();
        self.presence.announce(Targets::Pods(to), back);
        for (_, _, conn) in &conns {
            conn.resync();
        }
        tracing::info!(
            connections = conns.len(),
            "the route table had lost this pod: routes registered again, backlogs re-read"
        );
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

    fn push_local(&self, push: &HttpPush) {
        let notice = Arc::new(push.prepare());
        for (_, _, conn) in self.hub.all() {
            conn.send(Outbound::Notice(notice.clone()));
        }
    }
}
