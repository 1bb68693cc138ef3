/**
 * The outbox: sends waiting for their reply 0 (sans-IO; the client moves the frames).
 *
 * Every send gets a `clientMsgId` when it is queued and keeps it for life, so resending after a
 * lost connection, a timeout or an ERROR 429/500/503 can never store a message twice (the server
 * answers a resend with the first reply 0). With a persistent {@link OutboxStorage} the queue
 * survives a page reload or a process restart: the next client resends what is left.
 */

/** A message waiting to be stored, as kept in storage. */
export interface OutgoingMessage {
  /** Idempotency key, unique per sender (≤ 64 bytes). */
  clientMsgId: string;
  /** `user` sends a 1:1 SEND (1), `group` a group SEND (9). */
  kind: "user" | "group";
  /** Recipient user id or group id. */
  to: string;
  /** The text (a file's name for file messages). */
  text: string;
  /** 0 text, 1 image, 2 audio, 3 video, 4 document. */
  fileType: number;
  /** An uploaded file (see `uploadFile`). */
  file?: { fileId: string };
  /** When the app called send, ms since the epoch. */
  createdAt: number;
}

/** What a send resolves with: the stored message's identity. */
export interface SendResult {
  messageId: string;
  seq: number;
  conversationId: string;
  clientMsgId: string;
}

/** Where the outbox keeps unsent messages. Methods may be async; failures are reported, not fatal. */
export interface OutboxStorage {
  /** Every message left by an earlier client, oldest first. */
  load(): Promise<OutgoingMessage[]>;
  /** Keeps `message` until {@link OutboxStorage.delete}. */
  put(message: OutgoingMessage): Promise<void>;
  /** Forgets the message with this `clientMsgId` (it was stored or refused). */
  delete(clientMsgId: string): Promise<void>;
}

/** Keeps the outbox in memory only (the default): it survives reconnects, not restarts. */
export class MemoryStorage implements OutboxStorage {
  private readonly items = new Map<string, OutgoingMessage>();
  async load(): Promise<OutgoingMessage[]> {
    return [...this.items.values()];
  }
  async put(message: OutgoingMessage): Promise<void> {
    this.items.set(message.clientMsgId, message);
  }
  async delete(clientMsgId: string): Promise<void> {
    this.items.delete(clientMsgId);
  }
}

interface Waiter {
  resolve(result: SendResult): void;
  reject(error: Error): void;
}

interface Entry {
  message: OutgoingMessage;
  inflight: boolean;
  waiters: Waiter[];
  /** Not before this time (ms) — set after a retryable error. */
  notBefore: number;
}

/** The queue of sends and the promises waiting on them. */
export class Outbox {
  private readonly entries = new Map<string, Entry>();

  /** Queues `message`; the promise settles exactly once, when it is stored or refused. */
  add(message: OutgoingMessage): Promise<SendResult> {
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
  restore(messages: OutgoingMessage[]): void {
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
  due(now: number, room: number): OutgoingMessage[] {
    const out: OutgoingMessage[] = [];
    for (const e of this.entries.values()) {
      if (out.length >= room) break;
      if (e.inflight || e.notBefore > now) continue;
      e.inflight = true;
      out.push(e.message);
    }
    return out;
  }

  /** The earliest time a held-back message may go again (undefined: none held back). */
  nextRetryAt(now: number): number | undefined {
    let at: number | undefined;
    for (const e of this.entries.values()) {
      if (!e.inflight && e.notBefore > now) at = Math.min(at ?? Infinity, e.notBefore);
    }
    return at;
  }

  /** How many are in flight. */
  get inflight(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.inflight) n++;
    return n;
  }

  /** Reply 0 arrived: resolves the waiters; returns the message, or undefined if not queued. */
  stored(result: SendResult): OutgoingMessage | undefined {
    const e = this.entries.get(result.clientMsgId);
    if (!e) return undefined;
    this.entries.delete(result.clientMsgId);
    for (const w of e.waiters) w.resolve(result);
    return e.message;
  }

  /** The server refused the message for good (400, 403, 404, 413): rejects the waiters. */
  failed(clientMsgId: string, error: Error): OutgoingMessage | undefined {
    const e = this.entries.get(clientMsgId);
    if (!e) return undefined;
    this.entries.delete(clientMsgId);
    for (const w of e.waiters) w.reject(error);
    return e.message;
  }

  /** Send it again (timeout, 429/5xx), not before `notBefore`. */
  retry(clientMsgId: string, notBefore = 0): void {
    const e = this.entries.get(clientMsgId);
    if (e) {
      e.inflight = false;
      e.notBefore = notBefore;
    }
  }

  /** The connection carrying the in-flight sends is gone: all of them go again. */
  lost(): void {
    for (const e of this.entries.values()) e.inflight = false;
  }

  /** Rejects every waiter (the client closed); the messages stay queued (and stored). */
  rejectAll(error: Error): void {
    for (const e of this.entries.values()) {
      for (const w of e.waiters) w.reject(error);
      e.waiters = [];
    }
  }

  /** Whether `clientMsgId` is queued. */
  has(clientMsgId: string): boolean {
    return this.entries.has(clientMsgId);
  }

  /** Every queued message, oldest first. */
  pending(): OutgoingMessage[] {
    return [...this.entries.values()].map((e) => e.message);
  }

  /** How many are queued. */
  get size(): number {
    return this.entries.size;
  }
}
