//! The ConfigMap `<cc>-config`: the gateway's settings as its env vars (DESIGN §2a).

use std::collections::BTreeMap;

use chat_protocol::names::env;
use k8s_openapi::api::core::v1::ConfigMap;

use super::{stamped, Blueprint, IN_CLUSTER_PROXIES};

impl Blueprint<'_> {
    /// `<cc>-config`: the gateway settings as the gateway's env vars (DESIGN §2a). Plain URLs go
    /// here; URLs given as Secret references never do (see [`Self::stateful_set`]).
    pub fn config_map(&self) -> ConfigMap {
        stamped(ConfigMap {
            metadata: self.metadata(self.config_map_name()),
            data: Some(self.settings()),
            ..ConfigMap::default()
        })
    }

    pub(super) fn settings(&self) -> BTreeMap<String, String> {
        let spec = &self.cc.spec;
        let gateway = &spec.gateway;
        let mut data = BTreeMap::from([
            (
                env::HEARTBEAT_SECONDS.to_owned(),
                gateway.heartbeat_seconds.to_string(),
            ),
            (
                env::TIMELIFE_SECONDS.into(),
                gateway.timelife_seconds.to_string(),
            ),
            (env::DRAIN_SECONDS.into(), gateway.drain_seconds.to_string()),
            (
                env::MAX_CONNECTIONS.into(),
                gateway.max_connections_per_pod.to_string(),
            ),
            (
                env::RECALL_SECONDS.into(),
                gateway.recall_seconds.to_string(),
            ),
            (env::KEY_PREFIX.into(), self.key_prefix().to_owned()),
            (env::TRUSTED_PROXIES.into(), IN_CLUSTER_PROXIES.to_owned()),
            (env::PULSAR_URL.into(), spec.pulsar.service_url.clone()),
            (env::PULSAR_ADMIN_URL.into(), spec.pulsar.admin_url.clone()),
            (env::PULSAR_TENANT.into(), spec.pulsar.tenant.clone()),
            (env::PULSAR_NAMESPACE.into(), spec.pulsar.namespace.clone()),
        ]);
        if let Some(url) = &spec.redis.url {
            data.insert(env::REDIS_URL.into(), url.clone());
        }
        if let Some(url) = &spec.database.url {
            data.insert(env::DATABASE_URL.into(), url.clone());
        }
        self.file_settings(&mut data);
        if let Some(origins) = self.allowed_origins() {
            data.insert(env::ALLOWED_ORIGINS.into(), origins);
        }
        if let Some(hook) = &spec.offline_webhook {
            data.insert(env::OFFLINE_WEBHOOK_URL.into(), hook.url.clone());
            data.insert(
                env::OFFLINE_WEBHOOK_RETRY_SECONDS.into(),
                hook.retry_seconds.to_string(),
            );
        }
        data
    }

    /// The file settings: the size limit and the object store (its credentials are Secret
    /// references, in the container's env).
    fn file_settings(&self, data: &mut BTreeMap<String, String>) {
        let files = &self.cc.spec.files;
        data.insert(env::MAX_FILE_BYTES.into(), files.max_file_bytes.to_string());
        if let Some(store) = &files.object_store {
            data.insert(env::OBJECT_STORE_URL.into(), store.url.clone());
            let optional = [
                (env::OBJECT_STORE_ENDPOINT, &store.endpoint),
                (env::OBJECT_STORE_REGION, &store.region),
            ];
            for (name, value) in optional {
                if let Some(value) = value {
                    data.insert(name.into(), value.clone());
                }
            }
        }
    }
}
