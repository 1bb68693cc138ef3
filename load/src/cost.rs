//! What the work cost: server and load-tool CPU seconds between two of the runner's samples,
//! per 1,000 units of work (delivered messages), with the server's share by process.

use std::fmt;

use serde::Serialize;

use crate::probe::{client_cpu, server_cpu, PidCpu, Sample};
use crate::scenario::Watched;

/// CPU used between two samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cost {
    /// Seconds between the samples (as scheduled).
    pub seconds: f64,
    /// The unit of work counted per 1,000.
    pub per_1000_of: &'static str,
    /// Summed over the server's processes; `None` without `--server-pid`/`--server-pgrep`.
    pub server_cpu_seconds: Option<f64>,
    pub server_cpu_seconds_per_1000: Option<f64>,
    /// The server's processes, each with its CPU seconds.
    pub server_processes: Vec<PidCpu>,
    /// The load tool's own processes (all of them with `--procs`).
    pub client_cpu_seconds: f64,
    pub client_cpu_seconds_per_1000: Option<f64>,
}

impl Cost {
    /// The cost from mark `from` to mark `to` of `watched`, for `work` units done between them;
    /// `None` when a mark was not reached.
    pub fn between(
        watched: &Watched,
        (from, to): (&str, &str),
        seconds: f64,
        work: (u64, &'static str),
    ) -> Option<Self> {
        let (start, end) = (watched.marks.get(from)?, watched.marks.get(to)?);
        Some(Self::of(start, end, seconds, work, watched.server_watched))
    }

    /// The cost from `start` to `end`.
    pub fn of(
        start: &Sample,
        end: &Sample,
        seconds: f64,
        (work, per_1000_of): (u64, &'static str),
        server: bool,
    ) -> Self {
        let per_1000 = |cpu: f64| (work > 0).then(|| cpu * 1000.0 / work as f64);
        let processes = server_cpu(start, end);
        let server_cpu_seconds = server.then(|| processes.iter().map(|p| p.cpu_seconds).sum());
        let client_cpu_seconds = client_cpu(start, end);
        Cost {
            seconds,
            per_1000_of,
            server_cpu_seconds,
            server_cpu_seconds_per_1000: server_cpu_seconds.and_then(per_1000),
            server_processes: processes,
            client_cpu_seconds,
            client_cpu_seconds_per_1000: per_1000(client_cpu_seconds),
        }
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        match self.server_cpu_seconds {
            Some(cpu) => {
                writeln!(
                    f,
                    "  server CPU   {cpu:>8.2} s over {:.1} s = {} CPU-s per 1,000 {} ({} process(es))",
                    self.seconds,
                    per(self.server_cpu_seconds_per_1000),
                    self.per_1000_of,
                    self.server_processes.len()
                )?;
                for p in &self.server_processes {
                    writeln!(
                        f,
                        "    pid {:>7} {:<16} {:>8.2} s",
                        p.pid, p.name, p.cpu_seconds
                    )?;
                }
            }
            None => writeln!(
                f,
                "  server CPU   not measured (give --server-pid or --server-pgrep)"
            )?,
        }
        writeln!(
            f,
            "  client CPU   {:>8.2} s = {} CPU-s per 1,000 {} (this load tool)",
            self.client_cpu_seconds,
            per(self.client_cpu_seconds_per_1000),
            self.per_1000_of
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ProcCpu;

    #[test]
    fn cost_per_thousand() {
        let sample = |ticks: u64, client: u64| Sample {
            server: [(
                7,
                ProcCpu {
                    name: "gw".into(),
                    ticks,
                },
            )]
            .into(),
            client_ticks: client,
            ..Sample::default()
        };
        let cost = Cost::of(
            &sample(100, 10),
            &sample(300, 60),
            10.0,
            (4000, "delivered"),
            true,
        );
        assert_eq!(cost.server_cpu_seconds, Some(2.0));
        assert_eq!(cost.server_cpu_seconds_per_1000, Some(0.5));
        assert_eq!(cost.client_cpu_seconds_per_1000, Some(0.125));
        assert!(
            cost.to_string().contains("0.500 CPU-s per 1,000 delivered"),
            "{cost}"
        );
        let unwatched = Cost::of(&sample(1, 1), &sample(2, 2), 1.0, (0, "delivered"), false);
        assert_eq!(unwatched.server_cpu_seconds, None);
        assert_eq!(unwatched.client_cpu_seconds_per_1000, None);
        assert!(unwatched.to_string().contains("not measured"));
    }
}
