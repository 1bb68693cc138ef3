import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryStorage, Outbox, type OutgoingMessage } from "../../src/outbox.js";

const msg = (id: string): OutgoingMessage => ({ clientMsgId: id, kind: "user", to: "bob", text: id, fileType: 0, createdAt: 0 });
const result = (id: string, seq: number) => ({ clientMsgId: id, messageId: `m${seq}`, seq, conversationId: "dm:a:b" });

test("due hands out messages oldest first, within the room, once", () => {
  const o = new Outbox();
  for (const id of ["a", "b", "c"]) void o.add(msg(id));
  assert.deepEqual(o.due(0, 2).map((m) => m.clientMsgId), ["a", "b"]);
  assert.deepEqual(o.due(0, 2).map((m) => m.clientMsgId), ["c"]);
  assert.equal(o.inflight, 3);
  assert.deepEqual(o.due(0, 5), []);
});

test("a send resolves exactly once, even when reply 0 comes twice", async () => {
  const o = new Outbox();
  let settled = 0;
  const p = o.add(msg("a")).then((r) => (settled++, r));
  o.due(0, 1);
  assert.ok(o.stored(result("a", 7)));
  assert.equal(o.stored(result("a", 7)), undefined);
  assert.deepEqual(await p, result("a", 7));
  assert.equal(settled, 1);
  assert.equal(o.size, 0);
});

test("lost connections resend with the same clientMsgId", () => {
  const o = new Outbox();
  void o.add(msg("a"));
  assert.equal(o.due(0, 1)[0].clientMsgId, "a");
  o.lost();
  assert.equal(o.due(0, 1)[0].clientMsgId, "a");
});

test("retryable errors hold a message back until notBefore", () => {
  const o = new Outbox();
  void o.add(msg("a"));
  o.due(0, 1);
  o.retry("a", 1000);
  assert.deepEqual(o.due(500, 1), []);
  assert.equal(o.nextRetryAt(500), 1000);
  assert.equal(o.due(1000, 1)[0].clientMsgId, "a");
});

test("a refusal rejects and forgets the message", async () => {
  const o = new Outbox();
  const p = o.add(msg("a"));
  o.failed("a", new Error("forbidden"));
  await assert.rejects(p, /forbidden/);
  assert.equal(o.has("a"), false);
});

test("restored messages are sent before new ones and settle without waiters", () => {
  const o = new Outbox();
  o.restore([msg("old")]);
  void o.add(msg("new"));
  assert.deepEqual(o.due(0, 5).map((m) => m.clientMsgId), ["old", "new"]);
  assert.ok(o.stored(result("old", 1)));
});

test("rejectAll keeps the messages queued", async () => {
  const o = new Outbox();
  const p = o.add(msg("a"));
  o.rejectAll(new Error("closed"));
  await assert.rejects(p, /closed/);
  assert.equal(o.size, 1);
});

test("memory storage keeps and forgets", async () => {
  const s = new MemoryStorage();
  await s.put(msg("a"));
  await s.put(msg("b"));
  await s.delete("a");
  assert.deepEqual((await s.load()).map((m) => m.clientMsgId), ["b"]);
});
