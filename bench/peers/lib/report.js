'use strict';
// Merging the load processes' reports into the run's figures, and printing them.

const { Histogram } = require('./histogram');

/**
 * The run's result. `reports` come from the workers; `group` is the coordinator's count of
 * deliveries per group message ({counts: Map n -> deliveries}); `cpu` holds the CPU ms of the
 * server, aux and load processes over the measured window (null when not measured).
 */
function build(opts, reports, group, cpu, drainSeconds) {
  const sum = (key) => reports.reduce((acc, r) => acc + r[key], 0);
  const hist = (key) => reports.reduce((h, r) => h.merge(r[key]), new Histogram());
  const errors = {};
  for (const r of reports) {
    for (const [kind, n] of Object.entries(r.errors)) errors[kind] = (errors[kind] ?? 0) + n;
  }
  let delivered;
  let lost;
  let duplicates;
  if (opts.mode === 'group') {
    delivered = sum('deliveriesInWindow');
    const failed = new Set(reports.flatMap((r) => r.groupFailed));
    lost = 0;
    duplicates = 0;
    for (let n = 0; n < sum('sent'); n++) {
      if (failed.has(n)) continue;
      const got = group.counts.get(n) ?? 0;
      lost += Math.max(0, opts.groupSize - got);
      duplicates += Math.max(0, got - opts.groupSize);
    }
  } else {
    delivered = sum('completedInWindow');
    lost = sum('unfinished');
    duplicates = sum('duplicates');
  }
  const perThousand = (ms) => (ms === null || delivered === 0 ? null : round((ms * 1000) / delivered, 2));
  const result = {
    ...opts.labels,
    target: opts.target,
    mode: opts.mode,
    load: opts.rate === null ? 'window' : 'rate',
    window: opts.rate === null ? opts.window : null,
    window_until: opts.rate === null ? opts.windowUntil : undefined,
    rate: opts.rate,
    pairs: opts.mode === 'direct' ? opts.pairs : null,
    group_size: opts.groupSize,
    procs: opts.procs,
    urls: opts.urls,
    message_bytes: opts.messageBytes,
    warmup_s: opts.warmupSeconds,
    duration_s: opts.durationSeconds,
    sent: sum('sent'),
    sent_in_window: sum('sentInWindow'),
    delivered,
    delivered_per_s: round(delivered / opts.durationSeconds, 1),
    messages_per_s: opts.mode === 'group' ? round(sum('completedInWindow') / opts.durationSeconds, 2) : undefined,
    deliver_ms: hist('deliver').summary(),
    reply_ms: hist('reply').summary(),
    send_lag_ms: opts.rate === null ? undefined : hist('lag').summary(),
    errors,
    errors_total: Object.values(errors).reduce((a, b) => a + b, 0),
    lost,
    duplicates,
    drain_s: round(drainSeconds, 2),
    server_pids: opts.serverPids,
    server_cpu_ms: cpu.server,
    server_cpu_ms_per_1k: perThousand(cpu.server),
    aux_pids: opts.auxPids,
    aux_cpu_ms: cpu.aux,
    aux_cpu_ms_per_1k: perThousand(cpu.aux),
    client_cpu_ms: cpu.client,
  };
  return JSON.parse(JSON.stringify(result)); // drops the undefined fields
}

function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const int = (n) => (n === null || n === undefined ? '-' : Math.round(n).toLocaleString('en-US'));
const latency = (s) => `p50 ${s.p50 ?? '-'}  p90 ${s.p90 ?? '-'}  p99 ${s.p99 ?? '-'}  max ${s.max ?? '-'} ms`;

/** The human summary, a few lines. */
function human(r) {
  const what = r.mode === 'group'
    ? `group of ${int(r.group_size)} online members`
    : `1:1, ${int(r.pairs)} pairs`;
  const load = r.load === 'rate' ? `${int(r.rate)} msg/s offered` : `saturation, window ${r.window} until ${r.window_until}`;
  const unit = r.mode === 'group' ? 'deliveries' : 'msg';
  const lines = [
    `${r.target} (${r.urls.join(', ')}): ${what}, ${load}, ${r.duration_s} s measured after ${r.warmup_s} s warm-up, ${r.procs} load process(es)`,
    `  delivered       ${int(r.delivered_per_s)} ${unit}/s (${int(r.delivered)} in the window${
      r.mode === 'group' ? `; ${r.messages_per_s} group messages/s` : ', recipient got it and sender got the notice'})`,
    `  send->deliver   ${latency(r.deliver_ms)}`,
    `  send->reply     ${latency(r.reply_ms)}`,
  ];
  if (r.send_lag_ms) lines.push(`  send lag        p99 ${r.send_lag_ms.p99 ?? '-'}  max ${r.send_lag_ms.max ?? '-'} ms (behind the pacing schedule)`);
  lines.push(`  errors ${r.errors_total}${r.errors_total ? ` ${JSON.stringify(r.errors)}` : ''}, lost ${r.lost}, duplicates ${r.duplicates}, drained in ${r.drain_s} s`);
  if (r.server_cpu_ms !== null) {
    lines.push(`  server CPU      ${int(r.server_cpu_ms)} ms in the window = ${r.server_cpu_ms_per_1k ?? '-'} ms per 1,000 ${unit === 'msg' ? 'delivered' : 'deliveries'} (pids ${r.server_pids.join(',')})`);
  }
  if (r.aux_cpu_ms !== null) {
    lines.push(`  aux CPU         ${int(r.aux_cpu_ms)} ms = ${r.aux_cpu_ms_per_1k ?? '-'} ms per 1,000 (pids ${r.aux_pids.join(',')}, not in the server's)`);
  }
  lines.push(`  load CPU        ${int(r.client_cpu_ms)} ms in the window (all load processes)`);
  return lines.join('\n');
}

module.exports = { build, human };
