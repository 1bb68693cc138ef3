//! The Redis recent-message cache in front of the PostgreSQL store (cluster mode), against a real
//! redis-server and a real PostgreSQL. A page served by the cache is told apart from one served
//! by the database by rewriting the cached copies' bodies ("cached N"): the database never holds
//! those bodies, so a page shows where it came from — and a mix would show both.

use std::sync::Arc;
use std::time::Duration;

use chat_gateway::model::{direct_conversation_id, now_ms};
use chat_gateway::store::postgres::PgStore;
use chat_gateway::store::recent::{
    recent_key, RecentCache, RECENT_MAX_ENTRIES, RECENT_TTL_SECONDS,
};
use chat_gateway::store::sqlite::SqliteStore;
use chat_gateway::store::{Page, Store};
use chat_tests::fixtures::{new_message, status};
use chat_tests::redis::unique_prefix;
use chat_tests::{postgres, TempDir, TestGateway};
use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use serde_json::{json, Value};

/// How long a test waits for the cache's background writes to land.
const SETTLE: Duration = Duration::from_secs(10);

/// A cached store and, beside it, the same database without the cache.
struct Cached {
    cache: Arc<dyn Store>,
    db: Arc<dyn Store>,
    keys: Keys,
}

impl Cached {
    /// A fresh PostgreSQL database behind a cache on the test binary's redis-server.
    async fn start(tag: &str) -> Self {
        Self::start_on(tag, &chat_tests::redis::server().url()).await
    }

    async fn start_on(tag: &str, redis_url: &str) -> Self {
        chat_tests::init_logging();
        let db: Arc<dyn Store> = Arc::new(
            PgStore::connect(&postgres::database(tag).await)
                .await
                .expect("connect to postgres"),
        );
        Self::over(db, tag, redis_url).await
    }

    /// A cache in front of `db`.
    async fn over(db: Arc<dyn Store>, tag: &str, redis_url: &str) -> Self {
        let prefix = unique_prefix(tag);
        let cache = RecentCache::connect(db.clone(), redis_url, &prefix)
            .await
            .expect("connect the recent cache");
        Self {
            cache: Arc::new(cache),
            db,
            keys: Keys::open(redis_url, prefix).await,
        }
    }

    /// Sends `n` 1:1 messages one after another through the cache; returns their conversation.
    async fn send(&self, from: &str, to: &str, n: usize) -> String {
        let mut conversation = String::new();
        for i in 0..n {
            let sent = self
                .cache
                .send_direct(new_message(from, to, &format!("{from}-{i}"), None))
                .await
                .expect("send");
            conversation = sent.message.conversation_id;
        }
        conversation
    }
}

/// The cache's keys of one prefix, looked at and changed with a plain Redis client.
struct Keys {
    prefix: String,
    redis: MultiplexedConnection,
}

impl Keys {
    async fn open(redis_url: &str, prefix: String) -> Self {
        let redis = redis::Client::open(redis_url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to redis");
        Self { prefix, redis }
    }

    fn key(&self, conversation: &str) -> String {
        recent_key(&self.prefix, conversation)
    }

    /// Waits until the conversation's cached seqs are exactly `seqs`.
    async fn settle(&mut self, conversation: &str, seqs: std::ops::RangeInclusive<i64>) {
        let want: Vec<i64> = seqs.collect();
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let got = self.cached_seqs(conversation).await;
            if got == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "cache of {conversation}: want seqs {want:?}, have {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn cached_seqs(&mut self, conversation: &str) -> Vec<i64> {
        let entries: Vec<(String, i64)> = self
            .redis
            .zrange_withscores(self.key(conversation), 0, -1)
            .await
            .unwrap();
        entries.into_iter().map(|(_, seq)| seq).collect()
    }

    /// The cached entries, parsed.
    async fn entries(&mut self, conversation: &str) -> Vec<Value> {
        let entries: Vec<String> = self
            .redis
            .zrange(self.key(conversation), 0, -1)
            .await
            .unwrap();
        entries
            .iter()
            .map(|e| serde_json::from_str(e).unwrap())
            .collect()
    }

    /// Rewrites every cached entry with `change`, keeping its seq.
    async fn rewrite(&mut self, conversation: &str, change: impl Fn(&mut Value)) {
        let key = self.key(conversation);
        let entries: Vec<(String, i64)> = self.redis.zrange_withscores(&key, 0, -1).await.unwrap();
        for (entry, seq) in entries {
            let mut v: Value = serde_json::from_str(&entry).unwrap();
            change(&mut v);
            let _: i64 = self.redis.zrem(&key, &entry).await.unwrap();
            let _: i64 = self.redis.zadd(&key, v.to_string(), seq).await.unwrap();
        }
    }

    /// Marks every cached copy: its body becomes `cached {seq}`.
    async fn mark(&mut self, conversation: &str) {
        self.rewrite(conversation, |v| {
            v["body"] = json!(format!("cached {}", v["seq"]));
        })
        .await;
    }

    async fn remove(&mut self, conversation: &str, seq: i64) {
        let _: i64 = self
            .redis
            .zrembyscore(self.key(conversation), seq, seq)
            .await
            .unwrap();
    }
}

fn bodies(page: &Page) -> Vec<String> {
    page.messages.iter().map(|m| m.body.clone()).collect()
}

fn seqs(page: &Page) -> Vec<i64> {
    page.messages.iter().map(|m| m.seq).collect()
}

fn marked(seqs: std::ops::RangeInclusive<i64>) -> Vec<String> {
    seqs.map(|s| format!("cached {s}")).collect()
}

#[tokio::test]
async fn the_cache_holds_what_was_committed_for_seven_days() {
    let mut c = Cached::start("match").await;
    let dm = c.send("alice", "bob", 4).await;
    let group = c
        .cache
        .create_group("alice", "g", &["bob".to_owned()])
        .await
        .unwrap();
    for i in 0..3 {
        let sent = c
            .cache
            .send_group(new_message("bob", &group.group_id, &format!("g{i}"), None))
            .await
            .unwrap();
        assert_eq!(
            sent.message.seq,
            i + 2,
            "after the group's creation (seq 1)"
        );
    }
    c.keys.settle(&dm, 1..=4).await;
    c.keys.settle(&group.conversation_id, 1..=4).await;
    for conversation in [&dm, &group.conversation_id] {
        let from_db = c.db.read("bob", conversation, 0, 100).await.unwrap();
        let cached = c.keys.entries(conversation).await;
        let stored: Vec<Value> = from_db
            .messages
            .iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect();
        assert_eq!(cached, stored, "{conversation}");
        let ttl: i64 = c.keys.redis.ttl(c.keys.key(conversation)).await.unwrap();
        let week = RECENT_TTL_SECONDS as i64;
        assert!(ttl > week - 60 && ttl <= week, "TTL {ttl} s");
    }
    // A resend (same clientMsgId) stores nothing and caches nothing new.
    let mut again = new_message("alice", "bob", "once", None);
    again.client_msg_id = Some("c-1".into());
    let first = c.cache.send_direct(again.clone()).await.unwrap();
    let second = c.cache.send_direct(again).await.unwrap();
    assert!(second.duplicate);
    assert_eq!(first.message.seq, 5);
    c.keys.settle(&dm, 1..=5).await;
}

#[tokio::test]
async fn reads_inside_the_cache_are_served_from_it() {
    let mut c = Cached::start("hit").await;
    let dm = c.send("alice", "bob", 5).await;
    c.keys.settle(&dm, 1..=5).await;
    c.keys.mark(&dm).await;

    let all = c.cache.read("bob", &dm, 0, 200).await.unwrap();
    assert_eq!(bodies(&all), marked(1..=5));
    assert!(!all.has_more);
    let first = c.cache.read("alice", &dm, 0, 2).await.unwrap();
    assert_eq!((bodies(&first), first.has_more), (marked(1..=2), true));
    let middle = c.cache.read("bob", &dm, 2, 2).await.unwrap();
    assert_eq!((bodies(&middle), middle.has_more), (marked(3..=4), true));
    let last = c.cache.read("bob", &dm, 3, 200).await.unwrap();
    assert_eq!((bodies(&last), last.has_more), (marked(4..=5), false));
    let past = c.cache.read("bob", &dm, 5, 200).await.unwrap();
    assert!(past.messages.is_empty() && !past.has_more);
    // The same reads without the cache: the same pages, the database's bodies.
    let db = c.db.read("bob", &dm, 2, 2).await.unwrap();
    assert_eq!((seqs(&db), db.has_more), (seqs(&middle), middle.has_more));
    assert_eq!(bodies(&db), ["alice-2", "alice-3"]);
}

#[tokio::test]
async fn a_range_partly_outside_the_cache_is_read_whole_from_the_database() {
    let mut c = Cached::start("miss").await;
    let dm = c.send("alice", "bob", 6).await;
    c.keys.settle(&dm, 1..=6).await;
    c.keys.mark(&dm).await;
    let db_bodies = |r: std::ops::RangeInclusive<i64>| -> Vec<String> {
        r.map(|s| format!("alice-{}", s - 1)).collect()
    };

    // The oldest entry trimmed away: a read reaching below the cache goes to the database whole.
    c.keys.remove(&dm, 1).await;
    let page = c.cache.read("bob", &dm, 0, 200).await.unwrap();
    assert_eq!(bodies(&page), db_bodies(1..=6));
    let inside = c.cache.read("bob", &dm, 1, 200).await.unwrap();
    assert_eq!(bodies(&inside), marked(2..=6));

    // A gap in the middle (a write not landed, or lost): only ranges around it are whole.
    c.keys.remove(&dm, 4).await;
    let across = c.cache.read("bob", &dm, 1, 200).await.unwrap();
    assert_eq!(bodies(&across), db_bodies(2..=6));
    let below = c.cache.read("bob", &dm, 1, 2).await.unwrap();
    assert_eq!((bodies(&below), below.has_more), (marked(2..=3), true));
    let above = c.cache.read("bob", &dm, 4, 200).await.unwrap();
    assert_eq!(bodies(&above), marked(5..=6));

    // A message committed but not cached (yet): above the cache's newest entry, also whole.
    c.db.send_direct(new_message("bob", "alice", "uncached", None))
        .await
        .unwrap();
    let newer = c.cache.read("alice", &dm, 4, 200).await.unwrap();
    assert_eq!(bodies(&newer), ["alice-4", "alice-5", "uncached"]);
}

#[tokio::test]
async fn participation_rules_hold_on_the_cache_path() {
    let mut c = Cached::start("members").await;
    let group = c
        .cache
        .create_group("alice", "g", &["bob".to_owned()])
        .await
        .unwrap();
    let gid = group.group_id.clone();
    let conv = group.conversation_id.clone();
    for i in 0..3 {
        c.cache
            .send_group(new_message("alice", &gid, &format!("early {i}"), None))
            .await
            .unwrap();
    }
    c.cache
        .add_members("alice", &gid, &["carol".to_owned()])
        .await
        .unwrap();
    for i in 0..2 {
        c.cache
            .send_group(new_message("alice", &gid, &format!("late {i}"), None))
            .await
            .unwrap();
    }
    // The group's creation (1), three messages (2–4), carol's addition (5), two more (6–7).
    c.keys.settle(&conv, 1..=7).await;
    c.keys.mark(&conv).await;

    // Carol joined at seq 4: through the cache she sees the event that added her and what
    // came after, whatever she asks for.
    let carol = c.cache.read("carol", &conv, 0, 200).await.unwrap();
    assert_eq!((bodies(&carol), carol.has_more), (marked(5..=7), false));
    let carol_one = c.cache.read("carol", &conv, 1, 1).await.unwrap();
    assert_eq!(
        (bodies(&carol_one), carol_one.has_more),
        (marked(5..=5), true)
    );
    let bob = c.cache.read("bob", &conv, 0, 200).await.unwrap();
    assert_eq!(bodies(&bob), marked(1..=7));

    // Outsiders: 403, as from the database. A leaver reads up to its own `left` (8), no
    // further.
    assert_eq!(status(c.cache.read("dave", &conv, 0, 200).await), 403);
    c.cache.leave_group("bob", &gid).await.unwrap();
    c.cache
        .send_group(new_message("alice", &gid, "after bob left", None))
        .await
        .unwrap();
    c.keys.settle(&conv, 1..=9).await;
    let bob = c.cache.read("bob", &conv, 0, 200).await.unwrap();
    assert_eq!(
        (seqs(&bob), bob.has_more),
        ((1..=8).collect::<Vec<_>>(), false)
    );
    let dm = c.send("alice", "bob", 2).await;
    c.keys.settle(&dm, 1..=2).await;
    assert_eq!(status(c.cache.read("eve", &dm, 0, 200).await), 403);
    assert_eq!(
        status(c.cache.read("eve", "dm:nobody:none", 0, 200).await),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trimming_keeps_the_newest_entries_and_drops_week_old_ones() {
    let mut c = Cached::start("trim").await;
    let total = RECENT_MAX_ENTRIES as i64 + 10;
    let sends = (0..total).map(|i| {
        c.cache
            .send_direct(new_message("alice", "bob", &format!("m{i}"), None))
    });
    for sent in join_all(sends).await {
        sent.expect("send");
    }
    let dm = direct_conversation_id("alice", "bob");
    c.keys.settle(&dm, 11..=total).await;
    c.keys.mark(&dm).await;
    let below = c.cache.read("bob", &dm, 0, 200).await.unwrap();
    assert_eq!(seqs(&below), (1..=200).collect::<Vec<_>>());
    assert!(below.messages.iter().all(|m| !m.body.starts_with("cached")));
    let inside = c.cache.read("bob", &dm, 10, 200).await.unwrap();
    assert_eq!(bodies(&inside), marked(11..=210));

    // Entries older than 7 days go at the next write, though the key is far from full.
    let dm = c.send("alice", "carol", 3).await;
    c.keys.settle(&dm, 1..=3).await;
    let week_ago = now_ms() - RECENT_TTL_SECONDS as i64 * 1000;
    c.keys
        .rewrite(&dm, |v| {
            if v["seq"].as_i64() < Some(3) {
                v["createdAt"] = json!(week_ago - 60_000);
            }
        })
        .await;
    c.send("carol", "alice", 1).await;
    c.keys.settle(&dm, 3..=4).await;
    let page = c.cache.read("carol", &dm, 0, 200).await.unwrap();
    assert_eq!(seqs(&page), [1, 2, 3, 4]);
}

/// The embedded store with `--redis-url` gets the cache too; SQLite answers `position` as
/// PostgreSQL does.
#[tokio::test]
async fn sqlite_behind_the_cache() {
    chat_tests::init_logging();
    let dir = TempDir::new("recent-sqlite");
    let db: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let mut c = Cached::over(db, "sqlite", &chat_tests::redis::server().url()).await;
    let dm = c.send("alice", "bob", 3).await;
    c.keys.settle(&dm, 1..=3).await;
    c.keys.mark(&dm).await;
    let page = c.cache.read("bob", &dm, 1, 200).await.unwrap();
    assert_eq!(bodies(&page), marked(2..=3));
    c.keys.remove(&dm, 2).await;
    let page = c.cache.read("bob", &dm, 0, 200).await.unwrap();
    assert_eq!(bodies(&page), ["alice-0", "alice-1", "alice-2"]);
    assert_eq!(status(c.cache.read("eve", &dm, 0, 200).await), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_or_restarted_redis_loses_nothing() {
    let mut redis = tokio::task::block_in_place(chat_tests::redis::RedisServer::start_own);
    let mut c = Cached::start_on("restart", &redis.url()).await;
    let dm = c.send("alice", "bob", 3).await;
    c.keys.settle(&dm, 1..=3).await;
    let whole = |page: &Page| (seqs(page), bodies(page));

    // Flushed: everything is still read, from the database.
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut c.keys.redis)
        .await
        .unwrap();
    let page = c.cache.read("bob", &dm, 0, 200).await.unwrap();
    assert_eq!(
        whole(&page),
        whole(&c.db.read("bob", &dm, 0, 200).await.unwrap())
    );
    // New messages fill it again from where they start.
    c.send("bob", "alice", 2).await;
    c.keys.settle(&dm, 4..=5).await;
    c.keys.mark(&dm).await;
    let page = c.cache.read("alice", &dm, 0, 200).await.unwrap();
    assert_eq!(seqs(&page), [1, 2, 3, 4, 5]);
    assert!(page.messages.iter().all(|m| !m.body.starts_with("cached")));
    let page = c.cache.read("alice", &dm, 3, 200).await.unwrap();
    assert_eq!(bodies(&page), marked(4..=5));

    // Redis down: sends and reads go on, promptly, from the database.
    tokio::task::block_in_place(|| redis.stop());
    let sent = tokio::time::timeout(
        Duration::from_secs(2),
        c.cache
            .send_direct(new_message("alice", "bob", "while down", None)),
    )
    .await
    .expect("a send does not wait for Redis")
    .unwrap();
    assert_eq!(sent.message.seq, 6);
    let page = tokio::time::timeout(Duration::from_secs(5), c.cache.read("bob", &dm, 0, 200))
        .await
        .expect("a read does not hang on Redis")
        .unwrap();
    assert_eq!(
        whole(&page),
        whole(&c.db.read("bob", &dm, 0, 200).await.unwrap())
    );

    // Restarted, empty: the cache reconnects and fills again; nothing was lost meanwhile.
    tokio::task::block_in_place(|| redis.start());
    c.keys = Keys::open(&redis.url(), c.keys.prefix.clone()).await;
    let deadline = tokio::time::Instant::now() + SETTLE;
    // The first write after the restart may meet the dead connection; later ones land.
    let last = loop {
        let seq = c
            .cache
            .send_direct(new_message("alice", "bob", "after restart", None))
            .await
            .unwrap()
            .message
            .seq;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if c.keys.cached_seqs(&dm).await.contains(&seq) {
            break seq;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache never refilled"
        );
    };
    let page = c.cache.read("bob", &dm, 0, 200).await.unwrap();
    assert_eq!(
        whole(&page),
        whole(&c.db.read("bob", &dm, 0, 200).await.unwrap())
    );
    assert_eq!(page.messages.len() as i64, last);
    c.keys.mark(&dm).await;
    let page = c.cache.read("bob", &dm, last - 1, 200).await.unwrap();
    assert_eq!(bodies(&page), marked(last..=last));
}

/// Gateway level: `Backends::from_config` with `--redis-url` and `--database-url` puts the cache
/// in front of the store; catch-up on connect and SYNC both read through it.
#[tokio::test]
async fn sync_and_catch_up_over_websockets_read_through_the_cache() {
    let database_url = postgres::database("recent_ws").await;
    let prefix = unique_prefix("ws");
    let mut gateway = TestGateway::start_with(|cfg| {
        cfg.store.database_url = Some(database_url);
        cfg.redis_url = Some(chat_tests::redis::server().url());
        cfg.key_prefix = prefix.clone();
    })
    .await;

    let mut alice = gateway.connect("alice", "a").await;
    for i in 0..3 {
        let r0 = alice.send_to("bob", &format!("hi {i}"), None).await;
        assert_eq!(r0["params"]["seq"], i + 1, "{r0}");
    }
    let dm = direct_conversation_id("alice", "bob");
    let mut check = Keys::open(&chat_tests::redis::server().url(), prefix).await;
    check.settle(&dm, 1..=3).await;
    check.mark(&dm).await;

    // Bob was offline: catch-up on connect pushes all three, read from the cache.
    let mut bob = gateway.connect("bob", "b").await;
    let mut caught_up = Vec::new();
    for _ in 0..3 {
        let env = bob.push(2).await;
        caught_up.push(env["msg"]["params"]["message"].as_str().unwrap().to_owned());
        bob.ack(&env).await;
    }
    assert_eq!(caught_up, marked(1..=3));

    // SYNC reads through the cache too; a range it lacks comes from the database.
    bob.send(json!({"type": 13, "params": {"conversationId": dm, "afterSeq": 1, "limit": 5}, "requestId": "s1"}))
        .await;
    let sync = bob.reply(14).await;
    let texts: Vec<&str> = sync["params"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg"]["params"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["cached 2", "cached 3"], "{sync}");
    assert_eq!(sync["params"]["hasMore"], false);
    check.remove(&dm, 1).await;
    bob.send(json!({"type": 13, "params": {"conversationId": dm, "afterSeq": 0, "limit": 5}, "requestId": "s2"}))
        .await;
    let sync = bob.reply(14).await;
    let texts: Vec<&str> = sync["params"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msg"]["params"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hi 0", "hi 1", "hi 2"], "{sync}");
    // Not a participant: still refused.
    let mut eve = gateway.connect("eve", "e").await;
    eve.send(
        json!({"type": 13, "params": {"conversationId": dm, "afterSeq": 0}, "requestId": "s3"}),
    )
    .await;
    assert_eq!(eve.reply(14).await["status"], 403);

    let metrics = reqwest::get(gateway.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "chat_recent_cache_hits_total",
        "chat_recent_cache_misses_total",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
    gateway.stop().await;
}
