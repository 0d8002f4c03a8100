import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { isChangeoverError } from '@changeover/contracts';
import { createTestDatabase, waitFor, type TestDatabase } from '@changeover/test-kit';
import pg from 'pg';
import { EventStore } from '../event-store.js';

// Appends inside a caller's transaction, against the real Postgres: commit, rollback, conflicts, races with group commit.
let db: TestDatabase;
let store: EventStore;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase('es_tx');
  store = await EventStore.connect({ url: db.url, migrate: true, poolSize: 2 });
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  await pool.query('CREATE TABLE widgets (id text PRIMARY KEY)');
});

afterAll(async () => {
  await pool?.end();
  await store?.close();
  await db?.drop();
});

const added = (id: string) => ({ type: 'widget.added', data: { id } });

async function rejection(p: Promise<unknown>): Promise<{ code: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    if (isChangeoverError(e)) return { code: e.code, details: e.details };
    throw e;
  }
  throw new Error('expected a rejection');
}

/** Runs `work` in BEGIN … COMMIT (or ROLLBACK when `rollback` or when it throws) on a client of the test's pool. */
async function inTx<T>(work: (c: pg.PoolClient) => Promise<T>, rollback = false): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const result = await work(c);
    await c.query(rollback ? 'ROLLBACK' : 'COMMIT');
    return result;
  } catch (e) {
    await c.query('ROLLBACK');
    throw e;
  } finally {
    c.release();
  }
}

const widgets = async () => (await pool.query<{ id: string }>('SELECT id FROM widgets ORDER BY id')).rows.map((r) => r.id);

describe('EventStore.appendInTransaction', () => {
  it('makes the row and its event visible together at commit, not before', async () => {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO widgets VALUES ('w1')`);
      const result = await store.appendInTransaction(c, 'widget-w1', 'no-stream', [added('w1')]);
      expect(result.nextExpectedVersion).toBe(1);
      expect(result.globalPositions).toHaveLength(1);
      expect(await store.readStream('widget-w1')).toEqual([]);
      expect(await widgets()).toEqual([]);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    expect(await widgets()).toEqual(['w1']);
    const events = await store.readStream('widget-w1');
    expect(events.map((e) => [e.type, e.data, e.streamPosition])).toEqual([['widget.added', { id: 'w1' }, 1]]);
    const all = await store.readAll(0, 100);
    expect(all.map((e) => e.streamId)).toContain('widget-w1');
  });

  it('leaves neither the row nor the event when the caller rolls back', async () => {
    await inTx(async (c) => {
      await c.query(`INSERT INTO widgets VALUES ('w2')`);
      await store.appendInTransaction(c, 'widget-w2', 'no-stream', [added('w2')]);
    }, true);
    expect(await widgets()).toEqual(['w1']);
    expect(await store.readStream('widget-w2')).toEqual([]);
  });

  it('throws a typed VERSION_CONFLICT and keeps the caller transaction usable', async () => {
    const conflict = await inTx(async (c) => {
      const err = await rejection(store.appendInTransaction(c, 'widget-w1', 'no-stream', [added('again')]));
      await c.query(`INSERT INTO widgets VALUES ('w3')`); // the transaction was not aborted
      return err;
    });
    expect(conflict).toEqual({ code: 'VERSION_CONFLICT', details: { streamId: 'widget-w1', expected: 'no-stream', actual: 1 } });
    expect(await widgets()).toEqual(['w1', 'w3']);
    expect((await store.readStream('widget-w1')).map((e) => e.data)).toEqual([{ id: 'w1' }]);
    expect(store.stats().versionConflicts).toBeGreaterThanOrEqual(1);
  });

  it('appends to several streams at once, all or nothing', async () => {
    const results = await inTx((c) =>
      store.appendAllInTransaction(c, [
        { streamId: 'widget-m1', expectedVersion: 'no-stream', events: [added('m1'), added('m1b')] },
        { streamId: 'widget-m2', expectedVersion: 'any', events: [added('m2')] },
      ]),
    );
    expect(results.map((r) => r.nextExpectedVersion)).toEqual([2, 1]);
    const refused = await inTx((c) =>
      rejection(
        store.appendAllInTransaction(c, [
          { streamId: 'widget-m3', expectedVersion: 'no-stream', events: [added('m3')] },
          { streamId: 'widget-m2', expectedVersion: 5, events: [added('m2b')] },
        ]),
      ),
    );
    expect(refused.code).toBe('VERSION_CONFLICT');
    expect(await store.readStream('widget-m3')).toEqual([]);
    expect(await store.readStream('widget-m2')).toHaveLength(1);
  });

  it('keeps group-commit appends correct after in-transaction appends to the same stream (cache invalidated)', async () => {
    const first = await store.append('widget-c1', 'no-stream', [added('c1')]);
    expect(first.nextExpectedVersion).toBe(1);
    await inTx((c) => store.appendInTransaction(c, 'widget-c1', 1, [added('c1-tx')]));
    // The store had cached version 1 for this stream: an append expecting 1 must now conflict, expecting 2 must pass.
    expect(await rejection(store.append('widget-c1', 1, [added('stale')]))).toMatchObject({ code: 'VERSION_CONFLICT', details: { actual: 2 } });
    expect((await store.append('widget-c1', 2, [added('c1-next')])).nextExpectedVersion).toBe(3);
    // And the other way round: a rolled-back in-transaction append leaves the version where it was.
    await inTx((c) => store.appendInTransaction(c, 'widget-c1', 3, [added('gone')]), true);
    expect((await store.append('widget-c1', 3, [added('c1-last')])).nextExpectedVersion).toBe(4);
    expect((await store.readStream('widget-c1')).map((e) => (e.data as { id: string }).id)).toEqual(['c1', 'c1-tx', 'c1-next', 'c1-last']);
  });

  it('retries a position race with a concurrent writer for expectedVersion any', async () => {
    const a = await pool.connect();
    try {
      await a.query('BEGIN');
      await store.appendInTransaction(a, 'widget-race', 'any', [added('a')]);
      // A second writer takes the same position and blocks on the unique key until the first commits.
      const second = inTx((c) => store.appendInTransaction(c, 'widget-race', 'any', [added('b')]));
      await waitFor('the second writer waits on the unique key', async () => {
        const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
        return rows[0]!.n > 0;
      });
      await a.query('COMMIT');
      expect((await second).nextExpectedVersion).toBe(2);
    } finally {
      a.release();
    }
    expect((await store.readStream('widget-race')).map((e) => e.streamPosition)).toEqual([1, 2]);
  });

  it('refuses bad input and a client without a transaction with typed errors', async () => {
    const c = await pool.connect();
    try {
      expect(await rejection(store.appendInTransaction(c, 'widget-x', 'any', [added('x')]))).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'client' } });
      expect(await rejection(store.appendInTransaction({} as pg.PoolClient, 'widget-x', 'any', [added('x')]))).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'client' } });
      await c.query('BEGIN');
      expect(await rejection(store.appendInTransaction(c, '', 'any', [added('x')]))).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'streamId' } });
      expect(await rejection(store.appendInTransaction(c, 'widget-x', -1, [added('x')]))).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'expectedVersion' } });
      expect(await rejection(store.appendInTransaction(c, 'widget-x', 'any', [{ type: 'Bad Type', data: 1 }]))).toMatchObject({ code: 'VALIDATION_FAILED' });
      await store.append('widget-ids', 'any', [{ ...added('i'), id: 'taken-id' }]);
      expect(await rejection(store.appendInTransaction(c, 'widget-x', 'any', [{ ...added('x'), id: 'taken-id' }]))).toMatchObject({ code: 'CONFLICT' });
      await c.query(`SELECT 1/0`).catch(() => undefined); // the transaction is now aborted
      expect(await rejection(store.appendInTransaction(c, 'widget-x', 'any', [added('x')]))).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'client' } });
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
    expect(await store.readStream('widget-x')).toEqual([]);
  });
});
