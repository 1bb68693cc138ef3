'use strict';
// One load process's share of the run: its sender/recipient pairs (direct) or its group members
// (and, in worker 0, the group's sender). It connects, sends on the run's clock, acks every
// delivery, times each message and reports to the coordinator (load.js) over a message channel.
//
// Direct: a message is delivered once the recipient got it AND the sender got the delivered
// notice (and its reply). Group: each member's receipt is a delivery; the coordinator counts
// them per message and tells worker 0 when all members have one. The window counts a sender's
// messages not yet delivered (to every member), or with `windowUntil: 'reply'` not yet answered.

const { connectionClass } = require('./transport');
const { Histogram } = require('./histogram');
const { nowUs } = require('./clock');
const jwt = require('./jwt');

const PROGRESS_MS = { direct: 250, group: 20 };

function userId(prefix, role, i) {
  return `${prefix}-${role}${i}`;
}

/** The message text: its send time (µs on the run's clock) and number, padded to `bytes`. */
function payload(sentUs, n, bytes) {
  const head = `${Math.round(sentUs)}.${n}.`;
  return head.length >= bytes ? head : head + 'x'.repeat(bytes - head.length);
}

function parsePayload(text) {
  const a = text.indexOf('.');
  const b = text.indexOf('.', a + 1);
  return { sentUs: Number(text.slice(0, a)), n: Number(text.slice(a + 1, b)) };
}

/** Runs `connectOne` over `items`, at most `concurrency` at a time, in order of the results. */
async function connectAll(items, concurrency, connectOne) {
  const out = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await connectOne(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return out;
}

class Worker {
  /** `config` comes from the coordinator (load.js: workerConfig); `post` sends it a message. */
  constructor(config, post) {
    this.c = config;
    this.post = post;
    this.Conn = connectionClass(config.target, config.socketioClient);
    this.conns = [];
    this.pairs = new Map();
    this.errors = {};
    this.reply = new Histogram();
    this.deliver = new Histogram();
    this.lag = new Histogram();
    this.sent = 0;
    this.sentInWindow = 0;
    this.completed = 0;
    this.completedInWindow = 0;
    this.deliveries = 0;
    this.deliveriesInWindow = 0;
    this.duplicates = 0;
    this.groupCounts = new Map();
    this.groupFailed = [];
    this.sending = false;
    this.closing = false;
  }

  async handle(m) {
    try {
      if (m.op === 'setup') await this.setupGroup();
      else if (m.op === 'connect') await this.connect(m.groupId);
      else if (m.op === 'start') this.start(m);
      else if (m.op === 'complete') for (const n of m.ns) this.groupComplete(n);
      else if (m.op === 'finish') this.finish();
    } catch (e) {
      this.post({ op: 'fatal', message: `worker ${this.c.index}: ${e.message}` });
    }
  }

  now() {
    return nowUs() - this.base;
  }

  inWindow(us) {
    return us >= this.windowStartUs && us < this.windowEndUs;
  }

  problem(kind) {
    if (!this.closing) this.errors[kind] = (this.errors[kind] ?? 0) + 1;
  }

  async open(url, user) {
    const token = jwt.sign(user, this.c.secret);
    const conn = await this.Conn.connect(url, token, { timeoutMs: this.c.connectTimeoutMs }).catch((e) => {
      throw new Error(`connecting ${user} to ${url}: ${e.message}`);
    });
    conn.onProblem = (kind) => this.problem(kind);
    this.conns.push(conn);
    return conn;
  }

  // --- set-up ---------------------------------------------------------------------------------

  /** Worker 0 in group mode: the sender connects and makes the group of every member. */
  async setupGroup() {
    const { prefix, groupSize, urls } = this.c;
    this.groupSender = await this.open(urls[0], userId(prefix, 's', 0));
    const members = Array.from({ length: groupSize }, (_, j) => userId(prefix, 'm', j));
    this.groupId = await this.groupSender.createGroup(`${prefix}-g`, members);
    await this.groupSender.joinGroup(this.groupId);
    this.groupMsgs = new Map();
    this.groupOutstanding = 0;
    this.groupSender.onDelivered = () => {};
    this.post({ op: 'group', groupId: this.groupId });
  }

  async connect(groupId) {
    const { prefix, urls, concurrency } = this.c;
    const url = (i) => urls[i % urls.length];
    if (this.c.mode === 'group') {
      this.groupId = groupId;
      await connectAll(this.c.members, concurrency, async (j) => {
        const conn = await this.open(url(j), userId(prefix, 'm', j));
        conn.onDeliver = (messageId, from, text) => this.onGroupDeliver(conn, messageId, from, text);
        await conn.joinGroup(groupId);
      });
    } else {
      // Recipients first, so every message has somewhere to go; recipient i on URL i, its sender
      // on URL i + 1: with several servers every message crosses from one to another.
      const recipients = await connectAll(this.c.pairs, concurrency, (i) => this.open(url(i), userId(prefix, 'r', i)));
      const senders = await connectAll(this.c.pairs, concurrency, (i) => this.open(url(i + 1), userId(prefix, 's', i)));
      this.c.pairs.forEach((i, k) => this.addPair(i, senders[k], recipients[k]));
    }
    this.post({ op: 'connected' });
  }

  addPair(i, sender, recipient) {
    const pair = {
      to: userId(this.c.prefix, 'r', i), sender, recipient,
      nextN: 0, outstanding: 0, msgs: new Map(), byId: new Map(), earlyNotices: new Set(),
    };
    recipient.onDeliver = (messageId, from, text) => this.onDirectDeliver(pair, messageId, from, text);
    sender.onDelivered = (messageId) => this.onNotice(pair, messageId);
    this.pairs.set(i, pair);
  }

  // --- the run --------------------------------------------------------------------------------

  start({ base, windowStartUs, windowEndUs }) {
    this.base = base;
    this.windowStartUs = windowStartUs;
    this.windowEndUs = windowEndUs;
    this.sending = this.c.mode === 'direct' || this.groupSender !== undefined;
    const delay = Math.max(0, -this.now() / 1000);
    setTimeout(() => {
      if (!this.sending) return;
      if (this.c.rate) this.paceTick();
      else if (this.c.mode === 'group') this.fillGroup();
      else for (const pair of this.pairs.values()) this.fill(pair);
    }, delay);
    setTimeout(() => {
      this.sending = false;
    }, (windowEndUs - this.now()) / 1000);
    this.progressTimer = setInterval(() => this.progress(), PROGRESS_MS[this.c.mode]);
  }

  stillSending(now) {
    if (this.sending && now >= this.windowEndUs) this.sending = false;
    return this.sending;
  }

  /** Rate mode: message k of the whole run is due at k / rate s; it is pair k mod pairs's. */
  paceTick() {
    const interval = 1e6 / this.c.rate;
    const now = this.now();
    this.k ??= 0;
    while (this.k * interval <= now && this.k * interval < this.windowEndUs) {
      const pair = this.c.mode === 'direct' ? this.pairs.get(this.k % this.c.totalPairs) : null;
      if (pair !== undefined) {
        this.lag.record(now - this.k * interval);
        if (pair === null) this.sendGroupMessage(now);
        else this.sendDirect(pair, now);
      }
      this.k += 1;
    }
    if (this.k * interval >= this.windowEndUs) {
      this.sending = false;
      return;
    }
    setTimeout(() => this.paceTick(), Math.max(0, (this.k * interval - this.now()) / 1000));
  }

  fill(pair) {
    while (pair.outstanding < this.c.window) {
      const now = this.now();
      if (!this.stillSending(now)) return;
      this.sendDirect(pair, now);
    }
  }

  sendDirect(pair, now) {
    const n = pair.nextN++;
    const rec = { sentUs: now, replyUs: -1, deliverUs: -1, noticeUs: -1 };
    pair.msgs.set(n, rec);
    pair.outstanding += 1;
    this.sent += 1;
    if (this.inWindow(now)) this.sentInWindow += 1;
    pair.sender.send(pair.to, payload(now, n, this.c.messageBytes), `c${n}`, (err, r) => this.onReply(pair, n, err, r));
  }

  onReply(pair, n, err, r) {
    const rec = pair.msgs.get(n);
    if (rec === undefined) return;
    const now = this.now();
    if (err) {
      this.problem(`send:${err}`);
      pair.msgs.delete(n);
      return this.slotFreed(pair);
    }
    rec.replyUs = now;
    if (this.inWindow(rec.sentUs)) this.reply.record(now - rec.sentUs);
    if (pair.earlyNotices.delete(r.messageId)) rec.noticeUs = now;
    else pair.byId.set(r.messageId, n);
    if (this.c.windowUntil === 'reply') this.slotFreed(pair);
    this.maybeComplete(pair, n, rec, now);
  }

  onDirectDeliver(pair, messageId, from, text) {
    pair.recipient.ack(messageId, from);
    const { n } = parsePayload(text);
    const rec = pair.msgs.get(n);
    if (rec === undefined || rec.deliverUs >= 0) {
      this.duplicates += 1;
      return;
    }
    const now = this.now();
    rec.deliverUs = now;
    if (this.inWindow(rec.sentUs)) this.deliver.record(now - rec.sentUs);
    this.maybeComplete(pair, n, rec, now);
  }

  onNotice(pair, messageId) {
    const n = pair.byId.get(messageId);
    // A notice can overtake its reply: keep it until the reply names the message.
    if (n === undefined) return void pair.earlyNotices.add(messageId);
    pair.byId.delete(messageId);
    const rec = pair.msgs.get(n);
    const now = this.now();
    rec.noticeUs = now;
    this.maybeComplete(pair, n, rec, now);
  }

  maybeComplete(pair, n, rec, now) {
    if (rec.replyUs < 0 || rec.deliverUs < 0 || rec.noticeUs < 0) return;
    pair.msgs.delete(n);
    this.completed += 1;
    if (this.inWindow(now)) this.completedInWindow += 1;
    if (this.c.windowUntil !== 'reply') this.slotFreed(pair);
  }

  slotFreed(pair) {
    pair.outstanding -= 1;
    if (!this.c.rate) this.fill(pair);
  }

  // --- groups ---------------------------------------------------------------------------------

  fillGroup() {
    while (this.groupOutstanding < this.c.window) {
      const now = this.now();
      if (!this.stillSending(now)) return;
      this.sendGroupMessage(now);
    }
  }

  sendGroupMessage(now) {
    const n = this.sent;
    this.sent += 1;
    if (this.inWindow(now)) this.sentInWindow += 1;
    const rec = { sentUs: now, replied: false, complete: false };
    this.groupMsgs.set(n, rec);
    this.groupOutstanding += 1;
    this.groupSender.sendGroup(this.groupId, payload(now, n, this.c.messageBytes), `g${n}`, (err) => {
      if (err) {
        this.problem(`send:${err}`);
        this.groupFailed.push(n);
        this.groupMsgs.delete(n);
        return this.groupSlotFreed();
      }
      rec.replied = true;
      if (this.inWindow(rec.sentUs)) this.reply.record(this.now() - rec.sentUs);
      if (this.c.windowUntil === 'reply') this.groupSlotFreed();
      this.groupDone(n, rec);
    });
  }

  /** The coordinator saw every member receive message n. */
  groupComplete(n) {
    const rec = this.groupMsgs.get(n);
    if (rec === undefined) return;
    rec.complete = true;
    this.groupDone(n, rec);
  }

  groupDone(n, rec) {
    if (!rec.replied || !rec.complete) return;
    this.groupMsgs.delete(n);
    this.completed += 1;
    if (this.inWindow(this.now())) this.completedInWindow += 1;
    if (this.c.windowUntil !== 'reply') this.groupSlotFreed();
  }

  groupSlotFreed() {
    this.groupOutstanding -= 1;
    if (!this.c.rate) this.fillGroup();
  }

  onGroupDeliver(conn, messageId, from, text) {
    conn.ack(messageId, from, this.groupId);
    const now = this.now();
    const { sentUs, n } = parsePayload(text);
    this.deliveries += 1;
    if (this.inWindow(now)) this.deliveriesInWindow += 1;
    if (this.inWindow(sentUs)) this.deliver.record(now - sentUs);
    this.groupCounts.set(n, (this.groupCounts.get(n) ?? 0) + 1);
  }

  // --- reporting ------------------------------------------------------------------------------

  remaining() {
    if (this.c.mode === 'group') return this.groupMsgs ? [...this.groupMsgs.values()].filter((r) => !r.replied).length : 0;
    let n = 0;
    for (const pair of this.pairs.values()) n += pair.msgs.size;
    return n;
  }

  progress() {
    const counts = [...this.groupCounts];
    this.groupCounts.clear();
    this.post({
      op: 'progress', sent: this.sent, completed: this.completed, deliveries: this.deliveries,
      remaining: this.remaining(), sending: this.sending, failed: this.groupFailed.length, counts,
    });
  }

  finish() {
    clearInterval(this.progressTimer);
    this.progress();
    this.closing = true;
    this.sending = false;
    for (const conn of this.conns) conn.close();
    this.post({
      op: 'report',
      report: {
        sent: this.sent, sentInWindow: this.sentInWindow, completed: this.completed,
        completedInWindow: this.completedInWindow, deliveries: this.deliveries,
        deliveriesInWindow: this.deliveriesInWindow, duplicates: this.duplicates,
        unfinished: this.c.mode === 'direct' ? this.remaining() : 0, errors: this.errors,
        groupFailed: this.groupFailed, reply: this.reply.toJSON(), deliver: this.deliver.toJSON(),
        lag: this.lag.toJSON(),
      },
    });
  }
}

module.exports = { Worker, payload, parsePayload, userId };
