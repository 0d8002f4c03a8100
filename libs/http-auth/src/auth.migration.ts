import type { MigrationInterface, QueryRunner } from 'typeorm';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { ChangeoverError } from '@changeover/contracts';
import { runMigrationsLocked, typeormConnection } from '@changeover/event-store';

/** API tokens (hashes only) and the audit log of mutating requests, shared by every HTTP service. */
export class AuthSchema1764100000000 implements MigrationInterface {
  name = 'AuthSchema1764100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SCHEMA IF NOT EXISTS auth`);
    await q.query(`
      CREATE TABLE IF NOT EXISTS auth.api_tokens (
        token_id text PRIMARY KEY,
        name text NOT NULL,
        role text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        token_hash text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text NOT NULL,
        revoked_at timestamptz,
        revoked_by text
      )`);
    await q.query(`
      CREATE TABLE IF NOT EXISTS auth.audit_log (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        service text NOT NULL,
        actor text NOT NULL,
        actor_token_id text NOT NULL,
        actor_role text NOT NULL,
        method text NOT NULL,
        path text NOT NULL,
        status integer NOT NULL,
        error_code text
      )`);
    await q.query(`CREATE INDEX IF NOT EXISTS audit_log_at ON auth.audit_log (at)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP SCHEMA IF EXISTS auth CASCADE`);
  }
}

export const AUTH_MIGRATIONS_TABLE = 'auth_migrations';

/** Creates or updates the auth schema (idempotent; safe when several services start at once). */
export async function migrateAuth(url: string): Promise<string[]> {
  const ds = new DataSource({ type: 'postgres', ...typeormConnection(url, { connectionTimeoutMillis: 10_000 }), entities: [], migrations: [AuthSchema1764100000000], migrationsTableName: AUTH_MIGRATIONS_TABLE, synchronize: false, migrationsRun: false, logging: false, poolSize: 2 } as DataSourceOptions);
  try {
    await ds.initialize();
  } catch (e) {
    throw new ChangeoverError('UNAVAILABLE', `cannot connect to the auth database: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    return await runMigrationsLocked(ds, 'changeover:auth:migrations');
  } finally {
    await ds.destroy();
  }
}
