//! A `ChatCluster` spec turned into the Kubernetes objects that run it: ConfigMap, headless and
//! client Services, StatefulSet, PodDisruptionBudget and (optionally) Ingress — plus the names the
//! rest of the operator derives from it (pods, Pulsar topics, admin URLs).
//!
//! Everything here is a pure function of the resource: the reconciler server-side-applies what
//! [`Blueprint`] returns. Each object carries [`SPEC_HASH_ANNOTATION`], a hash of the object as
//! built, so the reconciler can skip the apply when the live object already carries the same hash
//! ([`needs_apply`]) and an unchanged cluster costs no writes.

use std::collections::{BTreeMap, BTreeSet};

use chat_protocol::names::{env, Topics};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector, SecurityContext, Service,
    ServicePort, ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, NetworkPolicy,
    ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::crd::{ChatCluster, SecretKeyRef};
use crate::observed::ordinal_of;
use crate::{Error, Result};

/// Public port: WebSocket upgrades and the HTTP API.
pub const HTTP_PORT: i32 = 8080;
/// Admin port: health, readiness, metrics, `/admin/status`, `/admin/drain`. Never on the ingress.
pub const ADMIN_PORT: i32 = 9090;
/// Seconds added to `drainSeconds` for `terminationGracePeriodSeconds`: after its drain deadline a
/// gateway still flushes queued frames, closes with 1012 and shuts its stores down.
pub const TERMINATION_MARGIN_SECONDS: i32 = 15;
/// Seconds added to `timelifeSeconds` for the ingress proxy timeouts, so the proxy never cuts a
/// session the gateway still considers alive.
pub const INGRESS_TIMEOUT_MARGIN_SECONDS: i32 = 60;
/// Non-root user and group the gateway runs as (the distroless `nonroot` id).
pub const GATEWAY_UID: i64 = 65532;

/// Annotation on every built object: hash of the object as built (see [`needs_apply`]).
pub const SPEC_HASH_ANNOTATION: &str = "chatcluster.dev/spec-hash";
/// Pod-template annotation: hash of the Secret data the pods read ([`secret_hash`]), so rotating a
/// referenced Secret rolls the pods through the drain. Set with [`Blueprint::with_secrets_hash`].
pub const SECRETS_HASH_ANNOTATION: &str = "chatcluster.dev/secrets-hash";
/// Pod-template annotation: hash of the ConfigMap's data. The pods read their settings from the
/// ConfigMap through `envFrom`, which a template diff cannot see; hashing the data into the
/// template makes a settings change a new StatefulSet revision, hence a drained rollout.
pub const CONFIG_HASH_ANNOTATION: &str = "chatcluster.dev/config-hash";

/// `app.kubernetes.io/name` of every object.
pub const APP_NAME: &str = "chat-gateway";
/// `app.kubernetes.io/managed-by` of every object.
pub const MANAGER: &str = "chat-operator";

/// Mount point of the gateway's (unused in cluster mode, but required) data directory, an
/// `emptyDir` so the root filesystem can stay read-only.
const DATA_DIR: &str = "/data";
/// `CHAT_TRUSTED_PROXIES` of the pods: the private ranges pods and ingress controllers have.
/// Clients reach the gateways through the ingress, so the peer of every upgrade is an ingress
/// pod; without this all clients behind one ingress pod would share one per-address connect
/// rate. The gateway keys on the right-most `X-Forwarded-For` hop outside these ranges.
pub const IN_CLUSTER_PROXIES: &str =
    "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7";

/// Whether `desired` must be applied: the live object is missing or carries another
/// [`SPEC_HASH_ANNOTATION`]. Edits made by hand to a live object are therefore only undone when the
/// ChatCluster (or the operator) changes; that is the price of sending no writes in steady state.
pub fn needs_apply<K: Resource>(live: Option<&K>, desired: &K) -> bool {
    let hash = |k: &K| {
        k.meta()
            .annotations
            .as_ref()?
            .get(SPEC_HASH_ANNOTATION)
            .cloned()
    };
    live.is_none_or(|live| {
        let live = hash(live);
        live.is_none() || live != hash(desired)
    })
}

/// The objects of one ChatCluster and the names derived from it. Built once per reconcile with
/// [`Blueprint::new`], which checks the metadata the objects need.
#[derive(Clone, Debug)]
pub struct Blueprint<'a> {
    cc: &'a ChatCluster,
    name: String,
    namespace: String,
    owner: OwnerReference,
    secrets_hash: Option<String>,
}

/// Everything [`Blueprint::children`] builds, in the order to apply it (settings before the pods
/// that read them, Services before the StatefulSet that names one).
#[derive(Clone, Debug, PartialEq)]
pub struct Children {
    /// `<cc>-config`: the gateway settings.
    pub config_map: ConfigMap,
    /// `<cc>-gateway-headless`: per-pod DNS for the admin calls.
    pub headless_service: Service,
    /// `<cc>-gateway`: the client-facing Service.
    pub service: Service,
    /// `<cc>-gateway`: the gateway pods.
    pub stateful_set: StatefulSet,
    /// `<cc>-gateway`: at most one pod voluntarily disrupted at a time.
    pub pod_disruption_budget: PodDisruptionBudget,
    /// `<cc>-gateway`, only when `spec.ingress` is set. When it is `None` and one exists, the
    /// reconciler deletes it.
    pub ingress: Option<Ingress>,
    /// `<cc>-gateway`, only when `spec.networkPolicy.enabled`; deleted like the Ingress.
    pub network_policy: Option<NetworkPolicy>,
    /// `<cc>-gateway` (Gateway API `HTTPRoute`), only when `spec.httpRoute` is set.
    pub http_route: Option<DynamicObject>,
}

impl<'a> Blueprint<'a> {
    /// Checks that `cc` has a name, a namespace and a uid (every object read from the apiserver
    /// has them; the uid goes into the owner references).
    pub fn new(cc: &'a ChatCluster) -> Result<Self> {
        let name = cc
            .metadata
            .name
            .clone()
            .ok_or(Error::MissingMetadata("name"))?;
        let namespace = cc
            .metadata
            .namespace
            .clone()
            .ok_or(Error::MissingMetadata("namespace"))?;
        let owner = cc
            .controller_owner_ref(&())
            .ok_or(Error::MissingMetadata("uid"))?;
        Ok(Self {
            cc,
            name,
            namespace,
            owner,
            secrets_hash: None,
        })
    }

    /// The blueprint with `hash` ([`secret_hash::digest`] of [`Self::secret_uses`]) on the pod
    /// template. The reconciler always sets it; without it the template has no such annotation.
    #[must_use]
    pub fn with_secrets_hash(mut self, hash: String) -> Self {
        self.secrets_hash = Some(hash);
        self
    }

    /// The Secret data the pods read, for [`Self::with_secrets_hash`].
    pub fn secret_uses(&self) -> BTreeSet<secret_hash::SecretUse> {
        secret_hash::uses(&self.pod_spec())
    }

    /// The ChatCluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ChatCluster's namespace, which holds all its objects.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `<cc>-gateway`: the StatefulSet, the client Service, the PDB and the Ingress.
    pub fn stateful_set_name(&self) -> String {
        format!("{}-gateway", self.name)
    }

    /// `<cc>-gateway-headless`.
    pub fn headless_service_name(&self) -> String {
        format!("{}-gateway-headless", self.name)
    }

    /// `<cc>-config`.
    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }

    /// `<cc>-gateway-<ordinal>`.
    pub fn pod_name(&self, ordinal: i32) -> String {
        format!("{}-gateway-{ordinal}", self.name)
    }

    /// Prefix of every Redis key of this cluster: `spec.redis.keyPrefix`, else the ChatCluster's
    /// name.
    pub fn key_prefix(&self) -> &str {
        self.cc
            .spec
            .redis
            .key_prefix
            .as_deref()
            .unwrap_or(&self.name)
    }

    /// The inbox topic of the pod with this ordinal:
    /// `persistent://{tenant}/{namespace}/{keyPrefix}-pod-{pod}` (DESIGN §5).
    pub fn topic(&self, ordinal: i32) -> String {
        self.pulsar_topics().pod_topic(&self.pod_name(ordinal))
    }

    /// The inbox topics of ordinals `0..replicas`.
    pub fn topics(&self, replicas: i32) -> Vec<String> {
        (0..replicas.max(0)).map(|n| self.topic(n)).collect()
    }

    /// The ordinal whose inbox `topic` is, if it is one of this cluster's under the current spec.
    pub fn topic_ordinal(&self, topic: &str) -> Option<i32> {
        ordinal_of(
            &self.stateful_set_name(),
            self.pulsar_topics().pod_of(topic)?,
        )
    }

    /// The pods' inbox topics under the current spec, named as the gateway names them.
    fn pulsar_topics(&self) -> Topics {
        let pulsar = &self.cc.spec.pulsar;
        Topics {
            tenant: pulsar.tenant.clone(),
            namespace: pulsar.namespace.clone(),
            key_prefix: self.key_prefix().to_owned(),
        }
    }

    /// Base URL of a pod's admin port through the headless Service, e.g.
    /// `http://demo-gateway-2.demo-gateway-headless.chat.svc:9090`. The headless Service publishes
    /// unready pods, so a draining pod stays reachable.
    pub fn admin_url(&self, pod: &str) -> String {
        format!(
            "http://{pod}.{}.{}.svc:{ADMIN_PORT}",
            self.headless_service_name(),
            self.namespace
        )
    }

    /// The common labels: `app.kubernetes.io/{name,instance,managed-by}`.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
        labels
    }

    /// [`Self::selector_labels`] as a label selector string, `k=v,k=v`: `status.selector` (the
    /// scale subresource's `labelSelectorPath`) and the operator's pod list.
    pub fn selector_string(&self) -> String {
        self.selector_labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The labels selecting this cluster's gateway pods (a subset of [`Self::labels`]; the
    /// StatefulSet's selector is immutable, so it never changes).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), APP_NAME.into()),
            ("app.kubernetes.io/instance".into(), self.name.clone()),
        ])
    }

    /// All objects, with the StatefulSet at `replicas` (see [`Self::stateful_set`]).
    pub fn children(&self, replicas: i32) -> Children {
        Children {
            config_map: self.config_map(),
            headless_service: self.headless_service(),
            service: self.service(),
            stateful_set: self.stateful_set(replicas),
            pod_disruption_budget: self.pod_disruption_budget(),
            ingress: self.ingress(),
            network_policy: self.network_policy(),
            http_route: self.http_route(),
        }
    }

    /// `<cc>-config`: the gateway settings as the gateway's env vars (DESIGN §2a). Plain URLs go
    /// here; URLs given as Secret references never do (see [`Self::stateful_set`]).
    pub fn config_map(&self) -> ConfigMap {
        stamped(ConfigMap {
            metadata: self.metadata(self.config_map_name()),
            data: Some(self.settings()),
            ..ConfigMap::default()
        })
    }

    fn settings(&self) -> BTreeMap<String, String> {
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

    /// `<cc>-gateway-headless`: per-pod DNS (`<pod>.<cc>-gateway-headless`) for the operator's
    /// admin calls. `publishNotReadyAddresses`, because the pods the operator talks to most — the
    /// draining ones — are unready.
    pub fn headless_service(&self) -> Service {
        stamped(Service {
            metadata: self.metadata(self.headless_service_name()),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                publish_not_ready_addresses: Some(true),
                selector: Some(self.selector_labels()),
                ports: Some(vec![
                    service_port("http", HTTP_PORT),
                    service_port("admin", ADMIN_PORT),
                ]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        })
    }

    /// `<cc>-gateway`: the client Service, public port only, Ready pods only (a draining pod goes
    /// unready, so new connections go elsewhere). Its type and annotations are `spec.service`'s.
    pub fn service(&self) -> Service {
        let overrides = &self.cc.spec.service;
        let mut metadata = self.metadata(self.stateful_set_name());
        if !overrides.annotations.is_empty() {
            metadata.annotations = Some(overrides.annotations.clone());
        }
        stamped(Service {
            metadata,
            spec: Some(ServiceSpec {
                type_: Some(overrides.type_.as_str().into()),
                selector: Some(self.selector_labels()),
                ports: Some(vec![service_port("http", HTTP_PORT)]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        })
    }

    /// `<cc>-gateway` with `replicas` pods. The replica count is the rollout's to decide
    /// ([`crate::rollout::plan`]), not `spec.replicas`: shrinking straight to `spec.replicas`
    /// would kill pods before they drained. Apply it with the live StatefulSet's replicas (0 when
    /// there is none yet) and change it only on [`crate::rollout::Action::ScaleStatefulSet`].
    ///
    /// `OnDelete`: the StatefulSet controller never replaces a pod by itself; the operator drains
    /// and deletes each one. `Parallel`: pods start and stop independently, so a slow pod does not
    /// hold the others back.
    pub fn stateful_set(&self, replicas: i32) -> StatefulSet {
        let overrides = &self.cc.spec.pod;
        let mut ours = BTreeMap::new();
        ours.insert(
            CONFIG_HASH_ANNOTATION.to_owned(),
            content_hash(&self.settings()),
        );
        if let Some(hash) = &self.secrets_hash {
            ours.insert(SECRETS_HASH_ANNOTATION.to_owned(), hash.clone());
        }
        let template_annotations = placement::annotations(&overrides.annotations, ours);
        stamped(StatefulSet {
            metadata: self.metadata(self.stateful_set_name()),
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                service_name: Some(self.headless_service_name()),
                selector: self.selector(),
                pod_management_policy: Some("Parallel".into()),
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("OnDelete".into()),
                    rolling_update: None,
                }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(placement::labels(&overrides.labels, self.labels())),
                        annotations: Some(template_annotations),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(self.pod_spec()),
                },
                ..StatefulSetSpec::default()
            }),
            status: None,
        })
    }

    fn pod_spec(&self) -> PodSpec {
        let gateway = &self.cc.spec.gateway;
        let mut pod = PodSpec {
            containers: vec![self.container()],
            termination_grace_period_seconds: Some(
                i64::from(gateway.drain_seconds) + i64::from(TERMINATION_MARGIN_SECONDS),
            ),
            // The gateway never calls the Kubernetes API, and Service env vars would only add
            // noise (`<CC>_GATEWAY_PORT`, …) next to the CHAT_* settings.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(GATEWAY_UID),
                run_as_group: Some(GATEWAY_UID),
                fs_group: Some(GATEWAY_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "kubernetes.io/hostname".into(),
                when_unsatisfiable: "ScheduleAnyway".into(),
                label_selector: Some(self.selector()),
                ..TopologySpreadConstraint::default()
            }]),
            volumes: Some(
                [
                    empty_dir("data"),
                    // readOnlyRootFilesystem: whatever wants a scratch file gets a writable /tmp.
                    empty_dir("tmp"),
                ]
                .into_iter()
                .chain(backend_tls::volumes(&self.cc.spec))
                .collect(),
            ),
            ..PodSpec::default()
        };
        placement::schedule(&mut pod, &self.cc.spec.pod);
        pod
    }

    /// Names in `spec.pod.env` dropped because the operator sets them (see
    /// [`crate::crd::PodSpecOverrides::env`]); the reconciler logs them.
    pub fn ignored_env(&self) -> Vec<String> {
        self.extra_env().1
    }

    fn extra_env(&self) -> (Vec<EnvVar>, Vec<String>) {
        placement::extra_env(
            &self.cc.spec.pod.env,
            &self.operator_env(),
            self.settings().into_keys(),
        )
    }

    fn container(&self) -> Container {
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
    fn operator_env(&self) -> Vec<EnvVar> {
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

    /// `<cc>-gateway`: `maxUnavailable: 1`, so node drains evict gateways one at a time, like the
    /// operator's own rollout. (The operator's deletes are not evictions and ignore it.)
    pub fn pod_disruption_budget(&self) -> PodDisruptionBudget {
        stamped(PodDisruptionBudget {
            metadata: self.metadata(self.stateful_set_name()),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(self.selector()),
                ..PodDisruptionBudgetSpec::default()
            }),
            status: None,
        })
    }

    /// `<cc>-gateway` when `spec.ingress` is set: the public port under `/` for `host`, TLS when
    /// `tlsSecretName` is given. WebSockets are long-lived, so ingress-nginx's proxy timeouts
    /// (60 s by default) are raised above the session's timelife.
    pub fn ingress(&self) -> Option<Ingress> {
        let spec = self.cc.spec.ingress.as_ref()?;
        let timeout =
            (self.cc.spec.gateway.timelife_seconds + INGRESS_TIMEOUT_MARGIN_SECONDS).to_string();
        let mut metadata = self.metadata(self.stateful_set_name());
        let ours = BTreeMap::from([
            (
                "nginx.ingress.kubernetes.io/proxy-read-timeout".to_owned(),
                timeout.clone(),
            ),
            (
                "nginx.ingress.kubernetes.io/proxy-send-timeout".to_owned(),
                timeout,
            ),
            // Uploads go through the ingress: bodies up to the gateway's limit (nginx reads a
            // plain number as bytes), so the gateway, not nginx, answers a larger one with 413.
            (
                "nginx.ingress.kubernetes.io/proxy-body-size".to_owned(),
                self.cc.spec.files.max_file_bytes.to_string(),
            ),
        ]);
        metadata.annotations = Some(route::ingress_annotations(&spec.annotations, ours));
        Some(stamped(Ingress {
            metadata,
            spec: Some(K8sIngressSpec {
                ingress_class_name: spec.class_name.clone(),
                rules: Some(vec![IngressRule {
                    host: Some(spec.host.clone()),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some("/".into()),
                            path_type: "Prefix".into(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: self.stateful_set_name(),
                                    port: Some(ServiceBackendPort {
                                        name: Some("http".into()),
                                        number: None,
                                    }),
                                }),
                                resource: None,
                            },
                        }],
                    }),
                }]),
                tls: spec.tls_secret_name.as_ref().map(|secret| {
                    vec![IngressTLS {
                        hosts: Some(vec![spec.host.clone()]),
                        secret_name: Some(secret.clone()),
                    }]
                }),
                default_backend: None,
            }),
            status: None,
        }))
    }

    fn metadata(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    fn selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.selector_labels()),
            match_expressions: None,
        }
    }
}

/// Adds [`SPEC_HASH_ANNOTATION`]: the hash of the object before the annotation was added.
fn stamped<K: Resource + Serialize>(mut object: K) -> K {
    let hash = content_hash(&object);
    object
        .annotations_mut()
        .insert(SPEC_HASH_ANNOTATION.into(), hash);
    object
}

/// First 16 hex digits of the SHA-256 of `value`'s JSON. Stable across builds and Rust versions
/// (unlike `std`'s hasher), so an operator upgrade alone does not restart every pod.
fn content_hash(value: &impl Serialize) -> String {
    let json = serde_json::to_vec(value).expect("Kubernetes objects and string maps serialize");
    let digest = Sha256::digest(json);
    hex::encode(&digest[..8])
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
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

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// An env var read from a Secret key at pod start: the operator never reads or copies secrets.
fn secret_env(name: &str, secret: &SecretKeyRef) -> EnvVar {
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

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

mod security;
pub use security::ADMIN_TOKEN_KEY;

mod monitoring;
pub use monitoring::{pod_monitor_resource, CLUSTER_LABEL};

mod backend_tls;
mod placement;
mod route;
pub mod secret_hash;
pub use route::{http_route_resource, INGRESS_TIMEOUT_ANNOTATIONS};
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_placement;
