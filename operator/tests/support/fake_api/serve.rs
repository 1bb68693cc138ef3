//! The fake API server over HTTP, for clients that are not in the test process: kubectl, or
//! anything else given a kubeconfig naming `http://127.0.0.1:PORT`. The same [`Inner::handle`]
//! as the in-process `kube::Client` of [`FakeApi::client`], behind plain HTTP/1.1 (no TLS, no
//! authentication: every request is allowed).

use axum::extract::Request;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::FakeApi;

impl FakeApi {
    /// Serves HTTP on `listener` until `shutdown` is cancelled.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let inner = self.inner.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let inner = inner.clone();
            async move {
                let response = inner.handle(request).await;
                response.map(axum::body::Body::new)
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}
