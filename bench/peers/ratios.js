#!/usr/bin/env node
'use strict';
// The table scripts/bench-peers.sh ends with: for each scenario and interleaved pair, the
// gateway's figure over Socket.IO's (delivered msg/s, server CPU per delivered message, p99
// send->deliver), and the median of each ratio over the pairs.
//
//   node ratios.js results.jsonl      (JSON lines of load.js with labels scenario= and pair=)

const fs = require('node:fs');

const WIDTH = 40;
const COLUMNS = [
  { name: 'delivered/s', get: (r) => r.delivered_per_s },
  { name: 'server CPU-ms per 1k', get: (r) => r.server_cpu_ms_per_1k },
  { name: 'p99 send->deliver ms', get: (r) => r.deliver_ms?.p99 },
];

function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function ratio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : null;
}

/** Rows {scenario, pair, gateway, socketio, ratios[]} and medians per scenario. */
function compare(results) {
  const byKey = new Map();
  for (const r of results) {
    const key = `${r.scenario}\u0000${r.pair}`;
    if (!byKey.has(key)) byKey.set(key, { scenario: r.scenario, pair: r.pair });
    byKey.get(key)[r.target] = r;
  }
  const rows = [...byKey.values()]
    .filter((row) => row.gateway && row.socketio)
    .map((row) => ({ ...row, ratios: COLUMNS.map((c) => ratio(c.get(row.gateway), c.get(row.socketio))) }));
  const medians = new Map();
  for (const scenario of new Set(rows.map((row) => row.scenario))) {
    const mine = rows.filter((row) => row.scenario === scenario);
    medians.set(scenario, COLUMNS.map((_, i) => median(mine.map((row) => row.ratios[i]))));
  }
  return { rows, medians };
}

const fmt = (x, digits = 2) => (x === null || x === undefined ? '-' : Number(x).toFixed(digits));
const num = (x) => (x === null || x === undefined ? '-' : x >= 100 ? Math.round(x).toLocaleString('en-US') : fmt(x, 1));

function table({ rows, medians }) {
  const lines = [];
  const cell = (a, b, r) => `${num(a)} / ${num(b)} = ${fmt(r)}`.padEnd(WIDTH);
  lines.push(`${'scenario'.padEnd(11)}${'pair'.padEnd(7)}${COLUMNS.map((c) => `${c.name} (gw / sio = ratio)`.padEnd(WIDTH)).join('  ')}`);
  for (const [scenario, med] of medians) {
    for (const row of rows.filter((r) => r.scenario === scenario)) {
      const cells = COLUMNS.map((c, i) => cell(c.get(row.gateway), c.get(row.socketio), row.ratios[i]));
      let line = `${scenario.padEnd(11)}${String(row.pair).padEnd(7)}${cells.join('  ')}`;
      if (row.gateway.aux_cpu_ms_per_1k != null) line += `  broker ${fmt(row.gateway.aux_cpu_ms_per_1k, 1)} CPU-ms per 1k (apart)`;
      if (row.gateway.lost || row.socketio.lost || row.gateway.errors_total || row.socketio.errors_total) {
        line += `  lost ${row.gateway.lost}/${row.socketio.lost}, errors ${row.gateway.errors_total}/${row.socketio.errors_total}`;
      }
      lines.push(line);
    }
    lines.push(`${scenario.padEnd(11)}${'median'.padEnd(7)}${med.map((m) => `= ${fmt(m)}`.padEnd(WIDTH)).join('  ')}`);
  }
  return lines.map((line) => line.trimEnd()).join('\n');
}

module.exports = { compare, table, median };

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node ratios.js results.jsonl');
    process.exit(2);
  }
  const results = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  console.log(table(compare(results)));
}
