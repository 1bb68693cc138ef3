//! What the tool reads from `/proc`: a process's resident memory (the server's, to price an idle
//! connection, and our own), this process's open-file limit and the ephemeral port range — the two
//! limits that decide how many sockets one client process can hold.

use std::io;

/// File descriptors kept back for the runtime, stdio and the odd file beyond one per socket.
pub const RESERVED_FDS: u64 = 64;

/// The open-file limit on these machines when `/proc/self/limits` cannot be read; it cannot be
/// raised (DESIGN.md §10).
const FALLBACK_FD_LIMIT: u64 = 20_000;

/// `VmRSS` of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss_kib(&status).ok_or_else(|| io::Error::other(format!("no VmRSS for pid {pid}")))
}

/// Our own `VmRSS` in KiB, if readable.
pub fn own_rss_kib() -> Option<u64> {
    rss_kib(std::process::id()).ok()
}

fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// This process's soft open-file limit (`None` when unlimited).
pub fn open_files_limit() -> Option<u64> {
    match std::fs::read_to_string("/proc/self/limits") {
        Ok(text) => parse_open_files_limit(&text).unwrap_or(Some(FALLBACK_FD_LIMIT)),
        Err(_) => Some(FALLBACK_FD_LIMIT),
    }
}

/// `Some(None)` for "unlimited", `None` when the line is missing.
fn parse_open_files_limit(limits: &str) -> Option<Option<u64>> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    if soft == "unlimited" {
        return Some(None);
    }
    soft.parse().ok().map(Some)
}

/// Fails with advice when `sockets` connections do not fit in one process's file limit.
pub fn check_fd_budget(sockets: u64, limit: Option<u64>, what: &str) -> Result<(), String> {
    let Some(limit) = limit else { return Ok(()) };
    let max = limit.saturating_sub(RESERVED_FDS);
    if sockets <= max {
        return Ok(());
    }
    let processes = sockets.div_ceil(max.max(1));
    Err(format!(
        "{what} needs {sockets} sockets, but one process may hold at most {max} \
         (open-file limit {limit}, which cannot be raised here, minus {RESERVED_FDS} reserved). \
         Run {processes} chat-load processes side by side, each with at most {max}, \
         a distinct --user-prefix and, past ~28k connections to one address, its own \
         --source-ips (e.g. 127.0.0.2,127.0.0.3)."
    ))
}

/// How many ephemeral ports one source address has towards one destination.
pub fn ephemeral_ports() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    parse_port_range(&text)
}

/// A warning when `sockets` connections to one server address need more ephemeral ports than
/// `addresses` source addresses have (0 = the kernel's choice, which is one address).
pub fn port_warning(sockets: u64, addresses: usize, ports: Option<u64>) -> Option<String> {
    let ports = ports?;
    let available = ports * addresses.max(1) as u64;
    (sockets > available).then(|| {
        format!(
            "warning: {sockets} connections but only ~{available} ephemeral ports from {} source \
             address(es); add --source-ips (127.0.0.2, 127.0.0.3, ...) if connects fail with \
             AddrNotAvailable",
            addresses.max(1)
        )
    })
}

fn parse_port_range(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    let (low, high) = (parts.next()?.ok()?, parts.next()?.ok()?);
    high.checked_sub(low).map(|d| d + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tchat-gateway\nVmPeak:\t  999 kB\nVmRSS:\t   53412 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss_kib(status), Some(53412));
        assert_eq!(parse_vm_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn reads_soft_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            20000                20000                files\n";
        assert_eq!(parse_open_files_limit(limits), Some(Some(20000)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), Some(None));
        assert_eq!(parse_open_files_limit("Max processes 10 10\n"), None);
    }

    #[test]
    fn fd_budget_explains_how_to_split() {
        assert!(check_fd_budget(19_000, Some(20_000), "idle").is_ok());
        assert!(check_fd_budget(1_000_000, None, "idle").is_ok());
        let err = check_fd_budget(50_000, Some(20_000), "idle").unwrap_err();
        assert!(err.contains("at most 19936"), "{err}");
        assert!(err.contains("Run 3 chat-load processes"), "{err}");
    }

    #[test]
    fn reads_port_range() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(28232));
        assert_eq!(parse_port_range("garbage"), None);
        assert_eq!(port_warning(10_000, 0, Some(28_232)), None);
        assert!(port_warning(30_000, 0, Some(28_232)).is_some());
        assert_eq!(port_warning(30_000, 2, Some(28_232)), None);
        assert_eq!(port_warning(30_000, 0, None), None);
    }
}
