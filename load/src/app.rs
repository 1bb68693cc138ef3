//! From the command line to the output: check the arguments, run the scenario here or in
//! `--procs` children, then print the table, write `--out` and `--plot`, and print `--json`.

use std::fmt::Display;

use anyhow::anyhow;
use serde::Serialize;

use crate::cli::{Cli, Command, Output, ServerArgs};
use crate::direct::Direct;
use crate::group::Group;
use crate::identity::run_prefix;
use crate::idle::Idle;
use crate::live::Units;
use crate::probe::Targets;
use crate::procs::{self, ChildConfig};
use crate::scenario::{read_config, Gate, Scenario};
use crate::storm::Storm;
use crate::{plot, procfs, runner, validate};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = cli.worker_threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Child => child().await,
            command => {
                validate::check(&command, &cli.output).map_err(|e| anyhow!(e))?;
                top(command, &cli.output, cli.worker_threads).await
            }
        }
    })
}

/// The process the user started: runs the scenario, or its `--procs` children.
async fn top(
    mut command: Command,
    output: &Output,
    worker_threads: Option<usize>,
) -> anyhow::Result<()> {
    let name = command.name();
    let connect = connect_mut(&mut command).expect("a scenario");
    connect.user_prefix.get_or_insert_with(run_prefix);
    let (secret, source_ips) = (connect.jwt_secret.clone(), connect.source_ips.len());
    let server = server_args(&command);
    let sockets = sockets_of(&command);
    if let Some(warning) = procfs::port_warning(sockets, source_ips, procfs::ephemeral_ports()) {
        eprintln!("{warning}");
    }
    let targets = Targets {
        pids: server.server_pid.clone(),
        pgrep: server.server_pgrep.clone(),
        own: Vec::new(),
    };
    let top = Top {
        command: &command,
        secret: &secret,
        output,
        worker_threads,
        targets,
        title: name,
    };
    match &command {
        Command::Idle(a) => top.go(&Idle { args: a.clone() }).await,
        Command::Direct(a) => {
            top.go(&Direct {
                args: a.clone(),
                name,
            })
            .await
        }
        Command::CrossPod(a) => {
            top.go(&Direct {
                args: a.clone(),
                name,
            })
            .await
        }
        Command::Group(a) => top.go(&Group { args: a.clone() }).await,
        Command::Storm(a) => top.go(&Storm { args: a.clone() }).await,
        Command::Child => unreachable!("children do not start here"),
    }
}

struct Top<'a> {
    command: &'a Command,
    secret: &'a str,
    output: &'a Output,
    worker_threads: Option<usize>,
    targets: Targets,
    title: &'static str,
}

impl Top<'_> {
    async fn go<S: Scenario>(&self, scenario: &S) -> anyhow::Result<()> {
        let (tally, watched) = if self.output.procs > 1 {
            let config = (self.command, self.secret);
            let procs = self.output.procs;
            procs::parent(scenario, config, procs, self.worker_threads, &self.targets).await?
        } else {
            runner::local(scenario, &self.targets).await?
        };
        let timeline = watched.timeline.clone();
        let report = scenario.report(tally, watched);
        emit(
            &report,
            self.output,
            (self.title, scenario.units()),
            &timeline,
        )
    }
}

/// Prints the table, writes `--out` and `--plot`, and prints `--json` last.
fn emit<R: Display + Serialize>(
    report: &R,
    output: &Output,
    (title, units): (&str, Units),
    timeline: &[crate::live::Second],
) -> anyhow::Result<()> {
    print!("{report}");
    if let Some(path) = &output.out {
        std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")
            .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &output.plot {
        plot::draw(path, &format!("chat-load {title}"), units, timeline)?;
        eprintln!("plotted {}", path.display());
    }
    if output.json {
        println!("{}", serde_json::to_string(report)?);
    }
    Ok(())
}

/// A child of `--procs`: its configuration on stdin, its share, its tally on stdout.
async fn child() -> anyhow::Result<()> {
    let (config, stdin): (ChildConfig, _) = read_config().await?;
    let ChildConfig {
        mut command,
        share,
        jwt_secret,
    } = config;
    if let Some(connect) = connect_mut(&mut command) {
        connect.jwt_secret = jwt_secret;
    }
    let (gate, _start) = Gate::child(stdin);
    let name = command.name();
    match command {
        Command::Idle(args) => runner::child(&Idle { args }, share, gate).await,
        Command::Direct(args) | Command::CrossPod(args) => {
            runner::child(&Direct { args, name }, share, gate).await
        }
        Command::Group(args) => runner::child(&Group { args }, share, gate).await,
        Command::Storm(args) => runner::child(&Storm { args }, share, gate).await,
        Command::Child => Err(anyhow!("a child cannot start children")),
    }
}

fn connect_mut(command: &mut Command) -> Option<&mut crate::cli::ConnectArgs> {
    match command {
        Command::Idle(a) => Some(&mut a.connect),
        Command::Direct(a) | Command::CrossPod(a) => Some(&mut a.connect),
        Command::Group(a) => Some(&mut a.connect),
        Command::Storm(a) => Some(&mut a.connect),
        Command::Child => None,
    }
}

fn server_args(command: &Command) -> ServerArgs {
    match command {
        Command::Idle(a) => a.server.clone(),
        Command::Direct(a) | Command::CrossPod(a) => a.server.clone(),
        Command::Group(a) => a.server.clone(),
        Command::Storm(a) => a.server.clone(),
        Command::Child => ServerArgs::default(),
    }
}

/// Sockets the whole run opens (for the ephemeral-port warning).
fn sockets_of(command: &Command) -> u64 {
    match command {
        Command::Idle(a) => a.connections,
        Command::Direct(a) | Command::CrossPod(a) => 2 * a.pairs as u64,
        Command::Group(a) => a.members as u64,
        Command::Storm(a) => 2 * a.clients,
        Command::Child => 0,
    }
}
