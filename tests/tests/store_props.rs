//! The seq and cursor rules of the store as properties, on a real SQLite store (a temp data dir
//! per case): whatever mix of sends, acks (in any order, repeated) and READs two users make in
//! one conversation, `ackedSeq` is the contiguous prefix of what the user acked or sent and never
//! moves back; `readSeq` is the highest seq READ named (clamped to the last seq then) or the
//! user sent, and never moves back; the backlog starts exactly at `ackedSeq`; and SYNC pages of any size, walked from
//! any cursor, return each later seq exactly once, in order, with `hasMore` true until the last.

use std::collections::BTreeSet;

use chat_gateway::model::direct_conversation_id;
use chat_gateway::store::sqlite::SqliteStore;
use chat_gateway::store::Store;
use chat_tests::fixtures::new_message;
use chat_tests::TempDir;
use proptest::prelude::*;

const USERS: [&str; 2] = ["alice", "bob"];

#[derive(Debug, Clone)]
enum Step {
    /// User `0` or `1` sends to the other.
    Send(usize),
    /// User acks the `n`-th message sent so far (modulo their number).
    Ack(usize, usize),
    /// User READs up to this seq (possibly past the last).
    Read(usize, i64),
    /// User walks SYNC from this cursor with pages of this size.
    Sync(usize, i64, u32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..2).prop_map(Step::Send),
        3 => (0usize..2, any::<usize>()).prop_map(|(u, n)| Step::Ack(u, n)),
        1 => (0usize..2, 0i64..30).prop_map(|(u, s)| Step::Read(u, s)),
        1 => (0usize..2, 0i64..30, 1u32..8).prop_map(|(u, a, l)| Step::Sync(u, a, l)),
    ]
}

/// What each user has acked (or sent), and the marks seen last.
#[derive(Default)]
struct Model {
    /// Message ids by seq - 1.
    ids: Vec<String>,
    done: [BTreeSet<i64>; 2],
    read: [i64; 2],
    seen_acked: [i64; 2],
    seen_read: [i64; 2],
}

impl Model {
    fn contiguous(&self, user: usize) -> i64 {
        let mut k = 0;
        while self.done[user].contains(&(k + 1)) {
            k += 1;
        }
        k
    }
}

async fn check(store: &SqliteStore, m: &mut Model) -> Result<(), TestCaseError> {
    let last = m.ids.len() as i64;
    let conversation = direct_conversation_id("alice", "bob");
    for (u, user) in USERS.iter().enumerate() {
        let list = store.conversations(user).await.expect("conversations");
        let Some(c) = list.first() else {
            prop_assert_eq!(last, 0);
            continue;
        };
        prop_assert_eq!(c.last_seq, last);
        prop_assert!(
            c.acked_seq >= m.seen_acked[u],
            "{}'s ackedSeq moved back",
            user
        );
        prop_assert!(
            c.read_seq >= m.seen_read[u],
            "{}'s readSeq moved back",
            user
        );
        prop_assert_eq!(c.acked_seq, m.contiguous(u), "{}'s ackedSeq", user);
        prop_assert_eq!(c.read_seq, m.read[u], "{}'s readSeq", user);
        m.seen_acked[u] = c.acked_seq;
        m.seen_read[u] = c.read_seq;
        let backlog = store.backlog(user).await.expect("backlog");
        if c.acked_seq < last {
            prop_assert_eq!(backlog.len(), 1);
            prop_assert_eq!(&backlog[0].conversation_id, &conversation);
            prop_assert_eq!(
                (backlog[0].after_seq, backlog[0].last_seq),
                (c.acked_seq, last)
            );
        } else {
            prop_assert!(backlog.is_empty(), "a backlog with nothing above ackedSeq");
        }
    }
    Ok(())
}

async fn sync_walk(
    store: &SqliteStore,
    m: &Model,
    user: usize,
    from: i64,
    limit: u32,
) -> Result<(), TestCaseError> {
    let conversation = direct_conversation_id("alice", "bob");
    let last = m.ids.len() as i64;
    let mut cursor = from;
    let mut seqs = Vec::new();
    loop {
        let page = store.read(USERS[user], &conversation, cursor, limit).await;
        let Ok(page) = page else {
            prop_assert_eq!(last, 0, "SYNC refused in a conversation with messages");
            return Ok(());
        };
        prop_assert!(
            page.messages.len() <= limit as usize,
            "a page over its limit"
        );
        seqs.extend(page.messages.iter().map(|msg| msg.seq));
        match page.messages.last() {
            Some(msg) if page.has_more => cursor = msg.seq,
            _ => {
                prop_assert!(!page.has_more, "hasMore on an empty page");
                break;
            }
        }
    }
    let want: Vec<i64> = (from + 1..=last).collect();
    prop_assert_eq!(seqs, want, "SYNC from {} by {}", from, limit);
    Ok(())
}

async fn play(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let dir = TempDir::new("store_props");
    let store = SqliteStore::open(dir.path()).await.expect("open sqlite");
    let mut m = Model::default();
    for step in steps {
        match step {
            Step::Send(u) => {
                let body = format!("m{}", m.ids.len());
                let sent = store
                    .send_direct(new_message(USERS[u], USERS[1 - u], &body, None))
                    .await
                    .expect("send");
                prop_assert_eq!(sent.message.seq, m.ids.len() as i64 + 1, "seqs have no gap");
                m.ids.push(sent.message.message_id);
                m.done[u].insert(sent.message.seq);
                // A sender has read what it sent.
                m.read[u] = m.read[u].max(sent.message.seq);
            }
            Step::Ack(u, n) if !m.ids.is_empty() => {
                let i = n % m.ids.len();
                store.ack(USERS[u], &m.ids[i]).await.expect("ack");
                m.done[u].insert(i as i64 + 1);
            }
            Step::Ack(..) => {}
            Step::Read(u, seq) => {
                let r = store
                    .mark_read(USERS[u], &direct_conversation_id("alice", "bob"), seq)
                    .await;
                if m.ids.is_empty() {
                    prop_assert!(r.is_err(), "READ in a conversation that does not exist");
                } else {
                    let before = m.read[u];
                    m.read[u] = before.max(seq.min(m.ids.len() as i64));
                    let r = r.expect("read");
                    prop_assert_eq!(r.read_seq, m.read[u]);
                    prop_assert_eq!(r.moved, m.read[u] != before);
                }
            }
            Step::Sync(u, from, limit) => sync_walk(&store, &m, u, from, limit).await?,
        }
        check(&store, &mut m).await?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn acked_and_read_seqs_and_sync_pages_keep_their_rules(
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(play(steps))?;
    }
}
