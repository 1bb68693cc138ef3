'use strict';
// CPU time of server processes from /proc: utime + stime of every thread of a process, plus its
// descendants (PostgreSQL's backends are children of the postmaster) and the children it has
// already reaped (cutime + cstime), so a backend that exits mid-window is still counted.

const fs = require('node:fs');
const { execFileSync } = require('node:child_process');

function clockTicks() {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
}
const TICKS_PER_SECOND = clockTicks();

/** `{ppid, ticks}` from one /proc/<pid>/stat line (the command name may hold spaces). */
function parseStat(line) {
  const fields = line.slice(line.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
  const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  return { ppid: Number(fields[1]), ticks };
}

function readAll() {
  const procs = new Map();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      procs.set(Number(name), parseStat(fs.readFileSync(`/proc/${name}/stat`, 'utf8')));
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return procs;
}

/**
 * CPU milliseconds used so far by `pids` and all their descendants, each process counted once;
 * null when one of `pids` is gone.
 */
function cpuMs(pids) {
  if (pids.length === 0) return null;
  const procs = readAll();
  const children = new Map();
  for (const [pid, { ppid }] of procs) {
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(pid);
  }
  const seen = new Set();
  const stack = [];
  for (const pid of pids) {
    if (!procs.has(pid)) return null;
    stack.push(pid);
  }
  let ticks = 0;
  while (stack.length) {
    const pid = stack.pop();
    if (seen.has(pid)) continue;
    seen.add(pid);
    ticks += procs.get(pid).ticks;
    stack.push(...(children.get(pid) ?? []));
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

module.exports = { cpuMs, parseStat };
