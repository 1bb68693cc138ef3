'use strict';
// load.js's command line.

const { parseArgs } = require('node:util');

const USAGE = `usage: node load.js --target gateway|socketio --url URL[,URL...] [options]

  --target gateway|socketio   the server's protocol
  --url URLS                  comma-separated; recipient i on URL i mod n, its sender on i+1 mod n
                              (gateway: ws://host:port/ws; socketio: http://host:port)
  --pairs N                   sender/recipient pairs (200)
  --window N                  saturation: messages per sender not yet delivered (16)
  --window-until delivered|reply  what frees a window slot: the delivery (recipient got it
                              and the sender the notice; group: every member got it), or
                              the send's reply, as chat-load's window
  --rate N                    instead of --window: N msg/s over all senders, paced evenly
  --group-size M              group mode: one sender, M members online who ack every delivery
                              (--window / --rate then count group messages)
  --warmup-seconds S          sent but not measured (3)
  --duration-seconds S        the measured window (10)
  --drain-seconds S           after sending stops, wait this long at most for the rest (10)
  --message-bytes B           message text size (64)
  --procs K                   load processes splitting the pairs or members (1)
  --server-pids P,P...        server processes (with descendants) whose CPU is measured
  --aux-pids P,P...           processes whose CPU is reported apart (e.g. the test broker)
  --jwt-secret S              HS256 secret of both servers (bench-secret)
  --socketio-client raw|official  hand-written framing on ws (raw) or socket.io-client
  --connect-concurrency N     connections opened at once per process (64)
  --user-prefix P             user ids are P-s<i>, P-r<i>, P-m<j> (default: unique per run)
  --label KEY=VALUE           added to the JSON line (repeatable)

Prints a human summary, then one JSON line last on stdout; progress on stderr.`;

const SPEC = {
  target: { type: 'string' },
  url: { type: 'string' },
  pairs: { type: 'string', default: '200' },
  window: { type: 'string', default: '16' },
  'window-until': { type: 'string', default: 'delivered' },
  rate: { type: 'string' },
  'group-size': { type: 'string' },
  'warmup-seconds': { type: 'string', default: '3' },
  'duration-seconds': { type: 'string', default: '10' },
  'drain-seconds': { type: 'string', default: '10' },
  'message-bytes': { type: 'string', default: '64' },
  procs: { type: 'string', default: '1' },
  'server-pids': { type: 'string', default: '' },
  'aux-pids': { type: 'string', default: '' },
  'jwt-secret': { type: 'string', default: 'bench-secret' },
  'socketio-client': { type: 'string', default: 'raw' },
  'connect-concurrency': { type: 'string', default: '64' },
  'connect-timeout-seconds': { type: 'string', default: '10' },
  'user-prefix': { type: 'string' },
  label: { type: 'string', multiple: true, default: [] },
  help: { type: 'boolean', short: 'h' },
};

function number(v, name, { min = 0, integer = true } = {}) {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}, not ${v}`);
  }
  return n;
}

function pids(v, name) {
  return v.split(',').filter(Boolean).map((p) => number(p, name, { min: 1 }));
}

/** The options, or throws with a message fit for the user; `help: true` asks for USAGE. */
function parse(argv) {
  const { values: v } = parseArgs({ args: argv, options: SPEC, strict: true });
  if (v.help) return { help: true };
  if (v.target !== 'gateway' && v.target !== 'socketio') throw new Error('--target must be gateway or socketio');
  if (!v.url) throw new Error('--url is required');
  if (!['raw', 'official'].includes(v['socketio-client'])) throw new Error('--socketio-client must be raw or official');
  if (!['delivered', 'reply'].includes(v['window-until'])) throw new Error('--window-until must be delivered or reply');
  const labels = {};
  for (const label of v.label) {
    const eq = label.indexOf('=');
    if (eq < 1) throw new Error(`--label takes KEY=VALUE, not ${label}`);
    const value = label.slice(eq + 1);
    labels[label.slice(0, eq)] = /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  }
  const groupSize = v['group-size'] === undefined ? null : number(v['group-size'], 'group-size', { min: 1 });
  return {
    target: v.target,
    urls: v.url.split(',').filter(Boolean),
    mode: groupSize === null ? 'direct' : 'group',
    pairs: number(v.pairs, 'pairs', { min: 1 }),
    window: number(v.window, 'window', { min: 1 }),
    windowUntil: v['window-until'],
    rate: v.rate === undefined ? null : number(v.rate, 'rate', { min: 0.001, integer: false }),
    groupSize,
    warmupSeconds: number(v['warmup-seconds'], 'warmup-seconds', { integer: false }),
    durationSeconds: number(v['duration-seconds'], 'duration-seconds', { min: 0.001, integer: false }),
    drainSeconds: number(v['drain-seconds'], 'drain-seconds', { integer: false }),
    messageBytes: number(v['message-bytes'], 'message-bytes', { min: 1 }),
    procs: number(v.procs, 'procs', { min: 1 }),
    serverPids: pids(v['server-pids'], 'server-pids'),
    auxPids: pids(v['aux-pids'], 'aux-pids'),
    secret: v['jwt-secret'],
    socketioClient: v['socketio-client'],
    concurrency: number(v['connect-concurrency'], 'connect-concurrency', { min: 1 }),
    connectTimeoutMs: 1000 * number(v['connect-timeout-seconds'], 'connect-timeout-seconds', { min: 0.001, integer: false }),
    userPrefix: v['user-prefix'] ?? null,
    labels,
  };
}

module.exports = { parse, USAGE };
