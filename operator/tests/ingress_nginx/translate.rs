//! What ingress-nginx makes of an Ingress, written as a plain `nginx.conf`: the translation its
//! controller does with `rootfs/etc/nginx/template/nginx.tmpl` (kubernetes/ingress-nginx), for
//! the fields and annotations the operator's Ingress uses. Our own code, after that template:
//!
//! - `http`: `map $http_upgrade $connection_upgrade` (`''` → `''`, as with upstream keepalive on,
//!   the controller's default of 320 connections), `map $http_x_request_id $req_id`;
//! - one `upstream` per service port with the Service's ready endpoints (the controller balances
//!   round-robin over the Endpoints in Lua; a plain upstream does the same), `keepalive 320`;
//! - a default server answering 404 (the controller's default backend) and one server per rule
//!   host, a location per path, with the location's headers (`Upgrade`, `Connection`,
//!   `X-Real-IP`, `X-Forwarded-*` from `$remote_addr`: `use-forwarded-headers` is off by
//!   default), timeouts, body size, buffering and next-upstream settings.
//!
//! The controller falls back to its default (60 s) on an annotation value it cannot parse and
//! ignores annotations it does not know; here both are errors, so a test never passes on
//! settings ingress-nginx would not have used.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{HTTPIngressPath, Ingress};

pub use crate::annotations::Proxy;

/// Prefix of ingress-nginx's annotations.
pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";
/// The IngressClass ingress-nginx serves unless configured otherwise.
pub const CLASS: &str = "nginx";
/// `upstream-keepalive-connections`' default.
const UPSTREAM_KEEPALIVE: u32 = 320;

/// An Ingress this translation cannot stand for.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where nginx runs: what the controller's pod provides, not the Ingress.
#[derive(Debug, Clone)]
pub struct Site {
    /// The `-p` prefix: pid, logs and temp paths go under it.
    pub dir: PathBuf,
    /// Plain HTTP listeners (the controller's port 80).
    pub http: Vec<SocketAddr>,
    /// HTTPS listeners (port 443), used for the Ingress's `tls` hosts.
    pub https: Vec<SocketAddr>,
    /// `worker_processes` (the controller uses the CPU count).
    pub workers: u32,
    /// Certificate and key files by TLS Secret name (the controller writes them from the
    /// Secrets).
    pub certificates: BTreeMap<String, (PathBuf, PathBuf)>,
}

/// The backends: the Service the Ingress names and its ready endpoints (the gateway pods'
/// public addresses), as the Endpoints object lists them.
pub struct Backends<'a> {
    /// The Service (the operator's `<cc>-gateway`).
    pub service: &'a Service,
    /// Ready endpoints of its port.
    pub ready: &'a [SocketAddr],
}

/// The whole `nginx.conf` for `ingress` on `site`.
pub fn nginx_conf(
    ingress: &Ingress,
    backends: &Backends<'_>,
    site: &Site,
) -> Result<String, Unsupported> {
    let meta = &ingress.metadata;
    let name = format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or("")
    );
    let spec = ingress
        .spec
        .as_ref()
        .ok_or_else(|| Unsupported(format!("Ingress {name} has no spec")))?;
    if let Some(class) = spec.ingress_class_name.as_deref().filter(|c| *c != CLASS) {
        return Err(Unsupported(format!(
            "Ingress {name} is for class {class:?}, not ingress-nginx's {CLASS:?}"
        )));
    }
    let annotations = meta.annotations.clone().unwrap_or_default();
    let proxy = Proxy::from_annotations(&annotations)?;
    let mut servers = String::new();
    let mut upstreams = BTreeMap::new();
    for rule in spec.rules.iter().flatten() {
        let host = rule
            .host
            .as_deref()
            .ok_or_else(|| Unsupported(format!("Ingress {name}: a rule without host")))?;
        let tls = spec
            .tls
            .iter()
            .flatten()
            .find(|t| t.hosts.iter().flatten().any(|h| h == host));
        let certificate = match tls {
            None => None,
            Some(t) => {
                let secret = t.secret_name.clone().unwrap_or_default();
                Some(site.certificates.get(&secret).ok_or_else(|| {
                    Unsupported(format!(
                        "Ingress {name}: no certificate for Secret {secret:?}"
                    ))
                })?)
            }
        };
        let mut locations = String::new();
        for path in rule.http.iter().flat_map(|h| &h.paths) {
            let upstream = upstream_of(&name, path, backends)?;
            locations.push_str(&location(path, &upstream, &proxy, certificate.is_some())?);
            upstreams.insert(upstream, backends.ready.to_vec());
        }
        servers.push_str(&server(host, site, certificate, &locations));
    }
    Ok(document(site, &upstreams, &servers))
}

/// `<namespace>-<service>-<port>`, the controller's upstream name, after checking the port.
fn upstream_of(
    ingress: &str,
    path: &HTTPIngressPath,
    backends: &Backends<'_>,
) -> Result<String, Unsupported> {
    let wanted = path.backend.service.as_ref().ok_or_else(|| {
        Unsupported(format!(
            "Ingress {ingress}: a path without a service backend"
        ))
    })?;
    let service = &backends.service.metadata;
    if service.name.as_deref() != Some(wanted.name.as_str()) {
        return Err(Unsupported(format!(
            "Ingress {ingress} names Service {:?}, the endpoints are {:?}'s",
            wanted.name, service.name
        )));
    }
    let port = wanted.port.as_ref();
    let ports = backends
        .service
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten());
    let found = ports
        .into_iter()
        .find(|p| match port {
            Some(w) if w.name.is_some() => p.name == w.name,
            Some(w) => Some(p.port) == w.number,
            None => false,
        })
        .ok_or_else(|| Unsupported(format!("Ingress {ingress}: Service has no port {port:?}")))?;
    Ok(format!(
        "{}-{}-{}",
        service.namespace.as_deref().unwrap_or("default"),
        wanted.name,
        found.name.clone().unwrap_or_else(|| found.port.to_string())
    ))
}

fn location(
    path: &HTTPIngressPath,
    upstream: &str,
    proxy: &Proxy,
    tls: bool,
) -> Result<String, Unsupported> {
    let p = path.path.as_deref().unwrap_or("/");
    let matcher = match path.path_type.as_str() {
        "Prefix" => p.to_owned(),
        "Exact" => format!("= {p}"),
        other => return Err(Unsupported(format!("pathType {other} of {p}"))),
    };
    let Proxy {
        connect_timeout,
        read_timeout,
        send_timeout,
        body_size,
        buffering,
        request_buffering,
        http_version,
    } = proxy;
    let redirect = if tls {
        // ssl-redirect (default true with TLS): plain HTTP is sent to HTTPS.
        "            if ($scheme = http) { return 308 https://$host$request_uri; }\n"
    } else {
        ""
    };
    Ok(format!(
        r#"        location {matcher} {{
{redirect}            set $pass_access_scheme  $scheme;
            set $pass_server_port    $server_port;
            set $best_http_host      $http_host;
            set $pass_port           $pass_server_port;

            client_max_body_size                    {body_size};

            proxy_set_header Host                   $best_http_host;
            # Allow websocket connections
            proxy_set_header                        Upgrade           $http_upgrade;
            proxy_set_header                        Connection        $connection_upgrade;
            proxy_set_header X-Request-ID           $req_id;
            proxy_set_header X-Real-IP              $remote_addr;
            proxy_set_header X-Forwarded-For        $remote_addr;
            proxy_set_header X-Forwarded-Host       $best_http_host;
            proxy_set_header X-Forwarded-Port       $pass_port;
            proxy_set_header X-Forwarded-Proto      $pass_access_scheme;
            proxy_set_header X-Forwarded-Scheme     $pass_access_scheme;
            proxy_set_header X-Scheme               $pass_access_scheme;
            proxy_set_header X-Original-Forwarded-For $http_x_forwarded_for;
            proxy_set_header Proxy                  "";

            proxy_connect_timeout                   {connect_timeout}s;
            proxy_send_timeout                      {send_timeout}s;
            proxy_read_timeout                      {read_timeout}s;

            proxy_buffering                         {buffering};
            proxy_buffer_size                       4k;
            proxy_buffers                           4 4k;
            proxy_request_buffering                 {request_buffering};
            proxy_http_version                      {http_version};
            proxy_cookie_domain                     off;
            proxy_cookie_path                       off;

            proxy_next_upstream                     error timeout;
            proxy_next_upstream_timeout             0;
            proxy_next_upstream_tries               3;

            proxy_pass http://{upstream};
        }}
"#
    ))
}

fn server(
    host: &str,
    site: &Site,
    certificate: Option<&(PathBuf, PathBuf)>,
    locations: &str,
) -> String {
    let mut text = format!("    ## start server {host}\n    server {{\n");
    let _ = writeln!(text, "        server_name {host};");
    for addr in &site.http {
        let _ = writeln!(text, "        listen {addr};");
    }
    if let Some((cert, key)) = certificate {
        for addr in &site.https {
            let _ = writeln!(text, "        listen {addr} ssl;");
        }
        let _ = writeln!(text, "        ssl_certificate {};", cert.display());
        let _ = writeln!(text, "        ssl_certificate_key {};", key.display());
    }
    text.push_str(locations);
    text.push_str("    }\n    ## end server\n");
    text
}

fn document(site: &Site, upstreams: &BTreeMap<String, Vec<SocketAddr>>, servers: &str) -> String {
    let dir = site.dir.display();
    let mut text = format!(
        r#"# Written by the ingress-nginx translation of the chat operator's tests.
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log notice;

events {{
    worker_connections 4096;
}}

http {{
    client_body_temp_path {dir}/client-body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format upstreaminfo '$remote_addr "$request" $status $upstream_addr $request_time';
    access_log {dir}/access.log upstreaminfo;

    keepalive_timeout 75s;
    keepalive_requests 1000;
    server_tokens off;
    server_name_in_redirect off;
    port_in_redirect off;

    # See https://www.nginx.com/blog/websocket-nginx
    map $http_upgrade $connection_upgrade {{
        default          upgrade;
        # See https://nginx.org/en/docs/http/ngx_http_upstream_module.html#keepalive
        ''               '';
    }}

    map $http_x_request_id $req_id {{
        default   $http_x_request_id;
        ""        $request_id;
    }}

"#,
        workers = site.workers.max(1),
    );
    for (name, ready) in upstreams {
        let _ = writeln!(text, "    upstream {name} {{");
        if ready.is_empty() {
            // No ready endpoint: the controller answers 503; a server marked down does too.
            let _ = writeln!(text, "        server 127.0.0.1:1 down;");
        }
        for addr in ready {
            let _ = writeln!(text, "        server {addr} max_fails=0;");
        }
        let _ = writeln!(
            text,
            "        keepalive {UPSTREAM_KEEPALIVE};\n        keepalive_time 1h;\n        \
             keepalive_timeout 60s;\n        keepalive_requests 10000;\n    }}\n"
        );
    }
    // The default server: hosts no Ingress names get the default backend's 404.
    text.push_str("    server {\n        server_name _;\n");
    for addr in &site.http {
        let _ = writeln!(text, "        listen {addr} default_server;");
    }
    text.push_str("        location / { return 404; }\n    }\n\n");
    text.push_str(servers);
    text.push_str("}\n");
    text
}
