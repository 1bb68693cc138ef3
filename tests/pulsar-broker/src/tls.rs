//! TLS for the broker's two listeners (`pulsar+ssl://` and an `https://` admin API), and the
//! same for any test HTTP server: a server certificate and key in PEM, rustls with ring.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    },
    server::TlsStream,
    TlsAcceptor,
};

use crate::error::{Error, Result};

/// How long a client may take to finish the TLS handshake; a stalled one is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server certificate chain and its key, ready to accept TLS connections.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// From a PEM certificate chain (server first) and a PEM private key.
    pub fn from_pem(cert_chain: &str, key: &str) -> Result<Self> {
        let bad = |what: &str, e: &dyn std::fmt::Display| Error::Tls(format!("{what}: {e}"));
        let certs = CertificateDer::pem_slice_iter(cert_chain.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad("certificate chain", &e))?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| bad("key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("protocol versions", &e))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| bad("certificate", &e))?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Completes the server side of the handshake on `socket` (bounded in time).
    pub async fn accept(&self, socket: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(socket))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
    }
}

/// A TCP listener whose connections are TLS: for `axum::serve`, so an axum router answers
/// `https://`. A failed handshake is logged and the next connection accepted.
pub struct TlsListener {
    listener: TcpListener,
    tls: ServerTls,
}

impl TlsListener {
    /// Serves TLS with `tls` on `listener`.
    pub fn new(listener: TcpListener, tls: ServerTls) -> Self {
        Self { listener, tls }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // One handshake at a time: a test server, not a product (a stalled client holds
            // the next one back for at most the handshake timeout).
            match self.tls.accept(socket).await {
                Ok(stream) => return (stream, peer),
                Err(error) => tracing::debug!(%error, %peer, "TLS handshake failed"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}
