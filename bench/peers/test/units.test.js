'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { parse } = require('../lib/options');
const { payload, parsePayload } = require('../lib/worker');
const { build } = require('../lib/report');
const { Histogram } = require('../lib/histogram');
const { engineUrl } = require('../lib/transport/socketio');
const jwt = require('../lib/jwt');

test('options: defaults, lists, labels and refusals', () => {
  const o = parse(['--target', 'socketio', '--url', 'http://a:1,http://b:2', '--server-pids', '5,6', '--label', 'pair=2', '--label', 'scenario=saturation']);
  assert.deepStrictEqual(o.urls, ['http://a:1', 'http://b:2']);
  assert.deepStrictEqual(o.serverPids, [5, 6]);
  assert.deepStrictEqual(o.labels, { pair: 2, scenario: 'saturation' });
  assert.strictEqual(o.mode, 'direct');
  assert.strictEqual(o.rate, null);
  assert.strictEqual(o.pairs, 200);
  assert.strictEqual(parse(['--target', 'gateway', '--url', 'ws://x/ws', '--group-size', '10']).mode, 'group');
  assert.throws(() => parse(['--target', 'mqtt', '--url', 'x']), /--target/);
  assert.throws(() => parse(['--target', 'gateway']), /--url/);
  assert.throws(() => parse(['--target', 'gateway', '--url', 'x', '--pairs', '0']), /--pairs/);
  assert.throws(() => parse(['--target', 'gateway', '--url', 'x', '--bogus', '1']), /bogus/);
});

test('payload carries send time and number at the requested size', () => {
  const text = payload(1234567.8, 42, 64);
  assert.strictEqual(Buffer.byteLength(text), 64);
  assert.deepStrictEqual(parsePayload(text), { sentUs: 1234568, n: 42 });
  assert.deepStrictEqual(parsePayload(payload(5, 1, 2)), { sentUs: 5, n: 1 });
});

test('Socket.IO URLs lead to the Engine.IO WebSocket endpoint', () => {
  const want = 'ws://h:1/socket.io/?EIO=4&transport=websocket';
  for (const url of ['http://h:1', 'ws://h:1/', 'http://h:1/socket.io/']) assert.strictEqual(engineUrl(url), want);
});

test('jwt: tokens verify with their secret only, expired ones never', () => {
  assert.strictEqual(jwt.verify(jwt.sign('u', 's'), 's').sub, 'u');
  assert.strictEqual(jwt.verify(jwt.sign('u', 's'), 't'), null);
  assert.strictEqual(jwt.verify(jwt.sign('u', 's', { ttlSeconds: -1 }), 's'), null);
  assert.strictEqual(jwt.verify('a.b', 's'), null);
});

function workerReport(over) {
  const empty = new Histogram().toJSON();
  return {
    sent: 0, sentInWindow: 0, completed: 0, completedInWindow: 0, deliveries: 0, deliveriesInWindow: 0,
    duplicates: 0, unfinished: 0, errors: {}, groupFailed: [], reply: empty, deliver: empty, lag: empty, ...over,
  };
}

const base = parse(['--target', 'gateway', '--url', 'ws://x/ws', '--duration-seconds', '2', '--server-pids', '1']);

test('report: direct figures add up over load processes', () => {
  const r = build(base, [
    workerReport({ sent: 10, completedInWindow: 6, unfinished: 1, errors: { 'send:429:rate_limited': 1 } }),
    workerReport({ sent: 10, completedInWindow: 4, errors: { 'send:429:rate_limited': 2 } }),
  ], null, { server: 500, aux: null, client: 100 }, 0.5);
  assert.strictEqual(r.delivered, 10);
  assert.strictEqual(r.delivered_per_s, 5);
  assert.strictEqual(r.lost, 1);
  assert.deepStrictEqual(r.errors, { 'send:429:rate_limited': 3 });
  assert.strictEqual(r.server_cpu_ms_per_1k, 50000);
  assert.strictEqual(r.aux_cpu_ms_per_1k, null);
  assert.ok(!('messages_per_s' in r));
});

test('report: group losses and duplicates per message, failed sends left out', () => {
  const o = { ...base, mode: 'group', groupSize: 3 };
  const counts = new Map([[0, 3], [1, 2], [2, 4]]); // message 3 failed, message 1 lost one
  const r = build(o, [workerReport({ sent: 4, groupFailed: [3], deliveriesInWindow: 9 })], { counts }, { server: null, aux: null, client: 1 }, 0);
  assert.strictEqual(r.lost, 1);
  assert.strictEqual(r.duplicates, 1);
  assert.strictEqual(r.delivered, 9);
  assert.strictEqual(r.server_cpu_ms_per_1k, null);
});

test('ratios: gateway over Socket.IO per pair, medians per scenario', () => {
  const { compare, table, median } = require('../ratios');
  assert.strictEqual(median([3, 1, 2]), 2);
  assert.strictEqual(median([4, 1, 2, 3]), 2.5);
  assert.strictEqual(median([]), null);
  const run = (scenario, pair, target, rate, cpu, p99) => ({
    scenario, pair, target, delivered_per_s: rate, server_cpu_ms_per_1k: cpu, deliver_ms: { p99 }, lost: 0, errors_total: 0,
  });
  const out = compare([
    run('saturation', 1, 'gateway', 100, 10, 4), run('saturation', 1, 'socketio', 200, 5, 2),
    run('saturation', 2, 'socketio', 100, 5, 2), run('saturation', 2, 'gateway', 100, 5, 2),
    run('saturation', 3, 'gateway', 300, 20, 8), run('saturation', 3, 'socketio', 100, 5, 2),
    run('group', 1, 'gateway', 1, 1, 1),
  ]);
  assert.strictEqual(out.rows.length, 3, 'a pair missing one side has no ratio');
  assert.deepStrictEqual(out.medians.get('saturation'), [1, 2, 2]);
  assert.match(table(out), /saturation median = 1\.00/);
});
