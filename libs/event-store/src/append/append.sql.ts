import type { ChangeoverError } from '@changeover/contracts';
import type pg from 'pg';
import type { AppendResult } from '../types.js';
import { planBatch, type AppendRequest, type EventRows } from './append-plan.js';
import { versionsToRead, type StreamVersionCache } from './stream-versions.js';

/** Channel every committed batch notifies, so subscriptions wake without polling. */
export const EVENTS_CHANNEL = 'changeover_events';

export const VERSIONS_SQL = `SELECT s.stream_id,
    COALESCE((SELECT e.stream_position FROM events e WHERE e.stream_id = s.stream_id ORDER BY e.stream_position DESC LIMIT 1), 0) AS version
  FROM unnest($1::text[]) AS s(stream_id)`;

/**
 * One INSERT for the whole batch from one JSON array of rows (data and metadata are already JSON
 * text, so nothing is serialised twice); ORDER BY ord keeps global positions in append order.
 */
/** Advisory lock key that orders global positions (any constant unique to the event store). */
export const GLOBAL_ORDER_LOCK = 0x6368616e6765; // 'change'

const INSERT_SQL = `INSERT INTO events (stream_id, stream_position, event_id, event_type, data, metadata)
  SELECT r->>0, (r->>1)::int, r->>2, r->>3, r->4, r->5
  FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS t(r, ord)
  ORDER BY t.ord
  RETURNING global_position`;

const EXISTING_SQL = 'SELECT event_id, stream_id, stream_position, global_position::text AS global_position FROM events WHERE event_id = ANY($1::text[])';

/** A pool, a pooled client or a plain client: whatever can run a query. */
export type Queryable = pg.Pool | pg.PoolClient | pg.Client;

export type Outcome = { ok: true; result: AppendResult } | { ok: false; error: ChangeoverError };

/** `[[stream, position, id, type, data, metadata], …]`; ids and types are validated to need no escaping. */
export function rowsJson(rows: EventRows): string {
  const parts: string[] = new Array(rows.ids.length);
  for (let i = 0; i < rows.ids.length; i++) {
    parts[i] = `[${JSON.stringify(rows.streamIds[i])},${rows.positions[i]},"${rows.ids[i]}","${rows.types[i]}",${rows.data[i]},${rows.metadata[i]}]`;
  }
  return `[${parts.join(',')}]`;
}

export async function readVersions(db: Queryable, streamIds: string[]): Promise<Map<string, number>> {
  if (streamIds.length === 0) return new Map();
  const { rows } = await db.query<{ stream_id: string; version: number }>(VERSIONS_SQL, [streamIds]);
  return new Map(rows.map((r) => [r.stream_id, r.version]));
}

/**
 * The body of every append, inside a transaction the caller opened: take the versions (cached or
 * read), decide each append, insert the accepted ones in one statement, notify (delivered at commit).
 * `cache` undefined = read every version.
 */
export async function insertPlanned(client: Queryable, requests: readonly AppendRequest[], cache: StreamVersionCache | undefined): Promise<Outcome[]> {
  const { assumed, read } = versionsToRead(requests, cache);
  for (const [id, v] of await readVersions(client, read)) assumed.set(id, v);
  const { plans, rows } = planBatch(requests, assumed);
  let positions: bigint[] = [];
  if (rows.ids.length > 0) {
    // Positions are handed out in commit order: a transaction takes them only after every earlier
    // writer has committed (the lock lasts until commit), so what a reader sees is always a prefix
    // of the log and a checkpoint can never pass an event that becomes visible later.
    await client.query('SELECT pg_advisory_xact_lock($1)', [GLOBAL_ORDER_LOCK]);
    const inserted = await client.query<[string]>({ text: INSERT_SQL, values: [rowsJson(rows)], rowMode: 'array' });
    positions = inserted.rows.map((r) => BigInt(r[0]));
    await client.query('SELECT pg_notify($1, $2)', [EVENTS_CHANNEL, positions[positions.length - 1]!.toString()]);
  }
  return plans.map((plan, i): Outcome => {
    if (!plan.ok) return plan;
    const count = requests[i]!.events.length;
    return { ok: true, result: { nextExpectedVersion: plan.lastPosition, globalPositions: positions.slice(plan.rowOffset, plan.rowOffset + count) } };
  });
}

/** One transaction for many appends (the group-commit path): BEGIN, insertPlanned, COMMIT. */
export async function commitBatch(client: pg.PoolClient, requests: readonly AppendRequest[], cache: StreamVersionCache | undefined): Promise<Outcome[]> {
  await client.query('BEGIN');
  try {
    const outcomes = await insertPlanned(client, requests, cache);
    await client.query('COMMIT');
    return outcomes;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  }
}

export interface ExistingRow {
  event_id: string;
  stream_id: string;
  stream_position: number;
  global_position: string;
}

export async function existingEvents(db: Queryable, ids: string[]): Promise<Map<string, ExistingRow>> {
  const { rows } = await db.query<ExistingRow>(EXISTING_SQL, [ids]);
  return new Map(rows.map((r) => [r.event_id, r]));
}
