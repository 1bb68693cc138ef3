//! What one gateway process shares between its connections and handlers: its dependencies and
//! nothing else. Behaviour lives in the modules that use them: [`crate::routing::Router`]
//! delivers, [`crate::handlers`] serve requests, [`crate::http`] the ports.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::auth::revoke::Revocations;
use crate::auth::Auth;
use crate::bus::Bus;
use crate::config::ServeConfig;
use crate::drain::Drain;
use crate::files::Files;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::presence::Presence;
use crate::rebalance::Rebalance;
use crate::routes::RouteTable;
use crate::routing::Router;
use crate::session::core::Settings;
use crate::store::Store;
use crate::webhook::Webhook;

/// The process's shared state.
pub struct App {
    /// The settings `serve` started with; handlers read limits and the drain time from it.
    pub config: ServeConfig,
    /// This pod's name.
    pub pod: String,
    /// Verifies the tokens of WebSocket upgrades and HTTP API calls.
    pub auth: Auth,
    /// Not-before times of tokens (kicks, logouts), checked at each upgrade.
    pub revocations: Arc<dyn Revocations>,
    /// `--allowed-origins`, normalized; empty: every origin.
    pub origins: Vec<String>,
    /// Where messages, groups and ack positions are kept (SQLite or PostgreSQL, perhaps behind the
    /// Redis recent-message cache), signing the file URLs of the messages it hands out.
    pub store: Arc<dyn Store>,
    /// Which pod each connected device is on (in-process, or Redis for the cluster).
    pub routes: Arc<dyn RouteTable>,
    /// This pod's inbox and the way to the others' (in-process, or Pulsar for the cluster).
    pub bus: Arc<dyn Bus>,
    /// This process's connections.
    pub hub: Arc<Hub>,
    /// Events to devices on any pod.
    pub router: Router,
    /// This pod's presence watchers, and the changes it announces to the others.
    pub presence: Arc<Presence>,
    /// Whether this pod is going away: once draining it refuses upgrades and reports unready.
    pub drain: Drain,
    /// The connections this pod was asked to move elsewhere while it stays ready.
    pub rebalance: Rebalance,
    /// Every upgraded socket's task (axum's graceful shutdown does not see them).
    pub tracker: TaskTracker,
    /// What every connection runs by.
    pub session: Arc<Settings>,
    /// Uploads: SEND checks the file it carries here, the file endpoints serve them.
    pub files: Arc<Files>,
    /// The offline-push webhook, with `--offline-webhook-url`.
    pub webhook: Option<Arc<Webhook>>,
    /// Each backend's last known state, so its outages are logged when they start and end.
    pub health: crate::health::Tracker,
    /// Connection slots and the per-address and per-user rates.
    pub limits: Limits,
}

impl App {
    /// Assembles the process's state around its backends.
    pub fn new(
        config: ServeConfig,
        auth: Auth,
        revocations: Arc<dyn Revocations>,
        store: Arc<dyn Store>,
        routes: Arc<dyn RouteTable>,
        bus: Arc<dyn Bus>,
        files: Arc<Files>,
    ) -> Self {
        let pod = config.pod();
        let hub = Arc::new(Hub::new());
        let presence = Arc::new(Presence::new(pod.clone(), hub.clone(), routes.clone()));
        let router = Router::new(
            pod.clone(),
            hub.clone(),
            routes.clone(),
            bus.clone(),
            presence.clone(),
        );
        let session = Arc::new(Settings {
            pod: pod.clone(),
            heartbeat: config.heartbeat(),
            timelife: config.timelife(),
            ack_timeout: config.ack_timeout(),
            ack_window: config.ack_window as usize,
            rate_limit: config.rate_limit_per_second,
            rate_burst: config.rate_burst,
            write_timeout: std::time::Duration::from_secs(config.limits.write_timeout_seconds),
        });
        let limits = Limits::new(config.max_connections, &config.limits);
        Self {
            pod,
            auth,
            revocations,
            origins: config.auth.origins().unwrap_or_default(),
            store,
            routes,
            bus,
            hub,
            router,
            presence,
            drain: Drain::default(),
            rebalance: Rebalance::default(),
            tracker: TaskTracker::new(),
            session,
            files,
            config,
            webhook: None,
            health: crate::health::Tracker::default(),
            limits,
        }
    }
}
