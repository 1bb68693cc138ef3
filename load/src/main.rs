//! `chat-load`: real WebSocket clients for chat-gateway, in five scenarios — `idle` (server
//! memory per connection), `direct` alias `throughput` (1:1 rates, latency, CPU per message),
//! `cross-pod` (direct across gateways), `group` (fan-out to an online group) and `storm`
//! (everyone reconnects at once). A progress line goes to stderr once a second, the report to
//! stdout; `--out` writes it as JSON, `--json` adds it as the last stdout line, `--plot` draws the
//! per-second timeline. `--procs K` splits the clients over K processes.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

mod app;
mod cli;
mod client;
mod cost;
mod direct;
mod group;
mod histogram;
mod identity;
mod idle;
mod live;
mod pacing;
mod plot;
mod probe;
mod procfs;
mod procs;
mod protocol;
mod runner;
mod scenario;
mod stats;
mod storm;
mod validate;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    match app::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
