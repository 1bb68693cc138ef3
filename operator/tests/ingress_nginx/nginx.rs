//! Debian's `nginx` as an ordinary process: its prefix, pid file, logs and temp paths in a test
//! directory, the configuration checked with `nginx -t` before every start and reload, and
//! reloaded with `nginx -s reload` as the controller does when the endpoints change.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_tests::fixtures::TempDir;

/// How to get the binary.
pub const INSTALL_HINT: &str =
    "nginx not found: install Debian's nginx (apt-get install nginx-light, or run \
     scripts/install-test-deps.sh)";

/// The nginx binary: `$NGINX`, else `nginx` on the PATH or in `/usr/sbin`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NGINX") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

/// A running nginx master process and its directory.
pub struct Nginx {
    child: Child,
    dir: TempDir,
    conf: PathBuf,
    /// Configurations loaded, counting the first.
    pub generation: u32,
}

impl Nginx {
    /// A directory for a configuration to be written for (its prefix).
    pub fn dir() -> TempDir {
        TempDir::new("nginx")
    }

    /// Checks `conf` and starts nginx on it in the foreground (`daemon off`), prefix `dir`.
    pub fn start(dir: TempDir, conf: &str) -> Self {
        let path = dir.path().join("nginx.conf");
        write_checked(dir.path(), &path, conf);
        let child = command(dir.path(), &path, &["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start nginx: {e}"));
        Self {
            child,
            dir,
            conf: path,
            generation: 1,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        command(self.dir.path(), &self.conf, args)
    }

    /// Loads `conf` with `nginx -s reload`: new workers take new connections, the old ones keep
    /// theirs (WebSockets included) until they end.
    pub fn reload(&mut self, conf: &str) {
        write_checked(self.dir.path(), &self.conf, conf);
        let out = self
            .command(&["-s", "reload"])
            .output()
            .expect("nginx -s reload");
        assert!(
            out.status.success(),
            "nginx -s reload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.generation += 1;
    }

    /// The error log so far (start-up, reloads, upstream errors).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The access log so far: `$remote_addr "$request" $status $upstream_addr $request_time`.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Waits until nginx accepts connections on every one of `addrs` (panics with its error
    /// log if it exits or takes longer than 10 s).
    pub async fn wait_listening(&mut self, addrs: &[std::net::SocketAddr]) {
        let started = Instant::now();
        for addr in addrs {
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("nginx exited ({status}):\n{}", self.error_log());
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "nginx is not listening on {addr}:\n{}",
                    self.error_log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Waits until the master has started `generation` workers after the last reload (its
    /// error log says so), so that new connections get the new configuration.
    pub async fn wait_reloaded(&self) {
        let started = Instant::now();
        let wanted = (self.generation - 1) as usize;
        while self.error_log().matches("reconfiguring").count() < wanted {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not reload:\n{}",
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The master logs before it starts the new workers and tells the old ones to stop
        // accepting; give it a moment.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Drop for Nginx {
    /// Fast shutdown (SIGTERM): the master stops its workers and exits.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(dir: &Path, conf: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(dir.join("error.log"))
        .args(args);
    cmd
}

/// Writes `text` to `conf` and checks it with `nginx -t` (panics with nginx's words if it fails).
fn write_checked(dir: &Path, conf: &Path, text: &str) {
    std::fs::write(conf, text).expect("write nginx.conf");
    test_conf_at(dir, conf);
}

/// `nginx -t` on the configuration at `conf` with prefix `dir`: panics with nginx's words.
pub fn test_conf_at(dir: &Path, conf: &Path) {
    let out = command(dir, conf, &["-t", "-q"])
        .output()
        .unwrap_or_else(|e| panic!("{INSTALL_HINT} ({e})"));
    assert!(
        out.status.success(),
        "nginx -t refused the configuration: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(conf).unwrap_or_default()
    );
}
