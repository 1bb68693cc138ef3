//! The gateway container: its env (the operator's, the ConfigMap's, the user's extras), ports,
//! probes, mounts and security context.

use chat_protocol::names::env;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, Probe, SecretKeySelector, SecurityContext,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{backend_tls, placement, Blueprint, ADMIN_PORT, DATA_DIR, HTTP_PORT};
use crate::crd::SecretKeyRef;

impl Blueprint<'_> {
    /// Names in `spec.pod.env` dropped because the operator sets them (see
    /// [`crate::crd::PodSpecOverrides::env`]); the reconciler logs them.
    pub fn ignored_env(&self) -> Vec<String> {
        self.extra_env().1
    }

    pub(super) fn extra_env(&self) -> (Vec<EnvVar>, Vec<String>) {
        placement::extra_env(
            &self.cc.spec.pod.env,
            &self.operator_env(),
            self.settings().into_keys(),
        )
    }

    pub(super) fn container(&self) -> Container {
        let spec = &self.cc.spec;
        let mut env_vars = self.operator_env();
        env_vars.extend(self.extra_env().0);
        let mut volume_mounts = vec![
            VolumeMount {
                name: "data".into(),
                mount_path: DATA_DIR.into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            },
        ];
        volume_mounts.extend(backend_tls::mounts(spec));
        Container {
            name: "gateway".into(),
            image: Some(spec.image.clone()),
            command: Some(vec!["chat-gateway".into()]),
            args: Some(vec!["serve".into()]),
            ports: Some(vec![
                container_port("http", HTTP_PORT),
                container_port("admin", ADMIN_PORT),
            ]),
            env: Some(env_vars),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: self.config_map_name(),
                    optional: None,
                }),
                ..EnvFromSource::default()
            }]),
            resources: spec.gateway.resources.clone(),
            // Unready while draining or while a backend is down: new connections go elsewhere.
            readiness_probe: Some(probe("/readyz", 5, 2)),
            liveness_probe: Some(probe("/healthz", 10, 3)),
            // Up to two minutes to connect to the backends before liveness counts.
            startup_probe: Some(probe("/healthz", 2, 60)),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    add: None,
                }),
                ..SecurityContext::default()
            }),
            volume_mounts: Some(volume_mounts),
            ..Container::default()
        }
    }

    /// The env vars the operator sets on the gateway container (besides the ConfigMap's).
    pub(super) fn operator_env(&self) -> Vec<EnvVar> {
        let spec = &self.cc.spec;
        let mut env_vars = vec![
            plain_env(env::LISTEN, &format!("0.0.0.0:{HTTP_PORT}")),
            plain_env(env::ADMIN_LISTEN, &format!("0.0.0.0:{ADMIN_PORT}")),
            plain_env(env::DATA_DIR, DATA_DIR),
            EnvVar {
                name: env::POD_NAME.into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.name".into(),
                        api_version: None,
                    }),
                    ..EnvVarSource::default()
                }),
                value: None,
            },
            secret_env(env::JWT_SECRET, &spec.auth.jwt_secret_ref),
            // Required: the admin port listens on every address.
            secret_env(env::ADMIN_TOKEN, &self.admin_token_ref()),
        ];
        if let Some(secret) = &spec.database.url_secret_ref {
            env_vars.push(secret_env(env::DATABASE_URL, secret));
        }
        if let Some(secret) = &spec.redis.url_secret_ref {
            env_vars.push(secret_env(env::REDIS_URL, secret));
        }
        if let Some(store) = &spec.files.object_store {
            let keys = [
                (
                    env::OBJECT_STORE_ACCESS_KEY_ID,
                    &store.access_key_id_secret_ref,
                ),
                (
                    env::OBJECT_STORE_SECRET_ACCESS_KEY,
                    &store.secret_access_key_secret_ref,
                ),
            ];
            for (name, secret) in keys {
                if let Some(secret) = secret {
                    env_vars.push(secret_env(name, secret));
                }
            }
        }
        if let Some(hook) = &spec.offline_webhook {
            env_vars.push(secret_env(env::OFFLINE_WEBHOOK_SECRET, &hook.secret_ref));
        }
        env_vars.extend(backend_tls::env_vars(spec));
        env_vars
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

pub(super) fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// An env var read from a Secret key at pod start: the operator never reads or copies secrets.
pub(super) fn secret_env(name: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("admin".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}
