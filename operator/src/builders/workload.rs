//! The StatefulSet `<cc>-gateway` (its pod template and pod spec) and the PodDisruptionBudget
//! that keeps node drains to one gateway at a time.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile,
    TopologySpreadConstraint, Volume,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    backend_tls, content_hash, placement, stamped, Blueprint, CONFIG_HASH_ANNOTATION, GATEWAY_UID,
    SECRETS_HASH_ANNOTATION, TERMINATION_MARGIN_SECONDS,
};

impl Blueprint<'_> {
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

    pub(super) fn pod_spec(&self) -> PodSpec {
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
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}
