import { ChangeoverError } from '@changeover/contracts';
import type pg from 'pg';
import type { AppendResult } from '../types.js';
import type { AppendRequest } from './append-plan.js';
import { commitBatch, existingEvents, readVersions, type ExistingRow, type Outcome } from './append.sql.js';
import { versionConflict } from './expected-version.js';
import { asAppendError, isConnectionError, isPositionRace } from './append-errors.js';
import type { Pending } from './group-commit.js';
import type { StreamVersionCache } from './stream-versions.js';

type AppendPending = Pending<AppendRequest, AppendResult>;

/** Runs one batch transaction on its own pooled client, discarding the client if the connection broke. */
async function inTransaction(pool: pg.Pool, requests: AppendRequest[], cache: StreamVersionCache | undefined): Promise<Outcome[]> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    return await commitBatch(client, requests, cache);
  } catch (e) {
    if (isConnectionError(e)) broken = e instanceof Error ? e : new Error(String(e));
    throw e;
  } finally {
    client.release(broken);
  }
}

/**
 * A retried append may already be in (its commit happened, the answer got lost): the same ids
 * in the same stream at consecutive positions mean it did; ids used by other events are a conflict.
 */
function matchExisting(req: AppendRequest, existing: ReadonlyMap<string, ExistingRow>): Outcome | undefined {
  const found = req.events.map((e) => existing.get(e.id));
  const taken = found.filter((r) => r !== undefined).map((r) => r.event_id);
  if (taken.length === 0) return undefined;
  const first = found[0];
  const same = first !== undefined && found.every((r, i) => r !== undefined && r.stream_id === req.streamId && r.stream_position === first.stream_position + i);
  if (same) {
    return { ok: true, result: { nextExpectedVersion: first.stream_position + found.length - 1, globalPositions: found.map((r) => BigInt(r!.global_position)) } };
  }
  return { ok: false, error: new ChangeoverError('CONFLICT', `event id(s) ${taken.slice(0, 5).join(', ')} already used by other appends`, { streamId: req.streamId, eventIds: taken }) };
}

/**
 * Conflicts are rare, so only then: is the append a retry of one already in (then it succeeded),
 * and what is the stream's real version (a cached one may be behind) for the error's details.
 */
async function explainConflicts(pool: pg.Pool, requests: AppendRequest[], outcomes: Outcome[]): Promise<Outcome[]> {
  const conflicted = outcomes.flatMap((o, i) => (!o.ok && o.error.code === 'VERSION_CONFLICT' ? [i] : []));
  if (conflicted.length === 0) return outcomes;
  const [existing, actual] = await Promise.all([
    existingEvents(pool, conflicted.flatMap((i) => requests[i]!.events.map((e) => e.id))),
    readVersions(pool, [...new Set(conflicted.map((i) => requests[i]!.streamId))]),
  ]).catch(() => [new Map<string, ExistingRow>(), new Map<string, number>()] as const);
  const result = [...outcomes];
  for (const i of conflicted) {
    const req = requests[i]!;
    const version = actual.get(req.streamId);
    result[i] = matchExisting(req, existing) ?? (version === undefined ? outcomes[i]! : { ok: false, error: versionConflict(req.streamId, req.expected, version) });
  }
  return result;
}

function settle(p: AppendPending, outcome: Outcome): void {
  if (outcome.ok) p.resolve(outcome.result);
  else p.reject(outcome.error);
}

/**
 * A dropped connection (a Postgres restart, a failover to a promoted standby) is retried this often,
 * waiting a little longer each time, before the append fails UNAVAILABLE: each try first looks for
 * the append's event ids, so a commit whose answer was lost is not written twice.
 */
const RECONNECT_TRIES = 8;
const reconnectDelayMs = (attempt: number) => Math.min(250 * attempt, 1000);

/** Retries one append of a failed batch on its own, so only the guilty append fails. */
async function appendAlone(pool: pg.Pool, p: AppendPending, cache: StreamVersionCache): Promise<void> {
  for (let attempt = 1, races = 0; ; attempt++) {
    try {
      const known = matchExisting(p.request, await existingEvents(pool, p.request.events.map((e) => e.id)));
      if (known) return settle(p, known);
      const [outcome] = await inTransaction(pool, [p.request], undefined);
      rememberVersions(cache, [p.request], [outcome!]);
      return settle(p, outcome!.ok ? outcome! : (await explainConflicts(pool, [p.request], [outcome!]))[0]!);
    } catch (e) {
      // A lost race with another writer resolves on the next read of the version.
      if (isPositionRace(e) && ++races < 3) continue;
      if (!isConnectionError(e) || attempt >= RECONNECT_TRIES) return p.reject(asAppendError(e, p.request.streamId));
      await new Promise((r) => setTimeout(r, reconnectDelayMs(attempt)));
    }
  }
}

function rememberVersions(cache: StreamVersionCache, requests: AppendRequest[], outcomes: Outcome[]): void {
  outcomes.forEach((o, i) => {
    if (o.ok) cache.set(requests[i]!.streamId, o.result.nextExpectedVersion);
  });
}

/**
 * Flushes one group-commit batch in one transaction. If another writer raced it (or the cache
 * was stale) it runs once more with versions read from the table; if it still fails (a duplicate
 * id, a dropped connection), each append is retried alone and gets its own answer.
 */
export async function flushAppendBatch(pool: pg.Pool, batch: AppendPending[], cache: StreamVersionCache): Promise<void> {
  const requests = batch.map((p) => p.request);
  let outcomes: Outcome[] | undefined;
  for (const trustCache of [true, false]) {
    try {
      outcomes = await inTransaction(pool, requests, trustCache ? cache : undefined);
      break;
    } catch (e) {
      cache.forget(requests.map((r) => r.streamId));
      if (!isPositionRace(e)) break;
    }
  }
  if (!outcomes) {
    for (const p of batch) await appendAlone(pool, p, cache);
    return;
  }
  rememberVersions(cache, requests, outcomes);
  (await explainConflicts(pool, requests, outcomes)).forEach((o, i) => settle(batch[i]!, o));
}
