//! The gateway seam: each gateway pod's admin API (DESIGN §6), reached through the headless
//! Service ([`crate::builders::Blueprint::admin_url`]).
//!
//! [`GatewayAdmin`] is what the reconciler needs; [`HttpGatewayAdmin`] is the one implementation.

use std::time::Duration;

use async_trait::async_trait;
use chat_protocol::admin::{self, DrainRequest, RebalanceRequest, RebalanceStarted};

use crate::observed::AdminStatus;
use crate::{Error, Result};

/// Longest wait for a pod's admin port. Short: pods are asked one reconcile at a time, and a pod
/// that does not answer quickly is treated as not answering (see [`crate::rollout`]).
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// One gateway's admin API. `admin_url` is the pod's base URL, `http://<pod>.<headless>.<ns>.svc:9090`.
#[async_trait]
pub trait GatewayAdmin: Send + Sync {
    /// `GET /admin/status`: open connections and whether the gateway drains. `token`: the
    /// gateways' `--admin-token`, sent as `Authorization: Bearer`.
    async fn status(&self, admin_url: &str, token: Option<&str>) -> Result<AdminStatus>;

    /// `POST /admin/drain {"deadlineSeconds": n}`: go unready and move the clients away within
    /// `deadline_seconds`. Idempotent: a gateway keeps the earlier of two deadlines.
    async fn drain(
        &self,
        admin_url: &str,
        deadline_seconds: u64,
        token: Option<&str>,
    ) -> Result<()>;

    /// `POST /admin/rebalance {"connections": n, "paceSeconds": s}`: send DRAIN (22) to `n` of
    /// the pod's connections, which move within `pace_seconds` while the pod stays ready.
    /// Returns how many were told (fewer when fewer are there).
    async fn rebalance(
        &self,
        admin_url: &str,
        connections: u64,
        pace_seconds: u64,
        token: Option<&str>,
    ) -> Result<u64>;
}

/// [`GatewayAdmin`] over HTTP.
#[derive(Clone, Debug)]
pub struct HttpGatewayAdmin {
    http: reqwest::Client,
}

impl HttpGatewayAdmin {
    /// A client whose calls give up after [`ADMIN_TIMEOUT`].
    pub fn new() -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(ADMIN_TIMEOUT)
            .connect_timeout(ADMIN_TIMEOUT)
            .build()
            .map_err(|err| gateway_error("", err))?;
        Ok(Self { http })
    }
}

#[async_trait]
impl GatewayAdmin for HttpGatewayAdmin {
    async fn status(&self, admin_url: &str, token: Option<&str>) -> Result<AdminStatus> {
        let url = format!("{admin_url}{}", admin::STATUS_PATH);
        with_token(self.http.get(&url), token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| gateway_error(&url, err))?
            .json::<admin::Status>()
            .await
            .map(AdminStatus::from)
            .map_err(|err| gateway_error(&url, err))
    }

    async fn drain(
        &self,
        admin_url: &str,
        deadline_seconds: u64,
        token: Option<&str>,
    ) -> Result<()> {
        let url = format!("{admin_url}{}", admin::DRAIN_PATH);
        let body = DrainRequest {
            deadline_seconds: Some(deadline_seconds),
        };
        with_token(self.http.post(&url), token)
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| gateway_error(&url, err))?;
        Ok(())
    }

    async fn rebalance(
        &self,
        admin_url: &str,
        connections: u64,
        pace_seconds: u64,
        token: Option<&str>,
    ) -> Result<u64> {
        let url = format!("{admin_url}{}", admin::REBALANCE_PATH);
        let body = RebalanceRequest {
            connections,
            pace_seconds: Some(pace_seconds),
        };
        with_token(self.http.post(&url), token)
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| gateway_error(&url, err))?
            .json::<RebalanceStarted>()
            .await
            .map(|started| started.moving)
            .map_err(|err| gateway_error(&url, err))
    }
}

fn with_token(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

fn gateway_error(url: &str, err: reqwest::Error) -> Error {
    Error::Gateway {
        url: url.to_owned(),
        reason: err.to_string(),
    }
}
