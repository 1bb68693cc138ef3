/**
 * An {@link OutboxStorage} on IndexedDB, for browsers: unsent messages survive a page reload.
 * One object store per database name; give each user (and device) its own name.
 */
import type { OutboxStorage, OutgoingMessage } from "./outbox.js";

const STORE = "outbox";

function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Outbox storage in the IndexedDB database `name` (default `chatcluster-outbox`). */
export class IndexedDbStorage implements OutboxStorage {
  private db?: Promise<IDBDatabase>;

  constructor(
    private readonly name = "chatcluster-outbox",
    private readonly factory: IDBFactory = globalThis.indexedDB,
  ) {
    if (!factory) throw new Error("IndexedDB is not available here; pass another OutboxStorage");
  }

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const req = this.factory.open(this.name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "clientMsgId" });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return this.db;
  }

  private async store(mode: IDBTransactionMode): Promise<IDBObjectStore> {
    return (await this.open()).transaction(STORE, mode).objectStore(STORE);
  }

  async load(): Promise<OutgoingMessage[]> {
    const all = (await promised((await this.store("readonly")).getAll())) as OutgoingMessage[];
    return all.sort((a, b) => a.createdAt - b.createdAt);
  }

  async put(message: OutgoingMessage): Promise<void> {
    await promised((await this.store("readwrite")).put(message));
  }

  async delete(clientMsgId: string): Promise<void> {
    await promised((await this.store("readwrite")).delete(clientMsgId));
  }
}
