import assert from "node:assert/strict";
import { test } from "node:test";
import { Sequencer } from "../../src/sequencer.js";

test("in-order messages are released at once", () => {
  const s = new Sequencer<string>();
  assert.deepEqual(s.baseline("c", 0), []);
  assert.deepEqual(s.offer("c", 1, "a").ready, ["a"]);
  assert.deepEqual(s.offer("c", 2, "b").ready, ["b"]);
  assert.equal(s.contiguous("c"), 2);
  assert.equal(s.behind("c"), false);
});

test("an early message waits for the gap below it, then both go in order", () => {
  const s = new Sequencer<string>();
  s.baseline("c", 0);
  s.offer("c", 1, "a");
  assert.deepEqual(s.offer("c", 3, "c").ready, []);
  assert.equal(s.behind("c"), true);
  assert.deepEqual(s.offer("c", 2, "b").ready, ["b", "c"]);
  assert.equal(s.behind("c"), false);
});

test("duplicates are reported, below the contiguous seq and while buffered", () => {
  const s = new Sequencer<string>();
  s.baseline("c", 0);
  s.offer("c", 1, "a");
  assert.equal(s.offer("c", 1, "a").duplicate, true);
  s.offer("c", 3, "c");
  assert.equal(s.offer("c", 3, "c").duplicate, true);
  assert.deepEqual(s.offer("c", 2, "b").ready, ["b", "c"]);
});

test("messages before a baseline wait for it; those at or below it are dropped", () => {
  const s = new Sequencer<string>();
  s.offer("c", 5, "e");
  s.offer("c", 6, "f");
  s.offer("c", 4, "d");
  assert.deepEqual(s.waitingForBaseline(), ["c"]);
  assert.deepEqual(s.baseline("c", 4), ["e", "f"]);
  assert.deepEqual(s.baseline("c", 0), [], "a second baseline changes nothing");
  assert.deepEqual(s.waitingForBaseline(), []);
});

test("own sends fill their slot without being released", () => {
  const s = new Sequencer<string>();
  s.baseline("c", 0);
  s.offer("c", 2, "peer");
  assert.deepEqual(s.fill("c", 1), ["peer"]);
  assert.equal(s.contiguous("c"), 2);
  assert.equal(s.offer("c", 1, "own-echo").duplicate, true);
});

test("a complete SYNC turns unseen seqs into holes (group join point)", () => {
  const s = new Sequencer<string>();
  s.offer("g", 57, "joined");
  s.baseline("g", 0);
  assert.equal(s.behind("g"), true);
  assert.deepEqual(s.synced("g", 0, 57), ["joined"]);
  assert.equal(s.contiguous("g"), 57);
  assert.deepEqual(s.offer("g", 58, "next").ready, ["next"]);
});

test("SYNC releases what it covered and what was buffered above it", () => {
  const s = new Sequencer<string>();
  s.baseline("c", 10);
  s.offer("c", 14, "n");
  s.offer("c", 12, "l");
  assert.deepEqual(s.synced("c", 10, 12), ["l"]);
  assert.equal(s.contiguous("c"), 12);
  assert.equal(s.behind("c"), true, "13 is still missing");
  assert.deepEqual(s.offer("c", 13, "m").ready, ["m", "n"]);
});

test("a SYNC that started above the contiguous seq proves no holes", () => {
  const s = new Sequencer<string>();
  s.baseline("c", 0);
  s.offer("c", 5, "x");
  assert.deepEqual(s.synced("c", 3, 5), []);
  assert.equal(s.contiguous("c"), 0);
});

test("noteLast makes a conversation behind until it catches up", () => {
  const s = new Sequencer<string>();
  s.baseline("c", 2);
  s.noteLast("c", 4);
  assert.equal(s.behind("c"), true);
  s.offer("c", 3, "c");
  s.offer("c", 4, "d");
  assert.equal(s.behind("c"), false);
  assert.equal(s.last("c"), 4);
});

test("conversations are independent", () => {
  const s = new Sequencer<string>();
  s.baseline("a", 0);
  s.baseline("b", 0);
  s.offer("a", 2, "a2");
  assert.deepEqual(s.offer("b", 1, "b1").ready, ["b1"]);
  assert.equal(s.behind("a"), true);
  assert.equal(s.behind("b"), false);
});

test("random permutations with duplicates come out once and in order", () => {
  let seed = 42;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 50; round++) {
    const s = new Sequencer<number>();
    s.baseline("c", 0);
    const arrivals: number[] = [];
    for (let i = 1; i <= 100; i++) arrivals.push(i, ...(rnd() < 0.3 ? [i] : []));
    for (let i = arrivals.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [arrivals[i], arrivals[j]] = [arrivals[j], arrivals[i]];
    }
    const out: number[] = [];
    for (const seq of arrivals) out.push(...s.offer("c", seq, seq).ready);
    assert.deepEqual(out, Array.from({ length: 100 }, (_, i) => i + 1));
  }
});
