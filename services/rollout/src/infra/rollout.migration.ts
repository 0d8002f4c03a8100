import { DataSource, type MigrationInterface, type QueryRunner } from 'typeorm';
import { migrate as migrateEventStore, PG_CONNECT_TIMEOUT_MS, runMigrationsLocked, typeormConnection } from '@changeover/event-store';

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

/** The operator event types of RolloutQueries1765100000000, as its indexes were created (a migration never changes). */
const OPERATOR_EVENT_TYPES_V1 = ['rollout.created', 'rollout.forced', 'rollout.cancelled', 'rollout.revote-requested', 'rollout.resumed', 'rollout.regress-requested', 'rollout.paused', 'cluster-version.adjust-requested', 'cluster-version.adjust-refused'] as const;
const operatorTypes = OPERATOR_EVENT_TYPES_V1.map((t) => `'${t}'`).join(', ');

/** Event types an operator's request appends: the audit query reads only these (DESIGN: the events are the audit trail). */
export const OPERATOR_EVENT_TYPES = [...OPERATOR_EVENT_TYPES_V1, 'rollout.nodes-retried'] as const;
const operatorTypesV2 = OPERATOR_EVENT_TYPES.map((t) => `'${t}'`).join(', ');

/**
 * Rollout history and audit queries: who created a rollout, the packages and classes it targets
 * (filled from each rollout's first event for rows written before), keyset indexes for newest-first
 * pages, and partial indexes over the operator events for the audit trail.
 */
export class RolloutQueries1765100000000 implements MigrationInterface {
  name = 'RolloutQueries1765100000000';
  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rollouts ADD COLUMN created_by text NOT NULL DEFAULT '', ADD COLUMN packages text[] NOT NULL DEFAULT '{}', ADD COLUMN classes text[] NOT NULL DEFAULT '{}'`);
    await q.query(`UPDATE rollouts r SET
        created_by = e.data->>'createdBy',
        packages = ARRAY(SELECT DISTINCT x FROM jsonb_array_elements(e.data->'update'->'targets') t, jsonb_array_elements(t->'packages') p, LATERAL (VALUES (p->>'name'), ((p->>'name') || '@' || (p->>'version'))) v(x)),
        classes = ARRAY(SELECT DISTINCT c FROM (
          SELECT jsonb_array_elements_text(COALESCE(t->'classes', '[]'::jsonb)) FROM jsonb_array_elements(e.data->'update'->'targets') t
          UNION SELECT a->>'classId' FROM jsonb_array_elements(e.data->'assignments') a WHERE a ? 'classId') s(c))
      FROM events e WHERE e.stream_id = 'rollout-' || r.id AND e.stream_position = 1 AND e.event_type = 'rollout.created'`);
    await q.query(`DROP INDEX rollouts_created`);
    await q.query(`CREATE INDEX rollouts_created_id ON rollouts (created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX rollouts_status_created ON rollouts (status, created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX rollouts_created_by ON rollouts (created_by, created_at DESC, id DESC)`);
    await q.query(`CREATE INDEX rollouts_packages ON rollouts USING gin (packages)`);
    await q.query(`CREATE INDEX rollouts_classes ON rollouts USING gin (classes)`);
    await q.query(`CREATE INDEX events_operator_actions ON events (global_position DESC) WHERE event_type IN (${operatorTypes})`);
    await q.query(`CREATE INDEX events_operator_actors ON events ((COALESCE(metadata->>'actor', data->>'by', data->>'createdBy')), global_position DESC) WHERE event_type IN (${operatorTypes})`);
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX events_operator_actors`);
    await q.query(`DROP INDEX events_operator_actions`);
    await q.query(`DROP INDEX rollouts_classes, rollouts_packages, rollouts_created_by, rollouts_status_created, rollouts_created_id`);
    await q.query(`CREATE INDEX rollouts_created ON rollouts (created_at DESC)`);
    await q.query(`ALTER TABLE rollouts DROP COLUMN created_by, DROP COLUMN packages, DROP COLUMN classes`);
  }
}

/**
 * Rollout controls: the audit indexes cover node retries too (the audit query repeats their
 * predicate literally), and each class's maintenance windows, which rollouts copy when created.
 */
export class RolloutControls1765200000000 implements MigrationInterface {
  name = 'RolloutControls1765200000000';
  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX events_operator_actors`);
    await q.query(`DROP INDEX events_operator_actions`);
    await q.query(`CREATE INDEX events_operator_actions ON events (global_position DESC) WHERE event_type IN (${operatorTypesV2})`);
    await q.query(`CREATE INDEX events_operator_actors ON events ((COALESCE(metadata->>'actor', data->>'by', data->>'createdBy')), global_position DESC) WHERE event_type IN (${operatorTypesV2})`);
    await q.query(`CREATE TABLE class_windows (
      class_id text PRIMARY KEY,
      windows jsonb NOT NULL,
      updated_by text NOT NULL,
      updated_at timestamptz NOT NULL
    )`);
  }
  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE class_windows`);
    await q.query(`DROP INDEX events_operator_actors`);
    await q.query(`DROP INDEX events_operator_actions`);
    await q.query(`CREATE INDEX events_operator_actions ON events (global_position DESC) WHERE event_type IN (${operatorTypes})`);
    await q.query(`CREATE INDEX events_operator_actors ON events ((COALESCE(metadata->>'actor', data->>'by', data->>'createdBy')), global_position DESC) WHERE event_type IN (${operatorTypes})`);
  }
}

export const ROLLOUT_MIGRATIONS_TABLE = 'rollout_migrations';

/** Event-store migrations, then the rollout tables and query indexes, under an advisory lock so instances can start together. */
export async function migrateRollout(url: string): Promise<void> {
  await migrateEventStore(url);
  const ds = new DataSource({ type: 'postgres', ...typeormConnection(url, { connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS }), migrations: [RolloutSchema1764100000000, RolloutQueries1765100000000, RolloutControls1765200000000], migrationsTableName: ROLLOUT_MIGRATIONS_TABLE, migrationsTransactionMode: 'all', logging: false, poolSize: 2 });
  await ds.initialize();
  try {
    await runMigrationsLocked(ds, 'changeover:rollout:migrations');
  } finally {
    await ds.destroy();
  }
}
