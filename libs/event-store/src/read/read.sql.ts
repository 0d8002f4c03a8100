import type pg from 'pg';
import type { EventMetadata, StoredEvent } from '../types.js';

const COLUMNS = 'global_position, stream_id, stream_position, event_id, event_type, data, metadata, created_at';

export const READ_STREAM_SQL = `SELECT ${COLUMNS} FROM events WHERE stream_id = $1 AND stream_position > $2 ORDER BY stream_position LIMIT $3`;

/**
 * Appends take global positions in commit order (GLOBAL_ORDER_LOCK), so committed events form a
 * prefix of the log. A visible row whose transaction is not yet older than every running one is
 * held back, and so is everything after it: a reader's checkpoint never passes a position that
 * is still to be returned.
 */
export const READ_ALL_SQL = `WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
  held AS (SELECT min(global_position) AS p FROM events, horizon WHERE global_position > $1 AND transaction_id >= horizon.xmin)
  SELECT ${COLUMNS} FROM events, horizon, held
  WHERE global_position > $1 AND transaction_id < horizon.xmin AND (held.p IS NULL OR global_position < held.p)
  ORDER BY global_position LIMIT $2`;

export const HEAD_POSITION_SQL = 'SELECT COALESCE(max(global_position), 0)::text AS head FROM events';

interface EventRow {
  global_position: string;
  stream_id: string;
  stream_position: number;
  event_id: string;
  event_type: string;
  data: unknown;
  metadata: EventMetadata;
  created_at: Date;
}

export function toStoredEvent(row: EventRow): StoredEvent {
  return {
    id: row.event_id,
    streamId: row.stream_id,
    streamPosition: row.stream_position,
    globalPosition: BigInt(row.global_position),
    type: row.event_type,
    data: row.data,
    metadata: row.metadata,
    createdAt: row.created_at,
  };
}

export async function readStreamRows(db: pg.Pool, streamId: string, after: number, limit: number | null): Promise<StoredEvent[]> {
  const { rows } = await db.query<EventRow>(READ_STREAM_SQL, [streamId, after, limit]);
  return rows.map(toStoredEvent);
}

export async function readAllRows(db: pg.Pool | pg.PoolClient, after: bigint, limit: number): Promise<StoredEvent[]> {
  const { rows } = await db.query<EventRow>(READ_ALL_SQL, [after.toString(), limit]);
  return rows.map(toStoredEvent);
}

export async function headPosition(db: pg.Pool): Promise<bigint> {
  const { rows } = await db.query<{ head: string }>(HEAD_POSITION_SQL);
  return BigInt(rows[0]?.head ?? '0');
}
