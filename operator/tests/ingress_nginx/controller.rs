//! The part of the ingress-nginx controller these tests need: it takes the Ingress and the
//! Service the operator built, writes the configuration for the ready endpoints (the gateway
//! pods' public addresses whose `/readyz` answers 200), and reloads nginx when that set
//! changes — the controller itself swaps endpoints in Lua without a reload, with the same
//! effect on new connections: a pod that went unready (a drain) gets no new ones.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use chat_operator::builders::Blueprint;
use chat_operator::crd::ChatCluster;
use chat_tests::fixtures::free_port;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;

use crate::nginx::Nginx;
use crate::translate::{nginx_conf, Backends, Site};

/// One gateway pod as the Endpoints see it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The pod's name.
    pub pod: String,
    /// Its public (WebSocket) address.
    pub public: SocketAddr,
    /// Its `/readyz`.
    pub readyz: String,
}

/// nginx serving a ChatCluster's Ingress.
pub struct Controller {
    pub ingress: Ingress,
    pub service: Service,
    pub site: Site,
    pub nginx: Nginx,
    /// The endpoints in the running configuration.
    pub ready: Vec<Endpoint>,
    /// The conf it runs.
    pub conf: String,
}

/// The addresses `host` resolves to, on `port` (where clients of `ws://host:port` connect,
/// `::1` too where `localhost` says so), and `127.0.0.1` always.
pub fn listeners(host: &str, port: u16) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("resolve {host}: {e}"))
        .chain([SocketAddr::from(([127, 0, 0, 1], port))])
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

/// The operator's Ingress and client Service for `cc`.
pub fn built(cc: &ChatCluster) -> (Ingress, Service) {
    let blueprint = Blueprint::new(cc).expect("a valid ChatCluster");
    let ingress = blueprint.ingress().expect("spec.ingress is set");
    (ingress, blueprint.service())
}

impl Controller {
    /// Starts nginx for `cc`'s Ingress with `endpoints` all ready, listening on a free port of
    /// every address the Ingress host resolves to; returns once it accepts connections.
    pub async fn start(cc: &ChatCluster, endpoints: Vec<Endpoint>) -> Self {
        Self::start_tls(cc, endpoints, BTreeMap::new()).await
    }

    /// [`Self::start`] with HTTPS listeners too, and the certificate and key files of the TLS
    /// Secrets by name (the controller reads them from the Secrets).
    pub async fn start_tls(
        cc: &ChatCluster,
        endpoints: Vec<Endpoint>,
        certificates: BTreeMap<String, (PathBuf, PathBuf)>,
    ) -> Self {
        let (ingress, service) = built(cc);
        let host = cc.spec.ingress.as_ref().expect("spec.ingress").host.clone();
        let dir = Nginx::dir();
        let https = if certificates.is_empty() {
            Vec::new()
        } else {
            listeners(&host, free_port())
        };
        let site = Site {
            dir: dir.path().to_owned(),
            http: listeners(&host, free_port()),
            https,
            workers: 1,
            certificates,
        };
        let conf = conf(&ingress, &service, &site, &endpoints);
        let mut nginx = Nginx::start(dir, &conf);
        nginx.wait_listening(&site.http).await;
        nginx.wait_listening(&site.https).await;
        Self {
            ingress,
            service,
            site,
            nginx,
            ready: endpoints,
            conf,
        }
    }

    /// The port clients connect to (every plain listener has it).
    pub fn port(&self) -> u16 {
        self.site.http[0].port()
    }

    /// `ws://host:port/ws`.
    pub fn ws_url(&self, host: &str) -> String {
        format!("ws://{host}:{}/ws", self.port())
    }

    /// One sync of the controller: asks every known endpoint's `/readyz`, and when the ready
    /// set changed, writes the new configuration and reloads. Returns whether it reloaded.
    pub async fn sync(&mut self, known: &[Endpoint]) -> bool {
        let http = reqwest::Client::new();
        let mut ready = Vec::new();
        for e in known {
            let ok = http
                .get(&e.readyz)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                ready.push(e.clone());
            }
        }
        let names = |v: &[Endpoint]| v.iter().map(|e| e.pod.clone()).collect::<Vec<_>>();
        if names(&ready) == names(&self.ready) {
            return false;
        }
        self.conf = conf(&self.ingress, &self.service, &self.site, &ready);
        self.ready = ready;
        self.nginx.reload(&self.conf);
        self.nginx.wait_reloaded().await;
        true
    }
}

fn conf(ingress: &Ingress, service: &Service, site: &Site, endpoints: &[Endpoint]) -> String {
    let ready: Vec<SocketAddr> = endpoints.iter().map(|e| e.public).collect();
    let backends = Backends {
        service,
        ready: &ready,
    };
    nginx_conf(ingress, &backends, site).unwrap_or_else(|e| panic!("translate the Ingress: {e}"))
}
