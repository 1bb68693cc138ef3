//! A real PostgreSQL server for tests: one per test binary (initdb into a temp dir, a free port,
//! its socket in that dir, `fsync=off`), gone when the test process exits. Each test gets a
//! fresh database of its own ([`database`]).
//!
//! initdb and postgres refuse to run as root: as root, the server runs as the `postgres` user
//! (which Debian's packages create) or else `nobody`, and owns its temp dir.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use crate::gateway::free_port;

const INSTALL: &str = "apt-get install -y postgresql-15 (scripts/install-test-deps.sh does it)";
/// How long the server may take to start (initdb and start-up, on a loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct PostgresServer {
    pub port: u16,
    /// The watchdog shell's stdin: closed when this process exits, however it exits, which
    /// makes the watchdog stop the server and remove its directory.
    _lifeline: ChildStdin,
    _watchdog: Child,
}

impl PostgresServer {
    /// The URL of `database` on this server (trust authentication, superuser `postgres`).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

/// The test binary's PostgreSQL server, started on first use.
pub fn server() -> &'static PostgresServer {
    static SERVER: OnceLock<PostgresServer> = OnceLock::new();
    SERVER.get_or_init(start)
}

/// Creates an empty database no other test uses; returns its URL.
pub async fn database(tag: &str) -> String {
    let server = server();
    let name = format!("test_{tag}_{}", crate::client::rand_id()).replace('-', "_");
    let mut admin = PgConnection::connect(&server.url("postgres"))
        .await
        .expect("connect to the test postgres");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    server.url(&name)
}

/// The directory holding `initdb` and `postgres`: PATH first, then Debian's versioned
/// directories (its packages do not put them on PATH), newest first.
fn binaries() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort_by_key(|d| {
        let version = d.parent().and_then(Path::file_name);
        std::cmp::Reverse(version.and_then(|v| v.to_str()?.parse::<u32>().ok()))
    });
    on_path
        .into_iter()
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
        .unwrap_or_else(|| {
            panic!(
                "these tests need PostgreSQL's initdb and postgres, found neither on PATH nor in \
                 /usr/lib/postgresql/*/bin: {INSTALL}"
            )
        })
}

/// `(uid, gid)` to run the server as: `None` when this process is not root.
fn server_user() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id(&["-u"]).expect("run id -u") != 0 {
        return None;
    }
    ["postgres", "nobody"]
        .iter()
        .find_map(|user| Some((id(&["-u", user])?, id(&["-g", user])?)))
        .or_else(|| panic!("running as root, and neither a postgres nor a nobody user to run the test postgres as"))
}

/// A command run as the server's user.
fn as_server_user(program: &Path, user: Option<(u32, u32)>, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).env("LC_ALL", "C");
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn start() -> PostgresServer {
    let bin = binaries();
    let user = server_user();
    let dir = std::env::temp_dir().join(format!("chat-pg-{}", crate::client::rand_id()));
    std::fs::create_dir_all(&dir).expect("create the postgres temp dir");
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the postgres temp dir");
    }
    let data = dir.join("data");

    let initdb = as_server_user(&bin.join("initdb"), user, &dir)
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
        ])
        .arg("--locale=C")
        .output()
        .expect("run initdb");
    if !initdb.status.success() {
        panic!(
            "initdb failed ({}): {}",
            initdb.status,
            String::from_utf8_lossy(&initdb.stderr)
        );
    }

    let port = free_port();
    // The watchdog shell owns the server: when this test process exits (however), its stdin
    // closes, `read` returns, and it stops the server and removes the directory.
    let script = r#"
        "$0" -D "$1/data" -k "$1" -p "$2" -c listen_addresses=127.0.0.1 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=400 -c shared_buffers=32MB </dev/null 2>"$1/postgres.log" &
        pg=$!
        read -r _
        kill -INT "$pg"
        wait "$pg"
        rm -rf "$1"
    "#;
    let mut watchdog = as_server_user(Path::new("sh"), user, &dir)
        .arg("-c")
        .arg(script)
        .arg(bin.join("postgres"))
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the postgres watchdog");
    let server = PostgresServer {
        port,
        _lifeline: watchdog.stdin.take().expect("watchdog stdin"),
        _watchdog: watchdog,
    };

    // postmaster.pid's status line says "ready" once the server accepts connections.
    let started = Instant::now();
    loop {
        let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).unwrap_or_default();
        if pid_file.lines().any(|l| l.trim() == "ready") {
            return server;
        }
        let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
        if log.contains("FATAL:") || started.elapsed() > START_TIMEOUT {
            drop(server);
            panic!("the test postgres did not start on port {port}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
