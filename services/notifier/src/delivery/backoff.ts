/** Exponential backoff with full jitter: a random delay in [base·2^(n-1)/2, base·2^(n-1)], capped. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 40)));
  // Half fixed, half random: retries spread out but never come back immediately.
  return Math.max(1, Math.round(exp / 2 + random() * (exp / 2)));
}

export type AttemptVerdict = { kind: 'delivered' } | { kind: 'retry'; delayMs: number } | { kind: 'dead' };

/** What to do after an attempt: the retry policy, pure. */
export function afterAttempt(
  result: { ok: boolean; permanent: boolean },
  attemptsInCycle: number,
  policy: { maxAttempts: number; baseMs: number; maxMs: number },
  random: () => number = Math.random,
): AttemptVerdict {
  if (result.ok) return { kind: 'delivered' };
  if (result.permanent || attemptsInCycle >= policy.maxAttempts) return { kind: 'dead' };
  return { kind: 'retry', delayMs: backoffMs(attemptsInCycle, policy.baseMs, policy.maxMs, random) };
}
