/**
 * One WebSocket connection: frames in and out, request/reply matching, heartbeat and a watchdog
 * that declares the connection dead when the server has been silent for too long. The client
 * owns the links; during a drain hand-over it holds two at once.
 */
import { ChatError, connectionLost, isEnvelope, T, type Frame, type Params, type Welcome } from "./protocol.js";

/** The part of the WebSocket API the SDK uses (browsers' `WebSocket`, the `ws` package). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: { data: any }) => any) | null;
  onclose: ((ev: { code: number; reason: string }) => any) | null;
  onerror: ((ev: any) => any) | null;
}

/** A WebSocket constructor (`globalThis.WebSocket`, or `WebSocket` from the `ws` package). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** What a link reports to its owner. */
export interface LinkEvents {
  /** A frame that is not the reply to one of this link's requests. */
  frame(link: Link, frame: any): void;
  /** The link is gone (closed by either side, failed to open, or declared dead). */
  closed(link: Link, code: number, reason: string): void;
}

interface Pending {
  resolve(params: Params): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;
/** No frame from the server for this many heartbeat intervals: the connection is dead. */
const SILENT_INTERVALS = 2.5;

let nextLinkId = 0;

/** A connection to one gateway. */
export class Link {
  /** For logs and tests: 1, 2, 3 … per process. */
  readonly id = ++nextLinkId;
  /** The WELCOME, once it arrived. */
  welcome?: Welcome;
  /** DRAIN arrived on this link. */
  draining = false;
  /** KICKED arrived on this link, with this reason. */
  kickReason?: string;
  /** Set when the client replaced this link with a newer one (drain hand-over). */
  superseded = false;
  /** The timer that gives up on an attempt without WELCOME (owned by the client). */
  onWelcomeTimeout?: ReturnType<typeof setTimeout>;
  private closed = false;
  private requestCounter = 0;
  private readonly pending = new Map<string, Pending>();
  private heartbeatTimer?: ReturnType<typeof setInterval>;
  private lastFrameAt = Date.now();

  constructor(
    private readonly ws: WebSocketLike,
    private readonly events: LinkEvents,
  ) {
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onclose = (ev) => this.finish(ev.code, ev.reason || "");
    ws.onerror = () => {
      /* onclose follows and reports */
    };
  }

  /** Whether the link can carry frames (open, not closed). */
  get open(): boolean {
    return !this.closed && this.ws.readyState === OPEN;
  }

  /** Whether the link is finished. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Sends one frame; false when the link cannot carry it. */
  send(frame: Frame | { type: number; params?: Params; requestId?: string }): boolean {
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
  request(type: number, params: Params | undefined, timeoutMs: number): Promise<Params> {
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
  startHeartbeat(seconds: number): void {
    clearInterval(this.heartbeatTimer);
    const ms = Math.max(1, seconds) * 1000;
    this.heartbeatTimer = setInterval(() => {
      if (Date.now() - this.lastFrameAt > ms * SILENT_INTERVALS) {
        this.abort(4000, "server silent");
        return;
      }
      this.send({ type: T.HEARTBEAT });
    }, ms);
  }

  /** Closes the link politely (close frame with `code`). */
  close(code = 1000, reason = "bye"): void {
    if (this.closed) return;
    try {
      this.ws.close(code, reason);
    } catch {
      /* already closing */
    }
    this.finish(code, reason);
  }

  /** Drops the link at once (dead peer): reports it closed without waiting for the socket. */
  abort(code: number, reason: string): void {
    if (this.closed) return;
    const ws = this.ws as WebSocketLike & { terminate?: () => void };
    try {
      if (typeof ws.terminate === "function") ws.terminate();
      else ws.close(4000, reason);
    } catch {
      /* ignore */
    }
    this.finish(code, reason);
  }

  private onMessage(data: unknown): void {
    if (this.closed) return;
    this.lastFrameAt = Date.now();
    let frame: any;
    try {
      frame = JSON.parse(typeof data === "string" ? data : String(data));
    } catch {
      return;
    }
    if (!isEnvelope(frame) && frame && frame.requestId !== undefined) {
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

  private finish(code: number, reason: string): void {
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
}
