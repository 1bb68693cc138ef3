/**
 * Reconnect policy: exponential backoff with full jitter (sans-IO: it only computes delays).
 *
 * Full jitter (a uniformly random delay between 0 and the exponential cap) spreads the reconnects
 * of many clients that lost the same server over the whole window, so the surviving pods see a
 * ramp instead of a synchronized storm.
 */

/** Tuning for {@link Backoff}. */
export interface BackoffOptions {
  /** Cap of the first attempt's delay, ms (default 500). */
  baseMs?: number;
  /** Largest cap the exponential growth reaches, ms (default 30 000). */
  maxMs?: number;
  /** Source of randomness in [0, 1) (default `Math.random`); tests pass a fixed one. */
  random?: () => number;
}

/** Delays for successive reconnect attempts; {@link Backoff.reset} after a connection opened. */
export class Backoff {
  private attempt = 0;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? 500;
    this.maxMs = options.maxMs ?? 30_000;
    this.random = options.random ?? Math.random;
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The cap for the next attempt: `min(maxMs, baseMs * 2^attempt)`. */
  cap(): number {
    // 2^30 already dwarfs any sane maxMs; stop growing the exponent to stay finite.
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
  }

  /** The delay before the next attempt: uniform in [0, cap). Advances the attempt count. */
  next(): number {
    const delay = Math.floor(this.random() * this.cap());
    this.attempt++;
    return delay;
  }

  /** Back to the first attempt (called when a connection got its WELCOME). */
  reset(): void {
    this.attempt = 0;
  }
}
