'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const { cpuMs, parseStat } = require('../lib/procstat');

test('parses a stat line whose command holds spaces and parentheses', () => {
  const line = '42 (a (b) c) S 7 42 42 0 -1 4194560 100 0 0 0 150 25 3 2 20 0 1 0 5 0 0';
  assert.deepStrictEqual(parseStat(line), { ppid: 7, ticks: 180 });
});

test('counts a child process under its parent', async () => {
  const child = spawn(process.execPath, ['-e', 'const end = Date.now() + 300; while (Date.now() < end);']);
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await new Promise((resolve) => setTimeout(resolve, 250));
  const withChild = cpuMs([process.pid]);
  const child_ = cpuMs([child.pid]);
  assert.ok(child_ > 0, `child used ${child_} ms`);
  assert.ok(withChild >= child_, `${withChild} < ${child_}`);
  await exited;
  assert.strictEqual(cpuMs([child.pid]), null);
});
