//! The webhook's pending deliveries on both databases: leases keep a claimed delivery from other
//! pods until they run out, reschedules count attempts, and concurrent claims on PostgreSQL never
//! hand one delivery to two pods.

use std::collections::BTreeSet;

use chat_gateway::store::{postgres, sqlite};
use chat_gateway::webhook::queue::{NewDelivery, Queue, SqlQueue};
use chat_tests::TempDir;

fn deliveries(n: usize) -> Vec<NewDelivery> {
    (0..n)
        .map(|i| NewDelivery {
            message_id: format!("m{i:03}"),
            user_id: "bob".into(),
            body: format!("{{\"n\":{i}}}"),
            deadline: 1_000_000,
        })
        .collect()
}

async fn leases_and_reschedules(q: &dyn Queue) {
    q.enqueue(&deliveries(1), 1_000).await.unwrap();
    q.enqueue(&deliveries(1), 1_000).await.unwrap(); // a repeat changes nothing
    let a = q.claim("pod-a", 1_000, 5_000, 10).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].attempts, a[0].body.as_str()), (0, "{\"n\":0}"));
    assert!(
        q.claim("pod-b", 2_000, 6_000, 10).await.unwrap().is_empty(),
        "leased to pod-a"
    );
    let b = q.claim("pod-b", 5_000, 9_000, 10).await.unwrap();
    assert_eq!(b.len(), 1, "pod-a's lease ran out: pod-b finishes it");

    q.reschedule("m000", "bob", 20_000).await.unwrap();
    assert!(
        q.claim("pod-a", 10_000, 30_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due"
    );
    let again = q.claim("pod-a", 20_000, 30_000, 10).await.unwrap();
    assert_eq!(again[0].attempts, 1);

    q.release("pod-a").await.unwrap();
    assert_eq!(
        q.claim("pod-b", 20_001, 40_000, 10).await.unwrap().len(),
        1,
        "released"
    );
    q.finish("m000", "bob").await.unwrap();
    assert!(
        q.claim("pod-b", 99_000, 100_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "finished"
    );
}

#[tokio::test]
async fn sqlite_leases_and_reschedules() {
    let dir = TempDir::new("webhook-queue");
    sqlite::SqliteStore::migrate(dir.path()).await.unwrap();
    let q = SqlQueue::new(sqlite::side_pool(dir.path()).await.unwrap());
    leases_and_reschedules(&q).await;
}

#[tokio::test]
async fn postgres_leases_and_reschedules() {
    let url = chat_tests::postgres::database("webhook_queue").await;
    postgres::PgStore::migrate(&url).await.unwrap();
    let q = SqlQueue::new(postgres::side_pool(&url).await.unwrap());
    leases_and_reschedules(&q).await;
}

#[tokio::test]
async fn postgres_concurrent_claims_never_share_a_delivery() {
    let url = chat_tests::postgres::database("webhook_claims").await;
    postgres::PgStore::migrate(&url).await.unwrap();
    let a = SqlQueue::new(postgres::side_pool(&url).await.unwrap());
    let b = SqlQueue::new(postgres::side_pool(&url).await.unwrap());
    a.enqueue(&deliveries(300), 1_000).await.unwrap();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    loop {
        let (x, y) = tokio::join!(
            a.claim("pod-a", 2_000, 60_000, 40),
            b.claim("pod-b", 2_000, 60_000, 40)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        if x.is_empty() && y.is_empty() {
            break;
        }
        total += x.len() + y.len();
        seen.extend(x.into_iter().chain(y).map(|c| c.message_id));
    }
    assert_eq!(
        (total, seen.len()),
        (300, 300),
        "each delivery claimed once"
    );
}
