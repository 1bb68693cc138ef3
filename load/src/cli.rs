//! The command line: five scenarios (`idle`, `direct` alias `throughput`, `cross-pod`, `group`,
//! `storm`) sharing the connection, server and output options. Every flag has help text and an
//! environment variable. The argument structs also travel as JSON to the child processes of
//! `--procs` (the secret separately, never in a report).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(
    name = "chat-load",
    version,
    about = "Load tool for chat-gateway: real WebSocket clients measuring idle-connection memory, \
             1:1, group and cross-pod throughput and latency, and reconnect storms"
)]
pub struct Cli {
    #[command(flatten)]
    pub output: Output,
    /// Tokio worker threads (default: one per core). The server shares the machine, so fewer
    /// threads leave it more CPU.
    #[arg(long, global = true, env = "CHAT_LOAD_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the result goes, and how many processes produce it.
#[derive(Debug, Clone, Default, Args)]
pub struct Output {
    /// Also print the result as one JSON object on the last line of stdout.
    #[arg(long, global = true, env = "CHAT_LOAD_JSON")]
    pub json: bool,
    /// Write the whole result (configuration, totals, percentiles, per-second timeline) to this
    /// JSON file.
    #[arg(long, global = true, env = "CHAT_LOAD_OUT")]
    pub out: Option<PathBuf>,
    /// Draw throughput and p50/p99 latency per second into this PNG file.
    #[arg(long, global = true, env = "CHAT_LOAD_PLOT")]
    pub plot: Option<PathBuf>,
    /// Run the clients in this many chat-load child processes (each with its share of the
    /// connections and its own user prefix) and merge their results: one process holds at most
    /// ~19.9k sockets here.
    #[arg(long, global = true, env = "CHAT_LOAD_PROCS", default_value_t = 1)]
    pub procs: usize,
}

#[derive(Debug, Clone, Subcommand, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Open N authenticated connections, keep them alive with heartbeats and measure the server's
    /// resident memory per idle connection.
    Idle(IdleArgs),
    /// 1:1 sender/recipient pairs at a fixed rate or at saturation: stored and delivered rates,
    /// latency percentiles, lost messages and server CPU per 1,000 delivered messages.
    #[command(visible_alias = "throughput")]
    Direct(DirectArgs),
    /// `direct` over several gateways (--url a,b,…): every sender sits on another pod than its
    /// recipient, so every message crosses pods.
    CrossPod(DirectArgs),
    /// Senders to one online group of M members, each member acking every delivery:
    /// deliveries/s and send -> deliver percentiles.
    Group(GroupArgs),
    /// N connected clients drop their connections and reconnect at once: time until all are
    /// back, failures and the kernel's listen-queue overflows.
    Storm(StormArgs),
    /// One share of a --procs run (internal: reads its configuration from stdin).
    #[command(hide = true)]
    Child,
}

impl Command {
    /// The scenario's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Idle(_) => "idle",
            Command::Direct(_) => "direct",
            Command::CrossPod(_) => "cross-pod",
            Command::Group(_) => "group",
            Command::Storm(_) => "storm",
            Command::Child => "child",
        }
    }
}

/// Options every scenario uses to reach and authenticate to the gateway.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct ConnectArgs {
    /// The gateway's WebSocket URL (ws:// only; the tool adds `token` and `device`). `direct`
    /// and `cross-pod` take several, comma-separated (the pods of a cluster): recipient i
    /// connects to URL i mod n and its sender to the next URL, so every message crosses from one
    /// gateway to another. `idle`, `group` and `storm` spread their clients round-robin.
    #[arg(
        long,
        env = "CHAT_LOAD_URL",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:8080/ws"
    )]
    pub url: Vec<String>,
    /// The gateway's JWT secret; the tool mints a HS256 token for each of its users.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    #[serde(skip_serializing, default)]
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
    /// User ids are `<prefix>-<role><n>` (`<prefix>p<k>-…` in child process k); default: unique
    /// per run. Give parallel runs distinct prefixes when you set it.
    #[arg(long, env = "CHAT_LOAD_USER_PREFIX")]
    pub user_prefix: Option<String>,
    /// Lifetime of the minted tokens, seconds.
    #[arg(long, env = "CHAT_LOAD_TOKEN_TTL_SECONDS", default_value_t = 86_400)]
    pub token_ttl_seconds: u64,
    /// Heartbeat interval in seconds; default: the `heartbeat` the server's WELCOME announces.
    #[arg(long, env = "CHAT_LOAD_HEARTBEAT_SECONDS")]
    pub heartbeat_seconds: Option<u64>,
    /// tungstenite's per-connection read buffer in bytes. tungstenite zero-fills this much
    /// before every socket read, so a large one costs CPU on every read, not only memory.
    /// Default: 4096.
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

/// Which processes are the server, for CPU and memory figures.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
pub struct ServerArgs {
    /// The server's pids, comma-separated (a cluster's pods, PostgreSQL, Redis…): CPU time
    /// (utime + stime) and VmRSS are read from /proc/<pid> at the start and end of what is
    /// measured.
    #[arg(long, env = "CHAT_LOAD_SERVER_PID", value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Also count the processes `pgrep -f PATTERN` finds (e.g. `postgres:` for PostgreSQL's
    /// backends), looked up at every reading.
    #[arg(long, env = "CHAT_LOAD_SERVER_PGREP")]
    pub server_pgrep: Option<String>,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct IdleArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How many connections (one distinct user each) to open and hold. One process can hold
    /// at most its open-file limit minus a reserve (~19.9k here): use --procs beyond.
    #[arg(long, env = "CHAT_LOAD_CONNECTIONS")]
    pub connections: u64,
    /// Seconds to hold the connections once all are up (at least --settle-seconds).
    #[arg(long, env = "CHAT_LOAD_HOLD_SECONDS", default_value_t = 20)]
    pub hold_seconds: u64,
    /// Seconds to wait after the last connection is up before reading the server's memory, so
    /// allocator and kernel settle.
    #[arg(long, env = "CHAT_LOAD_SETTLE_SECONDS", default_value_t = 5)]
    pub settle_seconds: u64,
}

/// How long a sending scenario runs, and what it sends.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct RunArgs {
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
}

impl RunArgs {
    pub fn warmup(&self) -> Duration {
        Duration::from_secs(self.warmup_seconds)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_seconds)
    }
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct DirectArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Sender/recipient user pairs, each user on its own connection (2 × pairs sockets).
    #[arg(long, env = "CHAT_LOAD_PAIRS", default_value_t = 200)]
    pub pairs: usize,
    /// Also report send -> delivered for each step of this many milliseconds of the measured
    /// window (by send time), to tell a tail made of a few stalls from one spread over the run.
    #[arg(long, env = "CHAT_LOAD_TIMELINE_MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeline_ms: Option<u64>,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct GroupArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Members of the group, all online, each on its own connection; the senders are among them.
    #[arg(long, env = "CHAT_LOAD_MEMBERS", default_value_t = 100)]
    pub members: usize,
    /// Members that send (each message reaches the other members - 1).
    #[arg(long, env = "CHAT_LOAD_SENDERS", default_value_t = 1)]
    pub senders: usize,
}

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct StormArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Connected clients that drop and reconnect at once.
    #[arg(long, env = "CHAT_LOAD_CLIENTS", default_value_t = 1000)]
    pub clients: u64,
    /// Seconds to hold the connections before they all drop.
    #[arg(long, env = "CHAT_LOAD_SETTLE_SECONDS", default_value_t = 2)]
    pub settle_seconds: u64,
    /// Connect attempts per client after the drop (a failed one is retried after a short
    /// jittered pause); the failures are reported either way.
    #[arg(long, env = "CHAT_LOAD_ATTEMPTS", default_value_t = 3)]
    pub attempts: u32,
    /// Spread the reconnects evenly over this many milliseconds (0: all at once).
    #[arg(long, env = "CHAT_LOAD_SPREAD_MS", default_value_t = 0)]
    pub spread_ms: u64,
}
