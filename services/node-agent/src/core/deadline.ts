/** Resolves with the promise's value, or with `fallback()` once `ms` have passed; never rejects. */
export function withDeadline<T>(promise: Promise<T>, ms: number, fallback: () => T, onError?: (e: unknown) => T): Promise<T> {
  return new Promise<T>((resolve) => {
    const timer = setTimeout(() => resolve(fallback()), Math.max(0, ms));
    promise.then(
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

/** The part of an orchestrator's timeout the node spends waiting, leaving room for the report to travel. */
export function localDeadline(timeoutMs: number): number {
  return Math.max(1, timeoutMs - Math.min(1000, Math.floor(timeoutMs / 5)));
}
