//! A TCP proxy in front of each backend that delays what a chosen pod sends and receives (the
//! latency fault: the kernel here has no `netem`). Pods reach every backend through one of
//! these, on an address of its own, so a pod's route to that address can also be black-holed
//! (the partition fault, [`super::netns::Network::partition`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Pod address → the delay added to each direction of its connections.
pub type Delays = Arc<Mutex<HashMap<IpAddr, Duration>>>;

/// A running proxy: stops on drop.
pub struct Proxy {
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on `listen`, forwards every connection to `upstream`, delaying by `delays`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr, delays: Delays) -> Self {
        let listener = TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| panic!("bind the backend proxy on {listen}: {e}"));
        let stop = CancellationToken::new();
        let stop2 = stop.clone();
        tokio::spawn(async move {
            loop {
                let (down, peer) = tokio::select! {
                    _ = stop2.cancelled() => return,
                    a = listener.accept() => match a {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                };
                let (delays, stop) = (delays.clone(), stop2.clone());
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = (down.set_nodelay(true), up.set_nodelay(true));
                    let (dr, dw) = down.into_split();
                    let (ur, uw) = up.into_split();
                    let ip = peer.ip();
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = pipe(dr, uw, ip, delays.clone()) => {}
                        _ = pipe(ur, dw, ip, delays) => {}
                    }
                });
            }
        });
        Self { stop }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Copies `from` to `to`, each chunk held for the pod's current delay (order kept).
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    pod: IpAddr,
    delays: Delays,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let delay = delays
                        .lock()
                        .unwrap()
                        .get(&pod)
                        .copied()
                        .unwrap_or_default();
                    let at = tokio::time::Instant::now() + delay;
                    if tx.send((at, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::join!(reader, writer);
}
