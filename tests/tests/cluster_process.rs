//! Cluster failures with real processes: three `chat-gateway` processes on loopback sharing
//! PostgreSQL, Redis and the Pulsar test broker, real WebSocket clients, and the faults a
//! production cluster meets — a pod SIGKILLed mid-stream, Redis restarted empty, broker connections
//! dropped, a device reconnecting elsewhere before its old pod noticed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chat_tests::fixtures::wait_until;
use chat_tests::postgres::PostgresServer;
use chat_tests::process_cluster::{
    check_delivery, stop_all, stored_by_recipient, wait_delivered, welcome_epoch, Device,
    ProcessCluster, Sender, Traffic,
};
use chat_tests::redis::RedisServer;
use chat_tests::Closed;
use redis::AsyncCommands;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_gateway-under-test");

/// Senders here send as fast as replies come back: the per-connection and per-user rate limits
/// are not what these tests are about.
const UNLIMITED: [&str; 6] = [
    "--rate-limit-per-second",
    "100000",
    "--rate-burst",
    "100000",
    "--user-send-rate",
    "0",
];

/// Recipients and their devices.
const RECIPIENTS: [(&str, &[&str]); 4] = [
    ("rita", &["phone", "web"]),
    ("rob", &["phone", "web"]),
    ("ruth", &["phone"]),
    ("ron", &["phone"]),
];

fn recipient_ids() -> Vec<String> {
    RECIPIENTS.iter().map(|(u, _)| u.to_string()).collect()
}

/// Every recipient device, spread over pod-1 and pod-2 (reconnecting to the other one, then
/// pod-0), heartbeating every `heartbeat`; the senders of a test go to pod-0.
async fn recipients_on_pods_1_and_2(c: &ProcessCluster, heartbeat: Duration) -> Vec<Device> {
    let mut devices = Vec::new();
    for (n, (user, ds)) in RECIPIENTS.iter().enumerate() {
        for (k, d) in ds.iter().enumerate() {
            let first = 1 + (n + k) % 2;
            let urls = vec![c.ws_url(first), c.ws_url(3 - first), c.ws_url(0)];
            devices.push(Device::start(urls, user, d, heartbeat).await);
        }
    }
    devices
}

/// One sender on each of `pods` (`sam0`, `sam1`, …), sending round robin to the recipients, 5 ms
/// apart, until `traffic.stop`.
fn senders_until_stopped(c: &ProcessCluster, pods: &[usize], traffic: &Traffic) -> Vec<Sender> {
    pods.iter()
        .enumerate()
        .map(|(n, &pod)| {
            Sender::spawn(
                vec![c.ws_url(pod)],
                &format!("sam{n}"),
                recipient_ids(),
                100_000,
                Duration::from_millis(5),
                traffic,
            )
        })
        .collect()
}

/// Every device is still on its first connection.
fn assert_kept_their_connections(devices: &[Device]) {
    for d in devices {
        assert_eq!(
            d.log.lock().unwrap().connections.len(),
            1,
            "{}:{} kept its connection through the outage",
            d.user,
            d.device
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_pod_mid_stream_loses_no_acknowledged_message() {
    let started = Instant::now();
    let mut c = ProcessCluster::start(BIN, 3, &chat_tests::redis::server().url(), &UNLIMITED).await;
    // Every recipient device on pod-2; when it dies they move on to pod-0 or pod-1.
    let mut devices = Vec::new();
    for (user, ds) in RECIPIENTS {
        for (k, d) in ds.iter().enumerate() {
            let urls = if k == 0 {
                vec![c.ws_url(2), c.ws_url(0), c.ws_url(1)]
            } else {
                vec![c.ws_url(2), c.ws_url(1), c.ws_url(0)]
            };
            devices.push(Device::start(urls, user, d, Duration::from_secs(5)).await);
        }
    }
    // Four senders on pod-0 and pod-1 and one on pod-2 (it loses its connection with the pod
    // and resends what was unanswered, same clientMsgId, on another), 240 messages each, round
    // robin over the recipients.
    let traffic = Traffic::default();
    let senders: Vec<Sender> = (0..5)
        .map(|i| {
            let urls = match i {
                4 => vec![c.ws_url(2), c.ws_url(0), c.ws_url(1)],
                _ => vec![c.ws_url(i % 2)],
            };
            // Paced, so that every sender is still sending when pod-2 dies (unpaced, the others
            // could be all but done by the time pod-2's own, which delivers locally and so runs
            // much faster, has stored its first 60).
            let pace = Duration::from_millis(if i == 4 { 20 } else { 10 });
            Sender::spawn(
                urls,
                &format!("sam{i}"),
                recipient_ids(),
                240,
                pace,
                &traffic,
            )
        })
        .collect();
    traffic.wait_stored(300, Duration::from_secs(40)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while senders[4].stored() < 60 {
        assert!(Instant::now() < deadline, "pod-2's sender is stuck");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.pods[2].kill9().await;
    let at_kill = traffic.stored();

    let mut logs = Vec::new();
    for s in senders {
        logs.push(s.join().await);
    }
    let stored = stored_by_recipient(&logs);
    let total: usize = stored.values().map(Vec::len).sum();
    assert_eq!(total, 1200, "every send got its reply 0 in the end");
    assert!(
        !logs[4].lock().unwrap().errors.is_empty(),
        "the sender on pod-2 lost its connection"
    );
    assert!(
        at_kill < total - 200,
        "pod-2 died mid-stream ({at_kill} of {total} stored before)"
    );
    let left = wait_delivered(&stored, &devices, Duration::from_secs(30)).await;
    let devices = stop_all(devices).await;
    for (user, logs) in &devices {
        for log in logs {
            let conns = &log.lock().unwrap().connections;
            assert!(
                conns.len() >= 2 && conns[0] == "pod-2" && conns.last().unwrap() != "pod-2",
                "{user} moved from pod-2 to a live pod: {conns:?}"
            );
        }
    }
    assert_eq!(left, 0, "messages that got reply 0 never arrived");
    let summary = check_delivery(&c, 0, &stored, &devices).await;
    let errors: usize = logs.iter().map(|l| l.lock().unwrap().errors.len()).sum();
    // Pushed by pod-2 and again by a live pod: unacked when pod-2 died.
    let pushed_by = |on_pod_2: bool| -> BTreeSet<String> {
        let logs = devices.values().flatten();
        logs.flat_map(|log| {
            let log = log.lock().unwrap();
            let on = log.pushes.iter().filter(|p| (p.pod == "pod-2") == on_pod_2);
            on.map(|p| p.message_id.clone()).collect::<Vec<_>>()
        })
        .collect()
    };
    let again = pushed_by(true).intersection(&pushed_by(false)).count();
    eprintln!(
        "sigkill: {summary}; {at_kill} stored before the kill; {again} pushed again after the \
         move; {errors} send errors; {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_traffic_recovers_routes_and_loses_nothing() {
    let started = Instant::now();
    let mut redis = tokio::task::block_in_place(RedisServer::start_own);
    let c = ProcessCluster::start(BIN, 3, &redis.url(), &UNLIMITED).await;
    // Recipients on pod-1 and pod-2, heartbeating every 500 ms; senders on pod-0.
    let devices = recipients_on_pods_1_and_2(&c, Duration::from_millis(500)).await;
    let traffic = Traffic::default();
    let senders = senders_until_stopped(&c, &[0, 0], &traffic);
    traffic.wait_stored(100, Duration::from_secs(20)).await;

    tokio::task::block_in_place(|| redis.stop());
    let down = Instant::now();
    let before_outage = traffic.stored();
    // Every pod reports the lost route table at once, not a hang — and stays in the Service:
    // an outage every pod shares degrades them all alike (issue 17, "degrade, don't lie").
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for i in 0..3 {
        let r = http
            .get(c.pods[i].admin_url("/readyz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("pod-{i} /readyz with Redis down: {e}"));
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert!(
            status == 200 && body.contains("route table"),
            "pod-{i} /readyz with Redis down: {status} {body}"
        );
    }
    // Traffic goes on without Redis: sends are stored and answered (recipients catch up later).
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(down.elapsed())).await;
    let during_outage = traffic.stored() - before_outage;
    assert!(
        during_outage >= 20,
        "only {during_outage} sends answered in 3 s without Redis: sends stall on the route table"
    );
    tokio::task::block_in_place(|| redis.start());
    let outage = down.elapsed();

    // Ready again by itself, and the routes of every connected device are back (heartbeats).
    c.wait_all_ready("after Redis came back").await;
    let mut r = redis.client().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for d in &devices {
        let pod = d.log.lock().unwrap().connections.last().cloned().unwrap();
        let key = c.route_key(&d.user, &d.device);
        let mut route: Option<String> = None;
        let left = deadline.saturating_duration_since(Instant::now());
        let rebuilt = wait_until(left, Duration::from_millis(100), async || {
            route = r.get(&key).await.unwrap();
            route
                .as_deref()
                .is_some_and(|v| v.starts_with(&format!("{pod}|")))
        })
        .await;
        assert!(rebuilt, "route of {key} not rebuilt: {route:?}");
    }
    // From here on delivery is live again: what is sent now arrives without reconnecting.
    let marks: Vec<usize> = senders
        .iter()
        .map(|s| s.log.lock().unwrap().to.len())
        .collect();
    let resumed = traffic.stored();
    traffic
        .wait_stored(resumed + 100, Duration::from_secs(20))
        .await;
    traffic.stop.cancel();
    let mut logs = Vec::new();
    for s in senders {
        logs.push(s.join().await);
    }
    let stored = stored_by_recipient(&logs);
    let after: BTreeMap<String, Vec<_>> = {
        let fresh: BTreeSet<String> = logs
            .iter()
            .zip(&marks)
            .flat_map(|(log, mark)| {
                let log = log.lock().unwrap();
                log.replies
                    .iter()
                    .filter(|(cmid, _)| {
                        cmid.rsplit('-').next().unwrap().parse::<usize>().unwrap() >= *mark
                    })
                    .map(|(_, r)| r[0].message_id.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        stored
            .iter()
            .map(|(u, msgs)| {
                (
                    u.clone(),
                    msgs.iter()
                        .filter(|m| fresh.contains(&m.message_id))
                        .cloned()
                        .collect(),
                )
            })
            .collect()
    };
    assert_eq!(
        wait_delivered(&after, &devices, Duration::from_secs(15)).await,
        0,
        "messages sent after the routes were rebuilt arrive live"
    );
    assert_kept_their_connections(&devices);
    // What was stored during the outage reaches its recipients at the latest on reconnect.
    let live = wait_delivered(&stored, &devices, Duration::from_secs(3)).await;
    for d in &devices {
        d.reconnect();
    }
    assert_eq!(
        wait_delivered(&stored, &devices, Duration::from_secs(30)).await,
        0,
        "messages that got reply 0 never arrived, even after reconnecting"
    );
    let devices = stop_all(devices).await;
    let summary = check_delivery(&c, 0, &stored, &devices).await;
    let errors: usize = logs.iter().map(|l| l.lock().unwrap().errors.len()).sum();
    eprintln!(
        "redis restart: {summary}; outage {outage:?} with {during_outage} stored during it; \
         {live} caught up only on reconnect; {errors} send errors; {:?}",
        started.elapsed()
    );
}

/// PostgreSQL crashes (immediate shutdown: every connection cut, transactions in flight lost or
/// committed without their replies) and comes back on the same data. Every pod turns unready at
/// once, naming the store; sends meanwhile get ERROR 503 on connections that stay open; the pods
/// recover by themselves; and what got reply 0 — before, during the crash, after — is stored once
/// (a resend of an unanswered send finds the committed one), delivered, and gap-free in SYNC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashed_mid_traffic_recovers_by_itself_and_loses_nothing() {
    let started = Instant::now();
    let mut pg = tokio::task::block_in_place(PostgresServer::start_own);
    let redis = chat_tests::redis::server().url();
    let c = ProcessCluster::start_on(BIN, 3, &redis, &pg.url(), &UNLIMITED).await;
    let devices = recipients_on_pods_1_and_2(&c, Duration::from_secs(5)).await;
    // Senders on two pods: two writers have transactions in flight when the database goes.
    let traffic = Traffic::default();
    let senders = senders_until_stopped(&c, &[0, 2], &traffic);
    traffic.wait_stored(200, Duration::from_secs(20)).await;

    tokio::task::block_in_place(|| pg.crash());
    let down = Instant::now();
    let errors_at_crash: Vec<usize> = senders
        .iter()
        .map(|s| s.log.lock().unwrap().errors.len())
        .collect();
    // Every pod says why it is unready, within the kubelet's probe timeout (2 s).
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for i in 0..3 {
        let answer = http
            .get(c.pods[i].admin_url("/readyz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("pod-{i} /readyz with PostgreSQL down: {e}"));
        let status = answer.status().as_u16();
        let reason = answer.text().await.unwrap();
        assert_eq!(
            (status, reason.starts_with("store: ")),
            (503, true),
            "pod-{i} /readyz with PostgreSQL down: {status} {reason}"
        );
    }
    // Sends are refused with ERROR 503 while it is down; the senders keep their connections.
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(down.elapsed())).await;
    for (s, at_crash) in senders.iter().zip(&errors_at_crash) {
        let log = s.log.lock().unwrap();
        let during = &log.errors[*at_crash..];
        assert!(
            !during.is_empty(),
            "no send refused in {:?} with PostgreSQL down",
            down.elapsed()
        );
        for e in during {
            assert!(
                e.contains(r#""status":503"#) && e.contains(r#""type":500"#),
                "with PostgreSQL down a send got {e}, not ERROR 503"
            );
        }
    }
    tokio::task::block_in_place(|| pg.start());
    let outage = down.elapsed();

    // Ready again by itself; sends are answered again on the same connections.
    c.wait_all_ready("after PostgreSQL came back").await;
    let resumed = traffic.stored();
    traffic
        .wait_stored(resumed + 200, Duration::from_secs(30))
        .await;
    traffic.stop.cancel();
    let mut logs = Vec::new();
    for s in senders {
        logs.push(s.join().await);
    }
    for log in &logs {
        let log = log.lock().unwrap();
        let other: Vec<&String> = log
            .errors
            .iter()
            .filter(|e| !(e.contains(r#""status":503"#) && e.contains(r#""type":500"#)))
            .collect();
        assert!(
            other.is_empty(),
            "a sender met more than ERROR 503 (a lost connection, a missing reply): {other:?}"
        );
    }
    let stored = stored_by_recipient(&logs);
    assert_eq!(
        wait_delivered(&stored, &devices, Duration::from_secs(20)).await,
        0,
        "messages that got reply 0 did not all arrive live"
    );
    assert_kept_their_connections(&devices);
    let devices = stop_all(devices).await;
    let summary = check_delivery(&c, 0, &stored, &devices).await;
    let errors: usize = logs.iter().map(|l| l.lock().unwrap().errors.len()).sum();
    eprintln!(
        "postgres crash: {summary}; outage {outage:?} with {errors} sends refused; {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_connections_dropped_mid_traffic_lose_nothing() {
    let started = Instant::now();
    let c = ProcessCluster::start(BIN, 3, &chat_tests::redis::server().url(), &UNLIMITED).await;
    let devices = recipients_on_pods_1_and_2(&c, Duration::from_secs(5)).await;
    let traffic = Traffic::default();
    let senders: Vec<Sender> = (0..2)
        .map(|i| {
            Sender::spawn(
                vec![c.ws_url(0)],
                &format!("sam{i}"),
                recipient_ids(),
                250,
                Duration::from_millis(2),
                &traffic,
            )
        })
        .collect();
    for at in [100, 300] {
        traffic.wait_stored(at, Duration::from_secs(30)).await;
        assert!(c.broker.drop_all_connections() > 0);
    }
    let mut logs = Vec::new();
    for s in senders {
        logs.push(s.join().await);
    }
    let stored = stored_by_recipient(&logs);
    // Live through the rebuilt consumers, or on reconnect.
    let live = wait_delivered(&stored, &devices, Duration::from_secs(10)).await;
    if live > 0 {
        for d in &devices {
            d.reconnect();
        }
    }
    assert_eq!(
        wait_delivered(&stored, &devices, Duration::from_secs(30)).await,
        0,
        "messages that got reply 0 never arrived, even after reconnecting"
    );
    // Every pod's consumer came back.
    c.wait_all_ready("after the broker connections came back")
        .await;
    let devices = stop_all(devices).await;
    let summary = check_delivery(&c, 0, &stored, &devices).await;
    eprintln!(
        "broker drops: {summary}; {live} caught up only on reconnect; {:?}",
        started.elapsed()
    );
}

/// A device reconnects to pod-1 while pod-0 still holds its old socket (pod-0 is frozen with
/// SIGSTOP, so its unregister of the old connection runs only after pod-1 registered the new
/// one). The compare-and-delete on the epoch keeps the new route; the device keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_elsewhere_before_the_old_pod_notices_keeps_the_route() {
    let c = ProcessCluster::start(BIN, 3, &chat_tests::redis::server().url(), &[]).await;
    let mut r = chat_tests::redis::client().await;
    let pod_set = format!("{}:pod:pod-0", c.prefix);
    // phone: the old client stays open (pod-0 will kick it); web: the old client goes away
    // while pod-0 is frozen (pod-0 will find it closed).
    let mut old_phone = c.connect(0, "uma", "phone").await;
    let old_web = c.connect(0, "uma", "web").await;
    let mut bob = c.connect(2, "bob", "d").await;
    for d in ["phone", "web"] {
        let v: String = r.get(c.route_key("uma", d)).await.unwrap();
        assert!(v.starts_with("pod-0|"), "{d}: {v}");
    }

    c.pods[0].signal("STOP");
    drop(old_web);
    let mut phone = c.connect(1, "uma", "phone").await;
    let mut web = c.connect(1, "uma", "web").await;
    for (d, new) in [("phone", &phone), ("web", &web)] {
        let v: String = r.get(c.route_key("uma", d)).await.unwrap();
        assert_eq!(v, format!("pod-1|{}", welcome_epoch(&new.welcome)), "{d}");
    }
    for i in 0..3 {
        let sent = bob.send_to("uma", &format!("while frozen {i}"), None).await;
        for new in [&mut phone, &mut web] {
            let env = new.push(2).await;
            assert_eq!(env["messageId"], sent["params"]["messageId"]);
            new.ack(&env).await;
        }
    }

    // pod-0 wakes up: it kicks the old phone and finds the old web socket closed, and removes
    // both old routes — compare-and-delete, after pod-1's registration.
    c.pods[0].signal("CONT");
    assert_eq!(old_phone.reply(23).await["params"]["reason"], "replaced");
    assert_eq!(old_phone.closed().await, Closed::Code(4001));
    let mut left: Vec<String> = Vec::new();
    let unregistered = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            left = r.smembers(&pod_set).await.unwrap();
            left.is_empty()
        },
    )
    .await;
    assert!(
        unregistered,
        "pod-0 never unregistered the old connections: {left:?}"
    );
    for (d, new) in [("phone", &phone), ("web", &web)] {
        let v: Option<String> = r.get(c.route_key("uma", d)).await.unwrap();
        assert_eq!(
            v,
            Some(format!("pod-1|{}", welcome_epoch(&new.welcome))),
            "{d}: the old pod's late unregister must not remove the new route"
        );
    }
    let online: BTreeSet<String> = r
        .smembers(format!("{}:online:uma", c.prefix))
        .await
        .unwrap();
    assert_eq!(online, BTreeSet::from(["phone".into(), "web".into()]));
    for i in 0..3 {
        let sent = bob.send_to("uma", &format!("after {i}"), None).await;
        for new in [&mut phone, &mut web] {
            let env = new.push(2).await;
            assert_eq!(env["messageId"], sent["params"]["messageId"]);
            assert_eq!(env["msg"]["params"]["message"], json!(format!("after {i}")));
            new.ack(&env).await;
        }
    }
}

/// A pod dies without a word (SIGKILL): its users are reported offline to watchers on another
/// pod within 60 s, once the live pods find it silent and reap its routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_pods_users_go_offline_for_watchers_elsewhere_within_60_s() {
    let mut c = ProcessCluster::start(BIN, 2, &chat_tests::redis::server().url(), &[]).await;
    let mut alice = c.connect(0, "alice", "d").await;
    let mut bob = c.connect(1, "bob", "d").await;
    alice.send_to("bob", "hi", None).await;
    let env = bob.push(2).await;
    bob.ack(&env).await;
    let r = alice.request(26, json!({"users": ["bob"]})).await;
    assert_eq!(r["params"]["presence"][0]["online"], true, "{r}");

    let killed = Instant::now();
    c.pods[1].kill9().await;
    drop(bob);
    let off = loop {
        let left = Duration::from_secs(60).saturating_sub(killed.elapsed());
        let Some(v) = alice.quiet_for(left).await else {
            panic!("bob still online for alice 60 s after his pod died");
        };
        if v["msg"]["type"] == 27 {
            break v["msg"]["params"].clone();
        }
    };
    let took = killed.elapsed();
    assert_eq!(
        (off["userId"].as_str(), off["online"].as_bool()),
        (Some("bob"), Some(false)),
        "{off}"
    );
    assert!(off["lastSeen"].is_i64(), "{off}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    let mut r = chat_tests::redis::client().await;
    let route: Option<String> = r.get(c.route_key("bob", "d")).await.unwrap();
    assert_eq!(route, None, "the dead pod's route is reaped");
    let now = alice.request(26, json!({"users": ["bob"]})).await;
    assert_eq!(now["params"]["presence"][0]["online"], false, "{now}");
    eprintln!("dead pod's user offline after {took:?}");
}
