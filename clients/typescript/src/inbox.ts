/**
 * The receiving side: every 2/10 push and SYNC page goes through here. Duplicates are dropped
 * (and ACKed again), messages are released to the app in seq order per conversation, gaps that do
 * not fill by themselves are read with SYNC, and each message is ACKed once the app handled it.
 */
import { toMessage, type ChatMessage } from "./message.js";
import { T, type Envelope, type Params } from "./protocol.js";
import { SeenSet } from "./seen.js";
import { Sequencer } from "./sequencer.js";

/** SYNC page size (the server's maximum). */
const SYNC_LIMIT = 200;

/** What the inbox needs from the client. */
export interface InboxHost {
  /** The signed-in user (from WELCOME). */
  userId(): string;
  /** A request on the current connection. */
  request(type: number, params: Params): Promise<Params>;
  /** Sends (or queues until the next connection) an ACK of `messageId`. */
  ack(messageId: string): void;
  /** Hands `m` to the app; returns what the listeners returned (promises to wait for). */
  deliver(m: ChatMessage): Promise<unknown>[];
  /** True when `clientMsgId` is a send of this client (its slot is filled, not delivered). */
  isOwnSend(clientMsgId: string | undefined): boolean;
  /** A SYNC page showed one of this client's sends stored: settle it. */
  ownStored(messageId: string, seq: number, conversationId: string, clientMsgId: string): void;
  /** Reports a failure that has no caller to reject. */
  error(e: unknown): void;
}

/** Tuning for the inbox. */
export interface InboxOptions {
  /** ACK after the listeners returned (`auto`), or when the app calls `m.ack()` (`manual`). */
  ackMode: "auto" | "manual";
  /** How long a gap may stay open before SYNC reads it, ms. */
  gapWaitMs: number;
}

/** Ordering, de-duplication, gap repair and ACKs for the incoming messages. */
export class Inbox {
  private readonly seq = new Sequencer<ChatMessage>();
  /** messageIds handed to the app. */
  private readonly seen = new SeenSet(50_000);
  /** Conversations in the last conversation list (undefined until it arrived on this connection). */
  private listed?: Set<string>;
  private readonly syncing = new Map<string, boolean>();
  private readonly gapTimers = new Map<string, { timer: ReturnType<typeof setTimeout>; at: number }>();

  constructor(
    private readonly host: InboxHost,
    private readonly options: InboxOptions,
  ) {}

  /** A new connection got its WELCOME: list the conversations and catch up. */
  connected(): void {
    this.listed = undefined;
    this.host.request(T.SYNC, {}).then(
      (p) => this.onList(p),
      (e) => this.host.error(e),
    );
  }

  /** The connection is gone: the next one lists again. */
  disconnected(): void {
    this.listed = undefined;
    for (const { timer } of this.gapTimers.values()) clearTimeout(timer);
    this.gapTimers.clear();
  }

  /** A 2 or 10 envelope, pushed or read by SYNC. */
  onMessage(env: Envelope): void {
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
      this.release(this.seq.baseline(cid, 0)); // a conversation newer than the list: from its start
    }
    this.watch(cid);
  }

  /** This client's send was stored at `seq` (reply 0): its slot is not a gap. */
  ownSend(cid: string, seq: number): void {
    this.release(this.seq.fill(cid, seq));
  }

  /** The highest seq handed out in order in `cid` (undefined when none yet). */
  contiguous(cid: string): number | undefined {
    return this.seq.contiguous(cid);
  }

  private onList(p: Params): void {
    const convs: any[] = Array.isArray(p.conversations) ? p.conversations : [];
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
  private watch(cid: string): void {
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
  private async sync(cid: string): Promise<void> {
    if (this.syncing.has(cid)) {
      this.syncing.set(cid, true); // read again when this one is done
      return;
    }
    this.syncing.set(cid, false);
    const start = this.seq.contiguous(cid) ?? 0;
    const knownLast = this.seq.last(cid);
    let after = start;
    let top = start;
    try {
      for (;;) {
        const page = await this.host.request(T.SYNC, { conversationId: cid, afterSeq: after, limit: SYNC_LIMIT });
        const envs: Envelope[] = Array.isArray(page.messages) ? page.messages : [];
        for (const env of envs) {
          this.onMessage(env);
          top = Math.max(top, Number(env.msg?.params?.seq) || 0);
        }
        if (!page.hasMore || top <= after) break;
        after = top;
      }
      // The read was complete up to at least what was known when it started: the rest are holes.
      this.release(this.seq.synced(cid, start, Math.max(top, knownLast)));
    } catch (e: any) {
      if (e?.status === 403 || e?.status === 404) {
        this.release(this.seq.synced(cid, start, Math.max(top, knownLast))); // no longer readable
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

  private release(ready: ChatMessage[]): void {
    for (const m of ready) {
      this.seen.add(m.messageId);
      const waits = this.host.deliver(m);
      if (this.options.ackMode === "manual") continue;
      if (waits.length === 0) m.ack();
      else
        Promise.allSettled(waits).then(
          () => m.ack(),
          () => m.ack(),
        );
    }
  }

  private readonly acked = new SeenSet(50_000);

  private ackOnce(m: ChatMessage): void {
    if (this.acked.add(m.messageId)) this.host.ack(m.messageId);
  }
}
