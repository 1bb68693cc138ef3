//! `main` of a test binary that is also the gateway (`harness = false`): run with `serve …`, it
//! is a `chat-gateway` process (the fake kubelet starts the pods from it); otherwise it runs its
//! one scenario as `cargo test` runs a test (`--list`, name filters, the "running"/"ok" lines).

use std::future::Future;
use std::process::ExitCode;
use std::time::Instant;

/// Dispatches on the arguments: the gateway's CLI, or the scenario `test` named `name`.
pub fn main<F: Future<Output = ()>>(name: &str, test: impl FnOnce() -> F) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "serve") {
        return gateway();
    }
    if args.iter().any(|a| a == "--list") {
        println!("{name}: test");
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        println!("running 0 tests");
        return ExitCode::SUCCESS;
    }
    println!("running 1 test");
    let started = Instant::now();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(test());
    println!(
        "test {name} ... ok ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// `<this binary> serve …`: a gateway process.
fn gateway() -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(chat_gateway::cli::main()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chat-gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}
