//! The chaos test's network: a bridge `chaosbr0` in the root namespace at [`HOST_IP`], where the
//! backends listen, and at one more address per backend ([`BACKEND_IPS`]), where the proxies in
//! front of them listen ([`super::proxy`]); and one network namespace per pod (`chaos-pod{i}`)
//! joined to it by a veth pair, the pod at `10.77.0.{10+i}`. A partition is a blackhole route
//! in the pod's namespace to one backend's address. (`tc` qdiscs such as `netem` and `prio` are
//! missing from this kernel: latency is added by the proxies.) Needs root (CAP_NET_ADMIN and
//! CAP_SYS_ADMIN) and iproute2's `ip`.

use std::process::Command;

/// The bridge in the root namespace.
const BRIDGE: &str = "chaosbr0";
/// The root namespace's address on the bridge: where Redis, PostgreSQL and the broker listen.
pub const HOST_IP: &str = "10.77.0.1";
/// The addresses of the proxies in front of Redis, PostgreSQL and the broker.
pub const BACKEND_IPS: [&str; 3] = ["10.77.0.2", "10.77.0.3", "10.77.0.4"];
/// The private /24 of the chaos network.
pub const SUBNET: &str = "10.77.0.0/24";
/// How many pod namespaces a stale run may have left (cleaned up at start).
const MAX_PODS: usize = 8;

/// Runs `program args`; returns its stderr as the error when it fails.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e} (install iproute2: apt-get install -y iproute2)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command that must succeed; panics with what failed and why it may have.
fn must(program: &str, args: &[&str]) {
    if let Err(e) = run(program, args) {
        panic!(
            "chaos network setup failed: {e}\nThe chaos test needs root (CAP_NET_ADMIN and \
             CAP_SYS_ADMIN) to create network namespaces, a bridge and veth pairs, and iproute2's \
             `ip`; run it as root (CI: a privileged container or VM)."
        );
    }
}

/// The namespace of pod `i`.
pub fn namespace(i: usize) -> String {
    format!("chaos-pod{i}")
}

/// Pod `i`'s address.
pub fn pod_ip(i: usize) -> String {
    format!("10.77.0.{}", 10 + i)
}

/// The pod's side of pod `i`'s veth pair (inside its namespace).
fn pod_dev(i: usize) -> String {
    format!("chv{i}p")
}

/// The chaos network with `n` pod namespaces; torn down on drop.
pub struct Network {
    pods: usize,
}

impl Network {
    /// Removes what a crashed run left, then creates the bridge and `n` namespaces.
    pub fn create(n: usize) -> Self {
        assert!(n <= MAX_PODS, "at most {MAX_PODS} pods");
        cleanup();
        must("ip", &["link", "add", BRIDGE, "type", "bridge"]);
        must(
            "ip",
            &["addr", "add", &format!("{HOST_IP}/24"), "dev", BRIDGE],
        );
        for ip in BACKEND_IPS {
            must("ip", &["addr", "add", &format!("{ip}/24"), "dev", BRIDGE]);
        }
        must("ip", &["link", "set", BRIDGE, "up"]);
        for i in 0..n {
            let (ns, host_dev, dev) = (namespace(i), format!("chv{i}h"), pod_dev(i));
            must("ip", &["netns", "add", &ns]);
            must(
                "ip",
                &[
                    "link", "add", &host_dev, "type", "veth", "peer", "name", &dev, "netns", &ns,
                ],
            );
            must("ip", &["link", "set", &host_dev, "master", BRIDGE]);
            must("ip", &["link", "set", &host_dev, "up"]);
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", &ns, "ip"];
                all.extend_from_slice(args);
                must("ip", &all);
            };
            inside(&["addr", "add", &format!("{}/24", pod_ip(i)), "dev", &dev]);
            inside(&["link", "set", &dev, "up"]);
            inside(&["link", "set", "lo", "up"]);
        }
        Self { pods: n }
    }

    /// Pod `i` can no longer reach `ip` (a backend's proxy address): a blackhole route in its
    /// namespace drops what it sends there (connections hang; new connects fail at once).
    pub fn partition(&self, i: usize, ip: &str) {
        let ns = namespace(i);
        must(
            "ip",
            &["-n", &ns, "route", "add", "blackhole", &format!("{ip}/32")],
        );
    }

    /// Removes pod `i`'s partition from `ip`.
    pub fn heal(&self, i: usize, ip: &str) {
        let ns = namespace(i);
        let _ = run("ip", &["-n", &ns, "route", "del", &format!("{ip}/32")]);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = self.pods;
        cleanup();
    }
}

/// Kills what still runs in the chaos namespaces (pods of a crashed run, started by this test),
/// then deletes them and the bridge. Quiet about what is not there.
pub fn cleanup() {
    for i in 0..MAX_PODS {
        let ns = namespace(i);
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = run("ip", &["netns", "del", &ns]);
    }
    let _ = run("ip", &["link", "del", BRIDGE]);
}
