#!/usr/bin/env node
'use strict';
// One load client for chat-gateway and the Socket.IO peer (socketio-server.js): the same users,
// placement, pacing and measurements for both; only the framing differs (lib/transport).
// `node load.js --help` lists the options; README.md says what each number means.
//
// This process coordinates: it hands pairs (or group members) to K load processes (itself when
// K = 1), starts them on one clock, samples the servers' CPU at the edges of the measured window,
// waits for the drain, and merges their reports.

const path = require('node:path');
const { fork } = require('node:child_process');
const { Worker } = require('./lib/worker');
const { nowUs } = require('./lib/clock');
const { cpuMs } = require('./lib/procstat');
const { parse, USAGE } = require('./lib/options');
const report = require('./lib/report');

/** Time for the start message to reach every load process before the first send. */
const START_DELAY_US = 300_000;
const PROGRESS_EVERY_MS = 5000;

function log(line) {
  process.stderr.write(`${line}\n`);
}

function fatal(message) {
  log(`load: ${message}`);
  process.exit(1);
}

function spread(count, procs, w) {
  const out = [];
  for (let i = w; i < count; i += procs) out.push(i);
  return out;
}

class Coordinator {
  constructor(opts) {
    this.opts = opts;
    this.prefix = opts.userPrefix ?? `peer${Date.now().toString(36)}${process.pid.toString(36)}`;
    this.waiters = [];
    this.progress = [];
    this.reports = [];
    this.group = { counts: new Map(), complete: 0 };
  }

  workerConfig(w) {
    const o = this.opts;
    return {
      index: w, target: o.target, urls: o.urls, secret: o.secret, prefix: this.prefix, mode: o.mode,
      window: o.window, windowUntil: o.windowUntil, rate: o.rate, messageBytes: o.messageBytes, concurrency: o.concurrency,
      connectTimeoutMs: o.connectTimeoutMs, socketioClient: o.socketioClient, totalPairs: o.pairs,
      groupSize: o.groupSize,
      pairs: o.mode === 'direct' ? spread(o.pairs, o.procs, w) : [],
      members: o.mode === 'group' ? spread(o.groupSize, o.procs, w) : [],
    };
  }

  spawn() {
    this.workers = [];
    for (let w = 0; w < this.opts.procs; w++) {
      const config = this.workerConfig(w);
      const onMessage = (m) => this.onMessage(w, m);
      if (this.opts.procs === 1) {
        const worker = new Worker(config, (m) => setImmediate(() => onMessage(m)));
        this.workers.push({ send: (m) => setImmediate(() => worker.handle(m)) });
      } else {
        const child = fork(path.join(__dirname, 'lib/worker-main.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        child.on('message', onMessage);
        child.on('exit', (code) => {
          if (code && !this.finished) fatal(`load process ${w} exited with ${code}`);
        });
        child.send({ op: 'init', config });
        this.workers.push({ send: (m) => child.send(m) });
      }
      this.progress.push({ sent: 0, completed: 0, deliveries: 0, remaining: 0, sending: true, failed: 0 });
    }
  }

  broadcast(m) {
    for (const w of this.workers) w.send(m);
  }

  /** Resolves when `count` messages of `op` have arrived (from any worker). */
  expect(op, count) {
    return new Promise((resolve) => {
      const got = [];
      this.waiters.push({ op, take: (m) => got.push(m) === count && resolve(got) });
    });
  }

  onMessage(w, m) {
    if (m.op === 'fatal') fatal(m.message);
    if (m.op === 'progress') {
      this.progress[w] = m;
      if (m.counts.length) this.countGroup(m.counts);
    } else if (m.op === 'report') {
      this.reports[w] = m.report;
    }
    for (const waiter of this.waiters) if (waiter.op === m.op) waiter.take(m);
  }

  countGroup(counts) {
    const done = [];
    for (const [n, c] of counts) {
      const total = (this.group.counts.get(n) ?? 0) + c;
      this.group.counts.set(n, total);
      if (total === this.opts.groupSize) done.push(n);
    }
    if (done.length) {
      this.group.complete += done.length;
      this.workers[0].send({ op: 'complete', ns: done });
    }
  }

  total(key) {
    return this.progress.reduce((a, p) => a + p[key], 0);
  }

  drained() {
    if (this.progress.some((p) => p.sending) || this.total('remaining') > 0) return false;
    return this.opts.mode === 'direct' || this.group.complete >= this.total('sent') - this.total('failed');
  }

  sampleCpu() {
    const o = this.opts;
    return { server: cpuMs(o.serverPids), aux: cpuMs(o.auxPids), client: cpuMs([process.pid]) };
  }

  async run() {
    const o = this.opts;
    const started = Date.now();
    this.spawn();
    let groupId;
    if (o.mode === 'group') {
      const made = this.expect('group', 1);
      this.workers[0].send({ op: 'setup' });
      [{ groupId }] = await made;
    }
    const connected = this.expect('connected', o.procs);
    this.broadcast({ op: 'connect', groupId });
    await connected;
    const sockets = o.mode === 'group' ? o.groupSize + 1 : 2 * o.pairs;
    log(`load: ${sockets} connections up in ${((Date.now() - started) / 1000).toFixed(1)} s as ${this.prefix}-*`);

    const base = nowUs() + START_DELAY_US;
    const windowStartUs = o.warmupSeconds * 1e6;
    const windowEndUs = windowStartUs + o.durationSeconds * 1e6;
    const at = (us) => new Promise((resolve) => setTimeout(resolve, Math.max(0, (base + us - nowUs()) / 1000)));
    this.broadcast({ op: 'start', base, windowStartUs, windowEndUs });
    const key = o.mode === 'group' ? 'deliveries' : 'completed';
    let last = { t: nowUs(), n: 0 };
    const ticker = setInterval(() => {
      const t = nowUs();
      const n = this.total(key);
      log(`  ${((t - base) / 1e6).toFixed(1)} s: ${Math.round(((n - last.n) * 1e6) / (t - last.t))} ${o.mode === 'group' ? 'deliveries' : 'delivered'}/s, ${this.total('remaining')} waiting for a reply or delivery`);
      last = { t, n };
    }, PROGRESS_EVERY_MS);

    await at(windowStartUs);
    const cpuStart = this.sampleCpu();
    await at(windowEndUs);
    const cpuEnd = this.sampleCpu();
    clearInterval(ticker);
    const drainStart = nowUs();
    while (!this.drained() && nowUs() - drainStart < o.drainSeconds * 1e6) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const drainSeconds = (nowUs() - drainStart) / 1e6;
    const reports = this.expect('report', o.procs);
    this.finished = true;
    this.broadcast({ op: 'finish' });
    await reports;
    const diff = (k) => (cpuStart[k] === null || cpuEnd[k] === null ? null : Math.round(cpuEnd[k] - cpuStart[k]));
    const cpu = { server: diff('server'), aux: diff('aux'), client: diff('client') };
    return report.build(o, this.reports, this.group, cpu, drainSeconds);
  }
}

async function main() {
  let opts;
  try {
    opts = parse(process.argv.slice(2));
  } catch (e) {
    fatal(`${e.message}\n\n${USAGE}`);
  }
  if (opts.help) {
    console.log(USAGE);
    return;
  }
  const result = await new Coordinator(opts).run();
  console.log(report.human(result));
  console.log(JSON.stringify(result));
  process.exit(0);
}

main().catch((e) => fatal(e.stack ?? e.message));
