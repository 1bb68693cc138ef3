//! The translation on its own: what the operator's Ingress becomes, checked line by line and by
//! `nginx -t`; the annotations users may add; what is refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use chat_tests::tls::TestCa;
use serde_json::json;

use crate::controller::built;
use crate::nginx::{test_conf_at, Nginx};
use crate::translate::{nginx_conf, Backends, Proxy, Site, Unsupported};
use crate::{cluster, HOST, MAX_FILE_BYTES, TIMELIFE_SECONDS};

fn site(dir: &std::path::Path) -> Site {
    Site {
        dir: dir.to_owned(),
        http: vec!["127.0.0.1:18080".parse().unwrap()],
        https: vec!["127.0.0.1:18443".parse().unwrap()],
        workers: 1,
        certificates: BTreeMap::new(),
    }
}

fn pods() -> Vec<SocketAddr> {
    ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect()
}

/// Translates `cc`'s Ingress for three pods and has `nginx -t` check the result.
fn translated(cc: &chat_operator::crd::ChatCluster, site: &Site) -> Result<String, Unsupported> {
    let (ingress, service) = built(cc);
    let ready = pods();
    let conf = nginx_conf(
        &ingress,
        &Backends {
            service: &service,
            ready: &ready,
        },
        site,
    )?;
    let path = site.dir.join("nginx.conf");
    std::fs::write(&path, &conf).unwrap();
    test_conf_at(&site.dir, &path);
    Ok(conf)
}

/// Lines of `conf` without their indentation and runs of spaces.
fn lines(conf: &str) -> Vec<String> {
    conf.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn the_operators_ingress_becomes_a_websocket_proxy_with_timeouts_above_the_timelife() {
    let cc = cluster(json!({}));
    let (ingress, _) = built(&cc);
    let proxy = Proxy::from_annotations(ingress.metadata.annotations.as_ref().unwrap()).unwrap();
    // An idle WebSocket must outlive its session: nginx may not cut it before the timelife.
    assert!(proxy.read_timeout >= TIMELIFE_SECONDS, "{proxy:?}");
    assert!(proxy.send_timeout >= TIMELIFE_SECONDS, "{proxy:?}");
    assert_eq!(proxy.body_size, MAX_FILE_BYTES.to_string());

    let dir = Nginx::dir();
    let conf = lines(&translated(&cc, &site(dir.path())).unwrap());
    let read = format!("proxy_read_timeout {}s;", proxy.read_timeout);
    let send = format!("proxy_send_timeout {}s;", proxy.send_timeout);
    let body = format!("client_max_body_size {MAX_FILE_BYTES};");
    for wanted in [
        "map $http_upgrade $connection_upgrade {",
        "default upgrade;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $pass_access_scheme;",
        "proxy_buffering off;",
        &read,
        &send,
        &body,
        "upstream chat-demo-gateway-http {",
        "server 127.0.0.1:7001 max_fails=0;",
        "server 127.0.0.1:7002 max_fails=0;",
        "server 127.0.0.1:7003 max_fails=0;",
        "proxy_pass http://chat-demo-gateway-http;",
        &format!("server_name {HOST};"),
        "location / {",
    ] {
        assert!(
            conf.iter().any(|l| l == wanted),
            "no {wanted:?} in\n{}",
            conf.join("\n")
        );
    }
}

#[test]
fn annotations_ingress_nginx_reads_are_applied_and_unknown_ones_refused() {
    // One it knows: applied. A longer read timeout of the user's: kept by the operator.
    let cc = cluster(json!({
        "nginx.ingress.kubernetes.io/proxy-connect-timeout": "10",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
        "example.com/team": "chat",
    }));
    let dir = Nginx::dir();
    let conf = lines(&translated(&cc, &site(dir.path())).unwrap());
    for wanted in [
        "proxy_connect_timeout 10s;",
        "proxy_read_timeout 3600s;",
        &format!("proxy_send_timeout {}s;", TIMELIFE_SECONDS + 60),
    ] {
        assert!(conf.iter().any(|l| l == wanted), "no {wanted:?}");
    }

    // One it does not know: refused, not ignored.
    let cc = cluster(json!({"nginx.ingress.kubernetes.io/affinity": "cookie"}));
    let err = translated(&cc, &site(dir.path())).unwrap_err();
    assert!(err.0.contains("affinity"), "{err}");

    // A value the controller would not parse (it would fall back to 60 s): refused.
    let bad = BTreeMap::from([(
        "nginx.ingress.kubernetes.io/proxy-send-timeout".to_owned(),
        "1h".to_owned(),
    )]);
    let err = Proxy::from_annotations(&bad).unwrap_err();
    assert!(err.0.contains("whole seconds"), "{err}");
    let bad = BTreeMap::from([(
        "nginx.ingress.kubernetes.io/proxy-body-size".to_owned(),
        "4MiB".to_owned(),
    )]);
    assert!(Proxy::from_annotations(&bad).is_err());
}

#[test]
fn an_ingress_of_another_class_is_refused() {
    let mut cc = cluster(json!({}));
    cc.spec.ingress.as_mut().unwrap().class_name = Some("traefik".into());
    let dir = Nginx::dir();
    let err = translated(&cc, &site(dir.path())).unwrap_err();
    assert!(err.0.contains("traefik"), "{err}");
}

#[test]
fn a_tls_ingress_listens_with_its_certificate_and_redirects_plain_http() {
    let mut cc = cluster(json!({}));
    cc.spec.ingress.as_mut().unwrap().tls_secret_name = Some("chat-tls".into());
    let dir = Nginx::dir();
    let mut site = site(dir.path());
    let err = translated(&cc, &site).unwrap_err();
    assert!(err.0.contains("chat-tls"), "{err}");

    let ca = TestCa::new("ingress");
    site.certificates
        .insert("chat-tls".into(), (ca.cert_file(), ca.key_file()));
    let conf = lines(&translated(&cc, &site).unwrap());
    for wanted in [
        "listen 127.0.0.1:18443 ssl;",
        &format!("ssl_certificate {};", ca.cert_file().display()),
        "if ($scheme = http) { return 308 https://$host$request_uri; }",
    ] {
        assert!(conf.iter().any(|l| l == wanted), "no {wanted:?}");
    }
}
