'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { Histogram, bucketOf, valueOf } = require('../lib/histogram');

test('buckets are exact below 1 ms and within 0.2 % above', () => {
  for (const v of [0, 1, 999, 1023]) assert.strictEqual(valueOf(bucketOf(v)), v);
  for (const v of [1024, 1500, 65_537, 3_000_000, 123_456_789]) {
    const got = valueOf(bucketOf(v));
    assert.ok(Math.abs(got - v) / v < 0.002, `${v} -> ${got}`);
  }
  assert.ok(bucketOf(2047) < bucketOf(2048));
});

test('quantiles, max and merging across processes', () => {
  const a = new Histogram();
  const b = new Histogram();
  for (let i = 1; i <= 100; i++) (i % 2 ? a : b).record(i * 1000);
  const merged = Histogram.from(JSON.parse(JSON.stringify(a))).merge(b.toJSON());
  assert.strictEqual(merged.count, 100);
  assert.strictEqual(merged.max, 100_000);
  const s = merged.summary();
  assert.ok(Math.abs(s.p50 - 50) < 0.2, JSON.stringify(s));
  assert.ok(Math.abs(s.p99 - 99) < 0.2, JSON.stringify(s));
  assert.strictEqual(s.max, 100);
  assert.deepStrictEqual(new Histogram().summary(), { p50: null, p90: null, p99: null, max: null, count: 0 });
});
