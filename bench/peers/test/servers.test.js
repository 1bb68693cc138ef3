'use strict';
// load.js against real servers, briefly: the Socket.IO peer (one process, and two joined by
// Redis), and chat-gateway (GATEWAY_BIN, default the workspace's release build).

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');

const HERE = path.join(__dirname, '..');
const GATEWAY_BIN = process.env.GATEWAY_BIN ?? path.join(HERE, '../../target/release/chat-gateway');
const SECRET = 'test-secret';

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function ready(url) {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} never became ready`);
}

function start(t, cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  t.after(() => child.kill());
  return child;
}

function load(args) {
  const out = execFileSync(process.execPath, [path.join(HERE, 'load.js'), '--jwt-secret', SECRET,
    '--warmup-seconds', '0.5', '--duration-seconds', '1', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
  const lines = out.toString().trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

function assertClean(r) {
  assert.ok(r.delivered > 0, JSON.stringify(r));
  assert.strictEqual(r.errors_total, 0, JSON.stringify(r.errors));
  assert.strictEqual(r.lost, 0);
  assert.strictEqual(r.duplicates, 0);
  assert.ok(r.server_cpu_ms > 0);
  assert.ok(r.deliver_ms.p99 > 0);
}

async function socketio(t, extra = []) {
  const port = await freePort();
  const server = start(t, process.execPath, [path.join(HERE, 'socketio-server.js'), '--port', `${port}`, '--jwt-secret', SECRET, ...extra]);
  await ready(`http://127.0.0.1:${port}/readyz`);
  return { url: `http://127.0.0.1:${port}`, pid: server.pid };
}

test('Socket.IO peer: direct at saturation, paced, group, official client', async (t) => {
  const { url, pid } = await socketio(t);
  const base = ['--target', 'socketio', '--url', url, '--server-pids', `${pid}`];
  assertClean(load([...base, '--pairs', '5', '--window', '4']));
  const paced = load([...base, '--pairs', '5', '--rate', '200', '--procs', '2']);
  assertClean(paced);
  assert.ok(Math.abs(paced.delivered_per_s - 200) < 30, `${paced.delivered_per_s} msg/s at 200 offered`);
  const group = load([...base, '--group-size', '20', '--window', '2']);
  assertClean(group);
  assertClean(load([...base, '--pairs', '3', '--window', '2', '--socketio-client', 'official']));
  assertClean(load([...base, '--pairs', '3', '--window', '2', '--window-until', 'reply', '--group-size', '5']));
  assertClean(load([...base, '--pairs', '3', '--window', '2', '--window-until', 'reply']));
});

test('Socket.IO peer: two processes joined by the Redis adapter act as one', async (t) => {
  const redisPort = await freePort();
  start(t, 'redis-server', ['--port', `${redisPort}`, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const redis = ['--redis', `redis://127.0.0.1:${redisPort}`];
  const [a, b] = [await socketio(t, redis), await socketio(t, redis)];
  const r = load(['--target', 'socketio', '--url', `${a.url},${b.url}`, '--server-pids', `${a.pid},${b.pid}`, '--pairs', '4', '--window', '2']);
  assertClean(r);
});

test('chat-gateway: direct and group over the wire protocol', async (t) => {
  assert.ok(fs.existsSync(GATEWAY_BIN),
    `no gateway binary at ${GATEWAY_BIN}: run cargo build --release -p chat-gateway, or set GATEWAY_BIN`);
  const [port, admin] = [await freePort(), await freePort()];
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-peers-test-'));
  t.after(() => fs.rmSync(data, { recursive: true, force: true }));
  const gw = start(t, GATEWAY_BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`,
    '--data-dir', data, '--jwt-secret', SECRET, '--drain-seconds', '0',
    '--rate-limit-per-second', '100000', '--rate-burst', '100000',
    '--user-send-rate', '0', '--connect-rate-per-ip', '0']);
  await ready(`http://127.0.0.1:${admin}/readyz`);
  const base = ['--target', 'gateway', '--url', `ws://127.0.0.1:${port}/ws`, '--server-pids', `${gw.pid}`];
  assertClean(load([...base, '--pairs', '5', '--window', '4']));
  assertClean(load([...base, '--pairs', '5', '--window', '4', '--window-until', 'reply']));
  assertClean(load([...base, '--group-size', '20', '--window', '2']));
});
