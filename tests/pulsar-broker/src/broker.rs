//! The running broker: the Pulsar listener's accept loop, the admin server, the shared state
//! behind one lock, and the [`BrokerHandle`] tests hold (addresses, fault hooks, counters,
//! shutdown).

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::atomic::{AtomicBool, Ordering},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use pulsar::message::Message;
use tokio::{
    net::{TcpListener, ToSocketAddrs},
    sync::mpsc,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    admin, connection,
    error::Result,
    state::{Outbound, State},
    tls::{ServerTls, TlsListener},
    topic::TopicStats,
};

/// Pulsar's default `keepAliveIntervalSeconds`.
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

/// Pause after a failed accept (e.g. out of file descriptors), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long [`BrokerHandle::shutdown`] waits for connections and the admin server to finish.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Settings beyond the two listen addresses.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// How often the broker PINGs each connection; one that sends nothing (no PONG, no other
    /// frame) for an interval after a PING is closed.
    pub keepalive_interval: Duration,
    /// Host that LOOKUP answers point clients at. Default: the bound address, or 127.0.0.1
    /// when bound to an unspecified address (0.0.0.0 or ::).
    pub advertised_host: Option<String>,
    /// Serve both listeners over TLS with this certificate: `pulsar+ssl://` and `https://`.
    pub tls: Option<ServerTls>,
    /// Want this token: on CONNECT (auth method `token`; anything else gets an
    /// `AuthenticationError` and the connection closes) and as `Authorization: Bearer` on every
    /// admin call (401 otherwise).
    pub auth_token: Option<String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            keepalive_interval: DEFAULT_KEEPALIVE,
            advertised_host: None,
            tls: None,
            auth_token: None,
        }
    }
}

/// Starts brokers.
pub struct Broker;

impl Broker {
    /// Binds the Pulsar listener and the admin listener (port 0 picks free ports) and serves
    /// both until the handle is shut down or dropped.
    pub async fn start(
        bind_addr: impl ToSocketAddrs,
        admin_addr: impl ToSocketAddrs,
    ) -> Result<BrokerHandle> {
        Self::start_with(BrokerConfig::default(), bind_addr, admin_addr).await
    }

    /// [`Broker::start`] with explicit settings.
    pub async fn start_with(
        config: BrokerConfig,
        bind_addr: impl ToSocketAddrs,
        admin_addr: impl ToSocketAddrs,
    ) -> Result<BrokerHandle> {
        let listener = TcpListener::bind(bind_addr).await?;
        let admin_listener = TcpListener::bind(admin_addr).await?;
        let service_addr = listener.local_addr()?;
        let admin_addr = admin_listener.local_addr()?;
        let (pulsar, http) = match config.tls {
            Some(_) => ("pulsar+ssl", "https"),
            None => ("pulsar", "http"),
        };
        let service_url = match &config.advertised_host {
            Some(host) => format!("{pulsar}://{host}:{}", service_addr.port()),
            None => format!("{pulsar}://{}", reachable(service_addr)),
        };
        let admin_url = format!("{http}://{}", reachable(admin_addr));

        let shared = Arc::new(Shared {
            refusing: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                state: State::new(service_url.clone()),
                links: HashMap::new(),
            }),
        });
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let session = connection::Settings {
            keepalive: config.keepalive_interval,
            token: config.auth_token.clone(),
        };
        tracker.spawn(accept_loop(
            listener,
            shared.clone(),
            cancel.clone(),
            tracker.clone(),
            session,
            config.tls.clone(),
        ));
        let router = admin::router(shared.clone(), config.auth_token);
        let admin_cancel = cancel.clone().cancelled_owned();
        tracker.spawn(async move {
            let served = match config.tls {
                Some(tls) => {
                    axum::serve(TlsListener::new(admin_listener, tls), router)
                        .with_graceful_shutdown(admin_cancel)
                        .await
                }
                None => {
                    axum::serve(admin_listener, router)
                        .with_graceful_shutdown(admin_cancel)
                        .await
                }
            };
            if let Err(error) = served {
                tracing::error!(%error, "admin server failed");
            }
        });
        tracing::info!(%service_url, %admin_url, "pulsar test broker started");
        Ok(BrokerHandle {
            service_addr,
            admin_addr,
            service_url,
            admin_url,
            shared,
            cancel,
            tracker,
        })
    }
}

/// A running broker. Dropping it stops the broker (without waiting); [`BrokerHandle::shutdown`]
/// waits.
#[derive(Debug)]
pub struct BrokerHandle {
    service_addr: SocketAddr,
    admin_addr: SocketAddr,
    service_url: String,
    admin_url: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl BrokerHandle {
    /// `pulsar://host:port`, for `Pulsar::builder`.
    pub fn service_url(&self) -> &str {
        &self.service_url
    }

    /// `http://host:port`, the base of the `/admin/v2/...` paths.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The bound Pulsar listener address.
    pub fn service_addr(&self) -> SocketAddr {
        self.service_addr
    }

    /// The bound admin listener address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Fault hook: closes every client connection at once, without CLOSE frames (as a broker
    /// crash or a network cut would). Their consumers' unacked messages become redeliverable
    /// before this returns, so a client that reconnects gets them. Returns how many were open.
    pub fn drop_all_connections(&self) -> usize {
        let mut inner = self.shared.lock();
        let links: Vec<(u64, Link)> = inner.links.drain().collect();
        for (id, link) in &links {
            inner.state.close_connection(*id);
            link.cancel.cancel();
        }
        tracing::info!(connections = links.len(), "dropped all connections");
        links.len()
    }

    /// Fault hook: while refusing, every new connection is closed as soon as it is accepted (a
    /// broker that is down: clients cannot connect). With [`BrokerHandle::drop_all_connections`]
    /// first, this is a broker restart that keeps its topics, as Pulsar's storage does.
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
        tracing::info!(refusing, "broker refusing connections");
    }

    /// Fault hook: while paused, nothing is pushed to consumers (publishing, receipts and acks
    /// go on); resuming pushes what accumulated.
    pub fn pause_delivery(&self, paused: bool) {
        self.shared.run(|state| ((), state.set_paused(paused)));
    }

    /// Counters of a topic (any name form: `t`, `tenant/ns/t`, `persistent://tenant/ns/t`).
    pub fn topic_stats(&self, topic: &str) -> Option<TopicStats> {
        self.shared.with_state(|state| state.topic_stats(topic))
    }

    /// Full names of every topic.
    pub fn topics(&self) -> Vec<String> {
        self.shared.with_state(|state| state.topic_names())
    }

    /// Number of client connections past their handshake.
    pub fn connection_count(&self) -> usize {
        self.shared.with_state(|state| state.connections().len())
    }

    /// Stops accepting, closes every connection and the admin server, and waits for them (at
    /// most a few seconds).
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_DEADLINE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("broker tasks still running after the shutdown deadline");
        }
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// What connections and the admin API share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Set by [`BrokerHandle::set_refusing`]: new connections are closed at once.
    refusing: AtomicBool,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Open connections: where to write their frames, how to cut them.
    links: HashMap<u64, Link>,
}

#[derive(Debug)]
struct Link {
    outbound: mpsc::UnboundedSender<Message>,
    cancel: CancellationToken,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one state change and routes the frames it causes while still holding the lock, so
    /// frames leave in the order the state produced them.
    pub(crate) fn run<R>(&self, change: impl FnOnce(&mut State) -> (R, Vec<Outbound>)) -> R {
        let mut inner = self.lock();
        let (result, out) = change(&mut inner.state);
        for (connection, frame) in out {
            if let Some(link) = inner.links.get(&connection) {
                // a closed receiver means the connection is ending; its cleanup follows
                let _ = link.outbound.send(frame);
            }
        }
        result
    }

    /// Runs a state change that sends no frames (admin calls, reads).
    pub(crate) fn with_state<R>(&self, change: impl FnOnce(&mut State) -> R) -> R {
        change(&mut self.lock().state)
    }

    /// Registers a connection after its handshake.
    pub(crate) fn open(
        &self,
        outbound: mpsc::UnboundedSender<Message>,
        cancel: CancellationToken,
    ) -> u64 {
        let mut inner = self.lock();
        let id = inner.state.open_connection();
        inner.links.insert(id, Link { outbound, cancel });
        id
    }

    /// Hands one frame from a connection to the state.
    pub(crate) fn handle(&self, connection: u64, message: Message) {
        self.run(|state| ((), state.handle(connection, message)));
    }

    /// Forgets a connection that ended.
    pub(crate) fn close(&self, connection: u64) {
        self.run(|state| ((), state.close_connection(connection)));
        self.lock().links.remove(&connection);
    }
}

/// The address clients can reach: an unspecified bind address becomes loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    settings: connection::Settings,
    tls: Option<ServerTls>,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, _)) if shared.refusing.load(Ordering::SeqCst) => drop(socket),
            Ok((socket, peer)) => {
                // latency over throughput: frames are small and tests wait on them
                let _ = socket.set_nodelay(true);
                let (shared, cancel, settings) =
                    (shared.clone(), cancel.child_token(), settings.clone());
                match tls.clone() {
                    // the handshake runs in the connection's task, not in this loop
                    Some(tls) => tracker.spawn(async move {
                        match tls.accept(socket).await {
                            Ok(stream) => {
                                connection::serve(stream, peer, shared, cancel, settings).await
                            }
                            Err(error) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                        }
                    }),
                    None => {
                        tracker.spawn(connection::serve(socket, peer, shared, cancel, settings))
                    }
                };
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
