//! `pulsar-test-broker --port P --admin-port Q`: the test broker as a process, so cluster mode
//! can be tried on one machine without a Pulsar installation.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Parser;
use pulsar_test_broker::{Broker, BrokerConfig, ServerTls};
use tracing_subscriber::EnvFilter;

/// A Pulsar-protocol test broker: in-memory topics, the binary protocol the `pulsar` crate
/// speaks, and the admin REST API for tenants, namespaces and topics. Test support, not a
/// product: nothing is persisted; TLS and one token are optional.
#[derive(Debug, Parser)]
#[command(version)]
struct Config {
    /// Address both listeners bind to.
    #[arg(long, env = "PULSAR_TEST_BROKER_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the Pulsar binary protocol (clients use pulsar://HOST:PORT); 0 picks a free one.
    #[arg(long, env = "PULSAR_TEST_BROKER_PORT", default_value_t = 6650)]
    port: u16,
    /// Port of the admin REST API (http://HOST:ADMIN_PORT/admin/v2/...); 0 picks a free one.
    #[arg(long, env = "PULSAR_TEST_BROKER_ADMIN_PORT", default_value_t = 8080)]
    admin_port: u16,
    /// Host name that topic lookups send clients to (default: the bind address, or 127.0.0.1
    /// when that is 0.0.0.0 or ::).
    #[arg(long, env = "PULSAR_TEST_BROKER_ADVERTISED_HOST")]
    advertised_host: Option<String>,
    /// Seconds between the broker's PINGs to each client; a client that sends nothing for an
    /// interval after a PING is disconnected.
    #[arg(long, env = "PULSAR_TEST_BROKER_KEEPALIVE_SECS", default_value_t = 30)]
    keepalive_secs: u64,
    /// PEM certificate chain: serve pulsar+ssl:// and https:// (needs --tls-key-file).
    #[arg(
        long,
        env = "PULSAR_TEST_BROKER_TLS_CERT_FILE",
        requires = "tls_key_file"
    )]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(
        long,
        env = "PULSAR_TEST_BROKER_TLS_KEY_FILE",
        requires = "tls_cert_file"
    )]
    tls_key_file: Option<PathBuf>,
    /// Token clients must present: on CONNECT (auth method `token`) and as `Authorization: Bearer` to the admin API.
    #[arg(long, env = "PULSAR_TEST_BROKER_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Log JSON lines instead of text (the level comes from RUST_LOG, default info).
    #[arg(long, env = "LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // logs on stderr: stdout carries only the ready line
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        logs.json().init();
    } else {
        logs.init();
    }

    let broker_config = BrokerConfig {
        keepalive_interval: Duration::from_secs(config.keepalive_secs.max(1)),
        advertised_host: config.advertised_host,
        tls: match (&config.tls_cert_file, &config.tls_key_file) {
            (Some(cert), Some(key)) => Some(ServerTls::from_pem(
                &std::fs::read_to_string(cert).with_context(|| format!("{}", cert.display()))?,
                &std::fs::read_to_string(key).with_context(|| format!("{}", key.display()))?,
            )?),
            _ => None,
        },
        auth_token: config.auth_token,
    };
    let broker = Broker::start_with(
        broker_config,
        (config.host, config.port),
        (config.host, config.admin_port),
    )
    .await
    .context("could not bind the broker's listeners")?;
    // one stable line on stdout, so scripts that pass port 0 can read the ports back
    println!(
        "pulsar-test-broker ready service_url={} admin_url={}",
        broker.service_url(),
        broker.admin_url()
    );

    shutdown_signal().await?;
    tracing::info!("shutting down");
    broker.shutdown().await;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
