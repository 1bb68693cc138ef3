/** A bounded set of recently seen ids (insertion-ordered; the oldest fall out first). */
export class SeenSet {
  private readonly ids = new Set<string>();

  constructor(private readonly capacity = 10_000) {}

  /** True when `id` was added before and has not fallen out yet. */
  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Adds `id`; returns false when it was already there (a duplicate). */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.capacity) {
      const oldest = this.ids.values().next().value as string;
      this.ids.delete(oldest);
    }
    return true;
  }

  /** How many ids are remembered. */
  get size(): number {
    return this.ids.size;
  }
}
