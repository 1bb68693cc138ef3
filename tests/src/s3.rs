//! A real S3-compatible server for tests: moto's (PyPI `moto[server]`), installed into
//! `target/tools/moto` by `scripts/install-test-deps.sh`, one per test binary on a free port,
//! stopped when the test process exits. Tests isolate themselves with a bucket each.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::fixtures::{free_port, unique_id};

/// Access key and secret moto accepts (it checks neither).
pub const ACCESS_KEY: &str = "testing";
/// See [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "testing";

/// The test binary's S3 server, started on first use.
pub fn server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(S3Server::start)
}

/// `moto_server`: `$CHAT_TEST_MOTO_SERVER`, else the install script's venv.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("CHAT_TEST_MOTO_SERVER") {
        return path.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = root.join("target/tools/moto/bin/moto_server");
    if !path.exists() {
        panic!(
            "the S3 tests need moto_server (PyPI moto[server]), not found at {}: run \
             scripts/install-test-deps.sh (it makes a venv there), or set CHAT_TEST_MOTO_SERVER",
            path.display()
        );
    }
    path
}

/// A moto server on a free port, killed when the test process exits (a watchdog shell).
pub struct S3Server {
    pub port: u16,
    _watchdog: std::process::Child,
}

impl S3Server {
    fn start() -> S3Server {
        let binary = moto_server();
        let port = free_port();
        let script = format!(
            "'{bin}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & r=$!; \
             trap 'kill $r 2>/dev/null' EXIT; while kill -0 {parent} 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 0.2; done",
            bin = binary.display(),
            parent = std::process::id()
        );
        let mut watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn moto_server watchdog");
        // Python takes a few seconds to import moto.
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return S3Server {
                    port,
                    _watchdog: watchdog,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = watchdog.kill();
        let _ = watchdog.wait();
        panic!(
            "moto_server ({}) did not listen on port {port} within 30 s",
            binary.display()
        );
    }

    /// `http://127.0.0.1:port`: the endpoint the gateway and presigned URLs use.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket no other test uses and returns its name.
    pub async fn bucket(&self, tag: &str) -> String {
        let name = format!("t-{tag}-{}", unique_id()).to_ascii_lowercase();
        let resp = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint()))
            .send()
            .await
            .expect("create bucket");
        assert!(
            resp.status().is_success(),
            "create bucket {name}: {}",
            resp.status()
        );
        name
    }
}
