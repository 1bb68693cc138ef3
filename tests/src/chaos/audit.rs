//! After the run: each user's final catch-up on a fresh connection (a new device: the server
//! pushes whatever is above the user's `ackedSeq`), and the database's rows of every message.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chat_client::{Client, Event, Options, RoundRobin};
use sqlx::{Connection, PgConnection, Row as _};

use super::check::Row;
use super::device::{content, Content};

/// How long a catch-up may stay silent before it is taken as done.
const QUIET: Duration = Duration::from_secs(2);
/// Longest catch-up of one user.
const CATCH_UP_MAX: Duration = Duration::from_secs(15);

/// What the final catch-up of `user` pushed, through the pods at `urls`.
pub async fn catch_up(urls: Vec<String>, user: &str) -> HashMap<String, Content> {
    let token = crate::fixtures::user_token(user);
    let options = Options::new(token).device("audit");
    let mut client = None;
    for _ in 0..50 {
        match Client::connect(RoundRobin::new(urls.clone()), options.clone()).await {
            Ok(c) => {
                client = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let mut client = client.unwrap_or_else(|| panic!("audit of {user}: cannot connect"));
    let mut got = HashMap::new();
    let started = Instant::now();
    while started.elapsed() < CATCH_UP_MAX {
        match tokio::time::timeout(QUIET, client.next_event()).await {
            Ok(Ok(Event::Message(env))) => {
                if let Some(c) = content(&env) {
                    got.insert(env.message_id.clone(), c);
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    client.close().await;
    got
}

/// Every message in the database: messageId → its row, `created_at` (ms since the epoch) turned
/// into an `Instant` by the pair `(origin, origin_wall)` taken together at the start.
pub async fn rows(url: &str, origin: Instant, origin_wall: SystemTime) -> HashMap<String, Row> {
    let mut db = PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to the chaos database: {e}"));
    let rows = sqlx::query(
        "SELECT message_id, conversation_id, seq, sender, body, created_at FROM messages",
    )
    .fetch_all(&mut db)
    .await
    .expect("read the messages");
    let origin_ms = origin_wall
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    rows.into_iter()
        .map(|r| {
            let created: i64 = r.get("created_at");
            let offset = Duration::from_millis((created - origin_ms).max(0) as u64);
            let row = Row {
                content: Content {
                    conversation_id: r.get("conversation_id"),
                    seq: r.get("seq"),
                    from: r.get("sender"),
                    body: r.get("body"),
                    recalled: false,
                },
                at: origin + offset,
            };
            (r.get("message_id"), row)
        })
        .collect()
}
