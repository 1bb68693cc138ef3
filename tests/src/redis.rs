//! A real `redis-server` for tests: one per test binary, on a free port, gone when the test
//! process exits. Tests isolate themselves with unique key prefixes ([`unique_prefix`]).

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::gateway::free_port;

pub struct RedisServer {
    pub port: u16,
    /// The watchdog shell; it ends with this process and takes redis-server with it.
    _watchdog: std::process::Child,
}

impl RedisServer {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// The test binary's Redis server, started on first use.
pub fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(start)
}

#[expect(
    clippy::zombie_processes,
    reason = "the watchdog lives as long as the test process by design"
)]
fn start() -> RedisServer {
    if Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        panic!("these tests need redis-server, which is not installed: apt-get install -y redis-server (scripts/install-test-deps.sh does it)");
    }
    let port = free_port();
    // A shell watchdog owns the server: when this test process exits (however), the loop ends and
    // the trap stops redis-server, so no server outlives its tests.
    let script = format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no --daemonize no --loglevel warning & r=$!; \
         trap 'kill $r 2>/dev/null' EXIT; while kill -0 {parent} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.5; done",
        parent = std::process::id()
    );
    let watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn redis-server watchdog");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return RedisServer {
                port,
                _watchdog: watchdog,
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not start on port {port}");
}

/// A key prefix no other test uses.
pub fn unique_prefix(tag: &str) -> String {
    format!("t{}-{tag}-{}", std::process::id(), crate::client::rand_id())
}

/// A plain client for assertions on keys.
pub async fn client() -> redis::aio::MultiplexedConnection {
    redis::Client::open(server().url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
