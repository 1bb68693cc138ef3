//! Command line and environment: one typed config struct per command, every flag with an env var.
//!
//! Defaults give the embedded mode: no flags at all runs a complete server on SQLite in
//! `./chat-data` with an in-process route table and bus.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "chat-gateway",
    version,
    about = "WebSocket chat gateway: durable, acked delivery; embedded or clustered"
)]
/// The `chat-gateway` command line: a subcommand, each with its own typed settings.
pub struct Cli {
    /// The subcommand, with its settings.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up; boxing buys nothing
/// The gateway binary's subcommands; all three find the database and the signing secret the same
/// way ([`StoreArgs`]).
pub enum Command {
    /// Run the gateway (public WebSocket/HTTP port and admin port).
    Serve(ServeConfig),
    /// Print a JWT signed with the configured secret.
    Token(TokenArgs),
    /// Apply database migrations and exit.
    Migrate(StoreArgs),
}

/// Where data and the signing secret live; shared by every command.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the SQLite database and the generated JWT secret (embedded mode).
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./chat-data")]
    pub data_dir: PathBuf,

    /// PostgreSQL URL; without it messages are stored in SQLite in the data dir. TLS as libpq spells it: `?sslmode=verify-full&sslrootcert=/path/ca.pem` (or `PGSSLMODE`, `PGSSLROOTCERT`).
    #[arg(long, env = "CHAT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// HS256 secret for client and service tokens; without it one is generated into the data dir on first start and reused.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// The HS256 secret --jwt-secret replaced: user tokens signed with it are still accepted (never issued), so a rotation logs nobody out. Drop it once the longest token lifetime has passed.
    #[arg(long, env = "CHAT_JWT_PREVIOUS_SECRET", hide_env_values = true)]
    pub jwt_previous_secret: Option<String>,

    /// HS256 secret of service tokens (`role: "service"`, the HTTP API's). When set, service tokens must be signed with it, it signs nothing else, and a user-key token claiming the service role is refused. `chat-gateway token --service` signs with it.
    #[arg(long, env = "CHAT_SERVICE_JWT_SECRET", hide_env_values = true)]
    pub service_jwt_secret: Option<String>,

    /// The least time in ms between the starts of two of this process's store transactions (group commit under load: fewer, fuller transactions cost far less CPU; a write waits at most this long, and not at all after a quiet spell). 0 starts the next as soon as the last committed. Default: 15 on PostgreSQL (each transaction costs the database ~2 ms of CPU), 1 on SQLite (each costs a WAL write and an fsync).
    #[arg(long, env = "CHAT_STORE_COMMIT_INTERVAL_MS", value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub store_commit_interval_ms: Option<u64>,
}

/// What a second connection of an already connected (user, device) does (`--duplicate-login`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DuplicateLogin {
    /// The new connection wins; the old one gets KICKED (23, reason "replaced") and closes 4001.
    Replace,
    /// The old connection stays; the new upgrade is refused with HTTP 409.
    Reject,
}

/// Everything `serve` runs by: addresses, backends, timeouts and limits. Defaults are the embedded
/// mode; each flag has a `CHAT_*` variable, which is how the operator configures pods.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Public address: WebSocket upgrades, the push/kick HTTP API and the browser page.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Admin address: health, readiness, metrics, status and drain. Never expose it publicly.
    #[arg(long, env = "CHAT_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// Where messages and the signing secret live.
    #[command(flatten)]
    pub store: StoreArgs,

    /// Redis URL for the shared route table and recent-message cache (cluster mode); `rediss://` for TLS.
    #[arg(long, env = "CHAT_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Pulsar service URL for forwarding between pods (cluster mode); `pulsar+ssl://` for TLS.
    #[arg(long, env = "CHAT_PULSAR_URL")]
    pub pulsar_url: Option<String>,

    /// Pulsar admin REST URL (`http://` or `https://`), used to create this pod's topic when the operator has not.
    #[arg(long, env = "CHAT_PULSAR_ADMIN_URL")]
    pub pulsar_admin_url: Option<String>,

    /// Redis and Pulsar credentials and CA files (TLS itself is the URL's scheme: `rediss://`, `pulsar+ssl://`, `https://`).
    #[command(flatten)]
    pub backend_tls: crate::tls::BackendTlsArgs,

    /// Pulsar tenant of the pods' topics.
    #[arg(long, env = "CHAT_PULSAR_TENANT", default_value = "public")]
    pub pulsar_tenant: String,

    /// Pulsar namespace of the pods' topics.
    #[arg(long, env = "CHAT_PULSAR_NAMESPACE", default_value = "default")]
    pub pulsar_namespace: String,

    /// This pod's name: its route-table identity and inbox topic (default: the hostname).
    #[arg(long, env = "CHAT_POD_NAME")]
    pub pod_name: Option<String>,

    /// Prefix of every Redis key and Pulsar topic of this cluster.
    #[arg(long, env = "CHAT_KEY_PREFIX", default_value = "chat")]
    pub key_prefix: String,

    /// Serve `POST /dev/login` so the browser page can get tokens. Development only.
    /// Takes an optional boolean (`--dev-login=false`; `CHAT_DEV_LOGIN=1`, `yes`, `on`, `true`).
    #[arg(
        long,
        env = "CHAT_DEV_LOGIN",
        default_value = "false",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new()
    )]
    pub dev_login: bool,

    /// Heartbeat interval announced in WELCOME; no frame for 3 intervals closes with 4000.
    #[arg(long, env = "CHAT_HEARTBEAT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat_seconds: u64,

    /// Session lifetime announced in WELCOME; without RENEW (21) before it ends the connection closes with 4002.
    #[arg(long, env = "CHAT_TIMELIFE_SECONDS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timelife_seconds: u64,

    /// Time a drain (SIGTERM or POST /admin/drain without a deadline) gives clients to move before close 1012.
    #[arg(long, env = "CHAT_DRAIN_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub drain_seconds: u64,

    /// Delete messages (and the uploads they carried) older than this many days, checked hourly; without it messages are kept forever.
    #[arg(long, env = "CHAT_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub retention_days: Option<u32>,

    /// How long after sending a sender may still RECALL (32) a message.
    #[arg(long, env = "CHAT_RECALL_SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub recall_seconds: u64,

    /// How long a delivered message waits for its ACK (15) before the one retry.
    #[arg(long, env = "CHAT_ACK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub ack_timeout_ms: u64,

    /// Most delivered-but-unacked messages per connection; more wait in the store until acks free room.
    #[arg(long, env = "CHAT_ACK_WINDOW", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub ack_window: u32,

    /// What a second connection of the same (user, device) does.
    #[arg(long, env = "CHAT_DUPLICATE_LOGIN", value_enum, default_value_t = DuplicateLogin::Replace)]
    pub duplicate_login: DuplicateLogin,

    /// Most WebSocket connections this process holds (a slot is taken atomically at the upgrade); further upgrades get HTTP 503.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,

    /// Sustained frames per second one connection may send; above it requests get ERROR 429.
    #[arg(long, env = "CHAT_RATE_LIMIT", default_value_t = 100)]
    pub rate_limit_per_second: u32,

    /// Burst of frames above the sustained rate one connection may send.
    #[arg(long, env = "CHAT_RATE_BURST", default_value_t = 200)]
    pub rate_burst: u32,

    /// Identity-provider keys, allowed browser origins, the admin token.
    #[command(flatten)]
    pub auth: crate::auth::AuthArgs,

    /// Uploads: size limit, object store, signed URLs, unsent-upload lifetime.
    #[command(flatten)]
    pub files: crate::files::FileArgs,

    /// What one client may take: per-user and per-address rates, group size, slow clients.
    #[command(flatten)]
    pub limits: crate::limits::LimitArgs,

    /// The offline-push webhook (off unless `--offline-webhook-url` is set).
    #[command(flatten)]
    pub webhook: WebhookArgs,

    /// Log as JSON lines instead of human-readable text (optional boolean, as `--dev-login`).
    #[arg(
        long,
        env = "CHAT_LOG_JSON",
        default_value = "false",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new()
    )]
    pub log_json: bool,
}

impl ServeConfig {
    /// A config with every default, as `chat-gateway serve` with no flags; tests start from it.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let Command::Serve(mut cfg) = Cli::parse_from(["chat-gateway", "serve"]).command else {
            unreachable!("`serve` parses to Command::Serve")
        };
        cfg.store.data_dir = data_dir.into();
        cfg
    }

    /// `--heartbeat-seconds`: the interval WELCOME announces; 3 of them without a frame close the
    /// connection.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_seconds)
    }

    /// `--timelife-seconds`: how long a session lives without RENEW.
    pub fn timelife(&self) -> Duration {
        Duration::from_secs(self.timelife_seconds)
    }

    /// `--ack-timeout-ms`: how long a push waits for its ACK before the one retry.
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }

    /// `--offline-webhook-timeout-ms`: how long one webhook POST may take.
    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_millis(self.webhook.offline_webhook_timeout_ms)
    }

    /// The pod name, defaulting to the hostname, then to "gateway".
    pub fn pod(&self) -> String {
        self.pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|s| s.trim().to_owned())
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "gateway".to_owned())
    }
}

/// The offline-push webhook (DESIGN §11): where a stored message's recipient with no online
/// device (or none that acked it after the retry) is announced, signed, at least once.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// http:// or https:// URL the gateway POSTs `message.offline` events to; unset: no offline push.
    #[arg(long, env = "CHAT_OFFLINE_WEBHOOK_URL")]
    pub offline_webhook_url: Option<String>,

    /// PEM file of a CA to trust, besides the public roots, for an https:// webhook.
    #[arg(long, env = "CHAT_OFFLINE_WEBHOOK_CA_FILE")]
    pub offline_webhook_ca_file: Option<PathBuf>,

    /// HMAC-SHA256 key of the `X-Chat-Signature` header (`sha256=<hex>` of the exact body).
    #[arg(long, env = "CHAT_OFFLINE_WEBHOOK_SECRET", hide_env_values = true)]
    pub offline_webhook_secret: Option<String>,

    /// How long a delivery is retried (exponential backoff with jitter on errors, timeouts and 5xx) before it is dropped and counted failed.
    #[arg(long, env = "CHAT_OFFLINE_WEBHOOK_RETRY_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub offline_webhook_retry_seconds: u64,

    /// How long one POST may take before it counts as failed and is retried.
    #[arg(long, env = "CHAT_OFFLINE_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=120_000))]
    pub offline_webhook_timeout_ms: u64,

    /// The first retry's delay; each further one doubles it (up to 5 minutes), with full jitter.
    #[arg(long, env = "CHAT_OFFLINE_WEBHOOK_BACKOFF_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub offline_webhook_backoff_ms: u64,
}

/// What `chat-gateway token` signs: the claims, the lifetime, and where the secret is.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user id (`sub` claim).
    pub user: String,

    /// Display name (`name` claim); defaults to the user id.
    #[arg(long)]
    pub name: Option<String>,

    /// Issue a service token (`role: "service"`), the kind the HTTP push/kick API accepts.
    #[arg(long)]
    pub service: bool,

    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub ttl: u64,

    /// Where the secret is found, as `serve` finds it: flag or variable first, else the data dir's
    /// file.
    #[command(flatten)]
    pub store: StoreArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_flags_is_embedded_default() {
        let cfg = ServeConfig::embedded("./chat-data");
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.admin_listen.to_string(), "127.0.0.1:9090");
        assert!(
            cfg.redis_url.is_none() && cfg.pulsar_url.is_none() && cfg.store.database_url.is_none()
        );
        assert_eq!(
            (
                cfg.heartbeat_seconds,
                cfg.timelife_seconds,
                cfg.ack_timeout_ms
            ),
            (30, 1800, 10_000)
        );
        assert_eq!(cfg.duplicate_login, DuplicateLogin::Replace);
        assert!(!cfg.dev_login && !cfg.log_json);
    }

    fn serve(args: &[&str]) -> Result<ServeConfig, clap::Error> {
        let argv = ["chat-gateway", "serve"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(cfg) => Ok(cfg),
            _ => unreachable!("`serve` parses to Command::Serve"),
        }
    }

    /// Switches take the booleans people write in env files and manifests (`CHAT_DEV_LOGIN=1`),
    /// through the same value parser the environment goes through.
    #[test]
    fn switches_accept_the_usual_booleans() {
        for on in [
            "--dev-login",
            "--dev-login=1",
            "--dev-login=yes",
            "--dev-login=on",
            "--dev-login=true",
        ] {
            assert!(serve(&[on]).unwrap().dev_login, "{on}");
        }
        for off in [
            "--dev-login=0",
            "--dev-login=no",
            "--dev-login=off",
            "--dev-login=false",
        ] {
            assert!(!serve(&[off]).unwrap().dev_login, "{off}");
        }
        assert!(serve(&["--log-json=1"]).unwrap().log_json);
        let err = serve(&["--dev-login=maybe"]).unwrap_err().to_string();
        assert!(err.contains("maybe"), "{err}");

        // From the environment: the same argument under a variable no other test reads.
        use clap::FromArgMatches;
        std::env::set_var("CHAT_TEST_SWITCH_FROM_ENV", "1");
        let cmd = Cli::command().mut_subcommand("serve", |serve| {
            serve.mut_arg("dev_login", |a| a.env("CHAT_TEST_SWITCH_FROM_ENV"))
        });
        let cli = Cli::from_arg_matches(&cmd.get_matches_from(["chat-gateway", "serve"])).unwrap();
        let Command::Serve(cfg) = cli.command else {
            unreachable!("`serve` parses to Command::Serve")
        };
        assert!(cfg.dev_login, "CHAT_TEST_SWITCH_FROM_ENV=1");
    }
}
