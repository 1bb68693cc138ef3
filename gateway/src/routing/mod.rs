//! Getting events to devices wherever they are connected: this process's hub, or another pod's
//! inbox on the bus. The same path serves the embedded default (every route points here) and the
//! cluster (routes in Redis, inboxes on Pulsar).
//!
//! A stored message's push body is serialised once, where it was stored
//! ([`Payload::message`]): every device of this process shares it, and each other pod's bus event
//! carries it, so that pod writes the same text around its devices' fields. Notices are
//! prepared once per pod (their envelope ids are fresh per device anyway).

mod control;
pub mod pending;
mod retry;
mod sweep;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::bus::{Bus, BusEvent, MAX_HOPS};
use crate::delivery::{plan_fanout, DeviceRoute};
use crate::error::{Error, Result};
use crate::hub::{Conn, Hub, Outbound};
use crate::model::{DeliveredNotice, HttpPush, Prepared, StoredMessage};
use crate::notice::Notice;
use crate::presence::Presence;
use crate::routes::RouteTable;
use retry::{Retries, Retry};

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
    /// Not a frame: the devices re-read their backlog from the store (a resent `clientMsgId`
    /// whose first fan-out may not have happened).
    Resync,
}

impl Payload {
    /// A stored message, its push body serialised here, once.
    pub fn message(message: StoredMessage) -> Self {
        Payload::Message(Arc::new(Prepared::new(Arc::new(message))))
    }

    /// What local sessions get: the push serialised once, shared by every device here (none for
    /// a resync, which is not written).
    fn outbound(&self) -> Option<Outbound> {
        Some(match self {
            Payload::Message(m) => Outbound::Message(m.clone()),
            Payload::Delivered(n) => Outbound::Notice(Arc::new(n.prepare())),
            Payload::Push(p) => Outbound::Notice(Arc::new(p.prepare())),
            Payload::Notice(n) => Outbound::Notice(Arc::new(n.prepare())),
            Payload::Resync => return None,
        })
    }

    /// Whether a failed fan-out of it is tried again: what the devices must get (a stored
    /// message, its DELIVERED, a resync), not notifications that are never stored.
    fn must_arrive(&self) -> bool {
        matches!(
            self,
            Payload::Message(_) | Payload::Delivered(_) | Payload::Resync
        )
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
            Payload::Resync => BusEvent::Resync { devices, hops },
        }
    }
}

/// Hands `outbound` to one local session (`None`: tells it to re-read its backlog).
fn hand(conn: &Conn, outbound: &Option<Outbound>) {
    match outbound {
        Some(event) => conn.send(event.clone()),
        None => conn.resync(),
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
    /// Fan-outs of stored messages that failed, waiting to be tried again.
    retries: Retries,
    /// Set when a route lookup failed, until one succeeds again: meanwhile fan-outs go to the
    /// retry queue at once instead of each waiting out the lookup's timeout (a hung or
    /// unreachable Redis must not hold every reply 0 back by seconds).
    routes_down: AtomicBool,
    /// Set when a route-table write failed (a registration, a refresh, the pod's heartbeat):
    /// the next good heartbeat registers every local connection again ([`Router::reannounce`]).
    reannounce: AtomicBool,
    /// The durable record of failed fan-outs, when the store keeps one ([`sweep`]).
    pending: Option<sweep::Pending>,
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
            retries: Retries::default(),
            routes_down: AtomicBool::new(false),
            reannounce: AtomicBool::new(false),
            pending: None,
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
        if self.routes_down.load(Ordering::Relaxed) {
            self.route_failed(payload, users, skip);
            return Err(Error::Unavailable(
                "route table down: the fan-out waits for it".into(),
            ));
        }
        let started = std::time::Instant::now();
        let routes = match self.routes.lookup(users).await {
            Ok(routes) => routes,
            Err(e) => {
                self.set_routes_down(true);
                self.route_failed(payload, users, skip);
                return Err(e);
            }
        };
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
                    hand(&conn, &outbound);
                }
            }
        }
        for (pod, devices) in plan.remote {
            if let Err(unsent) = self.bus.publish(&pod, payload.event(devices, hops)).await {
                tracing::warn!(pod, error = %unsent, "forwarding failed; trying again");
                // The bus hands the event back: nothing was copied for this on the way out.
                if let (true, Some(event)) = (payload.must_arrive(), unsent.event) {
                    self.note_refused(&pod, &event);
                    self.retries.push(Retry::Publish {
                        pod,
                        event: Box::new(event),
                    });
                }
            }
        }
    }

    /// The route table did not answer a fan-out: this pod's own devices of `users` get it now
    /// (a Redis outage must not stop local delivery), and the whole fan-out is tried again
    /// until the table answers (devices here drop what they already have).
    fn route_failed(&self, payload: Payload, users: &[String], skip: Option<(&str, &str)>) {
        if !payload.must_arrive() {
            return;
        }
        let outbound = payload.outbound();
        for user in users {
            for (device, conn) in self.hub.of_user(user) {
                if skip != Some((user.as_str(), device.as_str())) {
                    hand(&conn, &outbound);
                }
            }
        }
        self.note_unrouted(&payload, users, skip);
        self.retries.push(Retry::Route {
            payload,
            users: users.to_vec(),
            skip: skip.map(|(u, d)| (u.to_owned(), d.to_owned())),
        });
    }

    /// A route-table write failed: the next good heartbeat registers every local connection
    /// again.
    pub fn reannounce_later(&self) {
        self.reannounce.store(true, Ordering::Relaxed);
    }

    /// Whether a route-table write failed since the last call (and clears it).
    pub fn take_reannounce(&self) -> bool {
        self.reannounce.swap(false, Ordering::Relaxed)
    }

    /// Records whether the route table answers; logged and exported when it changes. Down also
    /// means routes may have been missed: the next good heartbeat registers them again.
    pub fn set_routes_down(&self, down: bool) {
        if down {
            self.reannounce_later();
        }
        if self.routes_down.swap(down, Ordering::Relaxed) != down {
            metrics::gauge!("chat_route_table_down").set(if down { 1.0 } else { 0.0 });
            if down {
                tracing::warn!("route table not answering: local devices still get their messages, the rest wait");
            } else {
                tracing::info!("route table answering again: waiting fan-outs go out");
            }
        }
    }

    /// Whether the route table failed its last lookup (readiness reports it).
    pub fn routes_down(&self) -> bool {
        self.routes_down.load(Ordering::Relaxed)
    }

    /// How many failed fan-outs wait to be tried again (a pod going away waits for them).
    pub fn retries_waiting(&self) -> usize {
        self.retries.len()
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
            BusEvent::Resync { devices, hops } => {
                self.deliver_here(Payload::Resync, devices, hops).await
            }
            BusEvent::InboxRestored => {
                let conns = self.hub.all();
                tracing::info!(
                    connections = conns.len(),
                    "inbox consumer rebuilt: every session re-reads its backlog"
                );
                for (_, _, conn) in conns {
                    conn.resync();
                }
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
                Some(conn) => hand(&conn, outbound.get_or_insert_with(|| payload.outbound())),
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
}
