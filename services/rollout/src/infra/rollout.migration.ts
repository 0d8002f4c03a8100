import { DataSource, type MigrationInterface, type QueryRunner } from 'typeorm';
import { migrate as migrateEventStore, PG_CONNECT_TIMEOUT_MS, runMigrationsLocked } from '@changeover/event-store';

/** Leases (which instance owns which rollout) and the rollouts projection for queries. */
export class RolloutSchema1764100000000 implements MigrationInterface {
  name = 'RolloutSchema1764100000000';
  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rollout_leases (
      rollout_id text PRIMARY KEY,
      owner text NOT NULL,
      expires_at timestamptz NOT NULL
    )`);
    await q.query(`CREATE INDEX rollout_leases_expires ON rollout_leases (expires_at)`);
    await q.query(`CREATE TABLE rollouts (
      id text PRIMARY KEY,
      status text NOT NULL,
      version integer NOT NULL,
      summary jsonb NOT NULL,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    )`);
    await q.query(`CREATE INDEX rollouts_created ON rollouts (created_at DESC)`);
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rollouts`);
    await q.query(`DROP TABLE rollout_leases`);
  }
}

export const ROLLOUT_MIGRATIONS_TABLE = 'rollout_migrations';

/** Event-store migrations, then the rollout tables, under an advisory lock so instances can start together. */
export async function migrateRollout(url: string): Promise<void> {
  await migrateEventStore(url);
  const ds = new DataSource({ type: 'postgres', url, migrations: [RolloutSchema1764100000000], migrationsTableName: ROLLOUT_MIGRATIONS_TABLE, migrationsTransactionMode: 'all', logging: false, poolSize: 2, extra: { connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS } });
  await ds.initialize();
  try {
    await runMigrationsLocked(ds, 'changeover:rollout:migrations');
  } finally {
    await ds.destroy();
  }
}
