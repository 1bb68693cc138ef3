//! A real `redis-server` for tests: one per test binary, on a free port, gone when the test
//! process exits. Tests isolate themselves with unique key prefixes ([`unique_prefix`]).

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::fixtures::{free_port, unique_id};

/// The test binary's Redis server, started on first use.
pub fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start_own)
}

fn require_redis_server() {
    if Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        panic!("these tests need redis-server, which is not installed: apt-get install -y redis-server (scripts/install-test-deps.sh does it)");
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix(tag: &str) -> String {
    format!("t{}-{tag}-{}", std::process::id(), unique_id())
}

/// A plain client for assertions on keys.
pub async fn client() -> redis::aio::MultiplexedConnection {
    redis::Client::open(server().url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes every key under `prefix` on the shared server: what a Redis restarted empty leaves
/// of a cluster's keys.
pub async fn delete_prefix(prefix: &str) {
    use redis::AsyncCommands;
    let mut r = client().await;
    let keys: Vec<String> = r.keys(format!("{prefix}:*")).await.unwrap();
    let _: () = r.del(keys).await.unwrap();
}

/// A redis-server on a free port: empty on every start (no persistence), killed on drop and
/// when the test process exits (a watchdog shell sees to that however the process ends).
pub struct RedisServer {
    /// The address it listens on (127.0.0.1 unless [`RedisServer::start_own_at`] said otherwise).
    pub host: String,
    pub port: u16,
    /// redis-server's pid and the watchdog shell that stops it if this process dies.
    running: Option<(u32, std::process::Child)>,
    /// TLS only, with an ACL user (see [`RedisServer::start_tls`]).
    tls: Option<RedisTls>,
}

/// How a TLS redis-server runs: its certificate files, and the one ACL user that may log in
/// (the `default` user is off).
pub struct RedisTls {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    pub ca_file: std::path::PathBuf,
    pub user: String,
    pub password: String,
}

impl RedisServer {
    /// A redis-server of the calling test's own, which it may stop and start again on the same
    /// port (outage tests). The shared [`server`] is one of these that is never stopped.
    pub fn start_own() -> RedisServer {
        Self::start_own_at("127.0.0.1", free_port())
    }

    /// [`RedisServer::start_own`] listening on `host:port` (the chaos test's pods reach it over
    /// a bridge from their network namespaces).
    pub fn start_own_at(host: &str, port: u16) -> RedisServer {
        require_redis_server();
        let mut me = RedisServer {
            host: host.to_owned(),
            port,
            running: None,
            tls: None,
        };
        me.start();
        me
    }

    /// A redis-server of the calling test's own that speaks only TLS (`--port 0`, `--tls-port`)
    /// with `tls`'s certificate, and lets in only `tls.user` with `tls.password`.
    pub fn start_tls(tls: RedisTls) -> RedisServer {
        require_redis_server();
        let mut me = RedisServer {
            host: "127.0.0.1".to_owned(),
            port: free_port(),
            running: None,
            tls: Some(tls),
        };
        me.start();
        me
    }

    /// `redis://127.0.0.1:PORT/`, or `rediss://` for a TLS server (credentials not included).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{}:{}/", self.host, self.port)
    }

    /// The server's command line after `redis-server`.
    fn args(&self) -> String {
        let port = self.port;
        let common = format!(
            "--bind {} --protected-mode no --save '' --appendonly no --daemonize no \
             --loglevel warning",
            self.host
        );
        match &self.tls {
            None => format!("--port {port} {common}"),
            Some(t) => format!(
                "--port 0 --tls-port {port} --tls-cert-file '{}' --tls-key-file '{}' \
                 --tls-ca-cert-file '{}' --tls-auth-clients no \
                 --user default off --user '{}' on '>{}' '~*' '&*' '+@all' {common}",
                t.cert_file.display(),
                t.key_file.display(),
                t.ca_file.display(),
                t.user,
                t.password
            ),
        }
    }

    /// Starts redis-server on this server's port and waits until it accepts connections.
    pub fn start(&mut self) {
        use std::io::BufRead;
        assert!(self.running.is_none(), "redis-server already running");
        let port = self.port;
        // A watchdog shell stops redis-server when this process ends; its first line of output
        // is redis-server's pid, so `stop` can kill just the server.
        // (redis-server's own output goes to /dev/null: the pipe closes after that line.)
        let script = format!(
            "redis-server {args} >/dev/null & r=$!; echo $r; \
             trap 'kill $r 2>/dev/null' EXIT; while kill -0 {parent} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.2; done",
            args = self.args(),
            parent = std::process::id()
        );
        let mut watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn redis-server watchdog");
        let mut line = String::new();
        std::io::BufReader::new(watchdog.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read redis-server pid");
        let pid: u32 = line.trim().parse().expect("redis-server pid");
        self.running = Some((pid, watchdog));
        for _ in 0..200 {
            // a TLS server is up once its port accepts (PING would need the handshake)
            let up = match self.tls {
                None => ping(&self.host, port),
                Some(_) => std::net::TcpStream::connect((self.host.as_str(), port)).is_ok(),
            };
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {port}");
    }

    /// Kills redis-server (SIGKILL: a crash, nothing saved) and waits until the port is closed.
    pub fn stop(&mut self) {
        if !self.kill() {
            return;
        }
        for _ in 0..200 {
            if std::net::TcpStream::connect((self.host.as_str(), self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "redis-server still listening on port {} after SIGKILL",
            self.port
        );
    }

    /// SIGSTOPs (`true`) or SIGCONTs redis-server: it keeps its keys and connections but answers
    /// nothing meanwhile (a hung server, or a partition that heals).
    pub fn pause(&self, paused: bool) {
        let (pid, _) = self.running.as_ref().expect("redis-server running");
        let signal = if paused { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} redis-server");
    }

    /// SIGKILLs redis-server if it runs (without waiting for the port: safe in a drop); whether
    /// it did.
    fn kill(&mut self) -> bool {
        let Some((pid, mut watchdog)) = self.running.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = watchdog.wait();
        true
    }

    /// Stops and starts again, empty, on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// A plain client for assertions on keys.
    pub async fn client(&self) -> redis::aio::MultiplexedConnection {
        let client = match &self.tls {
            None => redis::Client::open(self.url()).unwrap(),
            Some(t) => chat_gateway::tls::BackendTlsArgs {
                redis_username: Some(t.user.clone()),
                redis_password: Some(t.password.clone()),
                redis_ca_file: Some(t.ca_file.clone()),
                ..Default::default()
            }
            .redis_client(&self.url())
            .unwrap(),
        };
        client.get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a redis-server answers PING on `port`.
fn ping(host: &str, port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect((host, port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
