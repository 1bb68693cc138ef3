//! The Pulsar seam: provisioning the pods' inbox topics through Pulsar's admin REST API.
//!
//! [`PulsarAdmin`] is what the reconciler needs; [`HttpPulsarAdmin`] is the one implementation,
//! over `reqwest`. Every call is idempotent, so a step that failed half-way is simply planned and
//! run again: an existing tenant, namespace or topic (409) counts as created, a missing topic (404)
//! as deleted.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;

use crate::{Error, Result};

/// Longest one admin call may take: a reconcile must not hang on a broker that does not answer.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a ChatCluster's admin API is and how to reach it: `spec.pulsar.adminUrl`
/// (`http://pulsar:8080`, `https://pulsar:8443`), the token (`adminTokenSecretRef`, else
/// `tokenSecretRef`) and a CA (`caSecretRef`), read from their Secrets at each reconcile.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AdminEndpoint {
    /// The admin REST base URL.
    pub url: String,
    /// Sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// A PEM CA to trust besides the public roots.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for AdminEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminEndpoint")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca", &self.ca_pem.is_some())
            .finish()
    }
}

impl AdminEndpoint {
    /// `url` with no token and the public roots only.
    pub fn plain(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ..Self::default()
        }
    }
}

/// Pulsar's admin REST API, as the operator uses it; each ChatCluster may name its own broker
/// ([`AdminEndpoint`]).
#[async_trait]
pub trait PulsarAdmin: Send + Sync {
    /// Makes sure the tenant and its namespace exist (creating them when missing). Succeeds when
    /// they already exist.
    async fn ensure_namespace(
        &self,
        admin: &AdminEndpoint,
        tenant: &str,
        namespace: &str,
    ) -> Result<()>;

    /// Creates the non-partitioned persistent topic `topic` (`persistent://t/n/name`). Succeeds when
    /// it already exists.
    async fn create_topic(&self, admin: &AdminEndpoint, topic: &str) -> Result<()>;

    /// Deletes `topic` with `force`, so a subscription left by a gone pod does not block it.
    /// Succeeds when it does not exist.
    async fn delete_topic(&self, admin: &AdminEndpoint, topic: &str) -> Result<()>;
}

/// [`PulsarAdmin`] over HTTP.
#[derive(Clone, Debug)]
pub struct HttpPulsarAdmin {
    http: reqwest::Client,
}

impl HttpPulsarAdmin {
    /// A client whose calls give up after [`ADMIN_TIMEOUT`].
    pub fn new() -> Result<Self> {
        Ok(Self {
            http: client(None)?,
        })
    }

    /// A request to `url` on `admin`'s client (its own when it has a CA), with its token.
    fn request(
        &self,
        admin: &AdminEndpoint,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder> {
        let http = match &admin.ca_pem {
            // Reconciles are rare: a client per call costs less than keeping one per CA.
            Some(ca) => &client(Some(ca)).map_err(|err| match err {
                Error::Pulsar { reason, .. } => Error::Pulsar {
                    url: url.to_owned(),
                    reason,
                },
                other => other,
            })?,
            None => &self.http,
        };
        let request = http.request(method, url);
        Ok(match &admin.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    }

    /// Sends `request` and accepts a success status or one of `ok_also`.
    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
        ok_also: StatusCode,
    ) -> Result<()> {
        let response = request.send().await.map_err(|err| pulsar_error(url, err))?;
        let status = response.status();
        if status.is_success() || status == ok_also {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(Error::Pulsar {
            url: url.to_owned(),
            reason: format!("{status}: {}", body.trim()),
        })
    }

    /// The clusters the broker knows, for a new tenant's `allowedClusters`. Empty when the broker
    /// does not say (a new namespace then takes the broker's defaults).
    async fn clusters(&self, admin: &AdminEndpoint) -> Vec<String> {
        let url = format!("{}/admin/v2/clusters", base(&admin.url));
        let Ok(request) = self.request(admin, reqwest::Method::GET, &url) else {
            return Vec::new();
        };
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                response.json().await.unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }
}

#[async_trait]
impl PulsarAdmin for HttpPulsarAdmin {
    async fn ensure_namespace(
        &self,
        admin: &AdminEndpoint,
        tenant: &str,
        namespace: &str,
    ) -> Result<()> {
        use reqwest::Method;
        let base = base(&admin.url);
        let tenants_url = format!("{base}/admin/v2/tenants");
        let tenants: Vec<String> = self
            .request(admin, Method::GET, &tenants_url)?
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| pulsar_error(&tenants_url, err))?
            .json()
            .await
            .map_err(|err| pulsar_error(&tenants_url, err))?;
        if !tenants.iter().any(|t| t == tenant) {
            let url = format!("{tenants_url}/{tenant}");
            let body = serde_json::json!({
                "adminRoles": [],
                "allowedClusters": self.clusters(admin).await,
            });
            let request = self.request(admin, Method::PUT, &url)?.json(&body);
            self.send(&url, request, StatusCode::CONFLICT).await?;
        }
        let url = format!("{base}/admin/v2/namespaces/{tenant}/{namespace}");
        let request = self.request(admin, Method::PUT, &url)?;
        self.send(&url, request, StatusCode::CONFLICT).await
    }

    async fn create_topic(&self, admin: &AdminEndpoint, topic: &str) -> Result<()> {
        let url = topic_url(&admin.url, topic)?;
        let request = self.request(admin, reqwest::Method::PUT, &url)?;
        self.send(&url, request, StatusCode::CONFLICT).await
    }

    async fn delete_topic(&self, admin: &AdminEndpoint, topic: &str) -> Result<()> {
        let url = topic_url(&admin.url, topic)?;
        let request = self
            .request(admin, reqwest::Method::DELETE, &url)?
            .query(&[("force", "true")]);
        self.send(&url, request, StatusCode::NOT_FOUND).await
    }
}

/// An HTTP client that gives up after [`ADMIN_TIMEOUT`] and trusts the public roots and `ca`.
fn client(ca: Option<&[u8]>) -> Result<reqwest::Client> {
    let error = |reason: String| Error::Pulsar {
        url: String::new(),
        reason,
    };
    let mut builder = reqwest::Client::builder().timeout(ADMIN_TIMEOUT);
    if let Some(ca) = ca {
        let certs = reqwest::Certificate::from_pem_bundle(ca)
            .map_err(|err| error(format!("the caSecretRef CA: {err}")))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|err| error(format!("building the HTTP client: {err}")))
}

fn base(admin_url: &str) -> &str {
    admin_url.trim_end_matches('/')
}

/// `persistent://t/n/name` → `{admin}/admin/v2/persistent/t/n/name`.
fn topic_url(admin_url: &str, topic: &str) -> Result<String> {
    let path = topic
        .strip_prefix("persistent://")
        .filter(|path| path.split('/').count() == 3)
        .ok_or_else(|| Error::Pulsar {
            url: admin_url.to_owned(),
            reason: format!("not a persistent://tenant/namespace/name topic: {topic}"),
        })?;
    Ok(format!("{}/admin/v2/persistent/{path}", base(admin_url)))
}

fn pulsar_error(url: &str, err: reqwest::Error) -> Error {
    Error::Pulsar {
        url: url.to_owned(),
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_urls_follow_the_admin_api_paths() {
        assert_eq!(
            topic_url(
                "http://pulsar:8080/",
                "persistent://public/chat/demo-pod-demo-gateway-0"
            )
            .unwrap(),
            "http://pulsar:8080/admin/v2/persistent/public/chat/demo-pod-demo-gateway-0"
        );
        assert!(topic_url("http://pulsar:8080", "non-persistent://public/chat/x").is_err());
        assert!(topic_url("http://pulsar:8080", "persistent://public/x").is_err());
    }
}
