//! The route table's contract, checked on both implementations: in-process and Redis (a real
//! redis-server).

use std::sync::Arc;
use std::time::Duration;

use chat_gateway::delivery::DeviceRoute;
use chat_gateway::routes::memory::MemoryRoutes;
use chat_gateway::routes::redis::RedisRoutes;
use chat_gateway::routes::{Refreshed, Registered, Removed, RouteTable, UserPresence};
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
            Registered {
                replaced: None,
                first: true,
                watchers: Vec::new()
            },
            "{name}"
        );
        assert_eq!(
            t.register(&r("u", "d", "b", 2)).await.unwrap(),
            Registered {
                replaced: Some(r("u", "d", "a", 1)),
                first: false,
                watchers: Vec::new()
            },
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
        let late = t.unregister(&r("u", "d", "a", 1)).await.unwrap();
        assert_eq!(
            late,
            Removed {
                removed: false,
                last_seen: None,
                watchers: Vec::new()
            },
            "{name}"
        );
        assert_eq!(
            t.lookup(&["u".into()]).await.unwrap(),
            vec![r("u", "d", "b", 2)],
            "{name}"
        );
        let gone = t.unregister(&r("u", "d", "b", 2)).await.unwrap();
        assert!(gone.removed && gone.last_seen.is_some(), "{name}: {gone:?}");
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
    // An emptied table is no answer: "u offline" would be a lie (the fan-out waits instead).
    assert!(t.lookup(&["u".into()]).await.is_err());
    // The pod's next beat tells it the table lost it (it then registers its connections again).
    assert!(t.heartbeat("p0").await.unwrap());
    // The connection's next heartbeat refreshes its route, which re-creates it.
    t.refresh(&r("u", "d", "p0", 1)).await.unwrap();
    // Other pods may not have beaten yet: lookups wait for the rebuilt table to settle.
    assert!(t.lookup(&["u".into()]).await.is_err());
    tokio::time::sleep(chat_gateway::routes::redis::TABLE_SETTLE).await;
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

#[tokio::test]
async fn presence_turns_on_with_the_first_device_and_off_with_the_last() {
    for (name, t) in both("presence").await {
        let users = ["u".to_string(), "never".to_string()];
        let never = UserPresence {
            online: false,
            last_seen: None,
        };
        assert_eq!(
            t.presence(&users).await.unwrap(),
            vec![never, never],
            "{name}"
        );
        assert!(
            t.register(&r("u", "phone", "p0", 1)).await.unwrap().first,
            "{name}"
        );
        assert!(
            !t.register(&r("u", "web", "p1", 2)).await.unwrap().first,
            "{name}"
        );
        let online = UserPresence {
            online: true,
            last_seen: None,
        };
        assert_eq!(t.presence(&users).await.unwrap()[0], online, "{name}");
        let one = t.unregister(&r("u", "phone", "p0", 1)).await.unwrap();
        assert_eq!(one.last_seen, None, "{name}: a device is left");
        let before = chat_gateway::model::now_ms();
        let last = t.unregister(&r("u", "web", "p1", 2)).await.unwrap();
        let seen = last.last_seen.expect("the last device left");
        assert!(seen >= before, "{name}");
        assert_eq!(
            t.presence(&users).await.unwrap(),
            vec![
                UserPresence {
                    online: false,
                    last_seen: Some(seen)
                },
                never
            ],
            "{name}"
        );
        // A heartbeat's refresh re-creating the route brings the user back.
        assert_eq!(
            t.refresh(&r("u", "web", "p1", 3)).await.unwrap(),
            Refreshed {
                created: true,
                back_online: Some(vec![])
            },
            "{name}"
        );
        assert_eq!(
            t.refresh(&r("u", "web", "p1", 3)).await.unwrap(),
            Refreshed::default(),
            "{name}"
        );
        // A second device re-created while the user is online already: created, not back.
        assert_eq!(
            t.refresh(&r("u", "tab", "p1", 4)).await.unwrap(),
            Refreshed {
                created: true,
                back_online: None
            },
            "{name}"
        );
        assert_eq!(t.presence(&users).await.unwrap()[0], online, "{name}");
    }
}

#[tokio::test]
async fn reaping_a_pod_removes_its_routes_and_reports_users_it_held_last() {
    for (name, t) in both("reap").await {
        t.register(&r("a", "phone", "dead", 1)).await.unwrap();
        t.register(&r("b", "phone", "dead", 2)).await.unwrap();
        t.register(&r("b", "web", "live", 3)).await.unwrap();
        // c's device moved to the live pod; the dead pod's entry is stale.
        t.register(&r("c", "phone", "dead", 4)).await.unwrap();
        t.register(&r("c", "phone", "live", 5)).await.unwrap();
        // The live pod and the dead one watch a.
        let a = vec![("a".to_string(), 1)];
        t.watch("live", &a).await.unwrap();
        t.watch("dead", &a).await.unwrap();
        let left = t.reap("dead", None).await.unwrap();
        let users: Vec<&str> = left.iter().map(|g| g.user.as_str()).collect();
        assert_eq!(users, vec!["a"], "{name}: only a's last device was there");
        assert_eq!(left[0].watchers, vec!["live".to_string()], "{name}");
        let mut got = t
            .lookup(&["a".into(), "b".into(), "c".into()])
            .await
            .unwrap();
        got.sort();
        assert_eq!(
            got,
            vec![r("b", "web", "live", 3), r("c", "phone", "live", 5)],
            "{name}"
        );
        let a = t.presence(&["a".into()]).await.unwrap()[0];
        assert_eq!(a.last_seen, Some(left[0].last_seen), "{name}");
        // The dead pod's interest went with it.
        let back = t.register(&r("a", "phone", "live", 9)).await.unwrap();
        assert_eq!(back.watchers, vec!["live".to_string()], "{name}");
        t.unregister(&r("a", "phone", "live", 9)).await.unwrap();
        assert!(
            t.reap("dead", None).await.unwrap().is_empty(),
            "{name}: twice is once"
        );
    }
}

#[tokio::test]
async fn redis_reaps_only_pods_silent_for_long_and_forgets_them() {
    let prefix = unique_prefix("silent");
    let t = RedisRoutes::connect(&server().url(), &prefix)
        .await
        .unwrap();
    t.heartbeat("old").await.unwrap();
    t.register(&r("u", "d", "old", 1)).await.unwrap();
    let mut c = client().await;
    let _: () = c
        .zadd(
            format!("{prefix}:servers"),
            "old",
            chat_gateway::model::now_ms() - 60_000,
        )
        .await
        .unwrap();
    t.heartbeat("new").await.unwrap();
    let before = chat_gateway::model::now_ms() - 30_000;
    assert_eq!(
        t.silent_pods(before).await.unwrap(),
        vec!["old".to_string()]
    );
    let left = t.reap("old", Some(before)).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].user, "u");
    assert!(t.silent_pods(before).await.unwrap().is_empty());
    assert_eq!(t.pods().await.unwrap(), vec!["new".to_string()]);
    let seen: i64 = c.get(format!("{prefix}:seen:u")).await.unwrap();
    assert_eq!(seen, left[0].last_seen);
    // The pod comes back: its first beat is news again, so it registers its connections.
    assert!(t.heartbeat("old").await.unwrap());
}

#[tokio::test]
async fn changes_name_the_pods_that_watch_and_counts_survive_reordering() {
    for (name, t) in both("watch").await {
        let u = |d: i64| vec![("u".to_string(), d)];
        t.watch("p1", &u(1)).await.unwrap();
        // p2's -1 overtook its +1: never counted below what it said.
        t.watch("p2", &u(-1)).await.unwrap();
        t.watch("p2", &u(1)).await.unwrap();
        let first = t.register(&r("u", "d", "p0", 1)).await.unwrap();
        let mut watchers = first.watchers;
        watchers.sort();
        assert_eq!(watchers, vec!["p1".to_string(), "p2".to_string()], "{name}");
        t.watch("p1", &u(-1)).await.unwrap();
        let last = t.unregister(&r("u", "d", "p0", 1)).await.unwrap();
        assert!(last.last_seen.is_some(), "{name}");
        assert_eq!(last.watchers, vec!["p2".to_string()], "{name}");
    }
}
