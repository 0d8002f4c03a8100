import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { startPostgresServer, waitFor, type TestPostgresServer } from '@changeover/test-kit';
import pg from 'pg';
import { EventStore } from './event-store.js';
import { survivesRestarts } from './pg-pool.js';

// A Postgres of its own, killed with SIGKILL under connections that are idle and lent out: the
// process lives on (an unhandled 'error' event would end it, and fail this test), and the same pool
// and store answer once the server is back.
jest.setTimeout(120_000);

let server: TestPostgresServer;
let url: string;

beforeAll(async () => {
  server = await startPostgresServer({ name: 'pg-restarts' });
  url = (await server.createDatabase('restarts')).url;
});

afterAll(async () => {
  await server?.stop();
});

describe('pools that survive a Postgres restart', () => {
  it('a lent-out client and idle ones lose their connection without an unhandled error; the pool answers after the restart', async () => {
    const errors: Error[] = [];
    const pool = survivesRestarts(new pg.Pool({ connectionString: url, max: 3 }), (e) => void errors.push(e));
    try {
      // Two connections idle in the pool, one lent out in the middle of a statement.
      await Promise.all([pool.query('SELECT 1'), pool.query('SELECT 1')]);
      const lent = await pool.connect();
      const inFlight = lent.query('SELECT pg_sleep(30)').then(
        () => 'answered',
        (e: Error) => e.message,
      );
      await server.kill('SIGKILL');
      expect(await inFlight).not.toBe('answered');
      lent.release(true);
      await waitFor('the lost connections reported', () => errors.length >= 1);
      await server.start();
      await waitFor('the pool answering again', async () => (await pool.query('SELECT 42 AS n').catch(() => null))?.rows[0]?.n === 42, { timeoutMs: 30_000, intervalMs: 200 });
    } finally {
      await pool.end();
    }
  });

  it('an event store appends again after a restart that hit it mid-append', async () => {
    const store = await EventStore.connect({ url, migrate: true, poolSize: 2 });
    try {
      await store.append('rollout-pg', 'no-stream', [{ type: 'rollout.created', data: { n: 0 } }]);
      const appends = Array.from({ length: 20 }, (_, i) => store.append('rollout-pg', 'any', [{ type: 'rollout.node-progressed', data: { n: i + 1 } }]).then(() => true, () => false));
      await server.kill('SIGKILL');
      await Promise.all(appends);
      await server.start();
      await waitFor('an append after the restart', async () => store.append('rollout-pg', 'any', [{ type: 'rollout.node-progressed', data: { n: 'after' } }]).then(() => true, () => false), { timeoutMs: 30_000, intervalMs: 200 });
      const events = await store.readStream('rollout-pg');
      expect(events.at(-1)?.data).toEqual({ n: 'after' });
    } finally {
      await store.close();
    }
  });
});
