import { ChangeoverError } from '@changeover/contracts';

// How Postgres failures of an append become typed errors (shared by group commit and in-transaction appends).

export function pgCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

/** Another writer took a position this batch meant to use (or the version cache was stale). */
export function isPositionRace(e: unknown): boolean {
  return pgCode(e) === '23505' && typeof e === 'object' && e !== null && 'constraint' in e && e.constraint === 'events_stream_position_key';
}

/** A connection-level failure: the client must be discarded, and a commit's outcome is unknown. */
export function isConnectionError(e: unknown): boolean {
  const code = pgCode(e);
  if (code === undefined || !/^[0-9A-Z]{5}$/.test(code)) return true; // ECONNRESET, ETIMEDOUT, a closed client
  // 25006: a write reached a standby (the primary failed over): this connection is to the wrong server.
  return code.startsWith('08') || code.startsWith('57P') || code === '25006';
}

export function asAppendError(e: unknown, streamId: string): ChangeoverError {
  if (e instanceof ChangeoverError) return e;
  const message = e instanceof Error ? e.message : String(e);
  if (isConnectionError(e)) return new ChangeoverError('UNAVAILABLE', `append to ${streamId} failed: ${message}`, { streamId });
  return new ChangeoverError('INTERNAL', `append to ${streamId} failed: ${message}`, { streamId, pgCode: pgCode(e) });
}

