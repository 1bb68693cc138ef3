/** The options, events and result types of {@link ChatClient} (see docs/client.md). */
import type { BackoffOptions } from "./backoff.js";
import type { WebSocketConstructor } from "./link.js";
import type {
  ChatMessage,
  DeliveredEvent,
  GroupEventNotice,
  PresenceEvent,
  ReadEvent,
  RecalledEvent,
  TypingEvent,
} from "./message.js";
import type { OutboxStorage, OutgoingMessage, SendResult } from "./outbox.js";
import type { ChatError, Envelope, Welcome } from "./protocol.js";

/** The connection state, as `on("state")` reports it. */
export type ConnectionState = "connecting" | "open" | "draining" | "reconnecting" | "closed";

/** Options of `ChatClient`. */
export interface ChatClientOptions {
  /** WebSocket endpoint, e.g. `wss://chat.example.com/ws`. */
  url: string;
  /** A fixed token (JWT). Give `getToken` instead when tokens expire. */
  token?: string;
  /** Returns a fresh token; called for every connection and every RENEW. */
  getToken?: () => string | Promise<string>;
  /** This device's id (1–64 of `[A-Za-z0-9._-]`); keep it stable across restarts. */
  deviceId?: string;
  /** WebSocket implementation (default `globalThis.WebSocket`; in Node 20 pass `ws`'s). */
  WebSocket?: WebSocketConstructor;
  /** Where unsent messages are kept (default: memory). Browsers: `new IndexedDbStorage(...)`. */
  storage?: OutboxStorage;
  /**
   * How the token travels: `subprotocol` offers `chatcluster.v1, bearer.<JWT>` (keeps tokens out
   * of URLs and access logs), `query` puts it in `?token=`.
   */
  tokenTransport?: "subprotocol" | "query";
  /** `auto` (default): ACK after the listeners returned (or their promises settled); `manual`: `m.ack()`. */
  ackMode?: "auto" | "manual";
  /** Reconnect backoff (full jitter). */
  backoff?: BackoffOptions;
  /** HTTP base for uploads (default: derived from `url`). */
  httpUrl?: string;
  /** `fetch` for uploads (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Reply timeout for requests, ms (default 15 000); a SEND without reply is resent. */
  requestTimeoutMs?: number;
  /** No WELCOME within this long: give the attempt up, ms (default 10 000). */
  connectTimeoutMs?: number;
  /** How long a seq gap may stay open before SYNC reads it, ms (default 500). */
  gapWaitMs?: number;
  /** Sends in flight at once (default 32, the server's per-connection store queue). */
  maxInflightSends?: number;
}

/** Options of a send. */
export interface SendOptions {
  /** Idempotency key (default: a fresh random id). Reuse it to make a retry safe across restarts. */
  clientMsgId?: string;
  /** 0 text (default), 1 image, 2 audio, 3 video, 4 document. */
  fileType?: number;
  /** An uploaded file ({@link ChatClient.uploadFile}'s result). */
  file?: { fileId: string; mime?: string };
}

/** A send that finished, reported by `on("sent")` (also for sends restored from storage). */
export interface SentEvent extends SendResult {
  message: OutgoingMessage;
}

/** Events of `ChatClient`. */
export interface ChatEvents {
  [event: string]: unknown;
  message: ChatMessage;
  delivered: DeliveredEvent;
  read: ReadEvent;
  typing: TypingEvent;
  presence: PresenceEvent;
  recalled: RecalledEvent;
  group: GroupEventNotice;
  kicked: { reason: string };
  state: ConnectionState;
  /** A connection got its WELCOME. */
  connected: Welcome;
  /** An HTTP push (`POST /message/send`): not stored, not acked. */
  push: { msg: unknown; envelope: Envelope };
  sent: SentEvent;
  /** A send the server refused for good (no caller may be waiting: restored from storage). */
  failed: { message: OutgoingMessage; error: ChatError };
  error: unknown;
}

