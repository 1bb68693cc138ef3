//! `chat-operator` command line: parses arguments and calls into the library.

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => {
            let yaml = chat_operator::crd::crd_yaml()?;
            std::io::stdout()
                .write_all(yaml.as_bytes())
                .context("writing the CRD to stdout")?;
        }
    }
    Ok(())
}
