import { ChangeoverError } from '@changeover/contracts';
import type pg from 'pg';
import type { AppendResult } from '../types.js';
import { planBatch, type AppendRequest } from './append-plan.js';
import type { Pending } from './group-commit.js';

/** Channel every committed batch notifies, so subscriptions wake without polling. */
export const EVENTS_CHANNEL = 'changeover_events';

const VERSIONS_SQL = `SELECT s.stream_id,
    COALESCE((SELECT e.stream_position FROM events e WHERE e.stream_id = s.stream_id ORDER BY e.stream_position DESC LIMIT 1), 0) AS version
  FROM unnest($1::text[]) AS s(stream_id)`;

/** One INSERT for the whole batch; ORDER BY ord keeps global positions in append order. */
const INSERT_SQL = `INSERT INTO events (stream_id, stream_position, event_id, event_type, data, metadata)
  SELECT r.stream_id, r.stream_position, r.event_id, r.event_type, r.data::jsonb, r.metadata::jsonb
  FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[])
    WITH ORDINALITY AS r(stream_id, stream_position, event_id, event_type, data, metadata, ord)
  ORDER BY r.ord
  RETURNING global_position`;

const EXISTING_SQL = 'SELECT event_id, stream_id, stream_position, global_position::text AS global_position FROM events WHERE event_id = ANY($1::text[])';

type Outcome = { ok: true; result: AppendResult } | { ok: false; error: ChangeoverError };

/** One transaction for many appends: read versions, decide each, insert the accepted, notify, commit. */
async function commitBatch(client: pg.PoolClient, requests: readonly AppendRequest[]): Promise<Outcome[]> {
  await client.query('BEGIN');
  try {
    const streamIds = [...new Set(requests.map((r) => r.streamId))];
    const current = await client.query<{ stream_id: string; version: number }>(VERSIONS_SQL, [streamIds]);
    const versions = new Map(current.rows.map((r) => [r.stream_id, r.version]));
    const { plans, rows } = planBatch(requests, versions);
    let positions: bigint[] = [];
    if (rows.ids.length > 0) {
      const inserted = await client.query<[string]>({
        text: INSERT_SQL,
        values: [rows.streamIds, rows.positions, rows.ids, rows.types, rows.data, rows.metadata],
        rowMode: 'array',
      });
      positions = inserted.rows.map((r) => BigInt(r[0]));
      await client.query('SELECT pg_notify($1, $2)', [EVENTS_CHANNEL, positions[positions.length - 1]!.toString()]);
    }
    await client.query('COMMIT');
    return plans.map((plan, i): Outcome => {
      if (!plan.ok) return plan;
      const count = requests[i]!.events.length;
      return { ok: true, result: { nextExpectedVersion: plan.lastPosition, globalPositions: positions.slice(plan.rowOffset, plan.rowOffset + count) } };
    });
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

function pgCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

function pgConstraint(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'constraint' in e && typeof e.constraint === 'string' ? e.constraint : undefined;
}

/** A connection-level failure: the client must be discarded, not returned to the pool. */
function isConnectionError(e: unknown): boolean {
  const code = pgCode(e);
  if (code === undefined || !/^[0-9A-Z]{5}$/.test(code)) return true; // ECONNRESET, ETIMEDOUT, a closed client
  return code.startsWith('08') || code.startsWith('57P');
}

interface ExistingRow {
  event_id: string;
  stream_id: string;
  stream_position: number;
  global_position: string;
}

async function existingEvents(db: pg.Pool | pg.PoolClient, ids: string[]): Promise<Map<string, ExistingRow>> {
  const { rows } = await db.query<ExistingRow>(EXISTING_SQL, [ids]);
  return new Map(rows.map((r) => [r.event_id, r]));
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

async function alreadyAppended(client: pg.PoolClient, req: AppendRequest): Promise<Outcome | undefined> {
  return matchExisting(req, await existingEvents(client, req.events.map((e) => e.id)));
}

/** Version conflicts are rare: only then look whether the append is a retry of one already in. */
async function recognizeRetries(pool: pg.Pool, requests: AppendRequest[], outcomes: Outcome[]): Promise<Outcome[]> {
  const conflicted = outcomes.flatMap((o, i) => (!o.ok && o.error.code === 'VERSION_CONFLICT' ? [i] : []));
  if (conflicted.length === 0) return outcomes;
  const existing = await existingEvents(pool, conflicted.flatMap((i) => requests[i]!.events.map((e) => e.id))).catch(() => new Map<string, ExistingRow>());
  const result = [...outcomes];
  for (const i of conflicted) result[i] = matchExisting(requests[i]!, existing) ?? outcomes[i]!;
  return result;
}

function settle<T>(p: Pending<T, AppendResult>, outcome: Outcome): void {
  if (outcome.ok) p.resolve(outcome.result);
  else p.reject(outcome.error);
}

/** Retries one append of a failed batch on its own, so only the guilty append fails. */
async function appendAlone(pool: pg.Pool, p: Pending<AppendRequest, AppendResult>): Promise<void> {
  // A lost race on (stream_id, stream_position) with another process resolves on the next read.
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    let broken: unknown;
    try {
      const known = await alreadyAppended(client, p.request);
      if (known) return settle(p, known);
      const [outcome] = await commitBatch(client, [p.request]);
      if (!outcome!.ok) return settle(p, (await alreadyAppended(client, p.request)) ?? outcome!);
      return settle(p, outcome!);
    } catch (e) {
      if (isConnectionError(e)) broken = e;
      const racedOnPosition = pgCode(e) === '23505' && pgConstraint(e) === 'events_stream_position_key';
      if (!racedOnPosition || attempt >= 3) return p.reject(asAppendError(e, p.request.streamId));
    } finally {
      client.release(broken instanceof Error ? broken : undefined);
    }
  }
}

function asAppendError(e: unknown, streamId: string): ChangeoverError {
  if (e instanceof ChangeoverError) return e;
  const message = e instanceof Error ? e.message : String(e);
  if (isConnectionError(e)) return new ChangeoverError('UNAVAILABLE', `append to ${streamId} failed: ${message}`, { streamId });
  return new ChangeoverError('INTERNAL', `append to ${streamId} failed: ${message}`, { streamId, pgCode: pgCode(e) });
}

/**
 * Flushes one group-commit batch. If the shared transaction fails (a race with another
 * process, a duplicate id, a dropped connection), each append is retried alone and gets its own answer.
 */
export async function flushAppendBatch(pool: pg.Pool, batch: Pending<AppendRequest, AppendResult>[]): Promise<void> {
  let outcomes: Outcome[] | undefined;
  const client = await pool.connect().catch((e: unknown) => {
    for (const p of batch) p.reject(asAppendError(e, p.request.streamId));
    return undefined;
  });
  if (!client) return;
  let broken: unknown;
  try {
    outcomes = await commitBatch(client, batch.map((p) => p.request));
  } catch (e) {
    if (isConnectionError(e)) broken = e;
  } finally {
    client.release(broken instanceof Error ? broken : undefined);
  }
  if (outcomes) {
    const requests = batch.map((p) => p.request);
    (await recognizeRetries(pool, requests, outcomes)).forEach((o, i) => settle(batch[i]!, o));
    return;
  }
  for (const p of batch) await appendAlone(pool, p);
}
