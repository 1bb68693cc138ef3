import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff } from "../../src/backoff.js";

test("caps grow exponentially up to maxMs and delays use full jitter", () => {
  const b = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0.999 });
  const caps: number[] = [];
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    caps.push(b.cap());
    delays.push(b.next());
  }
  assert.deepEqual(caps, [100, 200, 400, 800, 1000, 1000]);
  assert.deepEqual(delays, [99, 199, 399, 799, 999, 999]);
  assert.equal(b.attempts, 6);
});

test("full jitter can pick zero and reset starts over", () => {
  const b = new Backoff({ baseMs: 500, maxMs: 30_000, random: () => 0 });
  b.next();
  b.next();
  assert.equal(b.next(), 0);
  b.reset();
  assert.equal(b.attempts, 0);
  assert.equal(b.cap(), 500);
});

test("delays spread uniformly over the window (no synchronized storm)", () => {
  const b = new Backoff({ baseMs: 1000, maxMs: 1000 });
  const buckets = new Array(10).fill(0);
  for (let i = 0; i < 10_000; i++) buckets[Math.floor(b.next() / 100)]++;
  for (const n of buckets) assert.ok(n > 800 && n < 1200, `bucket ${n} not near 1000`);
});

test("huge attempt counts stay finite", () => {
  const b = new Backoff({ baseMs: 500, maxMs: 30_000, random: () => 0.5 });
  for (let i = 0; i < 5000; i++) b.next();
  assert.equal(b.cap(), 30_000);
});
