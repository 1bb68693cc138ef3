/**
 * chatcluster-client: the TypeScript SDK for chatcluster gateways.
 *
 * ```ts
 * const c = new ChatClient({ url: "wss://chat.example.com/ws", getToken, deviceId: "phone-1" });
 * c.on("message", (m) => show(m));          // once per messageId, in seq order, acked after
 * await c.connect();
 * const { seq } = await c.send("bob", "hi"); // resolves when stored; survives reconnects
 * ```
 */
export { ChatClient, DEFAULT_TRANSPORT } from "./client.js";
export type { ChatClientOptions, ChatEvents, ConnectionState, SendOptions, SentEvent } from "./options.js";
export { Backoff } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { IndexedDbStorage } from "./indexeddb.js";
export { MemoryStorage, Outbox } from "./outbox.js";
export type { OutboxStorage, OutgoingMessage, SendResult } from "./outbox.js";
export { Sequencer } from "./sequencer.js";
export { ChatError, T as FrameType } from "./protocol.js";
export type { Envelope, FileInfo, GroupEvent, Welcome } from "./protocol.js";
export type {
  ChatMessage,
  DeliveredEvent,
  GroupEventNotice,
  PresenceEvent,
  ReadEvent,
  RecalledEvent,
  TypingEvent,
} from "./message.js";
export type { ConversationSummary, Group, HistoryPage, UploadedFile } from "./requests.js";
export type { WebSocketConstructor, WebSocketLike } from "./link.js";
