/**
 * Per-conversation ordering, de-duplication by seq and gap detection (sans-IO).
 *
 * The server numbers each conversation's messages 1, 2, 3, … without holes, but a device can see
 * them out of order (two senders racing, a retry, catch-up interleaved with live pushes) or with
 * holes (a push lost with a connection, messages before a group join point). The sequencer hands
 * the app each seq once, in order: a message above the next expected seq waits in a buffer until
 * the seqs below it arrive, are filled (this device's own sends), or are declared holes by a
 * complete SYNC of the range.
 */

const FILLED = Symbol("filled");

interface Conversation<T> {
  /** Highest seq up to which everything was handed out, filled or declared a hole. */
  contig?: number;
  /** Seqs above `contig` that arrived early. */
  buffer: Map<number, T | typeof FILLED>;
  /** Highest seq known to exist (a push, a reply 0, the conversation list). */
  lastSeq: number;
}

/** What {@link Sequencer.offer} made of a message. */
export interface Offered<T> {
  /** The seq was handed out before or is already waiting: ACK it and drop it. */
  duplicate: boolean;
  /** Messages now ready for the app, in seq order (may include earlier buffered ones). */
  ready: T[];
}

/** Orders the messages of every conversation; `T` is whatever the caller hands to the app. */
export class Sequencer<T> {
  private readonly convs = new Map<string, Conversation<T>>();

  private conv(cid: string): Conversation<T> {
    let c = this.convs.get(cid);
    if (!c) {
      c = { buffer: new Map(), lastSeq: 0 };
      this.convs.set(cid, c);
    }
    return c;
  }

  /** Whether in-order delivery in `cid` has a starting point yet. */
  hasBaseline(cid: string): boolean {
    return this.convs.get(cid)?.contig !== undefined;
  }

  /**
   * Starts in-order delivery of `cid` after `seq` (the user's `ackedSeq` from the conversation
   * list) when it has no starting point yet; returns what became ready.
   */
  baseline(cid: string, seq: number): T[] {
    const c = this.conv(cid);
    if (c.contig !== undefined) return [];
    c.contig = seq;
    for (const s of [...c.buffer.keys()]) if (s <= seq) c.buffer.delete(s);
    return this.release(c);
  }

  /** A message with `seq` in `cid`. */
  offer(cid: string, seq: number, item: T): Offered<T> {
    const c = this.conv(cid);
    c.lastSeq = Math.max(c.lastSeq, seq);
    if ((c.contig !== undefined && seq <= c.contig) || c.buffer.has(seq)) {
      return { duplicate: true, ready: [] };
    }
    c.buffer.set(seq, item);
    return { duplicate: false, ready: this.release(c) };
  }

  /** Marks `seq` as taken by a message the app does not get (this device's own send). */
  fill(cid: string, seq: number): T[] {
    const c = this.conv(cid);
    c.lastSeq = Math.max(c.lastSeq, seq);
    if ((c.contig !== undefined && seq <= c.contig) || c.buffer.has(seq)) return [];
    c.buffer.set(seq, FILLED);
    return this.release(c);
  }

  /** Records that `cid` has messages up to `seq` (from the conversation list). */
  noteLast(cid: string, seq: number): void {
    const c = this.conv(cid);
    c.lastSeq = Math.max(c.lastSeq, seq);
  }

  /**
   * A complete SYNC read of `(afterSeq, top]` was offered: every seq in that range that did not
   * arrive is one this user cannot see (before a join point), so it becomes a hole.
   */
  synced(cid: string, afterSeq: number, top: number): T[] {
    const c = this.conv(cid);
    if (c.contig === undefined) c.contig = afterSeq;
    if (afterSeq > c.contig) return this.release(c); // read started above a gap: no holes proven
    const out: T[] = [];
    const early = [...c.buffer.keys()].filter((s) => s <= top).sort((a, b) => a - b);
    for (const s of early) {
      const item = c.buffer.get(s)!;
      c.buffer.delete(s);
      if (item !== FILLED) out.push(item);
    }
    c.contig = Math.max(c.contig, top);
    c.lastSeq = Math.max(c.lastSeq, top);
    out.push(...this.release(c));
    return out;
  }

  /** Highest seq handed out in order (undefined before a baseline). */
  contiguous(cid: string): number | undefined {
    return this.convs.get(cid)?.contig;
  }

  /** Highest seq known to exist in `cid`. */
  last(cid: string): number {
    return this.convs.get(cid)?.lastSeq ?? 0;
  }

  /** True when `cid` has a baseline and known messages above it are missing. */
  behind(cid: string): boolean {
    const c = this.convs.get(cid);
    return !!c && c.contig !== undefined && (c.lastSeq > c.contig || c.buffer.size > 0);
  }

  /** Conversations holding messages but no baseline yet. */
  waitingForBaseline(): string[] {
    return [...this.convs].filter(([, c]) => c.contig === undefined && c.buffer.size > 0).map(([cid]) => cid);
  }

  /** Every conversation seen. */
  conversations(): string[] {
    return [...this.convs.keys()];
  }

  private release(c: Conversation<T>): T[] {
    const out: T[] = [];
    if (c.contig === undefined) return out;
    for (;;) {
      const next = c.buffer.get(c.contig + 1);
      if (next === undefined) break;
      c.buffer.delete(c.contig + 1);
      c.contig++;
      if (next !== FILLED) out.push(next);
    }
    return out;
  }
}
