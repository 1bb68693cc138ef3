// Steady traffic through the SDK and the checks every fault test makes afterwards.
import assert from "node:assert/strict";
import type { SendResult } from "../../src/index.js";
import { checkExactlyOnceInOrder, sleep, waitFor, type Device } from "./support.js";

/** What one sender did: its texts and how often each send promise settled. */
export interface Stream {
  texts: string[];
  results: Map<string, SendResult>;
  settled: Map<string, number>;
  errors: unknown[];
  done: Promise<void>;
}

/** Sends `n` messages from `from` to a user or group, one every `everyMs`, not awaiting each. */
export function stream(from: Device, kind: "user" | "group", to: string, n: number, everyMs: number, tag: string): Stream {
  const s: Stream = { texts: [], results: new Map(), settled: new Map(), errors: [], done: Promise.resolve() };
  const all: Promise<unknown>[] = [];
  s.done = (async () => {
    for (let i = 0; i < n; i++) {
      const text = `${tag}-${i}`;
      s.texts.push(text);
      const p = kind === "user" ? from.client.send(to, text) : from.client.sendToGroup(to, text);
      all.push(
        p.then(
          (r) => {
            s.settled.set(text, (s.settled.get(text) ?? 0) + 1);
            s.results.set(text, r);
          },
          (e) => {
            s.settled.set(text, (s.settled.get(text) ?? 0) + 1);
            s.errors.push(e);
          },
        ),
      );
      await sleep(everyMs);
    }
    await Promise.all(all);
  })();
  return s;
}

/** Every send settled exactly once, successfully, with distinct seqs in one conversation. */
export function checkSends(s: Stream): string {
  assert.deepEqual(s.errors, [], "no send failed");
  for (const t of s.texts) assert.equal(s.settled.get(t), 1, `send ${t} settled ${s.settled.get(t)} times`);
  const cids = new Set([...s.results.values()].map((r) => r.conversationId));
  assert.equal(cids.size, 1, "one conversation");
  const seqs = new Set([...s.results.values()].map((r) => r.seq));
  assert.equal(seqs.size, s.texts.length, "distinct seqs");
  return [...cids][0];
}

/** The texts of these streams (one conversation) in the order the server stored them. */
export function storedOrder(...streams: Stream[]): string[] {
  const all = streams.flatMap((s) => [...s.results.entries()]);
  return all.sort((a, b) => a[1].seq - b[1].seq).map(([t]) => t);
}

/** Waits until `d` saw everything `expected` in `cid`, then checks once-and-in-order. */
export async function checkReceived(d: Device, cid: string, expected: string[], what: string, ms = 60_000): Promise<void> {
  const count = () => d.seen.filter((m) => m.conversationId === cid && !m.system).length;
  await waitFor(`${what}: ${expected.length} messages (saw ${count()})`, () => count() >= expected.length, ms).catch((e) => {
    throw new Error(`${e.message}; ${checkExactlyOnceInOrder(d.seen, expected, cid)}`);
  });
  await sleep(300); // a duplicate arriving late would show now
  assert.equal(checkExactlyOnceInOrder(d.seen, expected, cid), null, what);
}
