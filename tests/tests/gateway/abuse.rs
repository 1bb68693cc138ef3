//! Abusive clients (issue 17 point 5), over real sockets: a client that stops reading, one user
//! sending from many devices, one address connecting in a loop (directly or behind a trusted
//! proxy), slow or incomplete requests, concurrent upgrades racing for the last slot, and the
//! size limits of groups, member lists and SYNC pages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chat_tests::fixtures::{connect, get_json, service_token, user_token, wait_until, TempDir};
use chat_tests::gateway::GatewayProcess;
use chat_tests::{Client, TestGateway};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_gateway-under-test");

/// The gateway process's resident memory, in bytes.
fn rss(gw: &GatewayProcess) -> u64 {
    let pid = gw.child.id().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// The value of the counter `name` on the admin port's /metrics (0 when not yet counted).
async fn counter(admin_url: &str, name: &str) -> f64 {
    let text = reqwest::get(admin_url).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A WebSocket to `url` for `user` that never reads: the TCP receive buffer is made small, so
/// the server's writes back up at once.
async fn never_reading(addr: std::net::SocketAddr, user: &str, device: &str) -> impl Send {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/ws?token={}&device={device}", user_token(user));
    let (ws, response) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    assert_eq!(response.status().as_u16(), 101);
    ws
}

/// A client that stops reading is closed (1013) once its writes wait past the write timeout;
/// meanwhile what is sent to it is bounded (notices beyond its queue are dropped, the server's
/// memory does not follow the flood), and every stored message reaches the user by catch-up
/// when it reconnects.
#[tokio::test]
async fn a_client_that_stops_reading_is_closed_and_its_user_loses_nothing() {
    let dir = TempDir::new("slow-reader");
    let args = [
        "--write-timeout-seconds",
        "5",
        "--rate-limit-per-second",
        "100000",
        "--rate-burst",
        "100000",
        "--user-send-rate",
        "0",
    ];
    let gw = GatewayProcess::spawn(BIN, dir.path(), &args).await;
    let mut alice = connect(&gw.ws_url(), "alice", "phone").await;
    let stalled = never_reading(gw.addr, "bob", "stalled").await;
    let status = gw.admin_url("/admin/status");
    assert_eq!(get_json(&status).await["connections"], 2);

    // Stored messages (big enough to fill the socket buffers), then a flood of HTTP pushes.
    let text = "m".repeat(30_000);
    for i in 0..40 {
        let r = alice
            .send_to("bob", &format!("{i}:{text}"), Some(&format!("c{i}")))
            .await;
        assert_eq!(r["type"], 0, "{r}");
    }
    let before = rss(&gw);
    // Pushes answered while bob's stalled device was still online (`notExist` empty).
    let pushed = Arc::new(AtomicU64::new(0));
    let push_url = format!("http://{}/message/send", gw.addr);
    let body = json!({"to": ["bob"], "msg": {"pad": "p".repeat(8_000)}});
    let flood: Vec<_> = (0..6)
        .map(|_| {
            let (url, body, pushed) = (push_url.clone(), body.clone(), pushed.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let token = service_token();
                for _ in 0..1000 {
                    let resp = http.post(&url).bearer_auth(&token).json(&body).send().await;
                    let answer: Value = resp.unwrap().json().await.unwrap();
                    assert_eq!(answer["success"], true, "{answer}");
                    if answer["content"]["notExist"] == json!([]) {
                        pushed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut peak = before;
    let closed = wait_until(
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || {
            peak = peak.max(rss(&gw));
            get_json(&status).await["connections"] == 1
        },
    )
    .await;
    for task in flood {
        task.await.unwrap();
    }
    peak = peak.max(rss(&gw));
    assert!(closed, "the client that stopped reading is still connected");
    let admin_metrics = gw.admin_url("/metrics");
    assert!(counter(&admin_metrics, "chat_slow_clients_total").await >= 1.0);
    // What reached the stalled connection beyond its bound — the 1024-event inbox, and what
    // the kernel's send buffer took before the writes blocked (at most 4 MiB, ~520 pushes) —
    // was dropped, not kept: the queue did not grow with the flood.
    const BOUND: u64 = 1024 + 576;
    let offered = pushed.load(Ordering::Relaxed);
    let dropped = counter(&admin_metrics, "chat_dropped_notices_total").await as u64;
    assert!(
        offered > BOUND,
        "only {offered} pushes reached the stalled device; flood too slow"
    );
    assert!(
        dropped + BOUND >= offered,
        "{offered} pushes offered while stalled, only {dropped} dropped: the queue grew"
    );
    assert!(
        peak < before + 24 * 1024 * 1024,
        "memory followed the flood: {before} → {peak} bytes, {offered} pushes of 8 kB"
    );
    drop(stalled);

    // Nothing stored is lost for bob: catch-up brings all 40, in order.
    let mut bob = connect(&gw.ws_url(), "bob", "stalled").await;
    for i in 0..40 {
        let env = bob.user_push(2).await;
        let message = env["msg"]["params"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{i}:")), "#{i}: {message:.20}");
        bob.ack(&env).await;
    }
}

/// A user's SENDs are counted across its devices: past the per-user burst a SEND gets ERROR
/// 429 on whichever device, the connection stays, and other users are not affected.
#[tokio::test]
async fn the_per_user_send_limit_spans_the_users_devices() {
    let gw = TestGateway::start_with(|c| {
        c.limits.user_send_rate = 1;
        c.limits.user_send_burst = 4;
    })
    .await;
    let mut phone = gw.connect("ursula", "phone").await;
    let mut laptop = gw.connect("ursula", "laptop").await;
    let mut other = gw.connect("victor", "phone").await;
    // Five SENDs from each device, written at once (the sustained rate adds at most one more
    // a second while they are answered).
    let started = std::time::Instant::now();
    for n in 0..5 {
        for (c, d) in [(&mut phone, "p"), (&mut laptop, "l")] {
            let frame = json!({"type": 1, "requestId": format!("{d}{n}"),
                "params": {"toMessageId": "victor", "message": format!("{d}{n}")}});
            c.send(frame).await;
        }
    }
    let (mut stored, mut limited) = (0, 0);
    for (c, d) in [(&mut phone, "p"), (&mut laptop, "l")] {
        for n in 0..5 {
            let rid = format!("{d}{n}");
            let r = c
                .recv_where(&rid, |v| {
                    v["requestId"] == rid.as_str() && v.get("msg").is_none()
                })
                .await;
            match (r["type"].as_u64(), r["status"].as_u64()) {
                (Some(0), _) => stored += 1,
                (Some(500), Some(429)) => {
                    assert_eq!(r["params"]["code"], "rate_limited", "{r}");
                    limited += 1;
                }
                _ => panic!("neither stored nor limited: {r}"),
            }
        }
    }
    let refills = started.elapsed().as_secs();
    assert!(
        (4..=4 + refills).contains(&stored) && stored + limited == 10,
        "{stored} stored, {limited} limited in {refills} s: the 4-SEND burst is the user's, not each device's"
    );
    for c in [&mut phone, &mut laptop] {
        // The connection stays, and requests other than SEND pass.
        let hb = c.request(3, json!({})).await;
        assert_eq!(hb["type"], 4, "{hb}");
    }
    let r = other
        .request(1, json!({"toMessageId": "ursula", "message": "hi"}))
        .await;
    assert_eq!(r["type"], 0, "another user has its own bucket: {r}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = phone
        .request(1, json!({"toMessageId": "victor", "message": "later"}))
        .await;
    assert_eq!(again["type"], 0, "refilled: {again}");
}

/// A plain GET of /ws: what the upgrade answers (the address limit is checked first; a
/// request that passes it gets 400, not being a WebSocket handshake).
async fn upgrade_status(gw: &TestGateway, forwarded_for: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(gw.http(&format!("/ws?token={}", user_token("ivy"))));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn upgrades_per_address_are_limited_and_forwarded_for_counts_only_from_trusted_proxies() {
    let tune = |trusted: &'static str| {
        move |c: &mut chat_gateway::config::ServeConfig| {
            c.limits.connect_rate_per_ip = 1;
            c.limits.connect_burst_per_ip = 3;
            c.limits.trusted_proxies = trusted
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
        }
    };
    // No trusted proxy: the header is the client's to forge, so it is ignored.
    let gw = TestGateway::start_with(tune("")).await;
    for xff in ["1.1.1.1", "2.2.2.2", "3.3.3.3"] {
        assert_eq!(upgrade_status(&gw, Some(xff)).await, 400);
    }
    assert_eq!(upgrade_status(&gw, Some("4.4.4.4")).await, 429);
    let refused = reqwest::get(gw.http(&format!("/ws?token={}", user_token("ivy"))))
        .await
        .unwrap();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");

    // Behind a trusted proxy (loopback here): each forwarded client has its own bucket.
    let gw = TestGateway::start_with(tune("127.0.0.0/8")).await;
    for _ in 0..3 {
        assert_eq!(upgrade_status(&gw, Some("1.1.1.1")).await, 400);
    }
    assert_eq!(upgrade_status(&gw, Some("1.1.1.1")).await, 429);
    assert_eq!(
        upgrade_status(&gw, Some("9.9.9.9, 2.2.2.2")).await,
        400,
        "the right-most hop"
    );
    assert_eq!(
        upgrade_status(&gw, Some("2.2.2.2, 1.1.1.1")).await,
        429,
        "a forged left entry"
    );
    // The proxy's own connections (no header) are counted against its address, apart.
    Client::connect(&gw.ws_url(), &user_token("ivy"), Some("d"))
        .await
        .expect("the proxy itself");
}

/// A connection that sends nothing, and one that stops in the middle of its request head, are
/// closed by the server after the header timeout.
#[tokio::test]
async fn slow_or_incomplete_requests_are_cut_off() {
    let gw = TestGateway::start_with(|c| c.limits.header_timeout_seconds = 1).await;
    let silent = TcpStream::connect(gw.addr).await.unwrap();
    let mut partial = TcpStream::connect(gw.addr).await.unwrap();
    partial
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    for (what, mut tcp) in [("silent", silent), ("partial head", partial)] {
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "{what}: still open after 5 s");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{what}: {:?}",
            started.elapsed()
        );
    }
    // A complete request on time is served as before.
    assert_eq!(upgrade_status(&gw, None).await, 400);
}

/// `--max-connections` is taken atomically: of many upgrades at once, exactly the cap gets in.
#[tokio::test]
async fn concurrent_upgrades_never_pass_the_connection_cap() {
    let gw = TestGateway::start_with(|c| c.max_connections = 5).await;
    let url = gw.ws_url();
    let attempts: Vec<_> = (0..24)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                Client::connect(&url, &user_token(&format!("cap{i}")), Some("d")).await
            })
        })
        .collect();
    let mut open = Vec::new();
    let mut refused = 0;
    for a in attempts {
        match a.await.unwrap() {
            Ok(c) => open.push(c),
            Err(e) => {
                assert!(e.to_string().contains("503"), "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!((open.len(), refused), (5, 19));
    let status = get_json(&gw.admin_url("/admin/status")).await;
    assert_eq!(status["connections"], 5, "{status}");
    // A slot comes back when its connection ends.
    drop(open.pop());
    let back = wait_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        async || {
            Client::connect(&url, &user_token("late"), Some("d"))
                .await
                .is_ok()
        },
    )
    .await;
    assert!(back, "the freed slot was not given back");
}

/// Group size (`--max-group-members`, 413), members per request (1000, 400) and the SYNC page
/// (200, clamped): each refused or bounded with a clear answer, the connection kept.
#[tokio::test]
async fn group_member_and_page_limits_answer_clearly() {
    let gw = TestGateway::start_with(|c| {
        c.limits.max_group_members = 3;
        (c.rate_limit_per_second, c.rate_burst) = (100_000, 100_000);
        c.limits.user_send_rate = 0;
    })
    .await;
    let mut owner = gw.connect("gowner", "phone").await;
    let too_big = owner
        .request(8, json!({"name": "g", "members": ["a", "b", "c"]}))
        .await;
    assert_eq!(
        (too_big["type"].as_u64(), too_big["status"].as_u64()),
        (Some(500), Some(413)),
        "{too_big}"
    );
    assert!(
        too_big["params"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 3 members"),
        "{too_big}"
    );
    let group = owner.create_group("g", &["a"]).await;
    let added = owner
        .request(11, json!({"groupId": group, "members": ["b"]}))
        .await;
    assert_eq!(added["type"], 11, "{added}");
    let over = owner
        .request(11, json!({"groupId": group, "members": ["c", "d"]}))
        .await;
    assert_eq!(over["status"], 413, "{over}");
    let members: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let many = owner
        .request(11, json!({"groupId": group, "members": members}))
        .await;
    assert_eq!(many["status"], 400, "{many}");
    // SYNC pages are at most 200, whatever the limit asked.
    for i in 0..205 {
        owner
            .request(9, json!({"toMessageId": group, "message": format!("{i}")}))
            .await;
    }
    let page = owner
        .request(
            13,
            json!({"conversationId": format!("grp:{group}"), "afterSeq": 0, "limit": 100_000}),
        )
        .await;
    assert_eq!(
        page["params"]["messages"].as_array().unwrap().len(),
        200,
        "{}",
        page["params"]["hasMore"]
    );
    assert_eq!(page["params"]["hasMore"], true);
}
