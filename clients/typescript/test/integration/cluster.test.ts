// The SDK against a cluster of real gateway processes (sdk-harness: PostgreSQL, Redis, the Pulsar
// test broker, 3 pods) behind a balancer that, like a Service, routes new connections to ready
// pods only: a drain hop, and a rollout that drains and replaces every pod in turn.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { ConnectionState, Welcome } from "../../src/index.js";
import { Balancer, device, drain, Harness, sleep, waitFor, type Device } from "./support.js";
import { checkReceived, checkSends, storedOrder, stream } from "./traffic.js";

let harness: Harness;
let lb: Balancer;

before(async () => {
  harness = await Harness.start(3);
  lb = await new Balancer(() => harness.backends()).start();
});
after(async () => {
  await lb.stop();
  await harness.stop();
});

/** Records the pods a device was welcomed on and every state it went through. */
function track(d: Device): { servers: string[]; states: ConnectionState[] } {
  const t = { servers: [] as string[], states: [] as ConnectionState[] };
  d.client.on("connected", (w: Welcome) => void t.servers.push(w.server));
  d.client.on("state", (s) => void t.states.push(s));
  return t;
}

test("DRAIN: the client hops to another pod before the deadline without a reconnect gap", async () => {
  const alice = device(lb.url, "dr-alice", "a1");
  const bob = device(lb.url, "dr-bob", "b1");
  const seenBob = track(bob);
  await Promise.all([alice.client.connect(), bob.client.connect()]);
  const from = seenBob.servers[0];
  const i = harness.pods.findIndex((p) => p?.name === from);
  assert.ok(i >= 0, `bob's pod ${from} is one of the harness's`);
  const a = stream(alice, "user", "dr-bob", 120, 10, "a");
  await sleep(300);
  const started = Date.now();
  await drain(harness.pods[i]!.admin, 6);
  await waitFor("bob's hop", () => seenBob.servers.length >= 2, 6_000);
  assert.ok(Date.now() - started < 6_000, "moved before the deadline");
  assert.notEqual(seenBob.servers[1], from, "moved to another pod");
  assert.deepEqual(seenBob.states, ["connecting", "open", "draining", "open"], "a hand-over, never a reconnect");
  await a.done;
  const cid = checkSends(a);
  await checkReceived(bob, cid, storedOrder(a), "bob across the drain");
  alice.client.close();
  bob.client.close();
  await sleep(6_500); // the drained pod closes its leftovers at the deadline
  await harness.restart(i);
});

test("rollout: each pod drained and replaced in turn while 1:1 and group traffic flows", async () => {
  const alice = device(lb.url, "ro-alice", "a1");
  const bob = device(lb.url, "ro-bob", "b1");
  const carol = device(lb.url, "ro-carol", "c1");
  const tracks = [alice, bob, carol].map(track);
  await Promise.all([alice.client.connect(), bob.client.connect(), carol.client.connect()]);
  const group = await alice.client.createGroup("rollout", ["ro-bob", "ro-carol"]);
  const dm = stream(alice, "user", "ro-bob", 240, 40, "dm");
  const ga = stream(alice, "group", group.groupId, 160, 60, "ga");
  const gc = stream(carol, "group", group.groupId, 160, 60, "gc");
  for (let i = 0; i < 3; i++) {
    await sleep(500);
    await drain(harness.pods[i]!.admin, 2);
    await sleep(2_300); // past the deadline: the pod closed what was left
    await harness.restart(i);
  }
  await Promise.all([dm.done, ga.done, gc.done]);
  const cid = checkSends(dm);
  const gcid = checkSends(ga);
  assert.equal(checkSends(gc), gcid);
  await checkReceived(bob, cid, storedOrder(dm), "bob's 1:1 messages through the rollout");
  await checkReceived(bob, gcid, storedOrder(ga, gc), "bob's group messages through the rollout");
  await checkReceived(carol, gcid, storedOrder(ga), "carol's group messages through the rollout");
  for (const t of tracks) assert.ok(t.servers.length >= 2, `every client moved at least once: ${t.servers}`);
  for (const d of [alice, bob, carol]) d.client.close();
});

test("a pod SIGKILLed mid-stream: its clients reconnect to the others and lose nothing", async () => {
  const alice = device(lb.url, "kc-alice", "a1");
  const bob = device(lb.url, "kc-bob", "b1");
  const seenBob = track(bob);
  await Promise.all([alice.client.connect(), bob.client.connect()]);
  const i = harness.pods.findIndex((p) => p?.name === seenBob.servers[0]);
  const a = stream(alice, "user", "kc-bob", 120, 10, "a");
  await sleep(400);
  await harness.kill(i);
  await a.done;
  await harness.restart(i);
  const cid = checkSends(a);
  await checkReceived(bob, cid, storedOrder(a), "bob after his pod died");
  assert.ok(seenBob.states.includes("reconnecting"));
  alice.client.close();
  bob.client.close();
});
