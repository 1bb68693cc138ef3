'use strict';
// Latency histograms in µs that load processes can send to each other and merge: exact below
// 1,024 µs, then 512 buckets per power of two (under 0.2 % error), the maximum kept exactly.

const EXACT = 1024;
const SUB_BITS = 9;
const SUB = 1 << SUB_BITS;

function bucketOf(us) {
  const v = Math.max(0, Math.round(us));
  if (v < EXACT) return v;
  const e = Math.floor(Math.log2(v));
  const sub = Math.floor((v - 2 ** e) / 2 ** (e - SUB_BITS));
  return EXACT + (e - 10) * SUB + sub;
}

/** The middle of bucket `b`, in µs. */
function valueOf(b) {
  if (b < EXACT) return b;
  const e = 10 + Math.floor((b - EXACT) / SUB);
  const width = 2 ** (e - SUB_BITS);
  return 2 ** e + ((b - EXACT) % SUB) * width + width / 2;
}

class Histogram {
  constructor() {
    this.counts = new Map();
    this.count = 0;
    this.max = 0;
  }

  record(us) {
    const b = bucketOf(us);
    this.counts.set(b, (this.counts.get(b) ?? 0) + 1);
    this.count += 1;
    if (us > this.max) this.max = us;
  }

  /** A plain object for IPC; `Histogram.from` reads it back. */
  toJSON() {
    return { counts: Object.fromEntries(this.counts), count: this.count, max: this.max };
  }

  static from(json) {
    const h = new Histogram();
    h.merge(json);
    return h;
  }

  /** Adds another histogram (or its JSON form). */
  merge(other) {
    const counts = other.counts instanceof Map ? other.counts : Object.entries(other.counts);
    for (const [b, n] of counts) {
      const key = Number(b);
      this.counts.set(key, (this.counts.get(key) ?? 0) + n);
    }
    this.count += other.count;
    this.max = Math.max(this.max, other.max);
    return this;
  }

  /** The value at quantile `q` (0–1) in µs, null when empty. */
  quantile(q) {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (const b of [...this.counts.keys()].sort((x, y) => x - y)) {
      seen += this.counts.get(b);
      if (seen >= rank) return Math.min(valueOf(b), this.max);
    }
    return this.max;
  }

  /** p50/p90/p99/max in ms (3 decimals) and the sample count. */
  summary() {
    const ms = (us) => (us === null ? null : Math.round(us) / 1000);
    return {
      p50: ms(this.quantile(0.5)),
      p90: ms(this.quantile(0.9)),
      p99: ms(this.quantile(0.99)),
      max: ms(this.count ? this.max : null),
      count: this.count,
    };
  }
}

module.exports = { Histogram, bucketOf, valueOf };
