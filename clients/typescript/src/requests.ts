/**
 * The request/reply operations of the protocol as typed methods: conversations and history,
 * read marks, typing, presence, recall, blocking and group administration (DESIGN §3, §11).
 */
import { toMessage, type ChatMessage, type PresenceEvent } from "./message.js";
import { T, type Envelope, type Params } from "./protocol.js";

/** A file stored by `POST /api/files`. */
export interface UploadedFile {
  fileId: string;
  name: string;
  size: number;
  mime: string;
}

/** One entry of {@link GroupApi.conversations}. */
export interface ConversationSummary {
  conversationId: string;
  kind: "direct" | "group";
  lastSeq: number;
  ackedSeq: number;
  readSeq: number;
  unread: number;
  peer?: string;
  peerAckedSeq?: number;
  peerReadSeq?: number;
  groupId?: string;
  name?: string;
}

/** A group as the group replies give it. */
export interface Group {
  groupId: string;
  name: string;
  members: string[];
  roles?: Record<string, string>;
}

/** A page of history read with SYNC. */
export interface HistoryPage {
  conversationId: string;
  messages: ChatMessage[];
  hasMore: boolean;
}

/** Typed protocol operations over {@link GroupApi.request}. */
export abstract class GroupApi {
  /** Sends a request on the current connection; resolves with the reply's params. */
  abstract request(type: number, params?: Params): Promise<Params>;
  /** Sends a frame without a reply; false when not connected. */
  abstract fire(type: number, params: Params): boolean;
  /** The signed-in user. */
  abstract userId: string;

  /** Lists this user's conversations (SYNC without a conversation). */
  async conversations(): Promise<{ conversations: ConversationSummary[]; blocked: string[] }> {
    const p = await this.request(T.SYNC);
    return { conversations: p.conversations ?? [], blocked: p.blocked ?? [] };
  }

  /**
   * Reads history after `afterSeq` (≤ 200 a page). These messages are not emitted and not acked
   * (call `m.ack()` to advance the user's `ackedSeq`).
   */
  async sync(conversationId: string, afterSeq = 0, limit = 200): Promise<HistoryPage> {
    const p = await this.request(T.SYNC, { conversationId, afterSeq, limit });
    const messages = ((p.messages ?? []) as Envelope[]).map((env) =>
      toMessage(env, this.userId, () => void this.fire(T.ACK, { msgid: env.messageId })),
    );
    return { conversationId, messages, hasMore: !!p.hasMore };
  }

  /** Marks `conversationId` read up to `seq`; resolves with the server's `readSeq`. */
  async read(conversationId: string, seq: number): Promise<number> {
    const p = await this.request(T.READ, { conversationId, seq });
    return Number(p.readSeq);
  }

  /** Tells the other participants this user is typing (`true`) or stopped; no reply. */
  typing(conversationId: string, active: boolean): boolean {
    return this.fire(T.TYPING, { conversationId, state: active ? "start" : "stop" });
  }

  /** Watches these users' presence (replaces the set); resolves with their current state. */
  async subscribePresence(users: string[]): Promise<PresenceEvent[]> {
    const p = await this.request(T.SUBSCRIBE_PRESENCE, { users });
    return (p.presence ?? []).map((u: any) => ({ userId: u.userId, online: !!u.online, lastSeen: u.lastSeen ?? null }));
  }

  /** Takes one of this user's messages back. */
  async recall(messageId: string): Promise<{ messageId: string; conversationId: string; seq: number }> {
    const p = await this.request(T.RECALL, { messageId });
    return { messageId: p.messageId, conversationId: p.conversationId, seq: Number(p.seq) };
  }

  /** Blocks `userId` (their 1:1 sends to this user get 403). */
  async block(userId: string): Promise<void> {
    await this.request(T.BLOCK, { userId });
  }

  /** Unblocks `userId`. */
  async unblock(userId: string): Promise<void> {
    await this.request(T.UNBLOCK, { userId });
  }

  /** Creates a group; this user is its owner. */
  async createGroup(name: string, members: string[]): Promise<Group> {
    return (await this.request(T.CREATE_GROUP, { name, members })) as Group;
  }

  /** Adds members (callers must be members). */
  async addMembers(groupId: string, members: string[]): Promise<Group> {
    return (await this.request(T.ADD_MEMBERS, { groupId, members })) as Group;
  }

  /** Removes members (owner or admin). */
  async removeMembers(groupId: string, members: string[]): Promise<Group> {
    return (await this.request(T.REMOVE_MEMBERS, { groupId, members })) as Group;
  }

  /** Leaves a group. */
  async leaveGroup(groupId: string): Promise<void> {
    await this.request(T.LEAVE_GROUP, { groupId });
  }

  /** Renames a group (owner or admin). */
  async renameGroup(groupId: string, name: string): Promise<Group> {
    return (await this.request(T.UPDATE_GROUP, { groupId, name })) as Group;
  }

  /** Sets a member's role; `owner` hands ownership over (owner only). */
  async setRole(groupId: string, userId: string, role: "admin" | "member" | "owner"): Promise<Group> {
    return (await this.request(T.SET_ROLE, { groupId, userId, role })) as Group;
  }

  /** Dissolves a group (owner only). */
  async dissolveGroup(groupId: string): Promise<void> {
    await this.request(T.DISSOLVE_GROUP, { groupId });
  }
}
