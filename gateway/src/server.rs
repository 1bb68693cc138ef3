//! Assembles a gateway: picks the backends, serves the public and admin ports, consumes this
//! pod's inbox, and shuts down through a bounded drain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::auth::revoke::{Revocations, SqlRevocations};
use crate::auth::Auth;
use crate::bus::pulsar::{PulsarBus, Topics};
use crate::bus::{memory::MemoryBus, Bus};
use crate::config::ServeConfig;
use crate::error::{Error, Result};
use crate::files::{Files, SigningStore};
use crate::routes::{memory::MemoryRoutes, redis::RedisRoutes, RouteTable};
use crate::routing::pending::{PendingFanouts, SqlPending};
use crate::startup::SharedListener;
use crate::store::{postgres::PgStore, recent::RecentCache, sqlite::SqliteStore, Store};
use crate::webhook::queue::{Queue, SqlQueue};
use crate::webhook::Webhook;

mod announce;

use announce::{announce, reap};

/// Listen backlog: tokio's default (1024) overflows in connect bursts. The kernel caps it at
/// `net.core.somaxconn` (docs/operations.md: reconnect storms), so ask for the most it allows.
const LISTEN_BACKLOG: u32 = 65_535;
/// Extra time after the drain deadline for sessions to write their close frames.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The three backends, chosen at start-up.
#[derive(Clone)]
pub struct Backends {
    /// Messages, groups and ack positions: SQLite, or PostgreSQL with `--database-url`, behind the
    /// Redis recent-message cache with `--redis-url`.
    pub store: Arc<dyn Store>,
    /// Where each device is connected: in-process, or Redis with `--redis-url`.
    pub routes: Arc<dyn RouteTable>,
    /// The pods' inboxes: in-process, or Pulsar with `--pulsar-url`.
    pub bus: Arc<dyn Bus>,
}

impl Backends {
    /// Backends from the config: embedded (SQLite, in-process routes and bus) unless URLs are set.
    pub async fn from_config(config: &ServeConfig) -> Result<Self> {
        // Each backend is chosen on its own: a URL selects the cluster implementation.
        let interval = config
            .store
            .store_commit_interval_ms
            .map(Duration::from_millis);
        let store: Arc<dyn Store> = match &config.store.database_url {
            Some(url) => Arc::new(
                PgStore::connect_with(
                    url,
                    interval.unwrap_or(crate::store::postgres::DEFAULT_COMMIT_INTERVAL),
                )
                .await?,
            ),
            None => Arc::new(
                SqliteStore::open_with(
                    &config.store.data_dir,
                    interval.unwrap_or(crate::store::sqlite::DEFAULT_COMMIT_INTERVAL),
                )
                .await?,
            ),
        };
        Self::with_store(config, store).await
    }

    /// The route table and bus the config names, around `store`, which is already open
    /// (`--database-url` is not looked at): pods in one process that share one store (tests)
    /// start this way. With `--redis-url` the recent-message cache goes in front of `store`.
    pub async fn with_store(config: &ServeConfig, mut store: Arc<dyn Store>) -> Result<Self> {
        // Redis also holds the recent-message cache in front of the store's reads.
        let tls = &config.backend_tls;
        if let Some(url) = &config.redis_url {
            let client = tls.redis_client(url)?;
            store = Arc::new(RecentCache::connect_client(store, client, &config.key_prefix).await?);
        }
        let routes: Arc<dyn RouteTable> = match &config.redis_url {
            Some(url) => Arc::new(
                RedisRoutes::connect_client(tls.redis_client(url)?, &config.key_prefix).await?,
            ),
            None => Arc::new(MemoryRoutes::new()),
        };
        let bus: Arc<dyn Bus> = match &config.pulsar_url {
            Some(url) => {
                let topics = Topics {
                    tenant: config.pulsar_tenant.clone(),
                    namespace: config.pulsar_namespace.clone(),
                    key_prefix: config.key_prefix.clone(),
                };
                let admin = config.pulsar_admin_url.as_deref();
                Arc::new(PulsarBus::connect_with(url, admin, topics, tls.pulsar()?).await?)
            }
            None => Arc::new(MemoryBus::new()),
        };
        Ok(Self { store, routes, bus })
    }

    /// In-process routes and bus around `store`. Several gateways given clones of one `Backends`
    /// form a cluster inside one process.
    pub fn in_process(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            routes: Arc::new(MemoryRoutes::new()),
            bus: Arc::new(MemoryBus::new()),
        }
    }
}

/// Binds a listener with a large accept backlog.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Runs the gateway until `shutdown` fires, then drains (configured drain time) and returns.
pub async fn run(
    config: ServeConfig,
    backends: Backends,
    public: TcpListener,
    admin: SharedListener,
    shutdown: CancellationToken,
) -> Result<()> {
    let secret = crate::auth::resolve_secret(&config.store)?;
    let auth = Auth::from_config(&config.store, &config.auth).await?;
    let revocations = revocations(&config).await?;
    let files = Arc::new(Files::from_config(&config, &secret).await?);
    let store = Arc::new(SigningStore::new(backends.store, files.clone()));
    let webhook = webhook(&config).await?;
    let mut app = App::new(
        config,
        auth,
        revocations,
        store,
        backends.routes,
        backends.bus,
        files.clone(),
    );
    app.webhook = webhook.clone();
    app.router
        .record_failed_fanouts(pending_fanouts(&app.config).await?);
    let app = Arc::new(app);
    let pod = app.pod.clone();
    crate::metrics::handle();
    let stop_serving = CancellationToken::new();
    let dispatcher = webhook.map(|w| w.spawn(stop_serving.clone()));

    let consumer = consume_inbox(app.clone()).await?;
    // Routes this pod held before a restart (same name, no clean exit) go first: their users
    // are offline until they connect again.
    reap(&app, &pod, None).await;
    let forwarder = tokio::spawn(crate::presence::forward(
        app.presence.clone(),
        app.bus.clone(),
    ));
    let heartbeat = tokio::spawn(announce(app.clone(), stop_serving.clone()));
    let retries = {
        let (app, stop) = (app.clone(), stop_serving.clone());
        tokio::spawn(async move { app.router.run_retries(stop).await })
    };
    // Failed fan-outs recorded, leased and swept (this pod's and any dead pod's).
    let pending = {
        let (app, stop) = (app.clone(), stop_serving.clone());
        tokio::spawn(async move { app.router.run_pending(stop).await })
    };
    let sweeper = tokio::spawn(files.run_sweeper(stop_serving.clone()));
    let retention = app.config.retention_days.map(|days| {
        let (store, files) = (app.store.clone(), app.files.clone());
        tokio::spawn(crate::lifecycle::run_retention(
            store,
            files,
            days,
            stop_serving.clone(),
        ))
    });

    tracing::info!(pod, public = %public.local_addr().map_err(io)?, admin = %admin.local_addr().map_err(io)?, "chat-gateway serving");
    let public_server = crate::http::serve_public(
        public,
        crate::http::public_router(app.clone()),
        Duration::from_secs(app.config.limits.header_timeout_seconds),
        stop_serving.clone(),
    );
    let admin_server = axum::serve(admin, crate::http::admin_router(app.clone()))
        .with_graceful_shutdown(stop_serving.clone().cancelled_owned());
    let servers = tokio::spawn(async move {
        let (_, admin) = tokio::join!(public_server, admin_server);
        admin
    });

    shutdown.cancelled().await;
    drain(&app).await;
    // Fan-outs still waiting for a backend get a last chance before the process (and its
    // in-memory queue) goes.
    let flush_until = tokio::time::Instant::now() + CLOSE_GRACE;
    while app.router.retries_waiting() > 0 && tokio::time::Instant::now() < flush_until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if app.router.retries_waiting() > 0 {
        tracing::warn!(
            waiting = app.router.retries_waiting(),
            "stopping with fan-outs still waiting for a backend: another pod finishes them"
        );
    }
    stop_serving.cancel();
    let _ = tokio::time::timeout(CLOSE_GRACE, pending).await;
    // What still waits is recorded, and its leases released: another pod's sweeper pushes it
    // within a second or so instead of after the lease.
    app.router.hand_over_pending().await;
    heartbeat.abort();
    retries.abort();
    sweeper.abort();
    if let Some(retention) = retention {
        retention.abort();
    }
    forwarder.abort();
    consumer.abort();
    if let Some(dispatcher) = dispatcher {
        // Its batch in flight finishes (each POST has its timeout) and its leases are released.
        let _ = tokio::time::timeout(CLOSE_GRACE + app.config.webhook_timeout(), dispatcher).await;
    }
    if let Ok(Ok(Err(e))) = tokio::time::timeout(CLOSE_GRACE, servers).await {
        return Err(Error::internal("server", e));
    }
    tracing::info!("chat-gateway stopped");
    Ok(())
}

/// The token revocations, on the store's database (migrations ran when the store opened).
async fn revocations(config: &ServeConfig) -> Result<Arc<dyn Revocations>> {
    Ok(match &config.store.database_url {
        Some(url) => Arc::new(SqlRevocations(
            crate::store::postgres::side_pool(url).await?,
        )),
        None => Arc::new(SqlRevocations(
            crate::store::sqlite::side_pool(&config.store.data_dir).await?,
        )),
    })
}

/// The durable record of failed fan-outs, on the store's database (migrations ran when the
/// store opened).
async fn pending_fanouts(config: &ServeConfig) -> Result<Arc<dyn PendingFanouts>> {
    Ok(match &config.store.database_url {
        Some(url) => Arc::new(SqlPending::new(
            crate::store::postgres::side_pool(url).await?,
        )),
        None => Arc::new(SqlPending::new(
            crate::store::sqlite::side_pool(&config.store.data_dir).await?,
        )),
    })
}

/// Refuses settings that would leave a door open: an admin port reachable from other hosts
/// without `--admin-token`, an `--allowed-origins` entry that is not an origin.
pub fn check_config(config: &ServeConfig) -> Result<()> {
    config.auth.origins()?;
    if !config.admin_listen.ip().is_loopback() && config.auth.admin_token().is_none() {
        return Err(Error::BadRequest(format!(
            "--admin-listen {} is not a loopback address: set --admin-token (CHAT_ADMIN_TOKEN) so \
             /admin/* is not open to everyone who can reach the port",
            config.admin_listen
        )));
    }
    Ok(())
}

/// The offline-push webhook, when `--offline-webhook-url` is set: its pending deliveries are kept
/// in the store's database (migrations ran when the store opened).
async fn webhook(config: &ServeConfig) -> Result<Option<Arc<Webhook>>> {
    if config.webhook.offline_webhook_url.is_none() {
        return Ok(None);
    }
    let queue: Arc<dyn Queue> = match &config.store.database_url {
        Some(url) => Arc::new(SqlQueue::new(crate::store::postgres::side_pool(url).await?)),
        None => Arc::new(SqlQueue::new(
            crate::store::sqlite::side_pool(&config.store.data_dir).await?,
        )),
    };
    Ok(Webhook::from_args(&config.webhook, &config.pod(), queue)?.map(Arc::new))
}

/// Consumes this pod's inbox on the bus: each event is delivered to devices here (or re-routed).
async fn consume_inbox(app: Arc<App>) -> Result<tokio::task::JoinHandle<()>> {
    let mut inbox = app.bus.subscribe(&app.pod).await?;
    Ok(tokio::spawn(async move {
        while let Some(event) = inbox.recv().await {
            app.router.on_bus_event(event).await;
        }
    }))
}

/// The drain of a shutdown: tell every connection, wait for clients to move (or the deadline),
/// then for sessions to flush and close.
async fn drain(app: &App) {
    let window = Duration::from_secs(app.config.drain_seconds);
    let (deadline, _) = app.drain.start(&app.hub, window);
    while !app.hub.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.tracker.close();
    if tokio::time::timeout_at(deadline + CLOSE_GRACE, app.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = app.hub.len(),
            "sessions still open after the drain grace; closing anyway"
        );
    }
}

/// A gateway running in this process (tests, embedding).
pub struct Running {
    /// The public port's address as bound (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    /// The admin port's address as bound.
    pub admin_addr: SocketAddr,
    /// Cancel to drain and stop, as SIGTERM does for the binary.
    pub shutdown: CancellationToken,
    /// The server task: it ends with the run's result once the drain finished.
    pub handle: tokio::task::JoinHandle<Result<()>>,
}

impl Running {
    /// Starts `config` on its `listen`/`admin_listen` addresses (use port 0 in tests).
    pub async fn start(config: ServeConfig, backends: Backends) -> Result<Self> {
        check_config(&config)?;
        let public = bind(config.listen)
            .map_err(|e| Error::internal(format!("binding {}", config.listen), e))?;
        let admin = bind(config.admin_listen)
            .map_err(|e| Error::internal(format!("binding {}", config.admin_listen), e))?;
        let (addr, admin_addr) = (
            public.local_addr().map_err(io)?,
            admin.local_addr().map_err(io)?,
        );
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run(
            config,
            backends,
            public,
            admin.into(),
            shutdown.clone(),
        ));
        Ok(Self {
            addr,
            admin_addr,
            shutdown,
            handle,
        })
    }

    /// Drains and stops; returns the run's result.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.handle
            .await
            .map_err(|e| Error::internal("server task", e))?
    }
}

fn io(e: std::io::Error) -> Error {
    Error::internal("socket address", e)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
