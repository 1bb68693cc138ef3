//! The durable record of failed fan-outs (`pending_fanouts`) on both databases: a row is leased
//! by the process that wrote it, renewed while it retries, swept by another once the lease runs
//! out; removal is by the writer's own key; concurrent sweeps on PostgreSQL never share a row.

use std::collections::BTreeSet;

use chat_gateway::routing::pending::{NewPending, PendingFanouts, SqlPending};
use chat_gateway::store::{postgres, sqlite};
use chat_tests::TempDir;

fn rows(n: usize, target: &str) -> Vec<NewPending> {
    (0..n)
        .map(|i| NewPending {
            message_id: format!("m{i:03}"),
            target: target.into(),
            message: format!("{{\"n\":{i}}}"),
            recipients: "{\"users\":[\"bob\"]}".into(),
        })
        .collect()
}

fn key(message_id: &str, target: &str) -> (String, String) {
    (message_id.to_owned(), target.to_owned())
}

async fn leases_renewals_and_sweeps(t: &dyn PendingFanouts) {
    assert!(!t.any_due(0).await.unwrap(), "empty");
    // pod-a's fan-out of m000 to pod-b failed: recorded, leased by pod-a until 11_000.
    t.record(&rows(1, "pod-b"), "pod-a/1", 1_000, 11_000)
        .await
        .unwrap();
    t.record(&rows(1, "pod-b"), "pod-a/1", 1_000, 11_000)
        .await
        .unwrap(); // a repeat changes nothing
    assert_eq!(t.count().await.unwrap(), 1);
    assert!(!t.any_due(5_000).await.unwrap(), "leased");
    assert!(t
        .claim("pod-c/1", 5_000, 15_000, 10)
        .await
        .unwrap()
        .is_empty());
    // pod-a renews while it retries: still not due when the first lease would have run out.
    t.renew("pod-a/1", 21_000).await.unwrap();
    assert!(!t.any_due(12_000).await.unwrap(), "renewed");
    // pod-a dies: no renewal, the lease runs out, pod-c claims the row with what it needs.
    assert!(t.any_due(21_000).await.unwrap());
    let c = t.claim("pod-c/1", 21_000, 31_000, 10).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(
        (
            c[0].message_id.as_str(),
            c[0].origin.as_str(),
            c[0].target.as_str(),
            c[0].message.as_str(),
            c[0].recipients.as_str(),
            c[0].created_at,
            c[0].attempts
        ),
        (
            "m000",
            "pod-a/1",
            "pod-b",
            "{\"n\":0}",
            "{\"users\":[\"bob\"]}",
            1_000,
            0
        )
    );
    assert!(
        t.claim("pod-d/1", 22_000, 32_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased to pod-c"
    );
    // pod-c could not reach the device: due again later, the attempt counted.
    t.reschedule(&c[0], 40_000).await.unwrap();
    assert!(!t.any_due(39_000).await.unwrap(), "not due yet");
    let again = t.claim("pod-d/1", 40_000, 50_000, 10).await.unwrap();
    assert_eq!(again[0].attempts, 1);
    // A graceful stop releases: due at once for the others.
    t.release("pod-d/1").await.unwrap();
    let released = t.claim("pod-c/1", 40_001, 50_000, 10).await.unwrap();
    assert_eq!(released.len(), 1, "released");
    t.finish(&released[0]).await.unwrap();
    assert_eq!(t.count().await.unwrap(), 0, "finished");

    // Removal by the writer's key only: another origin's row and another target stay.
    t.record(&rows(2, "pod-b"), "pod-a/1", 60_000, 70_000)
        .await
        .unwrap();
    t.record(&rows(1, "pod-b"), "pod-a/2", 60_000, 70_000)
        .await
        .unwrap();
    t.record(&rows(1, ""), "pod-a/1", 60_000, 70_000)
        .await
        .unwrap();
    assert_eq!(t.count().await.unwrap(), 4);
    t.remove("pod-a/1", &[key("m000", "pod-b"), key("m001", "pod-b")])
        .await
        .unwrap();
    let left = t.claim("pod-c/1", 70_000, 80_000, 10).await.unwrap();
    let left: BTreeSet<(String, String, String)> = left
        .into_iter()
        .map(|r| (r.message_id, r.origin, r.target))
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([
            ("m000".into(), "pod-a/1".into(), String::new()),
            ("m000".into(), "pod-a/2".into(), "pod-b".into()),
        ])
    );
}

#[tokio::test]
async fn sqlite_pending_fanouts_lease_renew_and_sweep() {
    let dir = TempDir::new("pending-fanouts");
    sqlite::SqliteStore::migrate(dir.path()).await.unwrap();
    let t = SqlPending::new(sqlite::side_pool(dir.path()).await.unwrap());
    leases_renewals_and_sweeps(&t).await;
}

#[tokio::test]
async fn postgres_pending_fanouts_lease_renew_and_sweep() {
    let url = chat_tests::postgres::database("pending_fanouts").await;
    postgres::PgStore::migrate(&url).await.unwrap();
    let t = SqlPending::new(postgres::side_pool(&url).await.unwrap());
    leases_renewals_and_sweeps(&t).await;
}

#[tokio::test]
async fn postgres_concurrent_sweeps_never_share_a_row() {
    let url = chat_tests::postgres::database("pending_claims").await;
    postgres::PgStore::migrate(&url).await.unwrap();
    let a = SqlPending::new(postgres::side_pool(&url).await.unwrap());
    let b = SqlPending::new(postgres::side_pool(&url).await.unwrap());
    a.record(&rows(300, "pod-x"), "pod-dead/1", 1_000, 1_500)
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    loop {
        let (x, y) = tokio::join!(
            a.claim("pod-a/1", 2_000, 60_000, 40),
            b.claim("pod-b/1", 2_000, 60_000, 40)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        if x.is_empty() && y.is_empty() {
            break;
        }
        total += x.len() + y.len();
        seen.extend(x.into_iter().chain(y).map(|c| c.message_id));
    }
    assert_eq!((total, seen.len()), (300, 300), "each row claimed once");
}
