//! The `chat-gateway` command: `serve`, `token`, `migrate`.

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::config::{Cli, Command, ServeConfig};
use crate::server::{bind, run, termination_signal};
use crate::startup::{connect_backends, SharedListener};
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;

/// The runtime the binary runs on: as many worker threads as the host has cores, less the one
/// the store's writer takes (it runs on a thread of its own, and under load it keeps it busy);
/// at least one. On a 2-core host that is one worker: the sessions' wake-ups, channel hops and
/// socket calls then stay on one thread instead of bouncing between two that also share their
/// cores with the writer (docs/benchmarks.md, "One worker thread"). `TOKIO_WORKER_THREADS`, when
/// set, wins.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(default_worker_threads());
    }
    builder.build()
}

/// Cores (as the process may use them: affinity and cgroup quota count) less one, at least one.
fn default_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1)
}

/// Parses the command line and runs the chosen command.
pub async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => serve(config).await,
        Command::Token(args) => {
            let auth = Auth::from_store_args(&args.store)?;
            println!(
                "{}",
                auth.issue(&args.user, args.name.as_deref(), args.service, args.ttl)?
            );
            Ok(())
        }
        Command::Migrate(args) => {
            init_tracing(false);
            match &args.database_url {
                Some(url) => PgStore::migrate(url).await?,
                None => SqliteStore::migrate(&args.data_dir).await?,
            }
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    init_tracing(config.log_json);
    crate::server::check_config(&config)?;
    let public =
        bind(config.listen).map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen))?;
    let admin: SharedListener = bind(config.admin_listen)
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.admin_listen))?
        .into();
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        termination_signal().await;
        trigger.cancel();
    });
    // A backend that is down delays the start (unready, the admin port says why) instead of
    // failing it.
    let Some(backends) = connect_backends(&config, &admin, &shutdown).await? else {
        return Ok(());
    };
    eprintln!(
        "chat-gateway: open http://{} in a browser (admin on http://{})",
        config.listen, config.admin_listen
    );
    run(config, backends, public, admin, shutdown).await?;
    Ok(())
}
