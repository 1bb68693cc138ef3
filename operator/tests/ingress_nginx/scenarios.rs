//! Live: gateway pods behind nginx, users through it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_client::Event;
use chat_tests::cluster::TestCluster;
use chat_tests::files::{png, upload};
use chat_tests::fixtures::user_token;
use chat_tests::tls::TestCa;
use chat_tests::TestGateway;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::chat::{self, Ledger, User};
use crate::controller::{Controller, Endpoint};
use crate::{cluster, HOST, MAX_FILE_BYTES, TIMELIFE_SECONDS};

/// Pods behind the ingress.
const PODS: usize = 3;
/// Per-address upgrades per second and burst on each pod: small, so the client address the
/// gateways see (X-Forwarded-For) can be told from nginx's own.
const CONNECT_RATE: u32 = 1;
const CONNECT_BURST: u32 = 3;

/// Three pods configured as the ChatCluster says (timelife, file size), trusting the ingress's
/// address for `X-Forwarded-For` as the operator's pods trust the in-cluster ranges.
async fn pods(connect_limit: bool) -> (TestCluster, Vec<Endpoint>) {
    let mut cluster = TestCluster::start(0).await;
    let mut endpoints = Vec::new();
    for i in 0..PODS {
        let pod = cluster
            .start_pod_with(&format!("pod-{i}"), |cfg| {
                cfg.timelife_seconds = TIMELIFE_SECONDS;
                cfg.files.max_file_bytes = MAX_FILE_BYTES;
                cfg.limits.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
                if connect_limit {
                    cfg.limits.connect_rate_per_ip = CONNECT_RATE;
                    cfg.limits.connect_burst_per_ip = CONNECT_BURST;
                }
            })
            .await;
        endpoints.push(Endpoint {
            pod: pod.name.clone(),
            public: pod.running.addr,
            readyz: pod.admin("/readyz"),
        });
        cluster.pods.push(Some(pod));
    }
    (cluster, endpoints)
}

fn user(name: &str, peer: &str, url: &str) -> User {
    User {
        name: name.into(),
        token: user_token(name),
        peer: peer.into(),
        url: url.into(),
    }
}

/// A plain GET of `/ws` through nginx (its IPv4 listener, `Host: localhost`) from `source` (no
/// upgrade): the gateway's per-address check comes first, so 429 means "this address is over
/// its rate", 400 "passed, but no upgrade".
async fn probe(port: u16, source: &str, forwarded_for: Option<&str>) -> u16 {
    let http = reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/ws?token={}", user_token("probe"));
    let mut req = http.get(url).header("host", format!("{HOST}:{port}"));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.send()
        .await
        .expect("GET through nginx")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_chat_across_pods_through_nginx() {
    let (_cluster, endpoints) = pods(true).await;
    let ingress = Controller::start(&cluster(json!({})), endpoints).await;
    let url = ingress.ws_url(HOST);
    let base = format!("http://{HOST}:{}", ingress.port());

    // nginx routes on the host: another one gets the default backend's 404.
    let other = reqwest::get(format!("http://127.0.0.1:{}/ws", ingress.port()))
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404, "a host no Ingress names");

    // Three users through nginx land on three pods (round-robin over the endpoints).
    let ledger = Mutex::new(Ledger::default());
    let (alice, bob, carol) = (
        user("alice", "bob", &url),
        user("bob", "alice", &url),
        user("carol", "alice", &url),
    );
    let mut a = chat::connect(&alice, &ledger).await;
    let mut b = chat::connect(&bob, &ledger).await;
    let c = chat::connect(&carol, &ledger).await;
    let on: BTreeSet<String> = [&a, &b, &c]
        .iter()
        .map(|x| x.welcome().server.clone())
        .collect();
    assert_eq!(on.len(), PODS, "one user per pod: {on:?}");

    // 1:1 both ways across pods, and the recipient's ACK reaches the sender (17).
    exchange(&mut a, &mut b, "bob").await;
    exchange(&mut b, &mut a, "alice").await;

    // An upload above nginx's default 1m and under the Ingress's body size passes through; one
    // above the body size is refused (413) before it reaches a pod.
    let token = user_token("alice");
    let (status, up) = upload(&base, &token, "big.png", "image/png", png(1, 2 << 20)).await;
    assert_eq!(
        (status, up["size"].as_u64()),
        (200, Some((2 << 20) + 8)),
        "{up}"
    );
    let (status, _) = upload(&base, &token, "huge.png", "image/png", png(2, 6 << 20)).await;
    assert_eq!(status, 413);

    // The pods see the client's address in X-Forwarded-For: 127.0.0.2 runs out of upgrades on
    // every pod, 127.0.0.3 still has its own; and a client cannot forge the header (nginx
    // writes $remote_addr over it).
    let mut refused_in_a_row = 0;
    for _ in 0..(PODS as u32 * (CONNECT_BURST + 2) * 2) {
        let status = probe(ingress.port(), "127.0.0.2", None).await;
        refused_in_a_row = if status == 429 {
            refused_in_a_row + 1
        } else {
            0
        };
        if refused_in_a_row == PODS {
            break;
        }
    }
    assert_eq!(
        refused_in_a_row, PODS,
        "127.0.0.2 was never limited on every pod"
    );
    assert_eq!(
        probe(ingress.port(), "127.0.0.2", Some("10.9.9.9")).await,
        429,
        "forged XFF"
    );
    assert_eq!(
        probe(ingress.port(), "127.0.0.3", None).await,
        400,
        "another client address"
    );

    // nginx logs a WebSocket when it ends: the three users' upgrades (101) on three pods.
    for client in [a, b, c] {
        client.close().await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let upgraded = || {
        let log = ingress.nginx.access_log();
        let lines = log
            .lines()
            .filter(|l| l.contains("\"GET /ws?") && l.contains(" 101 "));
        let upstreams: BTreeSet<String> = lines
            .filter_map(|l| l.split(' ').nth(5).map(str::to_owned))
            .collect();
        upstreams.len()
    };
    while upgraded() < PODS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = ingress.nginx.access_log();
    assert_eq!(
        upgraded(),
        PODS,
        "upgrades logged with 101 on each pod:\n{log}"
    );
    assert!(log.contains("127.0.0.2 \"GET /ws"), "{log}");
}

/// `from` sends to `to` (user `to_name`) with a `clientMsgId`: reply 0, one delivery, and the
/// recipient's ACK back to the sender (17).
async fn exchange(from: &mut chat_client::Client, to: &mut chat_client::Client, to_name: &str) {
    let text = format!("hi {to_name}");
    let sent = from
        .send_to(to_name, &text, &format!("to-{to_name}"))
        .await
        .unwrap_or_else(|e| panic!("send to {to_name}: {e}"));
    let id = sent.message_id;
    let got = wait_for(to, |e| matches!(e, Event::Message(m) if m.message_id == id)).await;
    assert!(got, "{to_name} got {id}");
    let acked = wait_for(
        from,
        |e| matches!(e, Event::Delivered(d) if d.message_id.as_str() == id),
    )
    .await;
    assert!(acked, "the sender saw {to_name}'s ack of {id}");
}

/// Reads `client`'s events until one matches `wanted` (true) or 10 s pass (false).
async fn wait_for(client: &mut chat_client::Client, wanted: impl Fn(&Event) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, client.next_event()).await {
        if wanted(&event) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_hop_through_nginx_lands_on_another_pod_and_loses_nothing() {
    let (cluster_pods, endpoints) = pods(false).await;
    let mut ingress = Controller::start(&cluster(json!({})), endpoints.clone()).await;
    let url = ingress.ws_url(HOST);

    // Six users in a ring, two per pod, chatting through nginx.
    let names: Vec<String> = (0..6).map(|i| format!("u{i}")).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (sending, quit) = (CancellationToken::new(), CancellationToken::new());
    let mut tasks = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let u = user(name, &names[(i + 1) % names.len()], &url);
        let client = chat::connect(&u, &ledger).await;
        let (l, s, q) = (ledger.clone(), sending.clone(), quit.clone());
        tasks.push(tokio::spawn(chat::run(u, client, l, s, q)));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Drain the pod u0 is on, as the operator does; the controller sees it go unready and
    // takes it out of the upstream.
    let drained = lock(&ledger).pod_of("u0").expect("u0 connected");
    let pod = cluster_pods
        .pods
        .iter()
        .flatten()
        .find(|p| p.name == drained)
        .expect("u0's pod");
    let (status, _) = chat_tests::fixtures::post_json(
        &pod.admin("/admin/drain"),
        None,
        json!({"deadlineSeconds": 6}),
    )
    .await;
    assert_eq!(status, 202);
    assert!(
        ingress.sync(&endpoints).await,
        "nginx reloaded without {drained}"
    );
    assert!(ingress.ready.iter().all(|e| e.pod != drained));
    let reloaded_at = Instant::now();
    let log_before = ingress.nginx.access_log().len();

    // Keep chatting through the hop, then stop and let the last deliveries land.
    tokio::time::sleep(Duration::from_secs(4)).await;
    sending.cancel();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !lock(&ledger).settled() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    quit.cancel();
    for t in tasks {
        t.await.unwrap();
    }

    let l = lock(&ledger);
    let summary = format!(
        "{} acknowledged, missing {:?}, {} duplicates, drains {:?}, problems {:?}",
        l.acknowledged.len(),
        l.missing(),
        l.duplicates(),
        l.drains,
        l.problems
    );
    println!("{summary}; connections {:?}", l.connections);
    assert!(l.acknowledged.len() > 50, "{summary}");
    assert!(l.missing().is_empty(), "{summary}");
    assert_eq!(l.duplicates(), 0, "{summary}");
    assert!(l.problems.is_empty(), "{summary}");
    // The users on the drained pod got DRAIN, moved through nginx, and landed elsewhere.
    let on_drained: Vec<&String> = l.drains.keys().collect();
    assert!(on_drained.len() >= 2, "{summary}");
    for user in &on_drained {
        let moved = l.connections.iter().filter(|c| &&c.user == user && c.moved);
        let pods: Vec<&String> = moved.map(|c| &c.pod).collect();
        assert!(!pods.is_empty(), "{user} followed the DRAIN: {summary}");
        assert!(
            pods.iter().all(|p| **p != drained),
            "{user} went back: {pods:?}"
        );
        assert_ne!(l.pod_of(user).as_deref(), Some(drained.as_str()));
    }
    let after: Vec<_> = l
        .connections
        .iter()
        .filter(|c| c.at >= reloaded_at)
        .collect();
    assert!(after.iter().all(|c| c.pod != drained), "{after:?}");
    // After the reload nginx sent no upgrade to the drained pod: its lines there are the old
    // connections ending (101), none refused.
    let drained_addr = pod.running.addr.to_string();
    let log = ingress.nginx.access_log();
    for line in log[log_before..]
        .lines()
        .filter(|l| l.contains(&drained_addr))
    {
        assert!(line.contains(" 101 "), "after the reload: {line}");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_ingress_serves_https_and_redirects_plain_http() {
    let gateway = TestGateway::start().await;
    let mut cc = cluster(json!({}));
    cc.spec.ingress.as_mut().unwrap().tls_secret_name = Some("chat-tls".into());
    let ca = TestCa::new("ingress");
    let certificates = BTreeMap::from([("chat-tls".into(), (ca.cert_file(), ca.key_file()))]);
    let endpoint = Endpoint {
        pod: "pod-0".into(),
        public: gateway.addr,
        readyz: gateway.admin_url("/readyz"),
    };
    let ingress = Controller::start_tls(&cc, vec![endpoint], certificates).await;
    let (http_port, https_port) = (ingress.port(), ingress.site.https[0].port());

    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("https://{HOST}:{https_port}/"))
        .send()
        .await
        .expect("GET over TLS through nginx");
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.text().await.unwrap().contains("<html"),
        "the gateway's page"
    );
    let plain = http
        .get(format!("http://{HOST}:{http_port}/ws"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 308, "plain HTTP is redirected");
    let location = plain.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("https://{HOST}/ws"));
}
