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

use crate::fixtures::{free_port, unique_id};

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
    let name = format!("test_{tag}_{}", unique_id()).replace('-', "_");
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

/// More settings of a test's own server (see [`PostgresServer::start_own`]).
const OWN_SETTINGS: &str = "-c wal_writer_delay=1000ms";

/// An initialised data directory and how to run a server on it.
struct DataDir {
    bin: PathBuf,
    user: Option<(u32, u32)>,
    /// Holds `data/`, the server's socket and `postgres.log`.
    dir: PathBuf,
}

/// A running server: its postmaster's pid, and the watchdog shell that owns it.
struct Running {
    pid: u32,
    /// The watchdog's stdin: closing it (dropping this, or this process exiting however it
    /// exits) makes the watchdog stop the server (SIGINT, a fast shutdown) and wait for it.
    lifeline: ChildStdin,
    watchdog: Child,
}

impl DataDir {
    /// `initdb` into a new temp dir owned by the server's user.
    fn init() -> Self {
        Self::init_with(None)
    }

    /// [`DataDir::init`], giving the `postgres` user `password`.
    fn init_with_password(password: &str) -> Self {
        Self::init_with(Some(password))
    }

    fn init_with(password: Option<&str>) -> Self {
        let bin = binaries();
        let user = server_user();
        let dir = std::env::temp_dir().join(format!("chat-pg-{}", unique_id()));
        std::fs::create_dir_all(&dir).expect("create the postgres temp dir");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .expect("chown the postgres temp dir");
        }
        let mut initdb = as_server_user(&bin.join("initdb"), user, &dir);
        if let Some(password) = password {
            let file = dir.join("pwfile");
            std::fs::write(&file, password).expect("write the password file");
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(&file, Some(uid), Some(gid)).expect("chown pwfile");
            }
            initdb.arg(format!("--pwfile={}", file.display()));
        }
        let initdb = initdb
            .arg("-D")
            .arg(dir.join("data"))
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
        Self { bin, user, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }

    /// Starts the server on `port`, with `settings` (`-c name=value …`) after the common ones, and
    /// waits until it accepts connections. With `remove`, the watchdog removes the directory
    /// once the server stopped.
    fn launch(&self, port: u16, remove: bool, settings: &str) -> Running {
        use std::io::BufRead;
        // The log is appended to across restarts: only what this start wrote counts.
        let log_from = self.log().len();
        let script = r#"
            "$0" -D "$1/data" -k "$1" -p "$2" -c listen_addresses=127.0.0.1 \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=400 -c shared_buffers=32MB $PG_SETTINGS \
                 </dev/null >/dev/null 2>>"$1/postgres.log" &
            pg=$!
            echo "$pg"
            read -r _
            kill -INT "$pg" 2>/dev/null
            wait "$pg"
            if [ "$3" = remove ]; then rm -rf "$1"; fi
        "#;
        let mut watchdog = as_server_user(Path::new("sh"), self.user, &self.dir)
            .arg("-c")
            .arg(script)
            .arg(self.bin.join("postgres"))
            .arg(&self.dir)
            .arg(port.to_string())
            .arg(if remove { "remove" } else { "keep" })
            .env("PG_SETTINGS", settings)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the postgres watchdog");
        let mut line = String::new();
        std::io::BufReader::new(watchdog.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the postmaster's pid");
        let pid: u32 = line.trim().parse().expect("the postmaster's pid");
        let mut running = Running {
            pid,
            lifeline: watchdog.stdin.take().expect("watchdog stdin"),
            watchdog,
        };

        // postmaster.pid names this postmaster and says "ready" once it accepts connections
        // (a crashed predecessor's file may still be there until it replaces it).
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let started = Instant::now();
        loop {
            let status = std::fs::read_to_string(&pid_file).unwrap_or_default();
            let ours = status.lines().next() == Some(line.trim());
            if ours && status.lines().any(|l| l.trim() == "ready") {
                return running;
            }
            // A postmaster that cannot start exits (so does its watchdog). FATAL lines alone say
            // nothing: after a crash, clients that connect during recovery get "not yet
            // accepting connections" in the same log.
            let exited = running.watchdog.try_wait().ok().flatten().is_some();
            if exited || started.elapsed() > START_TIMEOUT {
                let log = self.log();
                let new = log.get(log_from..).unwrap_or_default().to_owned();
                drop(running);
                panic!("the test postgres did not start on port {port}:\n{new}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn start() -> PostgresServer {
    let port = free_port();
    let running = DataDir::init().launch(port, true, "");
    PostgresServer {
        port,
        _lifeline: running.lifeline,
        _watchdog: running.watchdog,
    }
}

impl PostgresServer {
    /// A PostgreSQL server of the calling test's own, which it may crash and start again on the
    /// same port and data (outage tests). The shared [`server`] is never stopped.
    ///
    /// Like the shared server it runs with `synchronous_commit=off` — a setting an operator may
    /// choose for speed, under which a crash loses the last commits — and with the WAL writer
    /// flushing only every second (200 ms by default), so that a crash loses every commit of
    /// the last second or more that did not run with it on. The gateway's writer must.
    pub fn start_own() -> OwnPostgresServer {
        let data = DataDir::init();
        let port = free_port();
        let running = Some(data.launch(port, false, OWN_SETTINGS));
        OwnPostgresServer {
            host: "127.0.0.1".to_owned(),
            port,
            data,
            running,
            password: None,
            settings: OWN_SETTINGS.to_owned(),
        }
    }

    /// [`PostgresServer::start_own`] listening on `host:port`, also trusting connections from
    /// the network `trust` (CIDR) when given (the chaos test's pods connect from their network
    /// namespaces).
    pub fn start_own_at(host: &str, port: u16, trust: Option<&str>) -> OwnPostgresServer {
        let data = DataDir::init();
        if let Some(net) = trust {
            use std::io::Write;
            let mut hba = std::fs::OpenOptions::new()
                .append(true)
                .open(data.dir.join("data").join("pg_hba.conf"))
                .expect("open pg_hba.conf");
            writeln!(hba, "host all all {net} trust").expect("append to pg_hba.conf");
        }
        let settings = format!("{OWN_SETTINGS} -c listen_addresses={host}");
        let running = Some(data.launch(port, false, &settings));
        OwnPostgresServer {
            host: host.to_owned(),
            port,
            data,
            running,
            password: None,
            settings,
        }
    }
}

/// A test's own PostgreSQL server (see [`PostgresServer::start_own`]): its data outlives
/// [`stop`](OwnPostgresServer::stop); the server is stopped and its directory removed on drop.
pub struct OwnPostgresServer {
    /// The address it listens on.
    pub host: String,
    pub port: u16,
    data: DataDir,
    running: Option<Running>,
    /// The `postgres` user's password, when the server wants one.
    password: Option<String>,
    /// `-c` settings it runs with.
    settings: String,
}

impl OwnPostgresServer {
    /// The URL of the server's own `postgres` database (with the password, if it has one).
    pub fn url(&self) -> String {
        match &self.password {
            Some(pw) => format!("postgres://postgres:{pw}@127.0.0.1:{}/postgres", self.port),
            None => format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
        }
    }

    /// The URL of `database` on this server (no password).
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@{}:{}/{database}", self.host, self.port)
    }

    /// Freezes (`true`: SIGSTOP) or thaws (SIGCONT) the postmaster and every backend process
    /// of it: a server that stops answering without closing a connection.
    pub fn freeze(&self, frozen: bool) {
        let Some(running) = &self.running else {
            return;
        };
        let pid = running.pid;
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let mut pids = vec![pid.to_string()];
        pids.extend(children.split_whitespace().map(str::to_owned));
        let _ = Command::new("kill")
            .arg(signal)
            .args(&pids)
            .stderr(Stdio::null())
            .status();
    }

    /// Stops the server as a crash would: SIGQUIT, PostgreSQL's immediate shutdown (every
    /// connection cut, no checkpoint: the next start recovers from the WAL). Waits until the
    /// port is closed.
    pub fn crash(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-QUIT", &running.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        drop(running.lifeline);
        let _ = running.watchdog.wait();
        for _ in 0..400 {
            if std::net::TcpStream::connect((self.host.as_str(), self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "postgres still listening on port {} after SIGQUIT",
            self.port
        );
    }

    /// Starts the server again on the same port and data; waits until it accepts connections.
    pub fn start(&mut self) {
        assert!(self.running.is_none(), "postgres already running");
        self.running = Some(self.data.launch(self.port, false, &self.settings));
    }
}

impl PostgresServer {
    /// A server of the calling test's own that takes only TLS connections over TCP
    /// (`hostnossl … reject`), with `ca`'s server certificate, and wants the `postgres` user's
    /// password (`scram-sha-256`): [`OwnPostgresServer::url`] carries it, the test adds
    /// `sslmode` and `sslrootcert`.
    pub fn start_tls(ca: &crate::tls::TestCa) -> OwnPostgresServer {
        let password = format!("pw{}", unique_id());
        let data = DataDir::init_with_password(&password);
        let copy = |from: &Path, name: &str| {
            let to = data.dir.join(name);
            std::fs::copy(from, &to).expect("copy the server certificate");
            std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod the server certificate");
            if let Some((uid, gid)) = data.user {
                std::os::unix::fs::chown(&to, Some(uid), Some(gid)).expect("chown");
            }
            to
        };
        let cert = copy(&ca.cert_file(), "server.pem");
        let key = copy(&ca.key_file(), "server.key");
        std::fs::write(
            data.dir.join("data").join("pg_hba.conf"),
            "local all all trust\n\
             hostnossl all all 0.0.0.0/0 reject\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");
        let settings = format!(
            "{OWN_SETTINGS} -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        );
        let port = free_port();
        let running = Some(data.launch(port, false, &settings));
        OwnPostgresServer {
            host: "127.0.0.1".to_owned(),
            port,
            data,
            running,
            password: Some(password),
            settings,
        }
    }
}

impl Drop for OwnPostgresServer {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            drop(running.lifeline);
            let _ = running.watchdog.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data.dir);
    }
}
