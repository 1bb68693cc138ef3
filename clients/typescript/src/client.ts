/**
 * `ChatClient`: one device's connection to a chatcluster, carrying the server's delivery
 * guarantees into the app — sends that survive reconnects, messages once and in order, ACKs after
 * the app handled them, heartbeat, RENEW, drain hand-over and reconnects with backoff.
 */
import { Backoff } from "./backoff.js";
import { Emitter } from "./events.js";
import { Inbox } from "./inbox.js";
import { Link } from "./link.js";
import type { ChatMessage } from "./message.js";
import type { ChatClientOptions, ChatEvents, ConnectionState, SendOptions } from "./options.js";
import { MemoryStorage, Outbox, type OutboxStorage, type OutgoingMessage, type SendResult } from "./outbox.js";
import { ChatError, clientClosed, isEnvelope, T, type Envelope, type Params, type Welcome } from "./protocol.js";
import { SeenSet } from "./seen.js";
import { GroupApi, type UploadedFile } from "./requests.js";

const PROTOCOL = "chatcluster.v1";

function randomId(): string {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A chatcluster client for one user's device. */
export class ChatClient extends GroupApi {
  /** The current connection state. */
  state: ConnectionState = "closed";
  /** The user id, from the last WELCOME. */
  userId = "";
  /** The device id (given, or assigned by the server in WELCOME). */
  deviceId: string | undefined;
  private readonly events = new Emitter<ChatEvents>();
  private readonly outbox = new Outbox();
  private readonly ownIds = new SeenSet(10_000);
  private readonly notices = new SeenSet(10_000);
  private readonly inbox: Inbox;
  private readonly backoff: Backoff;
  private readonly storage: OutboxStorage;
  private storageChain: Promise<void> = Promise.resolve();
  private current?: Link;
  private connecting?: Link;
  private stopped = true;
  private started?: Promise<void>;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private drainTimer?: ReturnType<typeof setTimeout>;
  private renewTimer?: ReturnType<typeof setTimeout>;
  private pumpTimer?: ReturnType<typeof setTimeout>;
  private readonly pendingAcks = new Set<string>();
  private openWaiters: { resolve(): void; reject(e: Error): void }[] = [];

  constructor(private readonly options: ChatClientOptions) {
    super();
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
        ownStored: (messageId, seq, conversationId, clientMsgId) =>
          this.onStored({ messageId, seq, conversationId, clientMsgId }),
        error: (e) => this.reportError(e),
      },
      { ackMode: options.ackMode ?? "auto", gapWaitMs: options.gapWaitMs ?? 500 },
    );
  }

  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof ChatEvents>(event: K, fn: (arg: ChatEvents[K]) => unknown): () => void {
    return this.events.on(event, fn);
  }

  /** Unsubscribes. */
  off<K extends keyof ChatEvents>(event: K, fn: (arg: ChatEvents[K]) => unknown): void {
    this.events.off(event, fn);
  }

  /**
   * Connects and resolves at the first WELCOME; keeps reconnecting in the background until
   * {@link ChatClient.close}. Restores the outbox from storage first.
   */
  async connect(): Promise<void> {
    if (this.state === "open" || this.state === "draining") return;
    const opened = new Promise<void>((resolve, reject) => this.openWaiters.push({ resolve, reject }));
    if (this.stopped) {
      this.stopped = false;
      this.setState("connecting");
      this.started ??= this.storage.load().then(
        (msgs) => {
          for (const m of msgs) this.ownIds.add(m.clientMsgId);
          this.outbox.restore(msgs);
        },
        (e) => this.reportError(e),
      );
      await this.started;
      void this.openLink();
    }
    return opened;
  }

  /** Sends `text` to user `userId`; resolves once the server stored it (reply 0). */
  send(userId: string, text: string, opts: SendOptions = {}): Promise<SendResult> {
    return this.enqueue("user", userId, text, opts);
  }

  /** Sends `text` to group `groupId`; resolves once the server stored it (reply 0). */
  sendToGroup(groupId: string, text: string, opts: SendOptions = {}): Promise<SendResult> {
    return this.enqueue("group", groupId, text, opts);
  }

  /** Sends an uploaded file to a user (`kind: "user"`) or a group; the text is the file's name. */
  sendFile(kind: "user" | "group", to: string, file: UploadedFile, opts: SendOptions = {}): Promise<SendResult> {
    return this.enqueue(kind, to, file.name, { ...opts, file });
  }

  /** Messages queued and not yet stored (including ones restored from storage). */
  pending(): OutgoingMessage[] {
    return this.outbox.pending();
  }

  /** Uploads a file (`POST /api/files`); send it with `send(..., { file })` or {@link ChatClient.sendFile}. */
  async uploadFile(body: Blob | ArrayBuffer | Uint8Array, name: string, mime = "application/octet-stream"): Promise<UploadedFile> {
    const doFetch = this.options.fetch ?? globalThis.fetch;
    const token = await this.token();
    const safeName = /^[\x20-\x7e]+$/.test(name) ? name : encodeURIComponent(name);
    const res = await doFetch(`${this.httpUrl()}/api/files`, {
      method: "POST",
      body: body as BodyInit,
      headers: { authorization: `Bearer ${token}`, "content-type": mime, "x-file-name": safeName },
    });
    const text = await res.text();
    if (!res.ok) {
      let e: any = {};
      try {
        e = JSON.parse(text);
      } catch {
        /* plain text */
      }
      throw new ChatError(res.status, e.code ?? "http_error", e.message ?? `upload failed: HTTP ${res.status} ${text}`);
    }
    return JSON.parse(text) as UploadedFile;
  }

  /** The HTTP base URL of the gateway (for file URLs that start with `/`). */
  httpUrl(): string {
    if (this.options.httpUrl) return this.options.httpUrl.replace(/\/$/, "");
    const u = new URL(this.options.url);
    return `${u.protocol === "wss:" ? "https:" : "http:"}//${u.host}`;
  }

  /**
   * Sends a request (any type) on the current connection, waiting for one if needed; resolves
   * with the reply's params, rejects with a {@link ChatError}.
   */
  async request(type: number, params?: Params): Promise<Params> {
    const link = await this.openLinkReady();
    return link.request(type, params, this.options.requestTimeoutMs ?? 15_000);
  }

  /** Sends a frame that has no reply (TYPING); false when not connected. */
  fire(type: number, params: Params): boolean {
    return !!this.current?.send({ type, params });
  }

  /** Logs this device out (REGISTER `loginStatus: "0"`) and closes the client. */
  async logout(): Promise<void> {
    const link = this.current;
    if (link?.welcome) link.send({ type: T.REGISTER, params: { openid: this.userId, loginStatus: "0" } });
    this.close();
  }

  /** Closes the connection and stops reconnecting; pending sends reject but stay in storage. */
  close(): void {
    this.stop(clientClosed());
  }

  // ---------- connections ----------

  private async token(): Promise<string> {
    return this.options.getToken ? await this.options.getToken() : this.options.token!;
  }

  private async openLink(): Promise<void> {
    if (this.connecting || this.stopped) return;
    const WS = this.options.WebSocket ?? (globalThis as any).WebSocket;
    if (!WS) throw new Error("no WebSocket implementation: pass `WebSocket` (e.g. from the `ws` package)");
    let token: string;
    const placeholder = {} as Link;
    this.connecting = placeholder; // holds the slot while the token comes
    try {
      token = await this.token();
    } catch (e) {
      this.connecting = undefined;
      this.reportError(e);
      this.scheduleReconnect();
      return;
    }
    if (this.stopped || this.connecting !== placeholder) return;
    const url = new URL(this.options.url);
    if (this.deviceId) url.searchParams.set("device", this.deviceId);
    const viaQuery = (this.options.tokenTransport ?? DEFAULT_TRANSPORT) === "query";
    if (viaQuery) url.searchParams.set("token", token);
    let link: Link;
    try {
      const ws = viaQuery ? new WS(url.toString()) : new WS(url.toString(), [PROTOCOL, `bearer.${token}`]);
      link = new Link(ws, { frame: (l, f) => this.onFrame(l, f), closed: (l, code, reason) => this.onClosed(l, code, reason) });
    } catch (e) {
      this.connecting = undefined;
      this.reportError(e);
      this.scheduleReconnect();
      return;
    }
    this.connecting = link;
    const timeout = setTimeout(() => {
      if (!link.welcome) link.abort(4000, "no WELCOME in time");
    }, this.options.connectTimeoutMs ?? 10_000);
    link.onWelcomeTimeout = timeout;
  }

  private onFrame(link: Link, f: any): void {
    if (isEnvelope(f)) return this.onEnvelope(f);
    const p = f?.params ?? {};
    switch (f?.type) {
      case T.WELCOME:
        return this.onWelcome(link, p as Welcome);
      case T.DRAIN:
        return this.onDrain(link, p);
      case T.KICKED:
        link.kickReason = String(p.reason ?? "unknown");
        return;
      case T.RECEIVED: // a reply 0 whose request timed out or was resent: still settles the send
        if (p.clientMsgId) this.onStored(p as SendResult);
        return;
      case T.ERROR:
        if (f.requestId !== "ack") this.reportError(new ChatError(Number(f.status) || 500, String(p.code), String(p.message)));
        return;
      default:
        return;
    }
  }

  private onWelcome(link: Link, w: Welcome): void {
    clearTimeout(link.onWelcomeTimeout);
    link.welcome = w;
    const old = this.current;
    this.current = link;
    if (this.connecting === link) this.connecting = undefined;
    this.userId = w.userId;
    this.deviceId = w.deviceId;
    this.backoff.reset();
    clearTimeout(this.drainTimer);
    link.startHeartbeat(Number(w.heartbeat) || 30);
    this.scheduleRenew(link, Number(w.timelife), Number(w.expiresAt));
    if (old && old !== link) {
      old.superseded = true;
      old.close(1000, "moved to a new connection");
    }
    this.setState("open");
    this.events.emit("connected", w, (e) => this.reportError(e));
    for (const id of this.pendingAcks) link.send({ type: T.ACK, params: { msgid: id }, requestId: "ack" });
    this.pendingAcks.clear();
    this.inbox.connected();
    this.pump();
    for (const w of this.openWaiters.splice(0)) w.resolve();
  }

  private onDrain(link: Link, p: Params): void {
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

  private onClosed(link: Link, code: number, reason: string): void {
    clearTimeout(link.onWelcomeTimeout);
    if (this.connecting === link) this.connecting = undefined;
    if (this.current === link) {
      this.current = undefined;
      clearTimeout(this.renewTimer);
      this.inbox.disconnected();
    }
    if (this.stopped || link.superseded) return;
    const kicked = code === 4001 || link.kickReason !== undefined;
    const why = link.kickReason ?? reason;
    // During a drain hand-over the server replaces the old connection: not a sign-out.
    const handover = why === "replaced" && (!!this.connecting || (!!this.current && this.current !== link));
    if (kicked && !handover) {
      this.events.emit("kicked", { reason: why || "kicked" }, (e) => this.reportError(e));
      this.stop(new ChatError(0, "kicked", `kicked: ${why}`));
      return;
    }
    if (this.current && !this.current.draining) return; // another connection carries on
    if (!this.current) this.setState(handover ? "draining" : this.state === "connecting" ? "connecting" : "reconnecting");
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectTimer || this.connecting || this.stopped) return;
    const delay = this.backoff.next();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.stopped || (this.current && !this.current.draining)) return;
      void this.openLink();
    }, delay);
  }

  private scheduleRenew(link: Link, timelife: number, expiresAt: number): void {
    clearTimeout(this.renewTimer);
    let ms = timelife > 0 ? timelife * 1000 : 1_800_000;
    if (expiresAt > 0) ms = Math.min(ms, Math.max(0, expiresAt - Date.now()));
    this.renewTimer = setTimeout(() => void this.renew(link), Math.max(1000, (ms * 2) / 3));
  }

  private async renew(link: Link): Promise<void> {
    if (link !== this.current || link.draining || this.stopped) return;
    try {
      const params = this.options.getToken ? { token: await this.token() } : undefined;
      const p = await link.request(T.RENEW, params, this.options.requestTimeoutMs ?? 15_000);
      if (link === this.current && !link.draining) this.scheduleRenew(link, Number(p.timelife), Number(p.expiresAt));
    } catch (e) {
      this.reportError(e);
      if (link === this.current && !link.isClosed) this.renewTimer = setTimeout(() => void this.renew(link), 5_000);
    }
  }

  private openLinkReady(): Promise<Link> {
    if (this.current?.open) return Promise.resolve(this.current);
    if (this.stopped) return Promise.reject(clientClosed());
    return new Promise<void>((resolve, reject) => this.openWaiters.push({ resolve, reject })).then(() => this.current!);
  }

  private stop(error: Error): void {
    this.stopped = true;
    for (const t of [this.reconnectTimer, this.drainTimer, this.renewTimer, this.pumpTimer]) clearTimeout(t);
    this.reconnectTimer = undefined;
    const links = [this.current, this.connecting].filter((l): l is Link => !!l && l instanceof Link);
    this.current = this.connecting = undefined;
    for (const l of links) l.close(1000, "bye");
    this.inbox.disconnected();
    this.outbox.rejectAll(error);
    for (const w of this.openWaiters.splice(0)) w.reject(error);
    this.setState("closed");
  }

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.events.emit("state", s, (e) => this.reportError(e));
  }

  private reportError(e: unknown): void {
    if (this.events.has("error")) this.events.emit("error", e, () => undefined);
  }

  // ---------- sending ----------

  private enqueue(kind: "user" | "group", to: string, text: string, opts: SendOptions): Promise<SendResult> {
    const file = opts.file ? { fileId: opts.file.fileId } : undefined;
    const mimeKind = (opts.file?.mime ?? "").split("/")[0];
    const fileType = opts.fileType ?? (file ? ({ image: 1, audio: 2, video: 3 } as Record<string, number>)[mimeKind] ?? 4 : 0);
    const message: OutgoingMessage = {
      clientMsgId: opts.clientMsgId ?? randomId(),
      kind,
      to,
      text,
      fileType,
      ...(file ? { file } : {}),
      createdAt: Date.now(),
    };
    this.ownIds.add(message.clientMsgId);
    const done = this.outbox.add(message);
    this.persist(() => this.storage.put(message));
    this.pump();
    return done;
  }

  private persist(op: () => Promise<void>): void {
    this.storageChain = this.storageChain.then(op).catch((e) => this.reportError(e));
  }

  /** Sends what the outbox has due on the current connection. */
  private pump(): void {
    const link = this.current;
    if (!link?.open || this.stopped) return;
    const room = (this.options.maxInflightSends ?? 32) - this.outbox.inflight;
    const now = Date.now();
    for (const m of this.outbox.due(now, Math.max(0, room))) this.transmit(link, m);
    const at = this.outbox.nextRetryAt(now);
    if (at !== undefined) {
      clearTimeout(this.pumpTimer);
      this.pumpTimer = setTimeout(() => this.pump(), at - now);
    }
  }

  private transmit(link: Link, m: OutgoingMessage): void {
    const params: Params = { toMessageId: m.to, message: m.text, fileType: m.fileType, clientMsgId: m.clientMsgId };
    if (m.file) params.file = m.file;
    link.request(m.kind === "group" ? T.SEND_GROUP : T.SEND, params, this.options.requestTimeoutMs ?? 15_000).then(
      (p) => this.onStored({ messageId: p.messageId, seq: Number(p.seq), conversationId: p.conversationId, clientMsgId: m.clientMsgId }),
      (e: ChatError) => {
        if (e instanceof ChatError && !e.retryable) {
          const msg = this.outbox.failed(m.clientMsgId, e);
          if (msg) {
            this.persist(() => this.storage.delete(m.clientMsgId));
            this.events.emit("failed", { message: msg, error: e }, (x) => this.reportError(x));
          }
        } else {
          const wait = e?.status === 429 ? 1000 : e?.status >= 500 ? 500 : 0;
          this.outbox.retry(m.clientMsgId, Date.now() + wait);
        }
        this.pump();
      },
    );
  }

  private onStored(r: SendResult): void {
    const result: SendResult = { messageId: r.messageId, seq: Number(r.seq), conversationId: r.conversationId, clientMsgId: r.clientMsgId };
    const message = this.outbox.stored(result);
    this.inbox.ownSend(result.conversationId, result.seq);
    if (message) {
      this.persist(() => this.storage.delete(result.clientMsgId));
      this.events.emit("sent", { ...result, message }, (e) => this.reportError(e));
    }
    this.pump();
  }

  // ---------- receiving ----------

  private onEnvelope(env: Envelope): void {
    const m = env.msg ?? {};
    const isMessage = m.type === T.DELIVER || m.type === T.DELIVER_GROUP;
    if (!isMessage && !this.notices.add(env.messageId)) return; // a notice seen twice
    if (Number(env.trigger) === 2) {
      this.events.emit("push", { msg: env.msg, envelope: env }, (e) => this.reportError(e));
      return;
    }
    const p = m.params ?? {};
    const emit = <K extends keyof ChatEvents>(k: K, v: ChatEvents[K]) => this.events.emit(k, v, (e) => this.reportError(e));
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

  private deliver(m: ChatMessage): Promise<unknown>[] {
    if (m.system && m.groupId) {
      this.events.emit("group", { ...m.system, groupId: m.groupId, conversationId: m.conversationId, seq: m.seq }, (e) =>
        this.reportError(e),
      );
    }
    return this.events.emit("message", m, (e) => this.reportError(e));
  }

  private sendAck(messageId: string): void {
    if (!this.current?.send({ type: T.ACK, params: { msgid: messageId }, requestId: "ack" })) this.pendingAcks.add(messageId);
  }
}

/**
 * The token transport used when the options name none: the subprotocol, which the gateway
 * selects since it accepts `bearer.<JWT>` offers (tokens stay out of URLs and access logs).
 */
export const DEFAULT_TRANSPORT: "subprotocol" | "query" = "subprotocol";
