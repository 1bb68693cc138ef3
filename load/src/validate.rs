//! Argument checks clap cannot express, with errors that say what to change. They run before
//! anything connects.

use crate::cli::{Command, ConnectArgs, DirectArgs, GroupArgs, Output, RunArgs};

/// The largest message text that fits a 64 KiB frame with the SEND around it.
const MAX_MESSAGE_BYTES: usize = 60_000;

/// Checks the scenario's arguments together with the output options.
pub fn check(command: &Command, output: &Output) -> Result<(), String> {
    if output.procs == 0 {
        return Err("--procs must be at least 1".into());
    }
    match command {
        Command::Idle(a) => {
            one_url(&a.connect, "idle")?;
            at_least("--connections", a.connections, 1)?;
            fits_procs("--connections", a.connections, output.procs)
        }
        Command::Direct(a) => direct(a, output),
        Command::CrossPod(a) => {
            if a.connect.url.len() < 2 {
                return Err(format!(
                    "cross-pod needs the URLs of at least two gateways (--url a,b,…), got {}; \
                     use `direct` for one gateway",
                    a.connect.url.len()
                ));
            }
            direct(a, output)
        }
        Command::Group(a) => group(a, output),
        Command::Storm(a) => {
            urls(&a.connect)?;
            at_least("--clients", a.clients, 1)?;
            at_least("--attempts", u64::from(a.attempts), 1)?;
            fits_procs("--clients", a.clients, output.procs)
        }
        Command::Child => Err("`child` is internal to --procs".into()),
    }
}

fn direct(a: &DirectArgs, output: &Output) -> Result<(), String> {
    urls(&a.connect)?;
    run(&a.run)?;
    at_least("--pairs", a.pairs as u64, 1)?;
    fits_procs("--pairs", a.pairs as u64, output.procs)
}

fn group(a: &GroupArgs, output: &Output) -> Result<(), String> {
    urls(&a.connect)?;
    run(&a.run)?;
    if output.procs > 1 {
        return Err(
            "group runs in one process (one group, one set of members): drop --procs; \
                    one process holds ~19.9k members"
                .into(),
        );
    }
    at_least("--members", a.members as u64, 2)?;
    if a.senders == 0 || a.senders > a.members {
        return Err(format!(
            "--senders must be between 1 and --members ({}), got {}",
            a.members, a.senders
        ));
    }
    Ok(())
}

fn run(a: &RunArgs) -> Result<(), String> {
    at_least("--duration-seconds", a.duration_seconds, 1)?;
    at_least("--window", a.window as u64, 1)?;
    if let Some(rate) = a.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!("--rate must be a positive number, got {rate}"));
        }
    }
    if a.message_bytes == 0 || a.message_bytes > MAX_MESSAGE_BYTES {
        return Err(format!(
            "--message-bytes must be between 1 and {MAX_MESSAGE_BYTES} (a frame is at most \
             64 KiB), got {}",
            a.message_bytes
        ));
    }
    Ok(())
}

fn urls(a: &ConnectArgs) -> Result<(), String> {
    if a.url.is_empty() {
        return Err("--url needs at least one URL".into());
    }
    Ok(())
}

fn one_url(a: &ConnectArgs, scenario: &str) -> Result<(), String> {
    match a.url.len() {
        1 => Ok(()),
        n => Err(format!(
            "{scenario} measures one gateway: give one --url (got {n})"
        )),
    }
}

fn at_least(flag: &str, value: u64, min: u64) -> Result<(), String> {
    if value < min {
        return Err(format!("{flag} must be at least {min}, got {value}"));
    }
    Ok(())
}

fn fits_procs(flag: &str, value: u64, procs: usize) -> Result<(), String> {
    if value < procs as u64 {
        return Err(format!(
            "--procs {procs} is more processes than {flag} {value}: each needs a share"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::{CommandFactory, Parser};

    fn parse(args: &[&str]) -> Cli {
        let mut argv = vec!["chat-load"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("parses")
    }

    fn error(args: &[&str]) -> String {
        let cli = parse(args);
        check(&cli.command, &cli.output).expect_err("refused")
    }

    #[test]
    fn cli_is_consistent_and_every_flag_has_help() {
        Cli::command().debug_assert();
        let mut cmd = Cli::command();
        cmd.build();
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some(),
                    "{} --{id} has no help",
                    sub.get_name()
                );
            }
        }
    }

    #[test]
    fn throughput_is_direct_and_keeps_its_flags() {
        let cli = parse(&[
            "throughput",
            "--jwt-secret",
            "s",
            "--pairs",
            "10",
            "--rate",
            "2000",
            "--source-ips",
            "127.0.0.1,127.0.0.2",
            "--server-pid",
            "10,20",
            "--json",
        ]);
        assert!(cli.output.json);
        let Command::Direct(a) = &cli.command else {
            panic!("expected direct")
        };
        assert_eq!((a.pairs, a.run.rate, a.run.window), (10, Some(2000.0), 16));
        assert_eq!(a.connect.source_ips.len(), 2);
        assert_eq!(a.server.server_pid, [10, 20]);
        assert_eq!(a.connect.url, ["ws://127.0.0.1:8080/ws"]);
        assert_eq!(check(&cli.command, &cli.output), Ok(()));
    }

    #[test]
    fn clear_errors_for_impossible_runs() {
        let e = error(&["direct", "--jwt-secret", "s", "--pairs", "0"]);
        assert_eq!(e, "--pairs must be at least 1, got 0");
        let e = error(&["direct", "--jwt-secret", "s", "--rate=-5"]);
        assert!(e.contains("--rate must be a positive number"), "{e}");
        let e = error(&["cross-pod", "--jwt-secret", "s"]);
        assert!(e.contains("at least two gateways"), "{e}");
        let e = error(&[
            "idle",
            "--jwt-secret",
            "s",
            "--connections",
            "5",
            "--url",
            "ws://a/ws,ws://b/ws",
        ]);
        assert!(e.contains("give one --url"), "{e}");
        let e = error(&[
            "group",
            "--jwt-secret",
            "s",
            "--members",
            "3",
            "--senders",
            "4",
        ]);
        assert!(
            e.contains("--senders must be between 1 and --members (3)"),
            "{e}"
        );
        let e = error(&["group", "--jwt-secret", "s", "--procs", "2"]);
        assert!(e.contains("group runs in one process"), "{e}");
        let e = error(&[
            "storm",
            "--jwt-secret",
            "s",
            "--clients",
            "3",
            "--procs",
            "4",
        ]);
        assert!(
            e.contains("--procs 4 is more processes than --clients 3"),
            "{e}"
        );
        let e = error(&["direct", "--jwt-secret", "s", "--message-bytes", "70000"]);
        assert!(
            e.contains("--message-bytes must be between 1 and 60000"),
            "{e}"
        );
        let e = error(&[
            "idle",
            "--jwt-secret",
            "s",
            "--connections",
            "9",
            "--procs",
            "0",
        ]);
        assert_eq!(e, "--procs must be at least 1");
    }

    #[test]
    fn cross_pod_takes_several_urls() {
        let cli = parse(&[
            "cross-pod",
            "--jwt-secret",
            "s",
            "--url",
            "ws://127.0.0.1:8080/ws,ws://127.0.0.1:8081/ws",
            "--procs",
            "2",
        ]);
        assert_eq!(check(&cli.command, &cli.output), Ok(()));
        assert_eq!(cli.command.name(), "cross-pod");
        assert_eq!(cli.output.procs, 2);
    }

    #[test]
    fn arguments_travel_as_json_without_the_secret() {
        let cli = parse(&["storm", "--jwt-secret", "hush", "--clients", "7"]);
        let json = serde_json::to_string(&cli.command).unwrap();
        assert!(!json.contains("hush"), "{json}");
        let back: Command = serde_json::from_str(&json).unwrap();
        let Command::Storm(a) = back else {
            panic!("expected storm")
        };
        assert_eq!((a.clients, a.connect.jwt_secret.as_str()), (7, ""));
    }
}
