import { afterAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { startPostgresServer, type TestPostgresServer } from './postgres-server.js';
import { waitFor } from './wait.js';

async function rows(url: string, sql: string, values: unknown[] = []): Promise<Record<string, unknown>[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, values)).rows as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

describe('throwaway Postgres server', () => {
  const started: TestPostgresServer[] = [];
  afterAll(async () => {
    await Promise.all(started.map((s) => s.stop()));
  });

  it('keeps committed rows across kill -9 and start on the same port', async () => {
    const server = await startPostgresServer();
    started.push(server);
    const db = await server.createDatabase('kit');
    await rows(db.url, 'CREATE TABLE t (n int PRIMARY KEY)');
    await rows(db.url, 'INSERT INTO t VALUES (1), (2)');
    const before = server.pid();

    await server.kill('SIGKILL');
    expect(server.running()).toBe(false);
    await expect(rows(db.url, 'SELECT 1')).rejects.toThrow();

    await server.start();
    expect(server.pid()).not.toBe(before);
    expect(await rows(db.url, 'SELECT n FROM t ORDER BY n')).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it('streams to a synchronous replica that, promoted, has every acknowledged commit and takes writes', async () => {
    const primary = await startPostgresServer();
    started.push(primary);
    const db = await primary.createDatabase('kit');
    await rows(db.url, 'CREATE TABLE t (n int PRIMARY KEY)');
    const replica = await primary.createReplica({ synchronous: true });
    started.push(replica);
    expect(await replica.isInRecovery()).toBe(true);
    for (let n = 1; n <= 20; n++) await rows(db.url, 'INSERT INTO t VALUES ($1)', [n]);
    await expect(rows(replica.url(db.name), 'INSERT INTO t VALUES (100)')).rejects.toThrow(/read-only/);

    await primary.kill();
    await replica.promote();
    expect(await replica.isInRecovery()).toBe(false);
    const [count] = await rows(replica.url(db.name), 'SELECT count(*)::int AS c FROM t');
    expect(count).toEqual({ c: 20 });
    await rows(replica.url(db.name), 'INSERT INTO t VALUES (21)');
    await waitFor('the write on the promoted replica', async () => (await rows(replica.url(db.name), 'SELECT n FROM t WHERE n = 21')).length === 1);
  });
});
