/** A small typed event emitter (no dependency on Node's `events` or the DOM's `EventTarget`). */

/** Map of event name → listener argument. */
export type EventMap = Record<string, unknown>;

/** Subscribes listeners to named events; `on` returns the function that unsubscribes. */
export class Emitter<E extends EventMap> {
  private readonly listeners = new Map<keyof E, Set<(arg: any) => unknown>>();

  /** Calls `fn` for every `event`; returns an unsubscribe function. */
  on<K extends keyof E>(event: K, fn: (arg: E[K]) => unknown): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  /** Removes `fn`. */
  off<K extends keyof E>(event: K, fn: (arg: E[K]) => unknown): void {
    this.listeners.get(event)?.delete(fn);
  }

  /** Whether anyone listens to `event`. */
  has(event: keyof E): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0;
  }

  /**
   * Calls every listener with `arg`; returns the promises listeners returned. A listener that
   * throws is reported through `onError` and does not stop the others.
   */
  emit<K extends keyof E>(event: K, arg: E[K], onError: (e: unknown) => void): Promise<unknown>[] {
    const results: Promise<unknown>[] = [];
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      try {
        const r = fn(arg);
        if (r && typeof (r as Promise<unknown>).then === "function") results.push(r as Promise<unknown>);
      } catch (e) {
        onError(e);
      }
    }
    return results;
  }
}
