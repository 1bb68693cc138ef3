// ChatClient against scripted sockets with fake timers: the decisions of the connection state
// machine (drain hand-over, kicks, reconnect backoff, resends, gap repair) without a network.
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";
import { ChatClient } from "../../src/client.js";
import type { ChatMessage } from "../../src/message.js";

class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: any[] = [];
  onopen: any = null;
  onmessage: any = null;
  onclose: any = null;
  onerror: any = null;
  closedWith?: number;
  constructor(
    readonly url: string,
    readonly protocols?: string[],
  ) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code = 1000) {
    this.closedWith = code;
    this.readyState = 3;
  }
  /** Server side: accept and WELCOME. */
  welcome(extra: object = {}) {
    this.readyState = 1;
    this.push({ type: 20, status: 200, params: { sessionId: "s", userId: "bob", deviceId: "d1", server: "gw-0", timelife: 1800, heartbeat: 30, expiresAt: Date.now() + 1_800_000, ...extra } });
  }
  push(frame: object) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  requests(type: number) {
    return this.sent.filter((f) => f.type === type);
  }
  reply(type: number, replyType: number, params: object) {
    const req = this.requests(type).at(-1);
    this.push({ type: replyType, status: 200, params, requestId: req.requestId });
  }
}

const deliver = (seq: number, cid = "dm:alice:bob") => ({
  activeTime: 1, from: "system", messageId: `m${String(seq).padStart(31, "0")}`, msgType: 1, trigger: 1, retry: false,
  msg: { type: 2, status: 200, params: { conversationId: cid, seq, message: `text ${seq}`, fromUser: { openid: "alice" }, toUser: { openid: "bob" } } },
});

let client: ChatClient;
const tick = async (ms: number) => {
  mock.timers.tick(ms);
  for (let i = 0; i < 5; i++) await Promise.resolve();
};
const settle = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

beforeEach(() => {
  FakeSocket.all = [];
  mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now: 1_000_000 });
  client = new ChatClient({ url: "ws://gw/ws", token: "tok", deviceId: "d1", WebSocket: FakeSocket as any, backoff: { baseMs: 1000, maxMs: 8000, random: () => 0.5 } });
});
afterEach(() => {
  client.close();
  mock.timers.reset();
});

async function connected(welcome: object = {}): Promise<FakeSocket> {
  const opened = client.connect();
  await settle();
  const ws = FakeSocket.all.at(-1)!;
  ws.welcome(welcome);
  await opened;
  ws.reply(13, 14, { conversations: [], blocked: [] });
  await settle();
  return ws;
}

test("the token goes as a subprotocol by default, or in the query when asked", async () => {
  const ws = await connected();
  assert.match(ws.url, /device=d1/);
  assert.deepEqual(ws.protocols, ["chatcluster.v1", "bearer.tok"]);
  assert.doesNotMatch(ws.url, /token=/);
  const viaQuery = new ChatClient({ url: "ws://gw/ws", token: "tok", WebSocket: FakeSocket as any, tokenTransport: "query" });
  viaQuery.connect().catch(() => undefined);
  await settle();
  assert.match(FakeSocket.all.at(-1)!.url, /token=tok/);
  assert.equal(FakeSocket.all.at(-1)!.protocols, undefined);
  viaQuery.close();
});

test("messages reach the app once, in order, and are acked after the handler", async () => {
  const ws = await connected();
  const seen: number[] = [];
  client.on("message", (m: ChatMessage) => {
    seen.push(m.seq);
    assert.equal(ws.requests(15).filter((a) => a.params.msgid === m.messageId).length, 0, "acked before the handler ran");
  });
  for (const s of [1, 3, 2, 2, 3, 1]) ws.push(deliver(s));
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(ws.requests(15).length, 6, "every copy is acked, duplicates included");
});

test("a gap that does not fill is read with SYNC after the wait, and the result is ordered", async () => {
  const ws = await connected();
  const seen: number[] = [];
  client.on("message", (m: ChatMessage) => void seen.push(m.seq));
  ws.push(deliver(1));
  ws.push(deliver(4));
  assert.deepEqual(seen, [1]);
  await tick(499);
  assert.equal(ws.requests(13).length, 1, "only the conversation list so far");
  await tick(1);
  const sync = ws.requests(13).at(-1);
  assert.deepEqual(sync.params, { conversationId: "dm:alice:bob", afterSeq: 1, limit: 200 });
  ws.reply(13, 14, { conversationId: "dm:alice:bob", hasMore: false, messages: [deliver(2), deliver(3), deliver(4)] });
  await settle();
  assert.deepEqual(seen, [1, 2, 3, 4]);
});

test("a send is resent with the same clientMsgId after a lost connection and resolves once", async () => {
  let ws = await connected();
  let resolved = 0;
  const p = client.send("alice", "hello").then((r) => (resolved++, r));
  const first = ws.requests(1)[0];
  ws.drop();
  assert.equal(client.state, "reconnecting");
  await tick(500); // full jitter with random 0.5 of the 1000 ms cap
  ws = FakeSocket.all.at(-1)!;
  ws.welcome();
  await settle();
  const again = ws.requests(1)[0];
  assert.equal(again.params.clientMsgId, first.params.clientMsgId);
  ws.reply(1, 0, { messageId: "x".repeat(32), seq: 9, conversationId: "dm:alice:bob", clientMsgId: first.params.clientMsgId });
  ws.push({ type: 0, status: 200, params: { messageId: "x".repeat(32), seq: 9, conversationId: "dm:alice:bob", clientMsgId: first.params.clientMsgId } });
  assert.deepEqual(await p, { messageId: "x".repeat(32), seq: 9, conversationId: "dm:alice:bob", clientMsgId: first.params.clientMsgId });
  assert.equal(resolved, 1);
});

test("reconnect delays back off exponentially with jitter and reset after WELCOME", async () => {
  let ws = await connected();
  ws.drop();
  const started = FakeSocket.all.length;
  await tick(499);
  assert.equal(FakeSocket.all.length, started, "not before the first delay");
  await tick(1);
  FakeSocket.all.at(-1)!.drop(1006); // refused
  await tick(999);
  assert.equal(FakeSocket.all.length, started + 1);
  await tick(1); // second delay: 0.5 * 2000
  assert.equal(FakeSocket.all.length, started + 2);
  ws = FakeSocket.all.at(-1)!;
  ws.welcome();
  await settle();
  ws.drop();
  await tick(500);
  assert.equal(FakeSocket.all.length, started + 3, "backoff was reset by the WELCOME");
});

test("DRAIN: wait reconnectAfterMs, open the new connection, then close the old one", async () => {
  const old = await connected();
  const states: string[] = [];
  client.on("state", (s) => void states.push(s));
  old.push({ type: 22, status: 200, params: { reason: "drain", reconnectAfterMs: 2000, timelife: 10 } });
  assert.equal(client.state, "draining");
  const before = FakeSocket.all.length;
  await tick(1999);
  assert.equal(FakeSocket.all.length, before, "waits its turn");
  await tick(1);
  const fresh = FakeSocket.all.at(-1)!;
  assert.notEqual(fresh, old);
  assert.equal(old.closedWith, undefined, "the old one stays open until the new one is welcomed");
  // The server replaces the old connection before the new WELCOME arrives: not a sign-out.
  old.push({ type: 23, status: 200, params: { reason: "replaced" } });
  old.drop(4001, "replaced");
  fresh.welcome();
  await settle();
  assert.equal(client.state, "open");
  assert.deepEqual(states, ["draining", "open"], "never reconnecting");
});

test("DRAIN hand-over closes the old connection with 1000 once the new one is welcomed", async () => {
  const old = await connected();
  old.push({ type: 22, status: 200, params: { reason: "drain", reconnectAfterMs: 0, timelife: 10 } });
  await tick(0);
  const fresh = FakeSocket.all.at(-1)!;
  fresh.welcome();
  await settle();
  assert.equal(old.closedWith, 1000);
  assert.equal(client.state, "open");
});

test("a refused hand-over retries with backoff while the old connection still works", async () => {
  const old = await connected();
  old.push({ type: 22, status: 200, params: { reason: "drain", reconnectAfterMs: 0, timelife: 30 } });
  await tick(0);
  FakeSocket.all.at(-1)!.drop(1006); // 503 at the upgrade
  const n = FakeSocket.all.length;
  await tick(500);
  assert.equal(FakeSocket.all.length, n + 1, "tried again");
  assert.equal(client.state, "draining");
});

for (const reason of ["logout", "replaced", "admin"]) {
  test(`KICKED ${reason}: no reconnect, state closed, kicked event`, async () => {
    const ws = await connected();
    const kicked: string[] = [];
    client.on("kicked", (k) => void kicked.push(k.reason));
    const pending = client.send("alice", "lost?");
    ws.push({ type: 23, status: 200, params: { reason } });
    ws.drop(4001, reason);
    await assert.rejects(pending, /kicked/);
    const n = FakeSocket.all.length;
    await tick(60_000);
    assert.equal(FakeSocket.all.length, n);
    assert.deepEqual(kicked, [reason]);
    assert.equal(client.state, "closed");
  });
}

test("heartbeats go out every interval and a silent server is dropped", async () => {
  const ws = await connected();
  await tick(30_000);
  assert.equal(ws.requests(3).length, 1);
  ws.push({ type: 4, status: 200, params: {}, requestId: ws.requests(3)[0].requestId });
  await tick(30_000 * 3);
  assert.equal(client.state, "reconnecting", "no frame for 2.5 intervals");
});

test("RENEW goes at two thirds of the timelife, with a fresh token from getToken", async () => {
  client.close();
  let n = 0;
  client = new ChatClient({ url: "ws://gw/ws", getToken: () => `t${++n}`, WebSocket: FakeSocket as any });
  const ws = await connected({ heartbeat: 3600 });
  assert.deepEqual(ws.protocols, ["chatcluster.v1", "bearer.t1"]);
  await tick(1_200_000 - 1);
  assert.equal(ws.requests(21).length, 0);
  await tick(1);
  await settle();
  assert.deepEqual(ws.requests(21)[0].params, { token: "t2" });
  ws.reply(21, 21, { timelife: 60, expiresAt: Date.now() + 60_000 });
  await settle();
  await tick(40_000);
  await settle();
  assert.equal(ws.requests(21).length, 2);
});

test("a new conversation's messages start at its first seq; listed ones at ackedSeq", async () => {
  const opened = client.connect();
  await settle();
  const ws = FakeSocket.all.at(-1)!;
  ws.welcome();
  await opened;
  const seen: string[] = [];
  client.on("message", (m: ChatMessage) => void seen.push(`${m.conversationId}#${m.seq}`));
  ws.push(deliver(6, "dm:alice:bob"));
  ws.push(deliver(1, "dm:bob:carol"));
  assert.deepEqual(seen, [], "waits for the conversation list");
  ws.reply(13, 14, { conversations: [{ conversationId: "dm:alice:bob", ackedSeq: 5, lastSeq: 6 }], blocked: [] });
  await settle();
  assert.deepEqual(seen, ["dm:alice:bob#6", "dm:bob:carol#1"]);
});

test("catch-up: a listed conversation behind its lastSeq with no push is read with SYNC", async () => {
  const opened = client.connect();
  await settle();
  const ws = FakeSocket.all.at(-1)!;
  ws.welcome();
  await opened;
  const seen: number[] = [];
  client.on("message", (m: ChatMessage) => void seen.push(m.seq));
  ws.reply(13, 14, { conversations: [{ conversationId: "dm:alice:bob", ackedSeq: 2, lastSeq: 4 }], blocked: [] });
  await settle();
  ws.push(deliver(3)); // catch-up starts, then stalls
  await tick(500);
  assert.equal(ws.requests(13).length, 1, "progress was made: wait another round");
  await tick(500);
  assert.deepEqual(ws.requests(13).at(-1).params, { conversationId: "dm:alice:bob", afterSeq: 3, limit: 200 });
  ws.reply(13, 14, { conversationId: "dm:alice:bob", hasMore: false, messages: [deliver(4)] });
  await settle();
  assert.deepEqual(seen, [3, 4]);
});

test("manual ack mode: nothing is acked until m.ack(), and ack() is idempotent", async () => {
  client.close();
  client = new ChatClient({ url: "ws://gw/ws", token: "tok", WebSocket: FakeSocket as any, ackMode: "manual" });
  const ws = await connected();
  const got: ChatMessage[] = [];
  client.on("message", (m: ChatMessage) => void got.push(m));
  ws.push(deliver(1));
  assert.equal(ws.requests(15).length, 0);
  got[0].ack();
  got[0].ack();
  assert.equal(ws.requests(15).length, 1);
});
