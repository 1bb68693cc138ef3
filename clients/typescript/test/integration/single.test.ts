// The SDK against one real embedded gateway (`chat-gateway serve`, SQLite): round trips, a
// SIGKILL and restart mid-stream, and a proxy that cuts every connection at random.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { DeliveredEvent } from "../../src/index.js";
import { Balancer, device, Gateway, sleep, waitFor } from "./support.js";
import { checkReceived, checkSends, storedOrder, stream } from "./traffic.js";

let gw: Gateway;
let lb: Balancer;

before(async () => {
  gw = await Gateway.start(["--ack-timeout-ms", "2000"]);
  lb = await new Balancer(() => [{ addr: gw.addr, admin: gw.admin }]).start();
});
after(async () => {
  await lb.stop();
  await gw.stop();
});

test("1:1 and group round trips: stored replies, ordered once-only delivery, receipts", async () => {
  const alice = device(gw.url, "rt-alice", "a1");
  const bob = device(gw.url, "rt-bob", "b1");
  const carol = device(gw.url, "rt-carol", "c1");
  const delivered: DeliveredEvent[] = [];
  alice.client.on("delivered", (d) => void delivered.push(d));
  const groupEvents: string[] = [];
  carol.client.on("group", (g) => void groupEvents.push(g.event));
  await Promise.all([alice.client.connect(), bob.client.connect(), carol.client.connect()]);

  const s = stream(alice, "user", "rt-bob", 30, 2, "dm");
  await s.done;
  const cid = checkSends(s);
  assert.deepEqual([...s.results.values()].map((r) => r.seq).sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i + 1));
  await checkReceived(bob, cid, storedOrder(s), "bob's 1:1 messages");
  await waitFor("30 DELIVERED receipts", () => delivered.length === 30);

  const group = await alice.client.createGroup("team", ["rt-bob", "rt-carol"]);
  const ga = stream(alice, "group", group.groupId, 20, 3, "ga");
  const gb = stream(bob, "group", group.groupId, 20, 3, "gb");
  await Promise.all([ga.done, gb.done]);
  const gcid = checkSends(ga);
  assert.equal(checkSends(gb), gcid);
  await checkReceived(carol, gcid, storedOrder(ga, gb), "carol's group messages");
  assert.deepEqual(groupEvents, ["created"]);
  const history = await carol.client.sync(gcid, 0);
  assert.equal(history.messages.length, 41, "the created event and 40 messages");
  for (const d of [alice, bob, carol]) d.client.close();
});

test("a gateway SIGKILLed and restarted mid-stream loses nothing and duplicates nothing", async () => {
  const alice = device(lb.url, "k-alice", "a1");
  const bob = device(lb.url, "k-bob", "b1");
  await Promise.all([alice.client.connect(), bob.client.connect()]);
  const a = stream(alice, "user", "k-bob", 150, 8, "a");
  const b = stream(bob, "user", "k-alice", 50, 20, "b");
  await sleep(400);
  await gw.kill9();
  await sleep(500);
  await gw.spawn();
  await sleep(600);
  await gw.kill9();
  await gw.spawn();
  await Promise.all([a.done, b.done]);
  const cid = checkSends(a);
  assert.equal(checkSends(b), cid);
  const order = storedOrder(a, b);
  await checkReceived(bob, cid, order.filter((t) => t.startsWith("a-")), "bob after the crashes");
  await checkReceived(alice, cid, order.filter((t) => t.startsWith("b-")), "alice after the crashes");
  alice.client.close();
  bob.client.close();
});

test("a proxy cutting every connection at random: every message once, in order", async () => {
  const alice = device(lb.url, "cut-alice", "a1");
  const bob = device(lb.url, "cut-bob", "b1");
  const carol = device(lb.url, "cut-carol", "c1");
  await Promise.all([alice.client.connect(), bob.client.connect(), carol.client.connect()]);
  const group = await alice.client.createGroup("cuts", ["cut-bob", "cut-carol"]);
  let cutting = true;
  const cutter = (async () => {
    while (cutting) {
      await sleep(150 + Math.random() * 450);
      if (cutting) lb.cut();
    }
  })();
  const dm = stream(alice, "user", "cut-bob", 150, 10, "dm");
  const ga = stream(alice, "group", group.groupId, 80, 15, "ga");
  const gb = stream(bob, "group", group.groupId, 80, 15, "gb");
  await Promise.all([dm.done, ga.done, gb.done]);
  cutting = false;
  await cutter;
  assert.ok(lb.cuts >= 3, `only ${lb.cuts} cuts`);
  const cid = checkSends(dm);
  const gcid = checkSends(ga);
  await checkReceived(bob, cid, storedOrder(dm), "bob's 1:1 messages through the cuts");
  await checkReceived(carol, gcid, storedOrder(ga, gb), "carol's group messages through the cuts");
  await checkReceived(bob, gcid, storedOrder(ga), "bob's group messages (his own are not echoed to him)");
  for (const d of [alice, bob, carol]) d.client.close();
});
