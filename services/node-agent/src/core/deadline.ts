const isThenable = <T>(v: T | PromiseLike<T>): v is PromiseLike<T> => typeof (v as { then?: unknown } | null | undefined)?.then === 'function';

/**
 * Resolves with the answer, or with `fallback()` once `ms` have passed; never rejects. An answer
 * already at hand (a runtime that answers at once, as a simulated one does) is returned as it is:
 * no timer is armed for it.
 */
export function withDeadline<T>(answer: T | PromiseLike<T>, ms: number, fallback: () => T, onError?: (e: unknown) => T): T | Promise<T> {
  if (!isThenable(answer)) return answer;
  return new Promise<T>((resolve) => {
    const timer = setTimeout(() => resolve(fallback()), Math.max(0, ms));
    answer.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        resolve(onError ? onError(e) : fallback());
      },
    );
  });
}

/** Every answer, waiting only when some are still to come. */
export function allOf<T>(answers: (T | Promise<T>)[]): T[] | Promise<T[]> {
  return answers.some(isThenable) ? Promise.all(answers) : (answers as T[]);
}

/** The part of an orchestrator's timeout the node spends waiting, leaving room for the report to travel. */
export function localDeadline(timeoutMs: number): number {
  return Math.max(1, timeoutMs - Math.min(1000, Math.floor(timeoutMs / 5)));
}
