import { ChangeoverError } from '@changeover/contracts';
import type { AppendResult } from '../types.js';
import { asAppendError, isPositionRace, pgCode } from './append-errors.js';
import type { AppendRequest } from './append-plan.js';
import { insertPlanned, type Queryable } from './append.sql.js';

// A savepoint lets a lost race be retried (and a refused append be undone) without aborting the caller's transaction.
const SAVEPOINT = 'changeover_event_append';
const MAX_ATTEMPTS = 3;

/** What a caller's transaction client must offer: a pg Client or PoolClient. */
export function assertClient(value: unknown): Queryable {
  if (typeof value === 'object' && value !== null && 'query' in value && typeof value.query === 'function') return value as Queryable;
  throw new ChangeoverError('VALIDATION_FAILED', 'client: must be a pg Client or PoolClient inside an open transaction', { field: 'client' });
}

async function undo(client: Queryable): Promise<void> {
  await client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`).catch(() => undefined);
  await client.query(`RELEASE SAVEPOINT ${SAVEPOINT}`).catch(() => undefined);
}

/**
 * Appends inside the caller's open transaction with the group-commit path's SQL, all or nothing:
 * the events become visible when the caller commits and vanish if it rolls back. A version
 * mismatch is VERSION_CONFLICT (the caller's transaction stays usable); a concurrent writer that
 * took the same positions is retried with versions read again, then reported as VERSION_CONFLICT.
 */
export async function appendInOpenTransaction(client: Queryable, requests: readonly AppendRequest[]): Promise<AppendResult[]> {
  const label = requests.map((r) => r.streamId).slice(0, 3).join(', ');
  for (let attempt = 1; ; attempt++) {
    try {
      await client.query(`SAVEPOINT ${SAVEPOINT}`);
    } catch (e) {
      if (pgCode(e) === '25P01') throw new ChangeoverError('VALIDATION_FAILED', 'client: no transaction is open on it (BEGIN first)', { field: 'client' });
      if (pgCode(e) === '25P02') throw new ChangeoverError('VALIDATION_FAILED', 'client: its transaction has already failed and must be rolled back', { field: 'client' });
      throw asAppendError(e, label);
    }
    let outcomes;
    try {
      outcomes = await insertPlanned(client, requests, undefined);
    } catch (e) {
      await undo(client);
      if (isPositionRace(e)) {
        if (attempt < MAX_ATTEMPTS) continue;
        throw new ChangeoverError('VERSION_CONFLICT', `concurrent appends to ${label} kept taking the same positions`, { streamId: requests[0]?.streamId });
      }
      if (pgCode(e) === '23505') throw new ChangeoverError('CONFLICT', `event id(s) of the append to ${label} are already used`, { streamId: requests[0]?.streamId });
      throw asAppendError(e, label);
    }
    const refused = outcomes.find((o) => !o.ok);
    if (refused && !refused.ok) {
      await undo(client);
      throw refused.error;
    }
    try {
      await client.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    } catch (e) {
      throw asAppendError(e, label);
    }
    return outcomes.map((o) => (o.ok ? o.result : { nextExpectedVersion: 0, globalPositions: [] }));
  }
}
