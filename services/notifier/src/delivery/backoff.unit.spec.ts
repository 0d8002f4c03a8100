import { describe, expect, it } from '@jest/globals';
import { afterAttempt, backoffMs } from './backoff.js';

const policy = { maxAttempts: 4, baseMs: 100, maxMs: 1000 };

describe('backoff', () => {
  it('doubles per attempt between half and all of the exponential delay', () => {
    expect([1, 2, 3].map((n) => backoffMs(n, 100, 10_000, () => 0))).toEqual([50, 100, 200]);
    expect([1, 2, 3].map((n) => backoffMs(n, 100, 10_000, () => 1))).toEqual([100, 200, 400]);
  });

  it('never exceeds the cap, however many attempts', () => {
    expect(backoffMs(60, 100, 1000, () => 1)).toBe(1000);
    expect(backoffMs(60, 100, 1000, () => 0)).toBe(500);
  });

  it('jitters: two workers retrying the same attempt do not come back together', () => {
    const values = new Set(Array.from({ length: 50 }, () => backoffMs(5, 100, 100_000)));
    expect(values.size).toBeGreaterThan(10);
  });

  it('delivers, retries, or dead-letters after the last attempt or a permanent failure', () => {
    expect(afterAttempt({ ok: true, permanent: false }, 1, policy)).toEqual({ kind: 'delivered' });
    expect(afterAttempt({ ok: false, permanent: false }, 3, policy, () => 0)).toEqual({ kind: 'retry', delayMs: 200 });
    expect(afterAttempt({ ok: false, permanent: false }, 4, policy)).toEqual({ kind: 'dead' });
    expect(afterAttempt({ ok: false, permanent: true }, 1, policy)).toEqual({ kind: 'dead' });
  });
});
