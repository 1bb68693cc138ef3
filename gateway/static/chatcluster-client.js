// Generated from clients/typescript by `npm run build` (scripts/bundle.mjs). Do not edit.
"use strict";
var ChatCluster = (() => {
  var __defProp = Object.defineProperty;
  var __getOwnPropDesc = Object.getOwnPropertyDescriptor;
  var __getOwnPropNames = Object.getOwnPropertyNames;
  var __hasOwnProp = Object.prototype.hasOwnProperty;
  var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
  var __export = (target, all) => {
    for (var name in all)
      __defProp(target, name, { get: all[name], enumerable: true });
  };
  var __copyProps = (to, from, except, desc) => {
    if (from && typeof from === "object" || typeof from === "function") {
      for (let key of __getOwnPropNames(from))
        if (!__hasOwnProp.call(to, key) && key !== except)
          __defProp(to, key, { get: () => from[key], enumerable: !(desc = __getOwnPropDesc(from, key)) || desc.enumerable });
    }
    return to;
  };
  var __toCommonJS = (mod) => __copyProps(__defProp({}, "__esModule", { value: true }), mod);
  var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

  // src/index.ts
  var index_exports = {};
  __export(index_exports, {
    Backoff: () => Backoff,
    ChatClient: () => ChatClient,
    ChatError: () => ChatError,
    DEFAULT_TRANSPORT: () => DEFAULT_TRANSPORT,
    FrameType: () => T,
    IndexedDbStorage: () => IndexedDbStorage,
    MemoryStorage: () => MemoryStorage,
    Outbox: () => Outbox,
    Sequencer: () => Sequencer
  });

  // src/backoff.ts
  var Backoff = class {
    constructor(options = {}) {
      __publicField(this, "attempt", 0);
      __publicField(this, "baseMs");
      __publicField(this, "maxMs");
      __publicField(this, "random");
      this.baseMs = options.baseMs ?? 500;
      this.maxMs = options.maxMs ?? 3e4;
      this.random = options.random ?? Math.random;
    }
    /** How many delays were handed out since the last reset. */
    get attempts() {
      return this.attempt;
    }
    /** The cap for the next attempt: `min(maxMs, baseMs * 2^attempt)`. */
    cap() {
      return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    }
    /** The delay before the next attempt: uniform in [0, cap). Advances the attempt count. */
    next() {
      const delay = Math.floor(this.random() * this.cap());
      this.attempt++;
      return delay;
    }
    /** Back to the first attempt (called when a connection got its WELCOME). */
    reset() {
      this.attempt = 0;
    }
  };

  // src/events.ts
  var Emitter = class {
    constructor() {
      __publicField(this, "listeners", /* @__PURE__ */ new Map());
    }
    /** Calls `fn` for every `event`; returns an unsubscribe function. */
    on(event, fn) {
      let set = this.listeners.get(event);
      if (!set) this.listeners.set(event, set = /* @__PURE__ */ new Set());
      set.add(fn);
      return () => this.off(event, fn);
    }
    /** Removes `fn`. */
    off(event, fn) {
      this.listeners.get(event)?.delete(fn);
    }
    /** Whether anyone listens to `event`. */
    has(event) {
      return (this.listeners.get(event)?.size ?? 0) > 0;
    }
    /**
     * Calls every listener with `arg`; returns the promises listeners returned. A listener that
     * throws is reported through `onError` and does not stop the others.
     */
    emit(event, arg, onError) {
      const results = [];
      for (const fn of [...this.listeners.get(event) ?? []]) {
        try {
          const r = fn(arg);
          if (r && typeof r.then === "function") results.push(r);
        } catch (e) {
          onError(e);
        }
      }
      return results;
    }
  };

  // src/message.ts
  function toMessage(env, userId, ack) {
    const m = env.msg ?? {};
    const p = m.params ?? {};
    const group = m.type === 10;
    const from = p.fromUser?.openid ?? "";
    return {
      messageId: env.messageId,
      conversationId: String(p.conversationId ?? ""),
      seq: Number(p.seq),
      kind: group ? "group" : "direct",
      from,
      fromName: p.fromUser?.userName,
      to: group ? String(p.groupId ?? "") : String(p.toUser?.openid ?? ""),
      groupId: group ? String(p.groupId ?? "") : void 0,
      text: String(p.message ?? ""),
      fileType: Number(p.fileType ?? 0) || 0,
      file: p.file,
      clientMsgId: p.clientMsgId ?? void 0,
      time: Number(env.activeTime) || 0,
      recalled: !!p.recalled,
      system: p.system ?? void 0,
      own: from === userId,
      envelope: env,
      ack
    };
  }

  // src/protocol.ts
  var T = {
    RECEIVED: 0,
    SEND: 1,
    DELIVER: 2,
    HEARTBEAT: 3,
    HEARTBEAT_ACK: 4,
    REGISTER: 7,
    CREATE_GROUP: 8,
    SEND_GROUP: 9,
    DELIVER_GROUP: 10,
    ADD_MEMBERS: 11,
    LEAVE_GROUP: 12,
    SYNC: 13,
    SYNC_REPLY: 14,
    ACK: 15,
    ACK_RECEIVED: 16,
    DELIVERED: 17,
    READ: 18,
    READ_NOTICE: 19,
    WELCOME: 20,
    RENEW: 21,
    DRAIN: 22,
    KICKED: 23,
    TYPING: 24,
    TYPING_NOTICE: 25,
    SUBSCRIBE_PRESENCE: 26,
    PRESENCE: 27,
    REMOVE_MEMBERS: 28,
    UPDATE_GROUP: 29,
    DISSOLVE_GROUP: 30,
    SET_ROLE: 31,
    RECALL: 32,
    RECALLED: 33,
    BLOCK: 34,
    UNBLOCK: 35,
    ERROR: 500
  };
  function isEnvelope(v) {
    return !!v && typeof v.messageId === "string" && v.msg !== void 0;
  }
  var ChatError = class extends Error {
    constructor(status, code, message) {
      super(message);
      /** HTTP-like status: 400/401/403/404/409/413/429/500/503; 0 for client-side conditions. */
      __publicField(this, "status");
      /** The server's machine-readable code (`forbidden`, `rate_limited`, …) or a client one. */
      __publicField(this, "code");
      this.name = "ChatError";
      this.status = status;
      this.code = code;
    }
    /** Whether resending the same request later can succeed (429 and 5xx, lost connections). */
    get retryable() {
      return this.status === 429 || this.status >= 500 || this.code === "connection_lost" || this.code === "timeout";
    }
  };
  var connectionLost = () => new ChatError(0, "connection_lost", "connection lost before the reply");
  var clientClosed = (why = "client closed") => new ChatError(0, "closed", why);

  // src/seen.ts
  var SeenSet = class {
    constructor(capacity = 1e4) {
      __publicField(this, "capacity", capacity);
      __publicField(this, "ids", /* @__PURE__ */ new Set());
    }
    /** True when `id` was added before and has not fallen out yet. */
    has(id) {
      return this.ids.has(id);
    }
    /** Adds `id`; returns false when it was already there (a duplicate). */
    add(id) {
      if (this.ids.has(id)) return false;
      this.ids.add(id);
      if (this.ids.size > this.capacity) {
        const oldest = this.ids.values().next().value;
        this.ids.delete(oldest);
      }
      return true;
    }
    /** How many ids are remembered. */
    get size() {
      return this.ids.size;
    }
  };

  // src/sequencer.ts
  var FILLED = /* @__PURE__ */ Symbol("filled");
  var Sequencer = class {
    constructor() {
      __publicField(this, "convs", /* @__PURE__ */ new Map());
    }
    conv(cid) {
      let c = this.convs.get(cid);
      if (!c) {
        c = { buffer: /* @__PURE__ */ new Map(), lastSeq: 0 };
        this.convs.set(cid, c);
      }
      return c;
    }
    /** Whether in-order delivery in `cid` has a starting point yet. */
    hasBaseline(cid) {
      return this.convs.get(cid)?.contig !== void 0;
    }
    /**
     * Starts in-order delivery of `cid` after `seq` (the user's `ackedSeq` from the conversation
     * list) when it has no starting point yet; returns what became ready.
     */
    baseline(cid, seq) {
      const c = this.conv(cid);
      if (c.contig !== void 0) return [];
      c.contig = seq;
      for (const s of [...c.buffer.keys()]) if (s <= seq) c.buffer.delete(s);
      return this.release(c);
    }
    /** A message with `seq` in `cid`. */
    offer(cid, seq, item) {
      const c = this.conv(cid);
      c.lastSeq = Math.max(c.lastSeq, seq);
      if (c.contig !== void 0 && seq <= c.contig || c.buffer.has(seq)) {
        return { duplicate: true, ready: [] };
      }
      c.buffer.set(seq, item);
      return { duplicate: false, ready: this.release(c) };
    }
    /** Marks `seq` as taken by a message the app does not get (this device's own send). */
    fill(cid, seq) {
      const c = this.conv(cid);
      c.lastSeq = Math.max(c.lastSeq, seq);
      if (c.contig !== void 0 && seq <= c.contig || c.buffer.has(seq)) return [];
      c.buffer.set(seq, FILLED);
      return this.release(c);
    }
    /** Records that `cid` has messages up to `seq` (from the conversation list). */
    noteLast(cid, seq) {
      const c = this.conv(cid);
      c.lastSeq = Math.max(c.lastSeq, seq);
    }
    /**
     * A complete SYNC read of `(afterSeq, top]` was offered: every seq in that range that did not
     * arrive is one this user cannot see (before a join point), so it becomes a hole.
     */
    synced(cid, afterSeq, top) {
      const c = this.conv(cid);
      if (c.contig === void 0) c.contig = afterSeq;
      if (afterSeq > c.contig) return this.release(c);
      const out = [];
      const early = [...c.buffer.keys()].filter((s) => s <= top).sort((a, b) => a - b);
      for (const s of early) {
        const item = c.buffer.get(s);
        c.buffer.delete(s);
        if (item !== FILLED) out.push(item);
      }
      c.contig = Math.max(c.contig, top);
      c.lastSeq = Math.max(c.lastSeq, top);
      out.push(...this.release(c));
      return out;
    }
    /** Highest seq handed out in order (undefined before a baseline). */
    contiguous(cid) {
      return this.convs.get(cid)?.contig;
    }
    /** Highest seq known to exist in `cid`. */
    last(cid) {
      return this.convs.get(cid)?.lastSeq ?? 0;
    }
    /** True when `cid` has a baseline and known messages above it are missing. */
    behind(cid) {
      const c = this.convs.get(cid);
      return !!c && c.contig !== void 0 && (c.lastSeq > c.contig || c.buffer.size > 0);
    }
    /** Conversations holding messages but no baseline yet. */
    waitingForBaseline() {
      return [...this.convs].filter(([, c]) => c.contig === void 0 && c.buffer.size > 0).map(([cid]) => cid);
    }
    /** Every conversation seen. */
    conversations() {
      return [...this.convs.keys()];
    }
    release(c) {
      const out = [];
      if (c.contig === void 0) return out;
      for (; ; ) {
        const next = c.buffer.get(c.contig + 1);
        if (next === void 0) break;
        c.buffer.delete(c.contig + 1);
        c.contig++;
        if (next !== FILLED) out.push(next);
      }
      return out;
    }
  };

  // src/inbox.ts
  var SYNC_LIMIT = 200;
  var Inbox = class {
    constructor(host, options) {
      __publicField(this, "host", host);
      __publicField(this, "options", options);
      __publicField(this, "seq", new Sequencer());
      /** messageIds handed to the app. */
      __publicField(this, "seen", new SeenSet(5e4));
      /** Conversations in the last conversation list (undefined until it arrived on this connection). */
      __publicField(this, "listed");
      __publicField(this, "syncing", /* @__PURE__ */ new Map());
      __publicField(this, "gapTimers", /* @__PURE__ */ new Map());
      __publicField(this, "acked", new SeenSet(5e4));
    }
    /** A new connection got its WELCOME: list the conversations and catch up. */
    connected() {
      this.listed = void 0;
      this.host.request(T.SYNC, {}).then(
        (p) => this.onList(p),
        (e) => this.host.error(e)
      );
    }
    /** The connection is gone: the next one lists again. */
    disconnected() {
      this.listed = void 0;
      for (const { timer } of this.gapTimers.values()) clearTimeout(timer);
      this.gapTimers.clear();
    }
    /** A 2 or 10 envelope, pushed or read by SYNC. */
    onMessage(env) {
      const p = env.msg?.params ?? {};
      const cid = String(p.conversationId ?? "");
      const seq = Number(p.seq);
      if (!cid || !Number.isInteger(seq) || seq < 1) return;
      if (this.seen.has(env.messageId)) {
        this.host.ack(env.messageId);
        return;
      }
      const from = p.fromUser?.openid;
      if (from === this.host.userId() && this.host.isOwnSend(p.clientMsgId)) {
        this.host.ownStored(env.messageId, seq, cid, p.clientMsgId);
        this.release(this.seq.fill(cid, seq));
        this.watch(cid);
        return;
      }
      const m = toMessage(env, this.host.userId(), () => this.ackOnce(m));
      const { duplicate, ready } = this.seq.offer(cid, seq, m);
      if (duplicate) this.host.ack(env.messageId);
      this.release(ready);
      if (!this.seq.hasBaseline(cid) && this.listed && !this.listed.has(cid)) {
        this.release(this.seq.baseline(cid, 0));
      }
      this.watch(cid);
    }
    /** This client's send was stored at `seq` (reply 0): its slot is not a gap. */
    ownSend(cid, seq) {
      this.release(this.seq.fill(cid, seq));
    }
    /** The highest seq handed out in order in `cid` (undefined when none yet). */
    contiguous(cid) {
      return this.seq.contiguous(cid);
    }
    onList(p) {
      const convs = Array.isArray(p.conversations) ? p.conversations : [];
      this.listed = new Set(convs.map((c) => String(c.conversationId)));
      for (const c of convs) {
        const cid = String(c.conversationId);
        this.seq.noteLast(cid, Number(c.lastSeq) || 0);
        this.release(this.seq.baseline(cid, Number(c.ackedSeq) || 0));
      }
      for (const cid of this.seq.waitingForBaseline()) {
        if (!this.listed.has(cid)) this.release(this.seq.baseline(cid, 0));
      }
      for (const cid of this.seq.conversations()) this.watch(cid);
    }
    /** Arms the gap timer of `cid` when it is behind; a timer that saw progress re-arms. */
    watch(cid) {
      if (!this.seq.behind(cid) || this.gapTimers.has(cid) || this.syncing.has(cid)) return;
      const at = this.seq.contiguous(cid) ?? 0;
      const timer = setTimeout(() => {
        this.gapTimers.delete(cid);
        if (!this.seq.behind(cid)) return;
        if ((this.seq.contiguous(cid) ?? 0) > at) this.watch(cid);
        else void this.sync(cid);
      }, this.options.gapWaitMs);
      this.gapTimers.set(cid, { timer, at });
    }
    /** Reads `cid` from its contiguous seq up with SYNC, page by page, and closes what it proves. */
    async sync(cid) {
      if (this.syncing.has(cid)) {
        this.syncing.set(cid, true);
        return;
      }
      this.syncing.set(cid, false);
      const start = this.seq.contiguous(cid) ?? 0;
      const knownLast = this.seq.last(cid);
      let after = start;
      let top = start;
      try {
        for (; ; ) {
          const page = await this.host.request(T.SYNC, { conversationId: cid, afterSeq: after, limit: SYNC_LIMIT });
          const envs = Array.isArray(page.messages) ? page.messages : [];
          for (const env of envs) {
            this.onMessage(env);
            top = Math.max(top, Number(env.msg?.params?.seq) || 0);
          }
          if (!page.hasMore || top <= after) break;
          after = top;
        }
        this.release(this.seq.synced(cid, start, Math.max(top, knownLast)));
      } catch (e) {
        if (e?.status === 403 || e?.status === 404) {
          this.release(this.seq.synced(cid, start, Math.max(top, knownLast)));
        } else if (e?.code !== "connection_lost") {
          this.host.error(e);
        }
      } finally {
        const again = this.syncing.get(cid);
        this.syncing.delete(cid);
        if (again) void this.sync(cid);
        else if (this.listed) this.watch(cid);
      }
    }
    release(ready) {
      for (const m of ready) {
        this.seen.add(m.messageId);
        const waits = this.host.deliver(m);
        if (this.options.ackMode === "manual") continue;
        if (waits.length === 0) m.ack();
        else
          Promise.allSettled(waits).then(
            () => m.ack(),
            () => m.ack()
          );
      }
    }
    ackOnce(m) {
      if (this.acked.add(m.messageId)) this.host.ack(m.messageId);
    }
  };

  // src/link.ts
  var OPEN = 1;
  var SILENT_INTERVALS = 2.5;
  var nextLinkId = 0;
  var Link = class {
    constructor(ws, events) {
      __publicField(this, "ws", ws);
      __publicField(this, "events", events);
      /** For logs and tests: 1, 2, 3 … per process. */
      __publicField(this, "id", ++nextLinkId);
      /** The WELCOME, once it arrived. */
      __publicField(this, "welcome");
      /** DRAIN arrived on this link. */
      __publicField(this, "draining", false);
      /** KICKED arrived on this link, with this reason. */
      __publicField(this, "kickReason");
      /** Set when the client replaced this link with a newer one (drain hand-over). */
      __publicField(this, "superseded", false);
      /** The timer that gives up on an attempt without WELCOME (owned by the client). */
      __publicField(this, "onWelcomeTimeout");
      __publicField(this, "closed", false);
      __publicField(this, "requestCounter", 0);
      __publicField(this, "pending", /* @__PURE__ */ new Map());
      __publicField(this, "heartbeatTimer");
      __publicField(this, "lastFrameAt", Date.now());
      ws.onmessage = (ev) => this.onMessage(ev.data);
      ws.onclose = (ev) => this.finish(ev.code, ev.reason || "");
      ws.onerror = () => {
      };
    }
    /** Whether the link can carry frames (open, not closed). */
    get open() {
      return !this.closed && this.ws.readyState === OPEN;
    }
    /** Whether the link is finished. */
    get isClosed() {
      return this.closed;
    }
    /** Sends one frame; false when the link cannot carry it. */
    send(frame) {
      if (!this.open) return false;
      try {
        this.ws.send(JSON.stringify(frame));
        return true;
      } catch {
        return false;
      }
    }
    /**
     * Sends a request and resolves with the reply's params; rejects with a {@link ChatError} for an
     * ERROR frame, a timeout or the link closing first.
     */
    request(type, params, timeoutMs) {
      const requestId = `r${this.id}.${++this.requestCounter}`;
      return new Promise((resolve, reject) => {
        if (!this.send(params ? { type, params, requestId } : { type, requestId })) {
          reject(connectionLost());
          return;
        }
        const timer = setTimeout(() => {
          this.pending.delete(requestId);
          reject(new ChatError(0, "timeout", `no reply to frame type ${type} within ${timeoutMs} ms`));
        }, timeoutMs);
        this.pending.set(requestId, { resolve, reject, timer });
      });
    }
    /** Starts heartbeats every `seconds` and the silence watchdog (called on WELCOME). */
    startHeartbeat(seconds) {
      clearInterval(this.heartbeatTimer);
      const ms = Math.max(1, seconds) * 1e3;
      this.heartbeatTimer = setInterval(() => {
        if (Date.now() - this.lastFrameAt > ms * SILENT_INTERVALS) {
          this.abort(4e3, "server silent");
          return;
        }
        this.send({ type: T.HEARTBEAT });
      }, ms);
    }
    /** Closes the link politely (close frame with `code`). */
    close(code = 1e3, reason = "bye") {
      if (this.closed) return;
      try {
        this.ws.close(code, reason);
      } catch {
      }
      this.finish(code, reason);
    }
    /** Drops the link at once (dead peer): reports it closed without waiting for the socket. */
    abort(code, reason) {
      if (this.closed) return;
      const ws = this.ws;
      try {
        if (typeof ws.terminate === "function") ws.terminate();
        else ws.close(4e3, reason);
      } catch {
      }
      this.finish(code, reason);
    }
    onMessage(data) {
      if (this.closed) return;
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(typeof data === "string" ? data : String(data));
      } catch {
        return;
      }
      if (!isEnvelope(frame) && frame && frame.requestId !== void 0) {
        const p = this.pending.get(String(frame.requestId));
        if (p) {
          this.pending.delete(String(frame.requestId));
          clearTimeout(p.timer);
          if (frame.type === T.ERROR) {
            const e = frame.params ?? {};
            p.reject(new ChatError(Number(frame.status) || 500, String(e.code ?? "error"), String(e.message ?? "error")));
          } else {
            p.resolve(frame.params ?? {});
          }
          return;
        }
      }
      this.events.frame(this, frame);
    }
    finish(code, reason) {
      if (this.closed) return;
      this.closed = true;
      clearInterval(this.heartbeatTimer);
      this.ws.onmessage = null;
      this.ws.onclose = null;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(connectionLost());
      }
      this.pending.clear();
      this.events.closed(this, code, reason);
    }
  };

  // src/outbox.ts
  var MemoryStorage = class {
    constructor() {
      __publicField(this, "items", /* @__PURE__ */ new Map());
    }
    async load() {
      return [...this.items.values()];
    }
    async put(message) {
      this.items.set(message.clientMsgId, message);
    }
    async delete(clientMsgId) {
      this.items.delete(clientMsgId);
    }
  };
  var Outbox = class {
    constructor() {
      __publicField(this, "entries", /* @__PURE__ */ new Map());
    }
    /** Queues `message`; the promise settles exactly once, when it is stored or refused. */
    add(message) {
      return new Promise((resolve, reject) => {
        const existing = this.entries.get(message.clientMsgId);
        if (existing) {
          existing.waiters.push({ resolve, reject });
          return;
        }
        this.entries.set(message.clientMsgId, { message, inflight: false, waiters: [{ resolve, reject }], notBefore: 0 });
      });
    }
    /** Adds messages left in storage by an earlier client (nobody waits on them yet). */
    restore(messages) {
      for (const message of messages) {
        if (!this.entries.has(message.clientMsgId)) {
          this.entries.set(message.clientMsgId, { message, inflight: false, waiters: [], notBefore: 0 });
        }
      }
    }
    /**
     * Up to `room` messages to send now, oldest first (those not already in flight and not held
     * back); they count as in flight until {@link Outbox.stored}, {@link Outbox.failed} or
     * {@link Outbox.retry}.
     */
    due(now, room) {
      const out = [];
      for (const e of this.entries.values()) {
        if (out.length >= room) break;
        if (e.inflight || e.notBefore > now) continue;
        e.inflight = true;
        out.push(e.message);
      }
      return out;
    }
    /** The earliest time a held-back message may go again (undefined: none held back). */
    nextRetryAt(now) {
      let at;
      for (const e of this.entries.values()) {
        if (!e.inflight && e.notBefore > now) at = Math.min(at ?? Infinity, e.notBefore);
      }
      return at;
    }
    /** How many are in flight. */
    get inflight() {
      let n = 0;
      for (const e of this.entries.values()) if (e.inflight) n++;
      return n;
    }
    /** Reply 0 arrived: resolves the waiters; returns the message, or undefined if not queued. */
    stored(result) {
      const e = this.entries.get(result.clientMsgId);
      if (!e) return void 0;
      this.entries.delete(result.clientMsgId);
      for (const w of e.waiters) w.resolve(result);
      return e.message;
    }
    /** The server refused the message for good (400, 403, 404, 413): rejects the waiters. */
    failed(clientMsgId, error) {
      const e = this.entries.get(clientMsgId);
      if (!e) return void 0;
      this.entries.delete(clientMsgId);
      for (const w of e.waiters) w.reject(error);
      return e.message;
    }
    /** Send it again (timeout, 429/5xx), not before `notBefore`. */
    retry(clientMsgId, notBefore = 0) {
      const e = this.entries.get(clientMsgId);
      if (e) {
        e.inflight = false;
        e.notBefore = notBefore;
      }
    }
    /** The connection carrying the in-flight sends is gone: all of them go again. */
    lost() {
      for (const e of this.entries.values()) e.inflight = false;
    }
    /** Rejects every waiter (the client closed); the messages stay queued (and stored). */
    rejectAll(error) {
      for (const e of this.entries.values()) {
        for (const w of e.waiters) w.reject(error);
        e.waiters = [];
      }
    }
    /** Whether `clientMsgId` is queued. */
    has(clientMsgId) {
      return this.entries.has(clientMsgId);
    }
    /** Every queued message, oldest first. */
    pending() {
      return [...this.entries.values()].map((e) => e.message);
    }
    /** How many are queued. */
    get size() {
      return this.entries.size;
    }
  };

  // src/requests.ts
  var GroupApi = class {
    /** Lists this user's conversations (SYNC without a conversation). */
    async conversations() {
      const p = await this.request(T.SYNC);
      return { conversations: p.conversations ?? [], blocked: p.blocked ?? [] };
    }
    /**
     * Reads history after `afterSeq` (≤ 200 a page). These messages are not emitted and not acked
     * (call `m.ack()` to advance the user's `ackedSeq`).
     */
    async sync(conversationId, afterSeq = 0, limit = 200) {
      const p = await this.request(T.SYNC, { conversationId, afterSeq, limit });
      const messages = (p.messages ?? []).map(
        (env) => toMessage(env, this.userId, () => void this.fire(T.ACK, { msgid: env.messageId }))
      );
      return { conversationId, messages, hasMore: !!p.hasMore };
    }
    /** Marks `conversationId` read up to `seq`; resolves with the server's `readSeq`. */
    async read(conversationId, seq) {
      const p = await this.request(T.READ, { conversationId, seq });
      return Number(p.readSeq);
    }
    /** Tells the other participants this user is typing (`true`) or stopped; no reply. */
    typing(conversationId, active) {
      return this.fire(T.TYPING, { conversationId, state: active ? "start" : "stop" });
    }
    /** Watches these users' presence (replaces the set); resolves with their current state. */
    async subscribePresence(users) {
      const p = await this.request(T.SUBSCRIBE_PRESENCE, { users });
      return (p.presence ?? []).map((u) => ({ userId: u.userId, online: !!u.online, lastSeen: u.lastSeen ?? null }));
    }
    /** Takes one of this user's messages back. */
    async recall(messageId) {
      const p = await this.request(T.RECALL, { messageId });
      return { messageId: p.messageId, conversationId: p.conversationId, seq: Number(p.seq) };
    }
    /** Blocks `userId` (their 1:1 sends to this user get 403). */
    async block(userId) {
      await this.request(T.BLOCK, { userId });
    }
    /** Unblocks `userId`. */
    async unblock(userId) {
      await this.request(T.UNBLOCK, { userId });
    }
    /** Creates a group; this user is its owner. */
    async createGroup(name, members) {
      return await this.request(T.CREATE_GROUP, { name, members });
    }
    /** Adds members (callers must be members). */
    async addMembers(groupId, members) {
      return await this.request(T.ADD_MEMBERS, { groupId, members });
    }
    /** Removes members (owner or admin). */
    async removeMembers(groupId, members) {
      return await this.request(T.REMOVE_MEMBERS, { groupId, members });
    }
    /** Leaves a group. */
    async leaveGroup(groupId) {
      await this.request(T.LEAVE_GROUP, { groupId });
    }
    /** Renames a group (owner or admin). */
    async renameGroup(groupId, name) {
      return await this.request(T.UPDATE_GROUP, { groupId, name });
    }
    /** Sets a member's role; `owner` hands ownership over (owner only). */
    async setRole(groupId, userId, role) {
      return await this.request(T.SET_ROLE, { groupId, userId, role });
    }
    /** Dissolves a group (owner only). */
    async dissolveGroup(groupId) {
      await this.request(T.DISSOLVE_GROUP, { groupId });
    }
  };

  // src/client.ts
  var PROTOCOL = "chatcluster.v1";
  function randomId() {
    const bytes = new Uint8Array(12);
    globalThis.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  var ChatClient = class extends GroupApi {
    constructor(options) {
      super();
      __publicField(this, "options", options);
      /** The current connection state. */
      __publicField(this, "state", "closed");
      /** The user id, from the last WELCOME. */
      __publicField(this, "userId", "");
      /** The device id (given, or assigned by the server in WELCOME). */
      __publicField(this, "deviceId");
      __publicField(this, "events", new Emitter());
      __publicField(this, "outbox", new Outbox());
      __publicField(this, "ownIds", new SeenSet(1e4));
      __publicField(this, "notices", new SeenSet(1e4));
      __publicField(this, "inbox");
      __publicField(this, "backoff");
      __publicField(this, "storage");
      __publicField(this, "storageChain", Promise.resolve());
      __publicField(this, "current");
      __publicField(this, "connecting");
      __publicField(this, "stopped", true);
      __publicField(this, "started");
      __publicField(this, "reconnectTimer");
      __publicField(this, "drainTimer");
      __publicField(this, "renewTimer");
      __publicField(this, "pumpTimer");
      __publicField(this, "pendingAcks", /* @__PURE__ */ new Set());
      __publicField(this, "openWaiters", []);
      if (!options.token && !options.getToken) throw new Error("ChatClient needs `token` or `getToken`");
      this.deviceId = options.deviceId;
      this.backoff = new Backoff(options.backoff);
      this.storage = options.storage ?? new MemoryStorage();
      this.inbox = new Inbox(
        {
          userId: () => this.userId,
          request: (type, params) => this.request(type, params),
          ack: (id) => this.sendAck(id),
          deliver: (m) => this.deliver(m),
          isOwnSend: (id) => !!id && this.ownIds.has(id),
          ownStored: (messageId, seq, conversationId, clientMsgId) => this.onStored({ messageId, seq, conversationId, clientMsgId }),
          error: (e) => this.reportError(e)
        },
        { ackMode: options.ackMode ?? "auto", gapWaitMs: options.gapWaitMs ?? 500 }
      );
    }
    /** Subscribes to an event; returns the unsubscribe function. */
    on(event, fn) {
      return this.events.on(event, fn);
    }
    /** Unsubscribes. */
    off(event, fn) {
      this.events.off(event, fn);
    }
    /**
     * Connects and resolves at the first WELCOME; keeps reconnecting in the background until
     * {@link ChatClient.close}. Restores the outbox from storage first.
     */
    async connect() {
      if (this.state === "open" || this.state === "draining") return;
      const opened = new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
      if (this.stopped) {
        this.stopped = false;
        this.setState("connecting");
        this.started ?? (this.started = this.storage.load().then(
          (msgs) => {
            for (const m of msgs) this.ownIds.add(m.clientMsgId);
            this.outbox.restore(msgs);
          },
          (e) => this.reportError(e)
        ));
        await this.started;
        void this.openLink();
      }
      return opened;
    }
    /** Sends `text` to user `userId`; resolves once the server stored it (reply 0). */
    send(userId, text, opts = {}) {
      return this.enqueue("user", userId, text, opts);
    }
    /** Sends `text` to group `groupId`; resolves once the server stored it (reply 0). */
    sendToGroup(groupId, text, opts = {}) {
      return this.enqueue("group", groupId, text, opts);
    }
    /** Sends an uploaded file to a user (`kind: "user"`) or a group; the text is the file's name. */
    sendFile(kind, to, file, opts = {}) {
      return this.enqueue(kind, to, file.name, { ...opts, file });
    }
    /** Messages queued and not yet stored (including ones restored from storage). */
    pending() {
      return this.outbox.pending();
    }
    /** Uploads a file (`POST /api/files`); send it with `send(..., { file })` or {@link ChatClient.sendFile}. */
    async uploadFile(body, name, mime = "application/octet-stream") {
      const doFetch = this.options.fetch ?? globalThis.fetch;
      const token = await this.token();
      const safeName = /^[\x20-\x7e]+$/.test(name) ? name : encodeURIComponent(name);
      const res = await doFetch(`${this.httpUrl()}/api/files`, {
        method: "POST",
        body,
        headers: { authorization: `Bearer ${token}`, "content-type": mime, "x-file-name": safeName }
      });
      const text = await res.text();
      if (!res.ok) {
        let e = {};
        try {
          e = JSON.parse(text);
        } catch {
        }
        throw new ChatError(res.status, e.code ?? "http_error", e.message ?? `upload failed: HTTP ${res.status} ${text}`);
      }
      return JSON.parse(text);
    }
    /** The HTTP base URL of the gateway (for file URLs that start with `/`). */
    httpUrl() {
      if (this.options.httpUrl) return this.options.httpUrl.replace(/\/$/, "");
      const u = new URL(this.options.url);
      return `${u.protocol === "wss:" ? "https:" : "http:"}//${u.host}`;
    }
    /**
     * Sends a request (any type) on the current connection, waiting for one if needed; resolves
     * with the reply's params, rejects with a {@link ChatError}.
     */
    async request(type, params) {
      const link = await this.openLinkReady();
      return link.request(type, params, this.options.requestTimeoutMs ?? 15e3);
    }
    /** Sends a frame that has no reply (TYPING); false when not connected. */
    fire(type, params) {
      return !!this.current?.send({ type, params });
    }
    /** Logs this device out (REGISTER `loginStatus: "0"`) and closes the client. */
    async logout() {
      const link = this.current;
      if (link?.welcome) link.send({ type: T.REGISTER, params: { openid: this.userId, loginStatus: "0" } });
      this.close();
    }
    /** Closes the connection and stops reconnecting; pending sends reject but stay in storage. */
    close() {
      this.stop(clientClosed());
    }
    // ---------- connections ----------
    async token() {
      return this.options.getToken ? await this.options.getToken() : this.options.token;
    }
    async openLink() {
      if (this.connecting || this.stopped) return;
      const WS = this.options.WebSocket ?? globalThis.WebSocket;
      if (!WS) throw new Error("no WebSocket implementation: pass `WebSocket` (e.g. from the `ws` package)");
      let token;
      const placeholder = {};
      this.connecting = placeholder;
      try {
        token = await this.token();
      } catch (e) {
        this.connecting = void 0;
        this.reportError(e);
        this.scheduleReconnect();
        return;
      }
      if (this.stopped || this.connecting !== placeholder) return;
      const url = new URL(this.options.url);
      if (this.deviceId) url.searchParams.set("device", this.deviceId);
      const viaQuery = (this.options.tokenTransport ?? DEFAULT_TRANSPORT) === "query";
      if (viaQuery) url.searchParams.set("token", token);
      let link;
      try {
        const ws = viaQuery ? new WS(url.toString()) : new WS(url.toString(), [PROTOCOL, `bearer.${token}`]);
        link = new Link(ws, { frame: (l, f) => this.onFrame(l, f), closed: (l, code, reason) => this.onClosed(l, code, reason) });
      } catch (e) {
        this.connecting = void 0;
        this.reportError(e);
        this.scheduleReconnect();
        return;
      }
      this.connecting = link;
      const timeout = setTimeout(() => {
        if (!link.welcome) link.abort(4e3, "no WELCOME in time");
      }, this.options.connectTimeoutMs ?? 1e4);
      link.onWelcomeTimeout = timeout;
    }
    onFrame(link, f) {
      if (isEnvelope(f)) return this.onEnvelope(f);
      const p = f?.params ?? {};
      switch (f?.type) {
        case T.WELCOME:
          return this.onWelcome(link, p);
        case T.DRAIN:
          return this.onDrain(link, p);
        case T.KICKED:
          link.kickReason = String(p.reason ?? "unknown");
          return;
        case T.RECEIVED:
          if (p.clientMsgId) this.onStored(p);
          return;
        case T.ERROR:
          if (f.requestId !== "ack") this.reportError(new ChatError(Number(f.status) || 500, String(p.code), String(p.message)));
          return;
        default:
          return;
      }
    }
    onWelcome(link, w) {
      clearTimeout(link.onWelcomeTimeout);
      link.welcome = w;
      const old = this.current;
      this.current = link;
      if (this.connecting === link) this.connecting = void 0;
      this.userId = w.userId;
      this.deviceId = w.deviceId;
      this.backoff.reset();
      clearTimeout(this.drainTimer);
      link.startHeartbeat(Number(w.heartbeat) || 30);
      this.scheduleRenew(link, Number(w.timelife), Number(w.expiresAt));
      if (old && old !== link) {
        old.superseded = true;
        old.close(1e3, "moved to a new connection");
      }
      this.setState("open");
      this.events.emit("connected", w, (e) => this.reportError(e));
      for (const id of this.pendingAcks) link.send({ type: T.ACK, params: { msgid: id }, requestId: "ack" });
      this.pendingAcks.clear();
      this.inbox.connected();
      this.pump();
      for (const w2 of this.openWaiters.splice(0)) w2.resolve();
    }
    onDrain(link, p) {
      if (link !== this.current || this.stopped) return;
      link.draining = true;
      clearTimeout(this.renewTimer);
      this.setState("draining");
      clearTimeout(this.drainTimer);
      const after = Math.max(0, Number(p.reconnectAfterMs) || 0);
      this.drainTimer = setTimeout(() => {
        if (this.current === link && !this.stopped) void this.openLink();
      }, after);
    }
    onClosed(link, code, reason) {
      clearTimeout(link.onWelcomeTimeout);
      if (this.connecting === link) this.connecting = void 0;
      if (this.current === link) {
        this.current = void 0;
        clearTimeout(this.renewTimer);
        this.inbox.disconnected();
      }
      if (this.stopped || link.superseded) return;
      const kicked = code === 4001 || link.kickReason !== void 0;
      const why = link.kickReason ?? reason;
      const handover = why === "replaced" && (!!this.connecting || !!this.current && this.current !== link);
      if (kicked && !handover) {
        this.events.emit("kicked", { reason: why || "kicked" }, (e) => this.reportError(e));
        this.stop(new ChatError(0, "kicked", `kicked: ${why}`));
        return;
      }
      if (this.current && !this.current.draining) return;
      if (!this.current) this.setState(handover ? "draining" : this.state === "connecting" ? "connecting" : "reconnecting");
      this.scheduleReconnect();
    }
    scheduleReconnect() {
      if (this.reconnectTimer || this.connecting || this.stopped) return;
      const delay = this.backoff.next();
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = void 0;
        if (this.stopped || this.current && !this.current.draining) return;
        void this.openLink();
      }, delay);
    }
    scheduleRenew(link, timelife, expiresAt) {
      clearTimeout(this.renewTimer);
      let ms = timelife > 0 ? timelife * 1e3 : 18e5;
      if (expiresAt > 0) ms = Math.min(ms, Math.max(0, expiresAt - Date.now()));
      this.renewTimer = setTimeout(() => void this.renew(link), Math.max(1e3, ms * 2 / 3));
    }
    async renew(link) {
      if (link !== this.current || link.draining || this.stopped) return;
      try {
        const params = this.options.getToken ? { token: await this.token() } : void 0;
        const p = await link.request(T.RENEW, params, this.options.requestTimeoutMs ?? 15e3);
        if (link === this.current && !link.draining) this.scheduleRenew(link, Number(p.timelife), Number(p.expiresAt));
      } catch (e) {
        this.reportError(e);
        if (link === this.current && !link.isClosed) this.renewTimer = setTimeout(() => void this.renew(link), 5e3);
      }
    }
    openLinkReady() {
      if (this.current?.open) return Promise.resolve(this.current);
      if (this.stopped) return Promise.reject(clientClosed());
      return new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject })).then(() => this.current);
    }
    stop(error) {
      this.stopped = true;
      for (const t of [this.reconnectTimer, this.drainTimer, this.renewTimer, this.pumpTimer]) clearTimeout(t);
      this.reconnectTimer = void 0;
      const links = [this.current, this.connecting].filter((l) => !!l && l instanceof Link);
      this.current = this.connecting = void 0;
      for (const l of links) l.close(1e3, "bye");
      this.inbox.disconnected();
      this.outbox.rejectAll(error);
      for (const w of this.openWaiters.splice(0)) w.reject(error);
      this.setState("closed");
    }
    setState(s) {
      if (this.state === s) return;
      this.state = s;
      this.events.emit("state", s, (e) => this.reportError(e));
    }
    reportError(e) {
      if (this.events.has("error")) this.events.emit("error", e, () => void 0);
    }
    // ---------- sending ----------
    enqueue(kind, to, text, opts) {
      const file = opts.file ? { fileId: opts.file.fileId } : void 0;
      const mimeKind = (opts.file?.mime ?? "").split("/")[0];
      const fileType = opts.fileType ?? (file ? { image: 1, audio: 2, video: 3 }[mimeKind] ?? 4 : 0);
      const message = {
        clientMsgId: opts.clientMsgId ?? randomId(),
        kind,
        to,
        text,
        fileType,
        ...file ? { file } : {},
        createdAt: Date.now()
      };
      this.ownIds.add(message.clientMsgId);
      const done = this.outbox.add(message);
      this.persist(() => this.storage.put(message));
      this.pump();
      return done;
    }
    persist(op) {
      this.storageChain = this.storageChain.then(op).catch((e) => this.reportError(e));
    }
    /** Sends what the outbox has due on the current connection. */
    pump() {
      const link = this.current;
      if (!link?.open || this.stopped) return;
      const room = (this.options.maxInflightSends ?? 32) - this.outbox.inflight;
      const now = Date.now();
      for (const m of this.outbox.due(now, Math.max(0, room))) this.transmit(link, m);
      const at = this.outbox.nextRetryAt(now);
      if (at !== void 0) {
        clearTimeout(this.pumpTimer);
        this.pumpTimer = setTimeout(() => this.pump(), at - now);
      }
    }
    transmit(link, m) {
      const params = { toMessageId: m.to, message: m.text, fileType: m.fileType, clientMsgId: m.clientMsgId };
      if (m.file) params.file = m.file;
      link.request(m.kind === "group" ? T.SEND_GROUP : T.SEND, params, this.options.requestTimeoutMs ?? 15e3).then(
        (p) => this.onStored({ messageId: p.messageId, seq: Number(p.seq), conversationId: p.conversationId, clientMsgId: m.clientMsgId }),
        (e) => {
          if (e instanceof ChatError && !e.retryable) {
            const msg = this.outbox.failed(m.clientMsgId, e);
            if (msg) {
              this.persist(() => this.storage.delete(m.clientMsgId));
              this.events.emit("failed", { message: msg, error: e }, (x) => this.reportError(x));
            }
          } else {
            const wait = e?.status === 429 ? 1e3 : e?.status >= 500 ? 500 : 0;
            this.outbox.retry(m.clientMsgId, Date.now() + wait);
          }
          this.pump();
        }
      );
    }
    onStored(r) {
      const result = { messageId: r.messageId, seq: Number(r.seq), conversationId: r.conversationId, clientMsgId: r.clientMsgId };
      const message = this.outbox.stored(result);
      this.inbox.ownSend(result.conversationId, result.seq);
      if (message) {
        this.persist(() => this.storage.delete(result.clientMsgId));
        this.events.emit("sent", { ...result, message }, (e) => this.reportError(e));
      }
      this.pump();
    }
    // ---------- receiving ----------
    onEnvelope(env) {
      const m = env.msg ?? {};
      const isMessage = m.type === T.DELIVER || m.type === T.DELIVER_GROUP;
      if (!isMessage && !this.notices.add(env.messageId)) return;
      if (Number(env.trigger) === 2) {
        this.events.emit("push", { msg: env.msg, envelope: env }, (e) => this.reportError(e));
        return;
      }
      const p = m.params ?? {};
      const emit = (k, v) => this.events.emit(k, v, (e) => this.reportError(e));
      switch (m.type) {
        case T.DELIVER:
        case T.DELIVER_GROUP:
          return this.inbox.onMessage(env);
        case T.DELIVERED:
          return void emit("delivered", { messageId: p.messageId, conversationId: p.conversationId, seq: Number(p.seq), by: p.by });
        case T.READ_NOTICE:
          return void emit("read", { conversationId: p.conversationId, userId: p.userId, readSeq: Number(p.readSeq) });
        case T.TYPING_NOTICE:
          return void emit("typing", { conversationId: p.conversationId, userId: p.userId, state: p.state });
        case T.PRESENCE:
          return void emit("presence", { userId: p.userId, online: !!p.online, lastSeen: p.lastSeen ?? null });
        case T.RECALLED:
          return void emit("recalled", { messageId: p.messageId, conversationId: p.conversationId, seq: Number(p.seq) });
        default:
          return;
      }
    }
    deliver(m) {
      if (m.system && m.groupId) {
        this.events.emit(
          "group",
          { ...m.system, groupId: m.groupId, conversationId: m.conversationId, seq: m.seq },
          (e) => this.reportError(e)
        );
      }
      return this.events.emit("message", m, (e) => this.reportError(e));
    }
    sendAck(messageId) {
      if (!this.current?.send({ type: T.ACK, params: { msgid: messageId }, requestId: "ack" })) this.pendingAcks.add(messageId);
    }
  };
  var DEFAULT_TRANSPORT = "subprotocol";

  // src/indexeddb.ts
  var STORE = "outbox";
  function promised(request) {
    return new Promise((resolve, reject) => {
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  var IndexedDbStorage = class {
    constructor(name = "chatcluster-outbox", factory = globalThis.indexedDB) {
      __publicField(this, "name", name);
      __publicField(this, "factory", factory);
      __publicField(this, "db");
      if (!factory) throw new Error("IndexedDB is not available here; pass another OutboxStorage");
    }
    open() {
      this.db ?? (this.db = new Promise((resolve, reject) => {
        const req = this.factory.open(this.name, 1);
        req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "clientMsgId" });
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      }));
      return this.db;
    }
    async store(mode) {
      return (await this.open()).transaction(STORE, mode).objectStore(STORE);
    }
    async load() {
      const all = await promised((await this.store("readonly")).getAll());
      return all.sort((a, b) => a.createdAt - b.createdAt);
    }
    async put(message) {
      await promised((await this.store("readwrite")).put(message));
    }
    async delete(clientMsgId) {
      await promised((await this.store("readwrite")).delete(clientMsgId));
    }
  };
  return __toCommonJS(index_exports);
})();
