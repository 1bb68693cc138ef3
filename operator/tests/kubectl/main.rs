//! The real `kubectl` against the fake API server running as a process of its own, with the real
//! operator reconciling: what a user does with a ChatCluster, end to end, over HTTP.
//!
//! Real: kubectl (whichever is installed: 1.32 on the development machines, the npm one CI
//! installs), its discovery, OpenAPI, server-side apply, Table printing, `scale`, `describe` and
//! `delete --wait`; the operator's controller (`run_controller`) with a `kube::Client` built from
//! the same kubeconfig; the repo's example ChatCluster (`tests/e2e-kind/manifests/chatcluster.yaml`).
//!
//! Fake: the API server (`support::fake_api`, the same code as the in-process tests, served over
//! HTTP by this binary run as `fake-apiserver`, see [`apiserver`]) with its StatefulSet
//! controller and kubelet, and the operator's three backends (Pulsar and Redis as the controller
//! tests fake them; the gateways' admin API answered from the pods the fake server holds).
//!
//! Its own `main` (`harness = false`), like `rollout_real`: run with `fake-apiserver`, the binary
//! is the fake API server, so the test starts it as a separate process without a binary of
//! another package.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

#[path = "../support/mod.rs"]
mod support;

mod apiserver;
mod gateways;
mod kubectl;
mod scenario;

use std::process::ExitCode;
use std::time::Instant;

/// The scenario's name, for `cargo test` filters.
const TEST: &str = "kubectl_applies_gets_scales_describes_and_deletes_a_chat_cluster";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == apiserver::COMMAND) {
        return apiserver::main(&args[1..]);
    }
    if args.iter().any(|a| a == "--list") {
        println!("{TEST}: test");
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| TEST.contains(f.as_str())) {
        println!("running 0 tests");
        return ExitCode::SUCCESS;
    }
    println!("running 1 test");
    let started = Instant::now();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(scenario::run());
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => {
            println!("test {TEST} ... ok ({seconds:.1} s)");
            println!(
                "\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out"
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("test {TEST} ... FAILED ({seconds:.1} s)\n{err:#}");
            println!(
                "\ntest result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out"
            );
            ExitCode::FAILURE
        }
    }
}
