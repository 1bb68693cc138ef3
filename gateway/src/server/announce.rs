//! The pod's heartbeat in the route table, and the reaping of pods that stopped beating.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::model::now_ms;
use crate::presence::{PresenceEvent, Targets};
use crate::routes::redis::POD_STALE_MS;

/// How often this pod announces itself in the route table.
const POD_HEARTBEAT: Duration = Duration::from_secs(5);

/// Announces this pod in the route table every few seconds; when the table had lost it, the
/// pod's connections are registered again. Each beat also reaps pods silent for
/// [`POD_STALE_MS`]: their users go offline (within ~35 s of a pod's death).
pub(super) async fn announce(app: Arc<App>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(POD_HEARTBEAT);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match app.routes.heartbeat(&app.pod).await {
                    Ok(lost) => {
                        app.router.set_routes_down(false);
                        // `take_reannounce` first: it must be cleared whatever `lost` says.
                        if app.router.take_reannounce() | lost {
                            app.router.reannounce().await;
                        }
                        let consuming = app.bus.ping().await.is_ok();
                        if let Err(e) = app.routes.inbox_health(&app.pod, consuming).await {
                            tracing::debug!(error = %e, "recording the inbox's health failed");
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "pod heartbeat failed");
                        app.router.set_routes_down(true);
                    }
                }
                // Gauges and the log follow the backends even when nobody probes readiness.
                crate::health::check(&app).await;
                reap_silent(&app).await;
            }
            _ = stop.cancelled() => break,
        }
    }
}

/// Reaps every other pod whose last heartbeat is older than [`POD_STALE_MS`].
async fn reap_silent(app: &App) {
    let before = now_ms() - POD_STALE_MS;
    match app.routes.silent_pods(before).await {
        Ok(pods) => {
            for pod in pods.iter().filter(|p| **p != app.pod) {
                reap(app, pod, Some(before)).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "looking for silent pods failed"),
    }
}

/// Removes the routes `pod` held and announces its users that went offline with them.
pub(super) async fn reap(app: &App, pod: &str, silent_before: Option<i64>) {
    match app.routes.reap(pod, silent_before).await {
        Ok(left) => {
            if !left.is_empty() || silent_before.is_some() {
                tracing::info!(pod, offline = left.len(), "reaped the routes of a pod");
            }
            for gone in left {
                let event = PresenceEvent::offline(&gone.user, gone.last_seen);
                app.presence
                    .announce(Targets::Pods(gone.watchers), vec![event]);
            }
        }
        Err(e) => tracing::warn!(pod, error = %e, "reaping a pod's routes failed"),
    }
}
