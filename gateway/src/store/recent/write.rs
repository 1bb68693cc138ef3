//! The recent cache's write task: committed messages (and erasure's forgets) written to Redis
//! in pipelined batches, in the order they were queued.

use std::collections::BTreeMap;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::mpsc;

use super::{recent_key, RECENT_MAX_ENTRIES, RECENT_TTL_SECONDS, WRITE_BATCH};
use crate::model::{now_ms, StoredMessage};

/// KEYS: a conversation's recent set. ARGV: TTL seconds, most entries kept, oldest `createdAt`
/// (ms) kept, then seq/JSON pairs. Adds, trims from the oldest end (so what stays is still the
/// newest run of seqs), refreshes the TTL.
const WRITE: &str = r#"
for i = 4, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[2]) + 1))
local cutoff = tonumber(ARGV[3])
while true do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #oldest == 0 or cjson.decode(oldest[1]).createdAt >= cutoff then break end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"#;

/// What the write task does, in order.
// Put is every cached message, Replace and Forget are rare (recall, erasure): boxing the
// message would cost an allocation per message to save room in a queue of puts.
#[allow(clippy::large_enum_variant)]
pub(super) enum CacheWrite {
    /// Cache a committed message.
    Put(StoredMessage),
    /// Cache a recalled message's tombstone in place of what is cached at its seq (rare: the
    /// puts, every message, do not pay for the removal).
    Replace(StoredMessage),
    /// Drop a conversation's key (an erased user's messages are in it): its reads go to the
    /// database until it fills again.
    Forget(String),
}

/// Writes queued messages to Redis in pipelined batches until the cache is dropped.
pub(super) async fn write_loop(
    mut conn: ConnectionManager,
    prefix: String,
    mut queue: mpsc::Receiver<CacheWrite>,
) {
    let script = Script::new(WRITE);
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        // Runs of puts are pipelined together; a replace or a forget comes after the puts queued
        // before it.
        let mut puts = Vec::new();
        for item in batch.drain(..) {
            match item {
                CacheWrite::Put(m) => puts.push(m),
                CacheWrite::Replace(m) => {
                    flush(&mut conn, &script, &prefix, &mut puts).await;
                    let key = recent_key(&prefix, &m.conversation_id);
                    let removed: redis::RedisResult<()> = conn.zrembyscore(key, m.seq, m.seq).await;
                    if removed.is_ok() {
                        puts.push(m);
                        flush(&mut conn, &script, &prefix, &mut puts).await;
                    } else {
                        metrics::counter!("chat_recent_cache_errors_total", "op" => "replace")
                            .increment(1);
                        tracing::error!(conversation = %m.conversation_id, "recent cache: a recalled message could not be replaced; it may be served until its key expires");
                    }
                }
                CacheWrite::Forget(conversation) => {
                    flush(&mut conn, &script, &prefix, &mut puts).await;
                    let deleted: redis::RedisResult<()> =
                        conn.del(recent_key(&prefix, &conversation)).await;
                    if let Err(e) = deleted {
                        metrics::counter!("chat_recent_cache_errors_total", "op" => "forget")
                            .increment(1);
                        tracing::error!(error = %e, conversation, "recent cache: a key to forget is still there until it expires");
                    }
                }
            }
        }
        flush(&mut conn, &script, &prefix, &mut puts).await;
    }
}

async fn flush(
    conn: &mut ConnectionManager,
    script: &Script,
    prefix: &str,
    puts: &mut Vec<StoredMessage>,
) {
    if puts.is_empty() {
        return;
    }
    if let Err(e) = write(conn, script, prefix, puts).await {
        metrics::counter!("chat_recent_cache_errors_total", "op" => "write").increment(1);
        tracing::warn!(error = %e, messages = puts.len(), "recent cache write failed; reads of these messages go to the database");
    }
    puts.clear();
}

/// One pipeline: the script (loaded first, so a restarted Redis has it), then one invocation per
/// conversation.
async fn write(
    conn: &mut ConnectionManager,
    script: &Script,
    prefix: &str,
    batch: &[StoredMessage],
) -> redis::RedisResult<()> {
    let mut by_conversation: BTreeMap<&str, Vec<&StoredMessage>> = BTreeMap::new();
    for m in batch {
        by_conversation
            .entry(m.conversation_id.as_str())
            .or_default()
            .push(m);
    }
    let cutoff = now_ms() - RECENT_TTL_SECONDS as i64 * 1000;
    let mut pipe = redis::pipe();
    pipe.cmd("SCRIPT").arg("LOAD").arg(WRITE).ignore();
    for (conversation, messages) in by_conversation {
        let cmd = pipe
            .cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(1)
            .arg(recent_key(prefix, conversation))
            .arg(RECENT_TTL_SECONDS)
            .arg(RECENT_MAX_ENTRIES)
            .arg(cutoff);
        for m in messages {
            let json = serde_json::to_string(m).expect("a stored message serializes");
            cmd.arg(m.seq).arg(json);
        }
        cmd.ignore();
    }
    pipe.query_async::<()>(conn).await
}
