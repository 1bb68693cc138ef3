//! Watching the server side from `/proc` while a scenario runs: CPU time (utime + stime) and
//! resident memory of the server's processes (`--server-pid`, several for a cluster's pods,
//! PostgreSQL's postmaster and backends by `--server-pgrep`), the load tool's own CPU, and the
//! kernel's listen-queue counters. A [`Sample`] is taken before connecting, at the start, at the
//! scenario's marks (the measured window's edges, the idle hold) and at the end; reports
//! subtract two of them.

use serde::Serialize;
use std::collections::BTreeMap;

use crate::procfs;

/// Clock ticks per second of `/proc/<pid>/stat` times: USER_HZ, 100 on every Linux this runs on
/// (reading sysconf would need libc and `unsafe`).
const TICKS_PER_SECOND: f64 = 100.0;

/// Which processes are the server's.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub pids: Vec<u32>,
    /// `pgrep -f` pattern, resolved at every sample (backends come and go).
    pub pgrep: Option<String>,
    /// The load tool's own processes: never counted as the server's.
    pub own: Vec<u32>,
}

/// One process's CPU time so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcCpu {
    pub name: String,
    pub ticks: u64,
}

/// What `/proc` said at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// Server processes by pid.
    pub server: BTreeMap<u32, ProcCpu>,
    /// Their summed VmRSS, KiB (`None` without server pids).
    pub server_rss_kib: Option<u64>,
    /// The load tool's processes' CPU ticks.
    pub client_ticks: u64,
    /// `TcpExt` ListenOverflows and ListenDrops.
    pub listen: Option<(u64, u64)>,
}

/// CPU one process used between two samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PidCpu {
    pub pid: u32,
    pub name: String,
    pub cpu_seconds: f64,
}

impl Targets {
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.pgrep.is_none()
    }

    /// The server's pids now: the given ones plus the pattern's matches, without our own.
    pub fn resolve(&self) -> Vec<u32> {
        let mut pids = self.pids.clone();
        if let Some(pattern) = &self.pgrep {
            pids.extend(pgrep(pattern));
        }
        pids.retain(|p| !self.own.contains(p) && *p != std::process::id());
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    pub fn sample(&self) -> Sample {
        let mut server = BTreeMap::new();
        let mut rss = None;
        for pid in self.resolve() {
            if let Some((name, ticks)) = cpu_ticks(pid) {
                server.insert(pid, ProcCpu { name, ticks });
                if let Ok(kib) = procfs::rss_kib(pid) {
                    *rss.get_or_insert(0) += kib;
                }
            }
        }
        let own = self.own.iter().copied().chain([std::process::id()]);
        Sample {
            server,
            server_rss_kib: rss,
            client_ticks: own.filter_map(cpu_ticks).map(|(_, t)| t).sum(),
            listen: std::fs::read_to_string("/proc/net/netstat")
                .ok()
                .and_then(|t| listen_counters(&t)),
        }
    }
}

/// CPU the server used from `start` to `end`, by process: a process missing at the start (a new
/// backend) counts from zero, one gone by the end is left out.
pub fn server_cpu(start: &Sample, end: &Sample) -> Vec<PidCpu> {
    end.server
        .iter()
        .map(|(&pid, now)| {
            let before = start.server.get(&pid).map_or(0, |p| p.ticks);
            PidCpu {
                pid,
                name: now.name.clone(),
                cpu_seconds: now.ticks.saturating_sub(before) as f64 / TICKS_PER_SECOND,
            }
        })
        .collect()
}

/// The load tool's CPU seconds from `start` to `end`.
pub fn client_cpu(start: &Sample, end: &Sample) -> f64 {
    end.client_ticks.saturating_sub(start.client_ticks) as f64 / TICKS_PER_SECOND
}

/// `(comm, utime + stime)` from `/proc/<pid>/stat`.
fn cpu_ticks(pid: u32) -> Option<(String, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    // After ") " come the fields from 3 (state) on: utime is field 14, stime 15.
    let mut fields = stat.get(close + 2..)?.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// `pgrep -f pattern`; nothing when pgrep is missing or nothing matches.
fn pgrep(pattern: &str) -> Vec<u32> {
    match std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect(),
        Err(e) => {
            eprintln!("warning: pgrep -f {pattern:?}: {e}");
            Vec::new()
        }
    }
}

/// `(ListenOverflows, ListenDrops)` from `/proc/net/netstat` (what `nstat -az` shows as
/// `TcpExtListenOverflows` and `TcpExtListenDrops`).
fn listen_counters(netstat: &str) -> Option<(u64, u64)> {
    let mut lines = netstat.lines();
    while let Some(names) = lines.next() {
        let values = lines.next()?;
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let pairs: BTreeMap<&str, u64> = names
            .split_whitespace()
            .zip(values.split_whitespace())
            .skip(1)
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        return Some((*pairs.get("ListenOverflows")?, *pairs.get("ListenDrops")?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_even_with_spaces_and_parens_in_the_name() {
        let stat = "4242 (chat (gw) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 4 0 100 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(("chat (gw) x".into(), 325)));
        assert_eq!(parse_stat("garbage"), None);
        let me = cpu_ticks(std::process::id()).expect("our own stat");
        assert!(!me.0.is_empty());
    }

    #[test]
    fn reads_listen_counters() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\n\
                       TcpExt: 0 12 14 999\n\
                       IpExt: InNoRoutes\n\
                       IpExt: 0\n";
        assert_eq!(listen_counters(netstat), Some((12, 14)));
        assert_eq!(listen_counters("IpExt: A\nIpExt: 1\n"), None);
        if let Ok(real) = std::fs::read_to_string("/proc/net/netstat") {
            assert!(listen_counters(&real).is_some());
        }
    }

    #[test]
    fn cpu_between_samples_by_process() {
        let at = |entries: &[(u32, u64)]| Sample {
            server: entries
                .iter()
                .map(|&(pid, ticks)| {
                    let name = format!("p{pid}");
                    (pid, ProcCpu { name, ticks })
                })
                .collect(),
            client_ticks: entries.len() as u64 * 100,
            ..Sample::default()
        };
        // Pid 1 ran 1.5 s, pid 3 started during the window, pid 2 exited.
        let start = at(&[(1, 100), (2, 50)]);
        let end = at(&[(1, 250), (3, 20)]);
        let cpu = server_cpu(&start, &end);
        let seconds: Vec<(u32, f64)> = cpu.iter().map(|p| (p.pid, p.cpu_seconds)).collect();
        assert_eq!(seconds, vec![(1, 1.5), (3, 0.2)]);
        assert_eq!(client_cpu(&at(&[(1, 0)]), &end), 1.0);
    }

    #[test]
    fn our_own_processes_are_never_the_server() {
        let me = std::process::id();
        let targets = Targets {
            pids: vec![me, 1],
            pgrep: None,
            own: vec![1],
        };
        assert!(targets.resolve().is_empty());
    }
}
