/** What the app receives: messages and notices, converted from the wire's envelopes. */
import type { Envelope, FileInfo, GroupEvent } from "./protocol.js";

/** A stored 1:1 or group message, handed to `on("message")` once, in seq order per conversation. */
export interface ChatMessage {
  /** Cluster-wide id (32 hex chars). */
  messageId: string;
  conversationId: string;
  /** Position in the conversation: 1, 2, 3, … */
  seq: number;
  kind: "direct" | "group";
  /** Sender's user id. */
  from: string;
  /** Sender's display name, when the server sent one. */
  fromName?: string;
  /** Direct: the recipient's user id; group: the group id. */
  to: string;
  /** Group messages: the group id. */
  groupId?: string;
  /** The text ("" for group events and recalled messages). */
  text: string;
  /** 0 text, 1 image, 2 audio, 3 video, 4 document. */
  fileType: number;
  file?: FileInfo;
  clientMsgId?: string;
  /** When it was stored, ms since the epoch. */
  time: number;
  /** Taken back by its sender (RECALL): text and file are gone. */
  recalled: boolean;
  /** Group event (created, added, …) carried by this message. */
  system?: GroupEvent;
  /** Sent by this user (from another device, or before a restart). */
  own: boolean;
  /** The envelope as it arrived. */
  envelope: Envelope;
  /** Acknowledges the message (only needed with `ackMode: "manual"`; repeated calls are no-ops). */
  ack(): void;
}

/** Converts a 2/10 envelope; `ack` is bound by the caller. */
export function toMessage(env: Envelope, userId: string, ack: () => void): ChatMessage {
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
    groupId: group ? String(p.groupId ?? "") : undefined,
    text: String(p.message ?? ""),
    fileType: Number(p.fileType ?? 0) || 0,
    file: p.file,
    clientMsgId: p.clientMsgId ?? undefined,
    time: Number(env.activeTime) || 0,
    recalled: !!p.recalled,
    system: p.system ?? undefined,
    own: from === userId,
    envelope: env,
    ack,
  };
}

/** DELIVERED (17): a recipient acknowledged one of this user's 1:1 messages. */
export interface DeliveredEvent {
  messageId: string;
  conversationId: string;
  seq: number;
  by: string;
}

/** READ notice (19). */
export interface ReadEvent {
  conversationId: string;
  userId: string;
  readSeq: number;
}

/** TYPING notice (25). */
export interface TypingEvent {
  conversationId: string;
  userId: string;
  state: "start" | "stop";
}

/** PRESENCE notice (27) or an entry of SUBSCRIBE PRESENCE's reply. */
export interface PresenceEvent {
  userId: string;
  online: boolean;
  lastSeen: number | null;
}

/** RECALLED notice (33). */
export interface RecalledEvent {
  messageId: string;
  conversationId: string;
  seq: number;
}

/** A group event, emitted in order with the message that carries it. */
export interface GroupEventNotice extends GroupEvent {
  groupId: string;
  conversationId: string;
  seq: number;
}
