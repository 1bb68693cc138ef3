//! The command line: two scenarios (`idle`, `throughput`) sharing the connection options. Every
//! flag has help text and an environment variable.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chat-load",
    version,
    about = "Load tool for chat-gateway: real WebSocket clients measuring idle-connection memory, \
             throughput and latency percentiles"
)]
pub struct Cli {
    /// Also print the result as one JSON object on the last line of stdout.
    #[arg(long, global = true, env = "CHAT_LOAD_JSON")]
    pub json: bool,
    /// Tokio worker threads (default: one per core). The server shares the machine, so fewer
    /// threads leave it more CPU.
    #[arg(long, global = true, env = "CHAT_LOAD_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open N authenticated connections, keep them alive with heartbeats and measure the server's
    /// resident memory per idle connection.
    Idle(IdleArgs),
    /// Run sender/recipient pairs at a fixed rate or at saturation and measure stored/delivered
    /// message rates, latency percentiles, errors and lost messages.
    Throughput(ThroughputArgs),
}

/// Options every scenario uses to reach and authenticate to the gateway.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The gateway's WebSocket URL (ws:// only; the tool adds `token` and `device`). `throughput`
    /// takes several, comma-separated (the pods of a cluster): recipient i connects to URL
    /// i mod n and its sender to the next URL, so every message crosses from one gateway to
    /// another. `idle` measures one gateway and takes one.
    #[arg(
        long,
        env = "CHAT_LOAD_URL",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:8080/ws"
    )]
    pub url: Vec<String>,
    /// The gateway's JWT secret; the tool mints a HS256 token for each of its users.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// Local addresses to bind client sockets to, used round-robin (e.g.
    /// 127.0.0.1,127.0.0.2,127.0.0.3): each gives its own ~28k ephemeral ports towards the server.
    #[arg(long, env = "CHAT_LOAD_SOURCE_IPS", value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,
    /// How many connections may be opening (TCP connect, upgrade, waiting for WELCOME) at once.
    #[arg(long, env = "CHAT_LOAD_CONCURRENCY", default_value_t = 200)]
    pub concurrency: usize,
    /// Give up on a connection that has no WELCOME after this many seconds.
    #[arg(long, env = "CHAT_LOAD_CONNECT_TIMEOUT_SECONDS", default_value_t = 15)]
    pub connect_timeout_seconds: u64,
    /// User ids are `<prefix>-<role><n>`; default: unique per run. Give parallel processes
    /// distinct prefixes when you set it.
    #[arg(long, env = "CHAT_LOAD_USER_PREFIX")]
    pub user_prefix: Option<String>,
    /// Lifetime of the minted tokens, seconds.
    #[arg(long, env = "CHAT_LOAD_TOKEN_TTL_SECONDS", default_value_t = 86_400)]
    pub token_ttl_seconds: u64,
    /// Heartbeat interval in seconds; default: the `heartbeat` the server's WELCOME announces.
    #[arg(long, env = "CHAT_LOAD_HEARTBEAT_SECONDS")]
    pub heartbeat_seconds: Option<u64>,
    /// tungstenite's per-connection read buffer in bytes (allocated up front; its 128 KiB
    /// default would dominate the client's memory with many connections). tungstenite
    /// zero-fills it before every socket read, so a large one also costs CPU. Default: 4096.
    #[arg(long, env = "CHAT_LOAD_READ_BUFFER_BYTES")]
    pub read_buffer_bytes: Option<usize>,
}

impl ConnectArgs {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_seconds)
    }

    pub fn heartbeat(&self) -> Option<Duration> {
        self.heartbeat_seconds.map(Duration::from_secs)
    }
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// How many connections (one distinct user each) to open and hold. One process can hold
    /// at most its open-file limit minus a reserve (~19.9k here); run several processes beyond.
    #[arg(long, env = "CHAT_LOAD_CONNECTIONS")]
    pub connections: u64,
    /// The gateway's pid: its VmRSS is read before connecting and after all connections are up
    /// and settled, and the difference is divided by the connections.
    #[arg(long, env = "CHAT_LOAD_SERVER_PID")]
    pub server_pid: Option<u32>,
    /// Seconds to hold the connections once all are up (at least --settle-seconds).
    #[arg(long, env = "CHAT_LOAD_HOLD_SECONDS", default_value_t = 20)]
    pub hold_seconds: u64,
    /// Seconds to wait after the last connection is up before reading the server's memory, so
    /// allocator and kernel settle.
    #[arg(long, env = "CHAT_LOAD_SETTLE_SECONDS", default_value_t = 5)]
    pub settle_seconds: u64,
}

#[derive(Debug, Args)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Sender/recipient user pairs, each user on its own connection (2 × pairs sockets).
    #[arg(long, env = "CHAT_LOAD_PAIRS", default_value_t = 200)]
    pub pairs: usize,
    /// Offered load in messages per second over all senders, paced evenly. Without it the
    /// senders run at saturation, each keeping --window sends outstanding.
    #[arg(long, env = "CHAT_LOAD_RATE")]
    pub rate: Option<f64>,
    /// At saturation: sends each sender keeps outstanding (sent, no reply 0 yet).
    #[arg(long, env = "CHAT_LOAD_WINDOW", default_value_t = 16)]
    pub window: usize,
    /// Seconds measured after the warm-up.
    #[arg(long, env = "CHAT_LOAD_DURATION_SECONDS", default_value_t = 20)]
    pub duration_seconds: u64,
    /// Seconds of sending before measuring starts (not counted in rates or latencies).
    #[arg(long, env = "CHAT_LOAD_WARMUP_SECONDS", default_value_t = 3)]
    pub warmup_seconds: u64,
    /// After sending stops, seconds to wait for outstanding replies and deliveries before
    /// counting the missing ones as lost.
    #[arg(long, env = "CHAT_LOAD_DRAIN_SECONDS", default_value_t = 15)]
    pub drain_seconds: u64,
    /// Size of each message text in bytes (it starts with the send timestamp).
    #[arg(long, env = "CHAT_LOAD_MESSAGE_BYTES", default_value_t = 64)]
    pub message_bytes: usize,
    /// Also report send -> delivered for each step of this many milliseconds of the measured
    /// window (by send time), to tell a tail made of a few stalls from one spread over the run.
    #[arg(long, env = "CHAT_LOAD_TIMELINE_MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeline_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_every_flag_has_help() {
        Cli::command().debug_assert();
        let mut cmd = Cli::command();
        cmd.build();
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some(),
                    "{} --{id} has no help",
                    sub.get_name()
                );
            }
        }
    }

    #[test]
    fn parses_throughput_flags() {
        let cli = Cli::parse_from([
            "chat-load",
            "throughput",
            "--jwt-secret",
            "s",
            "--pairs",
            "10",
            "--rate",
            "2000",
            "--source-ips",
            "127.0.0.1,127.0.0.2",
            "--json",
        ]);
        assert!(cli.json);
        let Command::Throughput(args) = cli.command else {
            panic!("expected throughput")
        };
        assert_eq!(args.pairs, 10);
        assert_eq!(args.rate, Some(2000.0));
        assert_eq!(args.connect.source_ips.len(), 2);
        assert_eq!(args.window, 16);
        assert_eq!(args.connect.url, ["ws://127.0.0.1:8080/ws"]);
    }

    #[test]
    fn takes_several_urls() {
        let cli = Cli::parse_from([
            "chat-load",
            "throughput",
            "--jwt-secret",
            "s",
            "--url",
            "ws://127.0.0.1:8080/ws,ws://127.0.0.1:8081/ws",
        ]);
        let Command::Throughput(args) = cli.command else {
            panic!("expected throughput")
        };
        assert_eq!(
            args.connect.url,
            ["ws://127.0.0.1:8080/ws", "ws://127.0.0.1:8081/ws"]
        );
    }
}
