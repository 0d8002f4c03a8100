import type pg from 'pg';

/** Checkpoints only move forward, so a stale reader cannot rewind another's progress. */
const SAVE_SQL = `INSERT INTO subscription_checkpoints (subscription_id, position) VALUES ($1, $2)
  ON CONFLICT (subscription_id) DO UPDATE
  SET position = GREATEST(subscription_checkpoints.position, EXCLUDED.position), updated_at = now()`;

export async function loadCheckpoint(db: pg.Pool, name: string): Promise<bigint> {
  const { rows } = await db.query<{ position: string }>('SELECT position::text AS position FROM subscription_checkpoints WHERE subscription_id = $1', [name]);
  return rows[0] ? BigInt(rows[0].position) : 0n;
}

export async function saveCheckpoint(db: pg.Pool, name: string, position: bigint): Promise<void> {
  await db.query(SAVE_SQL, [name, position.toString()]);
}
