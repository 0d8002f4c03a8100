import { JetStreamApiError } from '@nats-io/jetstream';
import { ClosedConnectionError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import { ChangeoverError } from '@changeover/contracts';

/** JetStream's "temporarily unavailable" and "cluster not available / no leader" API answers. */
const FAILOVER_API_CODES = new Set([10008, 10074]);

/**
 * True for the errors a JetStream call gets while a clustered stream elects a new leader or the
 * connection moves to another server: worth trying again within a short deadline.
 */
export function isFailoverError(e: unknown): boolean {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : undefined;
  for (const err of [e, cause]) {
    if (err instanceof TimeoutError || err instanceof NoRespondersError) return true;
    if (err instanceof RequestError && err.isNoResponders()) return true;
    if (err instanceof JetStreamApiError && (FAILOVER_API_CODES.has(err.code) || err.status === 503)) return true;
  }
  return false;
}

/**
 * Runs a JetStream operation, again after a short pause while it fails with a failover error, up
 * to `deadlineMs`; then (or on a closed connection) it fails with UNAVAILABLE naming `what`, so a
 * caller answers 503 instead of an unexplained 500. Other errors pass through at once.
 */
export async function retryDuringFailover<T>(what: string, op: () => Promise<T>, { deadlineMs = 15_000, pauseMs = 200 } = {}): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (e instanceof ClosedConnectionError) throw new ChangeoverError('UNAVAILABLE', `${what}: the NATS connection is closed`);
      if (!isFailoverError(e)) throw e;
      if (Date.now() + pauseMs > deadline) {
        throw new ChangeoverError('UNAVAILABLE', `${what}: JetStream did not answer within ${deadlineMs} ms (${attempt} attempts): ${e instanceof Error ? e.message : String(e)}`, { attempts: attempt });
      }
      // Backs off a little each time: an election takes a few seconds, a reconnect less.
      await new Promise((r) => setTimeout(r, Math.min(pauseMs * attempt, 1000)));
    }
  }
}
