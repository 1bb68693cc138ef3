//! Whether this pod should get traffic, and what is degraded: "degrade, don't lie".
//!
//! What makes this pod worse than its peers takes it out of the Service (`/readyz` 503):
//! draining, its store connection, its own inbox consumer while other pods' consume theirs.
//! An outage every pod shares — Redis, or the broker for everyone — does not: taking every pod
//! out would turn a partial outage (local delivery, storing, catch-up all still work) into a
//! total one. It is reported instead in `/readyz`'s body, in `chat_backend_up{backend}` and
//! in the log when it starts and ends.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::app::App;

/// A pod's inbox consumer counts as its own fault only once peers reported theirs working this
/// long after it went down: by then a broker outage would have reached their consumers too
/// (the consumer's watchdog checks an idle connection every 5 s).
const PEER_GRACE_MS: i64 = 7_000;

/// The outcome of one check.
pub struct Readiness {
    /// Whether the pod should get traffic.
    pub ready: bool,
    /// `ready`, or what is wrong or degraded, for `/readyz`'s body.
    pub detail: String,
}

/// Each backend's last state, so a change is logged once: 0 unknown, 1 up, 2 down.
#[derive(Default)]
pub struct Tracker {
    store: AtomicU8,
    routes: AtomicU8,
    bus: AtomicU8,
}

impl Tracker {
    fn record(&self, backend: &'static str, up: bool, why: &str) {
        let slot = match backend {
            "store" => &self.store,
            "route_table" => &self.routes,
            _ => &self.bus,
        };
        let state = if up { 1 } else { 2 };
        let before = slot.swap(state, Ordering::Relaxed);
        metrics::gauge!("chat_backend_up", "backend" => backend).set(if up { 1.0 } else { 0.0 });
        if before != state {
            if up && before != 0 {
                tracing::info!(backend, "backend reachable again");
            } else if !up {
                tracing::warn!(backend, reason = why, "backend not reachable");
            }
        }
    }
}

/// Checks every backend: readiness for `/readyz`, gauges and logs for everyone.
pub async fn check(app: &App) -> Readiness {
    let mut problems = Vec::new();
    let mut ready = true;
    if app.drain.is_draining() {
        ready = false;
        problems.push("draining".to_owned());
    }
    match app.store.ping().await {
        Ok(()) => app.health.record("store", true, ""),
        Err(e) => {
            let why = format!("store: {e}");
            app.health.record("store", false, &why);
            ready = false;
            problems.push(why);
        }
    }
    let routes_up = match app.routes.ping().await {
        Ok(()) => {
            app.health.record("route_table", true, "");
            true
        }
        Err(e) => {
            let why = format!(
                "route table (shared by every pod; local delivery goes on, other pods' wait): {e}"
            );
            app.health.record("route_table", false, &why);
            problems.push(why);
            false
        }
    };
    match app.bus.ping().await {
        Ok(()) => app.health.record("bus", true, ""),
        Err(e) => {
            let peers = match (routes_up, app.bus.down_since()) {
                (true, Some(since)) => app
                    .routes
                    .consuming_peers(&app.pod, since + PEER_GRACE_MS)
                    .await
                    .unwrap_or(0),
                _ => 0,
            };
            let why = if peers > 0 {
                ready = false;
                format!("bus: {e}, while {peers} other pod(s) consume theirs")
            } else {
                format!("bus (no other pod consumes either: a shared outage; stored messages wait): {e}")
            };
            app.health.record("bus", false, &why);
            problems.push(why);
        }
    }
    let detail = match (ready, problems.is_empty()) {
        (true, true) => "ready".to_owned(),
        (true, false) => format!("ready, degraded: {}", problems.join("; ")),
        (false, _) => problems.join("; "),
    };
    Readiness { ready, detail }
}
