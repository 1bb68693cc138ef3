/** Frame shapes and type codes of the chatcluster wire protocol (docs/protocol.md). */

/** Frame type codes (DESIGN §3, §11). */
export const T = {
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
  ERROR: 500,
} as const;

/** JSON object params. */
export type Params = Record<string, any>;

/** A reply or server frame: `{type, status, params, requestId}`. */
export interface Frame {
  type: number;
  status?: number;
  params?: Params;
  requestId?: string | number;
}

/** The seeds' push envelope (messages, notices, HTTP pushes). */
export interface Envelope {
  activeTime: number;
  from: string;
  messageId: string;
  msg: any;
  msgType: number;
  requestId?: string;
  sessionId?: string;
  to?: string[];
  trigger: number;
  retry: boolean;
}

/** The first frame of every connection. */
export interface Welcome {
  sessionId: string;
  userId: string;
  deviceId: string;
  server: string;
  /** Seconds until the connection must have been renewed. */
  timelife: number;
  /** Heartbeat interval, seconds. */
  heartbeat: number;
  /** When the timelife ends, ms since the epoch. */
  expiresAt: number;
}

/** A file as a message carries it. */
export interface FileInfo {
  fileId: string;
  name: string;
  size: number;
  mime: string;
  /** Signed URL (relative to the server when it starts with `/`). */
  url: string;
}

/** A group event carried by a group message (v1.1). */
export interface GroupEvent {
  event: "created" | "added" | "removed" | "left" | "renamed" | "role" | "dissolved" | string;
  actor: string;
  members?: string[];
  name?: string;
  role?: string;
}

/** True for a push envelope (as opposed to a reply frame). */
export function isEnvelope(v: any): v is Envelope {
  return !!v && typeof v.messageId === "string" && v.msg !== undefined;
}

/** Error returned by the server (ERROR 500 frame) or raised by the client. */
export class ChatError extends Error {
  /** HTTP-like status: 400/401/403/404/409/413/429/500/503; 0 for client-side conditions. */
  readonly status: number;
  /** The server's machine-readable code (`forbidden`, `rate_limited`, …) or a client one. */
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ChatError";
    this.status = status;
    this.code = code;
  }

  /** Whether resending the same request later can succeed (429 and 5xx, lost connections). */
  get retryable(): boolean {
    return this.status === 429 || this.status >= 500 || this.code === "connection_lost" || this.code === "timeout";
  }
}

/** A `ChatError` for a request whose connection went away before the reply. */
export const connectionLost = () => new ChatError(0, "connection_lost", "connection lost before the reply");
/** A `ChatError` for a client that was closed (or kicked). */
export const clientClosed = (why = "client closed") => new ChatError(0, "closed", why);
