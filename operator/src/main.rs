//! `chat-operator` command line: parses arguments and calls into the library.

use std::io::Write;

use anyhow::Context;
use chat_operator::operator::{self, RunConfig, SHUTDOWN_GRACE};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Kubernetes operator for chatcluster.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the ChatCluster CustomResourceDefinition as YAML
    /// (`chat-operator crd > crds/chatcluster.yaml`).
    Crd,
    /// Reconcile ChatClusters until SIGTERM or SIGINT (what the Helm chart's Deployment runs).
    Run(RunConfig),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            let yaml = chat_operator::crd::crd_yaml()?;
            std::io::stdout()
                .write_all(yaml.as_bytes())
                .context("writing the CRD to stdout")?;
        }
        Command::Run(config) => {
            init_tracing(config.log_json);
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")?
                .block_on(run(config))?;
        }
    }
    Ok(())
}

/// Runs the operator until a signal, then gives it [`SHUTDOWN_GRACE`] to stop.
async fn run(config: RunConfig) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(operator::cancel_on_signal(shutdown.clone()));
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = operator::run(config, shutdown.clone()) => result.context("chat-operator run"),
        () = deadline => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "shutdown took too long; exiting");
            Ok(())
        }
    }
}

/// `RUST_LOG`-style filter (default `info`), text or JSON lines.
fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
