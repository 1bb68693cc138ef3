//! The recent-message cache (cluster mode): a [`Store`] decorator that keeps each conversation's
//! newest messages in Redis, so SYNC and catch-up pages skip the database's message scan.
//!
//! | key | value | TTL |
//! |---|---|---|
//! | `{p}:recent:{conversation}` | ZSET seq → message JSON ([`StoredMessage`]) | 7 days, refreshed by every write |
//!
//! **Writes** happen after the store committed, so the cache only ever holds committed messages,
//! and sequences come from the database alone. They are queued to a background task that
//! pipelines whatever is queued to Redis (one Lua script per conversation: add, trim to the
//! newest [`RECENT_MAX_ENTRIES`], drop entries older than [`RECENT_TTL_SECONDS`], refresh the
//! TTL): reply 0 never waits on Redis. A write that is late, lost (full queue, Redis down) or
//! trimmed leaves a gap, and a gap only ever sends a read to the database.
//!
//! **Reads** first ask the database where the reader stands ([`Store::position`], one indexed
//! lookup): 403 for a non-participant, the join point, the last seq. The page a database read
//! would return is then known exactly: seqs `from+1 ..= to` with `from = max(afterSeq, joined)`
//! and `to = min(from + limit, last)`, because sequences are gapless. The cache answers only when
//! it returns exactly those seqs, each once; otherwise — a gap, a flushed or restarted Redis, an
//! error — the whole page comes from the database. Never a mix.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;
use tokio::sync::mpsc;

use super::{
    Acked, Backlog, ConversationSummary, Erased, Group, GroupChange, NewMessage, Page, Position,
    ReadMark, Recalled, Sent, Store,
};
use crate::error::{Error, Result};
use crate::model::StoredMessage;

/// How long a conversation's cached messages live (seed 003: "recent messages, 7 days"). The key
/// expires this long after its last write; older entries in a busy conversation are dropped too.
pub const RECENT_TTL_SECONDS: u64 = 7 * 24 * 3600;
/// Most messages kept per conversation: five full SYNC pages (limit ≤ 200), enough for the
/// catch-up of a typical absence, while one key's memory stays bounded (≤ 1000 × message size).
pub const RECENT_MAX_ENTRIES: u64 = 1000;
/// Messages waiting to be written; past it new ones are not cached (their reads go to the
/// database) rather than holding replies back or growing memory while Redis is slow.
const WRITE_QUEUE: usize = 65_536;
/// Most messages written to Redis in one pipeline.
const WRITE_BATCH: usize = 512;
/// The longest a read waits on the cache before it reads the database instead: a slow or
/// unreachable Redis must not slow SYNC or catch-up down by more than this.
const READ_TIMEOUT: Duration = Duration::from_millis(250);
/// Reconnection while Redis is down: one quick attempt per request instead of the crate's
/// default (six, backing off for seconds), which every read would wait through.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
const CONNECT_RETRIES: usize = 1;

/// The key of a conversation's recent messages.
pub fn recent_key(prefix: &str, conversation_id: &str) -> String {
    format!("{prefix}:recent:{conversation_id}")
}

/// A [`Store`] with the Redis recent-message cache in front of its reads.
pub struct RecentCache {
    inner: Arc<dyn Store>,
    conn: ConnectionManager,
    prefix: String,
    writes: mpsc::Sender<CacheWrite>,
    /// Retention's last cutoff (ms): cached entries older than it are no longer in the
    /// database, and are not served.
    purged_before: AtomicI64,
}

impl RecentCache {
    /// Connects (with automatic reconnection) to `url` and starts the write task; every key is
    /// under `prefix`. The task ends when the cache is dropped.
    pub async fn connect(inner: Arc<dyn Store>, url: &str, prefix: &str) -> Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| Error::BadRequest(format!("--redis-url: {e}")))?;
        Self::connect_client(inner, client, prefix).await
    }

    /// [`RecentCache::connect`] with a client already built (TLS, credentials: `crate::tls`).
    pub async fn connect_client(
        inner: Arc<dyn Store>,
        client: redis::Client,
        prefix: &str,
    ) -> Result<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(CONNECT_RETRIES);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_loop(conn.clone(), prefix.to_owned(), queue));
        Ok(Self {
            inner,
            conn,
            prefix: prefix.to_owned(),
            writes,
            purged_before: AtomicI64::new(0),
        })
    }

    /// Queues a committed message for the cache; never waits.
    fn cache(&self, sent: &Sent) {
        if sent.duplicate {
            return;
        }
        if self
            .writes
            .try_send(CacheWrite::Put(sent.message.clone()))
            .is_err()
        {
            metrics::counter!("chat_recent_cache_errors_total", "op" => "queue").increment(1);
        }
    }

    /// Queues a group change's events (stored messages like any other) for the cache.
    fn cache_events(&self, group: &Group) {
        for event in &group.events {
            if self
                .writes
                .try_send(CacheWrite::Put(event.message.clone()))
                .is_err()
            {
                metrics::counter!("chat_recent_cache_errors_total", "op" => "queue").increment(1);
            }
        }
    }

    /// Puts a recalled message's tombstone in place of its cached entry: through the write
    /// queue, so that it lands after the message's own write if that is still queued. When the
    /// queue is full the conversation's key is deleted instead (its reads go to the database),
    /// so the cache never serves what was recalled.
    async fn replace(&self, tombstone: &StoredMessage) {
        if self
            .writes
            .try_send(CacheWrite::Replace(tombstone.clone()))
            .is_ok()
        {
            return;
        }
        metrics::counter!("chat_recent_cache_errors_total", "op" => "queue").increment(1);
        let mut conn = self.conn.clone();
        let key = recent_key(&self.prefix, &tombstone.conversation_id);
        let deleted = tokio::time::timeout(READ_TIMEOUT, conn.del::<_, ()>(key)).await;
        if !matches!(deleted, Ok(Ok(()))) {
            tracing::error!(
                conversation = %tombstone.conversation_id,
                "recent cache: a recalled message could not be replaced; it may be served until its key expires"
            );
        }
    }

    /// The messages with seqs `from+1 ..= to`, if the cache holds every one of them.
    async fn cached(
        &self,
        conversation: &str,
        from: i64,
        to: i64,
    ) -> Result<Option<Vec<StoredMessage>>> {
        let mut conn = self.conn.clone();
        let range = conn.zrangebyscore(recent_key(&self.prefix, conversation), from + 1, to);
        let entries: Vec<String> = tokio::time::timeout(READ_TIMEOUT, range)
            .await
            .map_err(|_| Error::Unavailable("recent cache: read timed out".into()))?
            .map_err(unavailable)?;
        let page = whole(&entries, conversation, from, to)?;
        let purged_before = self.purged_before.load(Ordering::Relaxed);
        Ok(page.filter(|messages| messages.iter().all(|m| m.created_at >= purged_before)))
    }
}

/// Redis did not answer: reads go to the database meanwhile.
fn unavailable(e: redis::RedisError) -> Error {
    Error::UnavailableFrom {
        context: "recent cache".into(),
        source: e.into(),
    }
}

/// The seqs a read returns, `from+1 ..= to` (none when `to <= from`): above the reader's join
/// point and `afterSeq`, at most `limit`, up to the last seq. Exact, because sequences are
/// gapless — the database would return these seqs, no others.
fn page_range(at: Position, after_seq: i64, limit: u32) -> (i64, i64) {
    let from = after_seq.max(at.joined_seq);
    let to = at.last_seq.min(from.saturating_add(i64::from(limit)));
    (from, to)
}

/// The cache's entries for `from+1 ..= to` as a page, if they are exactly those seqs of
/// `conversation`, each once (ZRANGEBYSCORE returns them in seq order).
fn whole(
    entries: &[String],
    conversation: &str,
    from: i64,
    to: i64,
) -> Result<Option<Vec<StoredMessage>>> {
    if entries.len() as i64 != to - from {
        return Ok(None);
    }
    let mut messages = Vec::with_capacity(entries.len());
    for (expected, entry) in (from + 1..).zip(entries) {
        let message: StoredMessage =
            serde_json::from_str(entry).map_err(|e| Error::InternalFrom {
                context: "recent cache entry".into(),
                source: e.into(),
            })?;
        if message.seq != expected || message.conversation_id != conversation {
            return Ok(None);
        }
        messages.push(message);
    }
    Ok(Some(messages))
}

#[async_trait]
impl Store for RecentCache {
    async fn upsert_user(&self, id: &str, name: &str) -> Result<()> {
        self.inner.upsert_user(id, name).await
    }

    async fn send_direct(&self, msg: NewMessage) -> Result<Sent> {
        let sent = self.inner.send_direct(msg).await?;
        self.cache(&sent);
        Ok(sent)
    }

    async fn send_group(&self, msg: NewMessage) -> Result<Sent> {
        let sent = self.inner.send_group(msg).await?;
        self.cache(&sent);
        Ok(sent)
    }

    async fn ack(&self, user: &str, message_id: &str) -> Result<Acked> {
        self.inner.ack(user, message_id).await
    }

    async fn create_group(&self, owner: &str, name: &str, members: &[String]) -> Result<Group> {
        let group = self.inner.create_group(owner, name, members).await?;
        self.cache_events(&group);
        Ok(group)
    }

    async fn change_group(&self, user: &str, group_id: &str, change: GroupChange) -> Result<Group> {
        let group = self.inner.change_group(user, group_id, change).await?;
        self.cache_events(&group);
        Ok(group)
    }

    async fn recall(&self, user: &str, message_id: &str, window: Duration) -> Result<Recalled> {
        let recalled = self.inner.recall(user, message_id, window).await?;
        if recalled.newly {
            self.replace(&recalled.message).await;
        }
        Ok(recalled)
    }

    async fn purge(&self, before_ms: i64, limit: u32) -> Result<u64> {
        self.purged_before.fetch_max(before_ms, Ordering::Relaxed);
        self.inner.purge(before_ms, limit).await
    }

    async fn erase_user(&self, user: &str) -> Result<Erased> {
        let erased = self.inner.erase_user(user).await?;
        for group in &erased.groups {
            self.cache_events(group);
        }
        for conversation in &erased.conversations {
            let forget = CacheWrite::Forget(conversation.clone());
            if self.writes.send(forget).await.is_err() {
                metrics::counter!("chat_recent_cache_errors_total", "op" => "forget").increment(1);
            }
        }
        Ok(erased)
    }

    async fn mark_read(&self, user: &str, conversation_id: &str, seq: i64) -> Result<ReadMark> {
        self.inner.mark_read(user, conversation_id, seq).await
    }

    /// Straight from the database: the backend API's reads are rare, and not a user's.
    async fn history(&self, conversation_id: &str, after_seq: i64, limit: u32) -> Result<Page> {
        self.inner.history(conversation_id, after_seq, limit).await
    }

    async fn read(
        &self,
        user: &str,
        conversation_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        let at = self.inner.position(user, conversation_id).await?;
        let (from, to) = page_range(at, after_seq, limit);
        if to <= from {
            return Ok(Page {
                messages: Vec::new(),
                has_more: at.last_seq > from,
            });
        }
        match self.cached(conversation_id, from, to).await {
            Ok(Some(messages)) => {
                metrics::counter!("chat_recent_cache_hits_total").increment(1);
                return Ok(Page {
                    messages,
                    has_more: at.last_seq > to,
                });
            }
            Ok(None) => metrics::counter!("chat_recent_cache_misses_total").increment(1),
            Err(e) => {
                metrics::counter!("chat_recent_cache_errors_total", "op" => "read").increment(1);
                tracing::warn!(error = %e, conversation.id = conversation_id, "recent cache read failed; reading from the database");
            }
        }
        self.inner
            .read(user, conversation_id, after_seq, limit)
            .await
    }

    async fn position(&self, user: &str, conversation_id: &str) -> Result<Position> {
        self.inner.position(user, conversation_id).await
    }

    async fn participants(&self, user: &str, conversation_id: &str) -> Result<Vec<String>> {
        self.inner.participants(user, conversation_id).await
    }

    async fn conversations(&self, user: &str) -> Result<Vec<ConversationSummary>> {
        self.inner.conversations(user).await
    }

    async fn block(&self, user: &str, other: &str, on: bool) -> Result<()> {
        self.inner.block(user, other, on).await
    }

    async fn blocked(&self, user: &str) -> Result<Vec<String>> {
        self.inner.blocked(user).await
    }

    async fn visible(&self, viewer: &str, users: &[String]) -> Result<Vec<String>> {
        self.inner.visible(viewer, users).await
    }

    async fn backlog(&self, user: &str) -> Result<Vec<Backlog>> {
        self.inner.backlog(user).await
    }

    /// The database only: the cache is an optimisation, and a pod without Redis still serves
    /// every read (the route table's own ping reports Redis).
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

mod write;

use write::{write_loop, CacheWrite};

#[cfg(test)]
mod tests;
