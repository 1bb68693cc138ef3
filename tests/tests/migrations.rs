//! Migrations stay backward compatible across a rollout (STYLE): an old pod that restarts after
//! a newer pod applied a newer migration starts on the newer schema, on both backends.

use chat_gateway::store::postgres::PgStore;
use chat_gateway::store::sqlite::SqliteStore;
use chat_tests::{postgres, TempDir};

/// An old pod restarting after a newer pod applied a newer migration must still start.
#[tokio::test]
async fn migrations_ignore_versions_applied_by_newer_pods() {
    chat_tests::init_logging();
    let url = postgres::database("migrate").await;
    PgStore::migrate(&url).await.unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990101000000, 'from a newer release', TRUE, '\\x00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    PgStore::migrate(&url)
        .await
        .expect("postgres: migrate again");
    PgStore::connect(&url).await.expect("postgres: open");

    let dir = TempDir::new("migrate");
    SqliteStore::migrate(dir.path()).await.unwrap();
    let file = format!("sqlite://{}", dir.path().join("chat.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&file)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990101000000, 'from a newer release', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    SqliteStore::migrate(dir.path())
        .await
        .expect("sqlite: migrate again");
    SqliteStore::open(dir.path()).await.expect("sqlite: open");
}
