//! TLS and authentication to every backend, against real servers started with a CA made by the
//! test: PostgreSQL with `ssl=on` that refuses plain TCP and wants a password, a redis-server
//! that speaks only TLS and lets in one ACL user, and the Pulsar test broker on
//! `pulsar+ssl://` and `https://` wanting a token. The full message path runs over all three;
//! a wrong CA, password or token is a clear start-up error.

use std::path::Path;
use std::time::Duration;

use chat_gateway::config::ServeConfig;
use chat_gateway::server::{Backends, Running};
use chat_gateway::store::postgres::PgStore;
use chat_gateway::tls::BackendTlsArgs;
use chat_tests::cluster::{wait_ready, Pod, NAMESPACE, TENANT};
use chat_tests::fixtures::{self, test_config, TempDir};
use chat_tests::postgres::{OwnPostgresServer, PostgresServer};
use chat_tests::redis::{unique_prefix, RedisServer, RedisTls};
use chat_tests::tls::TestCa;
use pulsar_test_broker::{Broker, BrokerConfig, BrokerHandle};
use sqlx::Connection;

const REDIS_USER: &str = "chat";
const REDIS_PASSWORD: &str = "redis-secret";
const PULSAR_TOKEN: &str = "pulsar-token";

/// The three servers, all on one test CA.
struct Backing {
    ca: TestCa,
    pg: OwnPostgresServer,
    redis: RedisServer,
    broker: BrokerHandle,
}

impl Backing {
    async fn start() -> Self {
        chat_tests::init_logging();
        let ca = TestCa::new("backends");
        let pg = PostgresServer::start_tls(&ca);
        let redis = RedisServer::start_tls(RedisTls {
            cert_file: ca.cert_file(),
            key_file: ca.key_file(),
            ca_file: ca.ca_file(),
            user: REDIS_USER.into(),
            password: REDIS_PASSWORD.into(),
        });
        let config = BrokerConfig {
            tls: Some(ca.server_tls()),
            auth_token: Some(PULSAR_TOKEN.into()),
            ..Default::default()
        };
        let broker = Broker::start_with(config, "127.0.0.1:0", "127.0.0.1:0")
            .await
            .expect("start the TLS broker");
        provision(&broker, &ca.ca_file()).await;
        Self {
            ca,
            pg,
            redis,
            broker,
        }
    }

    /// `verify-full` against `ca_file`: the server's certificate must chain to it and name
    /// the host.
    fn database_url(&self, ca_file: &Path) -> String {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            self.pg.url(),
            ca_file.display()
        )
    }

    /// Every backend over TLS with the right CA and credentials.
    fn access(&self) -> BackendTlsArgs {
        BackendTlsArgs {
            redis_username: Some(REDIS_USER.into()),
            redis_password: Some(REDIS_PASSWORD.into()),
            redis_ca_file: Some(self.ca.ca_file()),
            pulsar_token: Some(PULSAR_TOKEN.into()),
            pulsar_token_file: None,
            pulsar_ca_file: Some(self.ca.ca_file()),
        }
    }

    fn config(&self, dir: &Path, pod: &str, prefix: &str) -> ServeConfig {
        let mut cfg = test_config(dir);
        cfg.pod_name = Some(pod.to_owned());
        cfg.key_prefix = prefix.to_owned();
        cfg.store.database_url = Some(self.database_url(&self.ca.ca_file()));
        cfg.redis_url = Some(self.redis.url());
        cfg.pulsar_url = Some(self.broker.service_url().to_owned());
        cfg.pulsar_admin_url = Some(self.broker.admin_url().to_owned());
        cfg.pulsar_tenant = TENANT.into();
        cfg.pulsar_namespace = NAMESPACE.into();
        cfg.backend_tls = self.access();
        cfg
    }
}

/// Creates the tenant and namespace through the broker's https admin API, with the token.
async fn provision(broker: &BrokerHandle, ca_file: &Path) {
    let http = chat_gateway::tls::http_client("ca", Some(ca_file), Duration::from_secs(10))
        .expect("admin client");
    for path in [
        format!("/admin/v2/tenants/{TENANT}"),
        format!("/admin/v2/namespaces/{TENANT}/{NAMESPACE}"),
    ] {
        let url = format!("{}{path}", broker.admin_url());
        let status = http
            .put(&url)
            .bearer_auth(PULSAR_TOKEN)
            .json(&serde_json::json!({}));
        let status = status.send().await.expect("broker admin").status();
        assert!(
            status.is_success() || status.as_u16() == 409,
            "PUT {url}: {status}"
        );
    }
}

/// Backends for `cfg`, or the start-up error's text.
async fn backends(cfg: &ServeConfig) -> Result<Backends, String> {
    tokio::time::timeout(Duration::from_secs(60), Backends::from_config(cfg))
        .await
        .expect("backends connect or fail within a minute")
        .map_err(|e| format!("{e:?} / {e}"))
}

#[tokio::test]
async fn messages_flow_over_tls_to_postgres_redis_and_pulsar() {
    let b = Backing::start().await;
    assert!(b.redis.url().starts_with("rediss://"));
    assert!(b.broker.service_url().starts_with("pulsar+ssl://"));
    assert!(b.broker.admin_url().starts_with("https://"));
    let dir = TempDir::new("tls-cluster");
    let prefix = unique_prefix("tls");
    let mut pods = Vec::new();
    for name in ["pod-0", "pod-1"] {
        let cfg = b.config(dir.path(), name, &prefix);
        let backends = backends(&cfg).await.expect("every backend over TLS");
        let running = Running::start(cfg, backends).await.expect("start pod");
        let pod = Pod {
            name: name.into(),
            running,
        };
        wait_ready(&pod).await;
        pods.push(pod);
    }

    let mut alice = fixtures::connect(&pods[0].ws_url(), "alice", "phone").await;
    let mut bob = fixtures::connect(&pods[1].ws_url(), "bob", "phone").await;
    let reply = alice
        .send_to("bob", "over three TLS links", Some("tls-1"))
        .await;
    assert_eq!(reply["status"], 200, "{reply}");
    let env = bob.push(2).await;
    assert_eq!(env["messageId"], reply["params"]["messageId"]);
    assert_eq!(env["msg"]["params"]["message"], "over three TLS links");
    bob.ack(&env).await;

    // Stored in PostgreSQL (read back over TLS), routed in Redis (bob's route is there),
    // forwarded through the broker (pod-1's topic carried it).
    let mut pg = sqlx::PgConnection::connect(&b.database_url(&b.ca.ca_file()))
        .await
        .expect("connect over TLS");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE message_id = $1")
        .bind(reply["params"]["messageId"].as_str().unwrap())
        .fetch_one(&mut pg)
        .await
        .expect("count the message");
    assert_eq!(stored, 1);
    let mut r = b.redis.client().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut r)
        .await
        .unwrap();
    let route = format!("{prefix}:route:bob:phone");
    assert!(keys.contains(&route), "{route} in {keys:?}");
    let topic = format!("persistent://{TENANT}/{NAMESPACE}/{prefix}-pod-pod-1");
    let stats = b.broker.topic_stats(&topic).expect("pod-1's topic");
    assert!(stats.messages >= 1, "{stats:?}");
}

#[tokio::test]
async fn migrate_runs_over_tls_and_plain_tcp_is_refused() {
    let b = Backing::start().await;
    PgStore::migrate(&b.database_url(&b.ca.ca_file()))
        .await
        .expect("migrate over verify-full");
    PgStore::migrate(&format!("{}?sslmode=require", b.pg.url()))
        .await
        .expect("migrate over sslmode=require (no CA check)");
    let plain = PgStore::migrate(&format!("{}?sslmode=disable", b.pg.url()))
        .await
        .unwrap_err()
        .to_string();
    assert!(plain.contains("no encryption"), "{plain}");
}

#[tokio::test]
async fn a_wrong_ca_password_or_token_is_a_clear_start_up_error() {
    let b = Backing::start().await;
    let other = TestCa::new("other");
    let dir = TempDir::new("tls-wrong");
    let prefix = unique_prefix("tls-wrong");
    let base = || b.config(dir.path(), "pod-x", &prefix);

    let mut cfg = base();
    cfg.store.database_url = Some(b.database_url(&other.ca_file()));
    let err = backends(&cfg)
        .await
        .err()
        .expect("PostgreSQL with another CA");
    assert!(
        err.contains("UnknownIssuer") || err.contains("certificate"),
        "{err}"
    );

    let mut cfg = base();
    cfg.store.database_url = Some(b.pg.url().replace(":pw", ":wrong") + "?sslmode=require");
    let err = backends(&cfg)
        .await
        .err()
        .expect("PostgreSQL with a wrong password");
    assert!(err.contains("password authentication failed"), "{err}");

    let mut cfg = base();
    cfg.backend_tls.redis_ca_file = Some(other.ca_file());
    let err = backends(&cfg).await.err().expect("Redis with another CA");
    assert!(
        err.contains("UnknownIssuer") || err.contains("certificate"),
        "{err}"
    );

    let mut cfg = base();
    cfg.backend_tls.redis_password = Some("wrong".into());
    let err = backends(&cfg)
        .await
        .err()
        .expect("Redis with a wrong password");
    assert!(err.contains("Password authentication failed"), "{err}");

    let mut cfg = base();
    cfg.backend_tls.pulsar_ca_file = Some(other.ca_file());
    let err = backends(&cfg).await.err().expect("Pulsar with another CA");
    assert!(err.contains("--pulsar-ca-file"), "{err}");

    for token in [Some("not-the-token"), None] {
        let mut cfg = base();
        cfg.backend_tls.pulsar_token = token.map(Into::into);
        let err = backends(&cfg)
            .await
            .err()
            .expect("Pulsar with a wrong token or none");
        assert!(err.contains("--pulsar-token"), "{token:?}: {err}");
    }
    assert_eq!(
        b.broker.connection_count(),
        0,
        "no refused client got past CONNECT"
    );
}

/// The broker itself: the `pulsar` client with the test CA gets in with the token only.
#[tokio::test]
async fn the_tls_broker_admits_only_its_token() {
    let b = Backing::start().await;
    let connect = |token: Option<&str>, ca: &TestCa| {
        let mut builder = pulsar::Pulsar::builder(b.broker.service_url(), pulsar::TokioExecutor)
            .with_certificate_chain(ca.ca_pem.clone().into_bytes());
        if let Some(token) = token {
            builder = builder.with_auth(pulsar::Authentication {
                name: "token".into(),
                data: token.as_bytes().to_vec(),
            });
        }
        builder.build()
    };
    assert!(
        connect(Some("wrong"), &b.ca).await.is_err(),
        "a wrong token"
    );
    assert!(connect(None, &b.ca).await.is_err(), "no token");
    assert!(
        connect(Some(PULSAR_TOKEN), &TestCa::new("stranger"))
            .await
            .is_err(),
        "the right token to a broker whose CA the client does not trust"
    );
    assert_eq!(b.broker.connection_count(), 0);
    let client = connect(Some(PULSAR_TOKEN), &b.ca)
        .await
        .expect("the token gets in");
    let mut producer = client
        .producer()
        .with_topic(format!("persistent://{TENANT}/{NAMESPACE}/tls-probe"))
        .build()
        .await
        .expect("a producer over TLS");
    producer
        .send_non_blocking(b"over TLS".to_vec())
        .await
        .unwrap()
        .await
        .expect("the broker's receipt");
}

#[tokio::test]
async fn the_broker_admin_api_wants_the_token_over_https() {
    let b = Backing::start().await;
    let http = chat_gateway::tls::http_client("ca", Some(&b.ca.ca_file()), Duration::from_secs(5))
        .unwrap();
    let url = format!("{}/admin/v2/tenants", b.broker.admin_url());
    let status = |r: reqwest::RequestBuilder| async move { r.send().await.unwrap().status() };
    assert_eq!(status(http.get(&url)).await, 401);
    assert_eq!(status(http.get(&url).bearer_auth("wrong")).await, 401);
    assert_eq!(status(http.get(&url).bearer_auth(PULSAR_TOKEN)).await, 200);
    let untrusting = reqwest::Client::new().get(&url).bearer_auth(PULSAR_TOKEN);
    let err = untrusting.send().await.unwrap_err();
    assert!(
        err.is_connect(),
        "the test CA is not a public root: {err:?}"
    );
}
