//! The route table's contract, checked on both implementations: in-process and Redis (a real
//! redis-server).

use std::sync::Arc;
use std::time::Duration;

use chat_gateway::delivery::DeviceRoute;
use chat_gateway::routes::memory::MemoryRoutes;
use chat_gateway::routes::redis::RedisRoutes;
use chat_gateway::routes::RouteTable;
use chat_tests::redis::{client, server, unique_prefix};
use chat_tests::{fixtures, TestGateway};
use redis::AsyncCommands;

async fn both(tag: &str) -> Vec<(&'static str, Arc<dyn RouteTable>)> {
    let redis = RedisRoutes::connect(&server().url(), &unique_prefix(tag))
        .await
        .expect("connect to redis");
    vec![
        ("memory", Arc::new(MemoryRoutes::new())),
        ("redis", Arc::new(redis)),
    ]
}

fn r(user: &str, device: &str, pod: &str, epoch: u64) -> DeviceRoute {
    DeviceRoute {
        user: user.into(),
        device: device.into(),
        pod: pod.into(),
        epoch,
    }
}

#[tokio::test]
async fn register_returns_the_replaced_route() {
    for (name, t) in both("replace").await {
        assert_eq!(
            t.register(&r("u", "d", "a", 1)).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            t.register(&r("u", "d", "b", 2)).await.unwrap(),
            Some(r("u", "d", "a", 1)),
            "{name}"
        );
        assert_eq!(
            t.lookup(&["u".into()]).await.unwrap(),
            vec![r("u", "d", "b", 2)],
            "{name}"
        );
    }
}

#[tokio::test]
async fn unregister_is_compare_and_delete_on_the_epoch() {
    for (name, t) in both("cas").await {
        t.register(&r("u", "d", "a", 1)).await.unwrap();
        t.register(&r("u", "d", "b", 2)).await.unwrap();
        // Pod a notices its old socket closed only now: the device's new route must survive.
        assert!(!t.unregister(&r("u", "d", "a", 1)).await.unwrap(), "{name}");
        assert_eq!(
            t.lookup(&["u".into()]).await.unwrap(),
            vec![r("u", "d", "b", 2)],
            "{name}"
        );
        assert!(t.unregister(&r("u", "d", "b", 2)).await.unwrap(), "{name}");
        assert!(t.lookup(&["u".into()]).await.unwrap().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn lookup_returns_every_device_of_every_user() {
    for (name, t) in both("lookup").await {
        t.register(&r("alice", "phone", "p0", 1)).await.unwrap();
        t.register(&r("alice", "web", "p1", 2)).await.unwrap();
        t.register(&r("bob", "phone", "p1", 3)).await.unwrap();
        t.register(&r("a:b", "x", "p2", 4)).await.unwrap();
        let mut got = t
            .lookup(&["alice".into(), "bob".into(), "carol".into(), "a:b".into()])
            .await
            .unwrap();
        got.sort();
        let mut want = vec![
            r("alice", "phone", "p0", 1),
            r("alice", "web", "p1", 2),
            r("bob", "phone", "p1", 3),
            r("a:b", "x", "p2", 4),
        ];
        want.sort();
        assert_eq!(got, want, "{name}");
    }
}

#[tokio::test]
async fn refresh_recreates_a_lost_route_but_never_overwrites_a_newer_one() {
    for (name, t) in both("refresh").await {
        t.register(&r("u", "d", "b", 2)).await.unwrap();
        t.refresh(&r("u", "d", "a", 1)).await.unwrap();
        assert_eq!(
            t.lookup(&["u".into()]).await.unwrap(),
            vec![r("u", "d", "b", 2)],
            "{name}: older connection's refresh"
        );
        t.unregister(&r("u", "d", "b", 2)).await.unwrap();
        t.refresh(&r("u", "d", "b", 2)).await.unwrap();
        assert_eq!(
            t.lookup(&["u".into()]).await.unwrap(),
            vec![r("u", "d", "b", 2)],
            "{name}: re-created"
        );
    }
}

#[tokio::test]
async fn pods_lists_recent_heartbeats() {
    for (name, t) in both("pods").await {
        assert!(
            t.heartbeat("p0").await.unwrap(),
            "{name}: a first beat is news"
        );
        assert!(t.heartbeat("p1").await.unwrap(), "{name}");
        assert!(
            !t.heartbeat("p0").await.unwrap(),
            "{name}: a known pod is not"
        );
        let mut pods = t.pods().await.unwrap();
        pods.sort();
        assert_eq!(pods, vec!["p0".to_string(), "p1".to_string()], "{name}");
        t.ping().await.unwrap();
    }
}

#[tokio::test]
async fn redis_keys_follow_the_documented_layout() {
    let prefix = unique_prefix("keys");
    let t = RedisRoutes::connect(&server().url(), &prefix)
        .await
        .unwrap();
    t.register(&r("alice", "phone", "pod-0", 7)).await.unwrap();
    t.heartbeat("pod-0").await.unwrap();
    let mut c = client().await;
    let value: String = c.get(format!("{prefix}:route:alice:phone")).await.unwrap();
    assert_eq!(value, "pod-0|7");
    let ttl: i64 = c.ttl(format!("{prefix}:route:alice:phone")).await.unwrap();
    assert!((1700..=1800).contains(&ttl), "route TTL {ttl}");
    let online: Vec<String> = c.smembers(format!("{prefix}:online:alice")).await.unwrap();
    assert_eq!(online, vec!["phone"]);
    let ttl: i64 = c.ttl(format!("{prefix}:online:alice")).await.unwrap();
    assert!((3500..=3600).contains(&ttl), "online TTL {ttl}");
    let held: Vec<String> = c.smembers(format!("{prefix}:pod:pod-0")).await.unwrap();
    assert_eq!(held, vec!["alice:phone"]);
    let seen: Option<f64> = c
        .zscore(format!("{prefix}:servers"), "pod-0")
        .await
        .unwrap();
    assert!(seen.is_some());
    t.unregister(&r("alice", "phone", "pod-0", 7))
        .await
        .unwrap();
    let exists: bool = c
        .exists(format!("{prefix}:route:alice:phone"))
        .await
        .unwrap();
    assert!(!exists);
    let held: Vec<String> = c.smembers(format!("{prefix}:pod:pod-0")).await.unwrap();
    assert!(held.is_empty());
}

#[tokio::test]
async fn routes_come_back_after_redis_loses_them() {
    let prefix = unique_prefix("flush");
    let t = RedisRoutes::connect(&server().url(), &prefix)
        .await
        .unwrap();
    t.register(&r("u", "d", "p0", 1)).await.unwrap();
    t.heartbeat("p0").await.unwrap();
    assert!(!t.heartbeat("p0").await.unwrap(), "the pod is known");
    let mut c = client().await;
    let keys: Vec<String> = c.keys(format!("{prefix}:*")).await.unwrap();
    let _: () = c.del(keys).await.unwrap();
    assert!(t.lookup(&["u".into()]).await.unwrap().is_empty());
    // The pod's next beat tells it the table lost it (it then registers its connections again).
    assert!(t.heartbeat("p0").await.unwrap());
    // The connection's next heartbeat refreshes its route, which re-creates it.
    t.refresh(&r("u", "d", "p0", 1)).await.unwrap();
    assert_eq!(
        t.lookup(&["u".into()]).await.unwrap(),
        vec![r("u", "d", "p0", 1)]
    );
}

#[tokio::test]
async fn a_gateway_with_redis_url_registers_routes_and_itself_in_redis() {
    let prefix = unique_prefix("gw");
    let mut gw = TestGateway::start_with(|cfg| {
        cfg.redis_url = Some(server().url());
        cfg.key_prefix = prefix.clone();
    })
    .await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    let mut c = client().await;
    let value: String = c.get(format!("{prefix}:route:alice:phone")).await.unwrap();
    assert!(value.starts_with("pod-0|"), "{value}");
    fixtures::exchange(&mut alice, &mut bob, "bob", "via redis routes").await;
    let ready = fixtures::status_of(&gw.admin_url("/readyz"), Duration::from_secs(5)).await;
    assert_eq!(ready, 200);
    drop(alice);
    // The closed connection's route is removed (compare-and-delete).
    let route = format!("{prefix}:route:alice:phone");
    let removed = fixtures::wait_until(
        Duration::from_millis(2500),
        Duration::from_millis(50),
        async || !c.exists::<_, bool>(&route).await.unwrap(),
    )
    .await;
    assert!(removed, "route of a closed connection still in redis");
    gw.stop().await;
}

#[tokio::test]
async fn redis_lookup_skips_online_devices_whose_route_expired() {
    let prefix = unique_prefix("expired");
    let t = RedisRoutes::connect(&server().url(), &prefix)
        .await
        .unwrap();
    t.register(&r("u:1", "phone", "pod-0", 1)).await.unwrap();
    t.register(&r("u:1", "web", "pod-1", 2)).await.unwrap();
    t.register(&r("v", "tab", "pod-2", 3)).await.unwrap();
    // The route's TTL ran out while the device is still in the user's online set.
    let mut c = client().await;
    let _: i64 = c.del(format!("{prefix}:route:u:1:phone")).await.unwrap();
    let mut got = t.lookup(&["v".into(), "u:1".into()]).await.unwrap();
    got.sort();
    let mut want = vec![r("u:1", "web", "pod-1", 2), r("v", "tab", "pod-2", 3)];
    want.sort();
    assert_eq!(got, want);
    // A value that is not `pod|epoch` (written by something else) is skipped, not an error.
    let _: () = c
        .set(format!("{prefix}:route:v:tab"), "garbage")
        .await
        .unwrap();
    assert_eq!(
        t.lookup(&["v".into(), "u:1".into()]).await.unwrap(),
        vec![r("u:1", "web", "pod-1", 2)]
    );
}
