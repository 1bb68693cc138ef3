//! `chat-load`: real WebSocket clients for chat-gateway. `idle` prices an idle connection in
//! server memory; `throughput` measures stored/delivered rates and latency percentiles. Progress
//! goes to stderr, the report to stdout, and with `--json` one JSON object as its last line.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

mod cli;
mod client;
mod identity;
mod idle;
mod pacing;
mod procfs;
mod protocol;
mod stats;
mod throughput;

use std::fmt::Display;
use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.worker_threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Idle(args) => print(&idle::run(args).await?, cli.json),
            Command::Throughput(args) => print(&throughput::run(args).await?, cli.json),
        }
    })
}

fn print<R: Display + Serialize>(report: &R, json: bool) -> anyhow::Result<()> {
    print!("{report}");
    if json {
        println!("{}", serde_json::to_string(report)?);
    }
    Ok(())
}
