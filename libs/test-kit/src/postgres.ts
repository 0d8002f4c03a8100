import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { waitFor } from './wait.js';

/** The server the tests use: DATABASE_URL, or the local one CI starts. */
export const TEST_DATABASE_ADMIN_URL = process.env['TEST_DATABASE_URL'] ?? process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh database for one test file, so files can run in parallel. */
export async function createTestDatabase(prefix = 't'): Promise<TestDatabase> {
  const name = `${prefix.replace(/[^a-z0-9_]/g, '_')}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(TEST_DATABASE_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: TEST_DATABASE_ADMIN_URL });
      await c.connect();
      try {
        // Connections the test just ended may still be closing: a backend terminated by FORCE under a
        // client that is mid-close sends it a FATAL nobody listens for any more. Let them go first (3 s at most).
        await waitFor(`connections to ${name} closed`, async () => Number((await c.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1`, [name])).rows[0].n) === 0, { timeoutMs: 3000, intervalMs: 50 }).catch(() => undefined);
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
