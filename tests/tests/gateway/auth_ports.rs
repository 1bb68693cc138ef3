//! Browsers and the admin port (issue 17 §7, §8): `--allowed-origins` at the upgrade,
//! `--admin-token` on the admin endpoints, and a kick on one pod refusing the token on another.

use chat_gateway::server::{Backends, Running};
use chat_tests::cluster::TestCluster;
use chat_tests::fixtures::{post_json, test_config, user_token, TempDir};
use chat_tests::TestGateway;
use serde_json::json;

use super::auth::{upgrade, upgrade_request};

#[tokio::test]
async fn an_origin_not_allowed_gets_403_and_no_origin_passes() {
    let gw = TestGateway::start_with(|cfg| {
        cfg.auth.allowed_origins = vec![
            "https://chat.example.com".into(),
            "http://localhost:3000".into(),
        ];
    })
    .await;
    let url = format!("{}?token={}&device=phone", gw.ws_url(), user_token("alice"));
    let (status, body) = upgrade_request(&url, &[("Origin", "https://evil.example")]).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("evil.example") && body.contains("allowed-origins"),
        "{body}"
    );
    for allowed in ["https://chat.example.com", "http://localhost:3000"] {
        let (status, body) = upgrade_request(&url, &[("Origin", allowed)]).await;
        assert_eq!(status, 101, "{allowed}: {body}");
    }
    // A mobile app or server sends no Origin.
    assert_eq!(
        upgrade(&gw.ws_url(), &user_token("bob"), "phone").await.0,
        101
    );
}

#[tokio::test]
async fn without_allowed_origins_every_origin_passes() {
    let gw = TestGateway::start().await;
    let url = format!("{}?token={}&device=phone", gw.ws_url(), user_token("alice"));
    assert_eq!(
        upgrade_request(&url, &[("Origin", "https://any.example")])
            .await
            .0,
        101
    );
}

#[tokio::test]
async fn the_admin_token_guards_every_admin_endpoint_but_the_probes() {
    let gw =
        TestGateway::start_with(|cfg| cfg.auth.admin_token = Some("s3cret-admin".into())).await;
    let http = reqwest::Client::new();
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let status = http.get(gw.admin_url(probe)).send().await.unwrap().status();
        assert_eq!(status, 200, "{probe}");
    }
    let status_url = gw.admin_url("/admin/status");
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-admi"),
        Some("s3cret-admin"),
    ] {
        let mut req = http.get(&status_url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert!(resp.text().await.unwrap().contains("admin-token"));
    }
    let (status, _) = post_json(&gw.admin_url("/admin/drain"), None, json!({})).await;
    assert_eq!(status, 401, "drain without the token");
    let (status, _) = post_json(
        &gw.admin_url("/admin/rebalance"),
        None,
        json!({"connections": 1}),
    )
    .await;
    assert_eq!(status, 401, "rebalance without the token");
    assert_eq!(
        http.get(gw.admin_url("/admin/nothing"))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "unknown paths say nothing without the token"
    );
    let ok = http
        .get(&status_url)
        .bearer_auth("s3cret-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let (status, body) = post_json(
        &gw.admin_url("/admin/drain"),
        Some("s3cret-admin"),
        json!({"deadlineSeconds": 1}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn an_admin_port_off_loopback_needs_a_token() {
    let dir = TempDir::new("admin-bind");
    let mut cfg = test_config(dir.path());
    cfg.admin_listen = "0.0.0.0:0".parse().unwrap();
    let backends = Backends::from_config(&cfg).await.unwrap();
    let err = Running::start(cfg.clone(), backends.clone())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("--admin-token"), "{err}");
    cfg.auth.admin_token = Some("t".into());
    let running = Running::start(cfg, backends)
        .await
        .expect("starts with a token");
    running.stop().await.unwrap();
}

/// Pods share PostgreSQL: a kick on pod 0 refuses the user's old token on pod 1 at once.
#[tokio::test]
async fn a_kick_on_one_pod_refuses_the_old_token_on_another() {
    let cluster = TestCluster::start_postgres(2).await;
    let old = user_token("alice");
    let url = cluster.pod(0).http("/api/users/alice/kick");
    let (status, body) = post_json(
        &url,
        Some(&chat_tests::fixtures::service_token()),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = upgrade(&cluster.pod(1).ws_url(), &old, "phone").await;
    assert_eq!(status, 401, "{body}");
    let fresh = user_token("alice");
    assert_eq!(
        upgrade(&cluster.pod(1).ws_url(), &fresh, "phone").await.0,
        101
    );
}
