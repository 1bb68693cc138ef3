//! The gateways' admin API for the operator, answered from the pods the fake API server (in
//! another process) holds: a pod answers once it has an IP, with [`CONNECTIONS`] clients until it
//! is told to drain. The in-process tests' `FakeGateway` reads the server's memory, which this
//! process does not share.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use chat_operator::gateway::GatewayAdmin;
use chat_operator::observed::AdminStatus;
use chat_operator::{Error, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

/// Clients each gateway pod holds until drained.
pub const CONNECTIONS: i64 = 10;

/// The admin API of every gateway pod.
pub struct PodGateways {
    client: Client,
    /// The uids of the pod instances told to drain.
    drained: Mutex<HashSet<String>>,
}

impl PodGateways {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            drained: Mutex::default(),
        }
    }

    /// The uid of the pod behind `admin_url` (`http://<pod>.<headless>.<ns>.svc:9090`), if it
    /// exists and has an IP.
    async fn pod(&self, admin_url: &str) -> Result<String> {
        let refused = || Error::Gateway {
            url: admin_url.to_owned(),
            reason: "connection refused".into(),
        };
        let (pod, namespace) =
            crate::support::backends::pod_of_admin_url(admin_url).ok_or_else(refused)?;
        let pod = Api::<Pod>::namespaced(self.client.clone(), namespace)
            .get_opt(pod)
            .await
            .map_err(|_| refused())?
            .ok_or_else(refused)?;
        let has_ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_ref())
            .is_some();
        match pod.metadata.uid {
            Some(uid) if has_ip => Ok(uid),
            _ => Err(refused()),
        }
    }

    fn drained(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.drained.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl GatewayAdmin for PodGateways {
    async fn status(&self, admin_url: &str, _token: Option<&str>) -> Result<AdminStatus> {
        let uid = self.pod(admin_url).await?;
        let draining = self.drained().contains(&uid);
        Ok(AdminStatus {
            connections: if draining { 0 } else { CONNECTIONS },
            draining,
            moving: 0,
        })
    }

    async fn drain(&self, admin_url: &str, _deadline: u64, _token: Option<&str>) -> Result<()> {
        let uid = self.pod(admin_url).await?;
        self.drained().insert(uid);
        Ok(())
    }

    async fn rebalance(
        &self,
        admin_url: &str,
        connections: u64,
        _pace: u64,
        _token: Option<&str>,
    ) -> Result<u64> {
        self.pod(admin_url).await?;
        // Every pod holds CONNECTIONS: the operator never asks; answered as a gateway would.
        Ok(connections.min(CONNECTIONS.unsigned_abs()))
    }
}
