//! Test support: real gateways (in-process on port 0, or as processes), real WebSocket clients.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

pub mod cdp;
pub mod chaos;
pub mod chat_page;
pub mod cluster;
pub mod files;
pub mod fixtures;
pub mod gateway;
pub mod postgres;
pub mod process_cluster;
pub mod promtool;
pub mod redis;
pub mod s3;
pub mod tls;
pub mod webhook;

pub use chat_client::raw::{Closed, RawClient as Client};
pub use fixtures::TempDir;
pub use gateway::TestGateway;

/// Installs a test log subscriber once (`RUST_LOG` controls it).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}
