//! The two Services: the headless one (per-pod DNS for the admin calls) and the client one.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{stamped, Blueprint, ADMIN_PORT, HTTP_PORT};

impl Blueprint<'_> {
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
