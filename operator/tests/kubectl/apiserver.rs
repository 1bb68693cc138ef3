//! The fake API server as a process of its own: `<this test binary> fake-apiserver [--listen
//! ADDR] [--exit-with-stdin]` runs [`FakeApi`] (the same code the in-process controller tests
//! use, its emulated StatefulSet controller and kubelet included) behind HTTP, prints `listening
//! on http://ADDR` and serves until SIGTERM/SIGINT (or, with `--exit-with-stdin`, until its
//! standard input closes: how the test makes sure it never outlives the test). By hand:
//!
//! ```sh
//! cargo test -p chat-operator --test kubectl -- fake-apiserver --listen 127.0.0.1:8001
//! kubectl --server http://127.0.0.1:8001 api-resources
//! ```

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};

use anyhow::{bail, Context as _};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::fake_api::{FakeApi, Settings};
use crate::support::journal::Journal;

/// The argument that makes this binary the fake API server.
pub const COMMAND: &str = "fake-apiserver";

/// Ends the server when its standard input closes.
const EXIT_WITH_STDIN: &str = "--exit-with-stdin";

/// `fake-apiserver [--listen ADDR] [--exit-with-stdin]` (default `127.0.0.1:0`, a free port).
pub fn main(args: &[String]) -> ExitCode {
    let exit_with_stdin = args.iter().any(|a| a == EXIT_WITH_STDIN);
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != EXIT_WITH_STDIN)
        .collect();
    let listen = match args.as_slice() {
        [] => "127.0.0.1:0",
        ["--listen", addr] => addr,
        _ => {
            eprintln!("usage: {COMMAND} [--listen ADDR] [{EXIT_WITH_STDIN}]");
            return ExitCode::from(2);
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(serve(listen, exit_with_stdin)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{COMMAND}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(listen: &str, exit_with_stdin: bool) -> anyhow::Result<()> {
    let api = FakeApi::new(Journal::default(), Settings::default());
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    if exit_with_stdin {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buffer = [0u8; 64];
            while matches!(stdin.read(&mut buffer).await, Ok(n) if n > 0) {}
            shutdown.cancel();
        });
    }
    tokio::spawn(chat_operator::operator::cancel_on_signal(shutdown.clone()));
    api.serve(listener, shutdown).await?;
    Ok(())
}

/// A running `fake-apiserver` process, killed when dropped (and ending by itself when this
/// process dies: its standard input closes).
pub struct Process {
    child: Child,
    _stdin: ChildStdin,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Process {
    /// Starts this test binary as the fake API server on a free port.
    pub fn start() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("this test binary's path")?;
        let mut child = Command::new(exe)
            .arg(COMMAND)
            .arg(EXIT_WITH_STDIN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the fake API server")?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading the fake API server's address")?;
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            bail!("the fake API server printed {line:?}, not its address");
        };
        Ok(Self {
            url: url.to_owned(),
            child,
            _stdin: stdin,
        })
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
