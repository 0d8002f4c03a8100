import { ChangeoverError } from '@changeover/contracts';

export interface RateLimit {
  /** Sustained rate allowed per key. */
  perSecond: number;
  /** How many may arrive at once above the rate. */
  burst: number;
  /** The key a message is counted under (default: one bucket for the whole subscription). */
  key?: (subject: string) => string;
  /** At most this many keys are tracked; the least recently seen is forgotten first (default 100 000). */
  maxKeys?: number;
}

/** Token buckets per key; time is an input so tests need no clock. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly maxKeys: number;

  constructor(private readonly limit: RateLimit) {
    if (!(limit.perSecond > 0) || !Number.isFinite(limit.perSecond)) throw new ChangeoverError('VALIDATION_FAILED', 'rate limit perSecond must be a positive number');
    if (!Number.isInteger(limit.burst) || limit.burst < 1) throw new ChangeoverError('VALIDATION_FAILED', 'rate limit burst must be a positive integer');
    this.maxKeys = limit.maxKeys ?? 100_000;
  }

  keyOf(subject: string): string {
    return this.limit.key ? this.limit.key(subject) : '';
  }

  /** Takes one token for `key`; false when its bucket is empty. */
  take(key: string, now = Date.now()): boolean {
    const b = this.buckets.get(key);
    const tokens = b ? Math.min(this.limit.burst, b.tokens + ((now - b.at) / 1000) * this.limit.perSecond) : this.limit.burst;
    // Re-inserted on every take: Map order is then least recently seen first.
    this.buckets.delete(key);
    if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    const ok = tokens >= 1;
    this.buckets.set(key, { tokens: ok ? tokens - 1 : tokens, at: now });
    return ok;
  }

  /** Throws RATE_LIMITED when `key` is over its rate. */
  check(key: string, what: string, now = Date.now()): void {
    if (!this.take(key, now)) throw new ChangeoverError('RATE_LIMITED', `${what}: more than ${this.limit.perSecond}/s (burst ${this.limit.burst}); try again later`, { perSecond: this.limit.perSecond, burst: this.limit.burst });
  }
}
