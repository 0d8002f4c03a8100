import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { isChangeoverError } from '@changeover/contracts';
import { createTestDatabase, type TestDatabase } from '@changeover/test-kit';
import { EventStore } from '../event-store.js';
import type { AppendResult } from '../types.js';


// Real engines on a shared 2-core machine: generous deadlines, never sleeps.
jest.setTimeout(60_000);
let db: TestDatabase;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase('es_gc');
  store = await EventStore.connect({ url: db.url, migrate: true, poolSize: 2, groupCommit: { maxBatch: 1000, maxWaitMs: 5 } });
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
});

const ev = (type = 'node.enrolled', data: unknown = {}) => ({ type, data });

async function transactionsOf(streamPrefix: string): Promise<number> {
  const { rows } = await store.pool.query<{ n: string }>('SELECT count(DISTINCT transaction_id)::text AS n FROM events WHERE stream_id LIKE $1', [`${streamPrefix}%`]);
  return Number(rows[0]!.n);
}

describe('group commit', () => {
  it('coalesces many concurrent callers into few transactions, each caller getting its own result', async () => {
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => store.append(`node-g${i}`, 'no-stream', [ev(), ev('node.became-active')])));
    expect(results.every((r) => r.nextExpectedVersion === 2 && r.globalPositions.length === 2)).toBe(true);
    expect(new Set(results.flatMap((r) => r.globalPositions)).size).toBe(1000);
    expect(await transactionsOf('node-g')).toBeLessThan(10);
    const stream = await store.readStream('node-g42');
    expect(stream.map((e) => e.globalPosition)).toEqual(results[42]!.globalPositions);
  });

  it('lets one of many racing appends with the same expected version win and gives the others their own conflict', async () => {
    const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => store.append('rollout-race', 0, [ev('rollout.created', { i })])));
    const won = settled.filter((s) => s.status === 'fulfilled');
    const lost = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason] : []));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(9);
    expect(lost.every((e) => isChangeoverError(e, 'VERSION_CONFLICT') && e.details?.['actual'] === 1 && e.details?.['expected'] === 0)).toBe(true);
  });

  it("chains appends to one stream within a batch, 'any' ones landing one after another", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => store.append('cluster', 'any', [ev('cluster-version.adjusted')])));
    expect(results.map((r) => r.nextExpectedVersion).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const events = await store.readStream('cluster');
    const globals = events.map((e) => e.globalPosition);
    expect(globals).toEqual([...globals].sort((a, b) => (a < b ? -1 : 1)));
  });

  it('fails only the guilty append when the shared transaction hits a database error', async () => {
    await store.append('package-taken', 'no-stream', [{ id: 'pkg-event-1', ...ev('package.published') }]);
    const innocent = Array.from({ length: 30 }, (_, i) => store.append(`package-ok${i}`, 'no-stream', [ev('package.published')]));
    // Same id in another stream: a unique violation inside the batch's INSERT.
    const guilty = store.append('package-other', 'any', [{ id: 'pkg-event-1', ...ev('package.published') }]);
    const [bad, ...good] = await Promise.allSettled([guilty, ...innocent]);
    expect(bad!.status === 'rejected' && isChangeoverError(bad!.reason, 'CONFLICT')).toBe(true);
    expect(good.every((s) => s.status === 'fulfilled' && (s.value as AppendResult).nextExpectedVersion === 1)).toBe(true);
    expect(await store.readStream('package-other')).toEqual([]);
  });

  it('keeps streams consistent when two stores in different processes race on the same streams', async () => {
    const other = await EventStore.connect({ url: db.url, poolSize: 2 });
    try {
      const both = [store, other];
      const settled = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => both[i % 2]!.append(`class-r${i % 3}`, 'any', [ev('class.configuration-changed', { i })])));
      expect(settled.every((s) => s.status === 'fulfilled')).toBe(true);
      for (const s of ['class-r0', 'class-r1', 'class-r2']) {
        expect((await store.readStream(s)).map((e) => e.streamPosition)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      }
      const stale = await Promise.allSettled([store.append('class-r0', 20, [ev('class.configuration-changed')]), other.append('class-r0', 20, [ev('class.configuration-changed')])]);
      expect(stale.map((s) => s.status).sort()).toEqual(['fulfilled', 'rejected']);
    } finally {
      await other.close();
    }
  });

  it('never lets a version cached by one store hide another store\'s appends', async () => {
    const other = await EventStore.connect({ url: db.url, poolSize: 1 });
    try {
      await store.append('rollout-shared', 'no-stream', [ev('rollout.created')]); // store caches version 1
      await other.append('rollout-shared', 1, [ev('rollout.proposed')]);
      await other.append('rollout-shared', 2, [ev('rollout.accepted')]);
      // The caller read version 3: a stale cache must not turn that into a conflict.
      expect((await store.append('rollout-shared', 3, [ev('rollout.wave-started')])).nextExpectedVersion).toBe(4);
      await other.append('rollout-shared', 4, [ev('rollout.paused')]);
      // 'any' from a stale cache collides on the unique key, then lands after a fresh read.
      expect((await store.append('rollout-shared', 'any', [ev('rollout.resumed')])).nextExpectedVersion).toBe(6);
      await other.append('rollout-shared', 6, [ev('rollout.paused')]);
      // A stale expected version is a conflict that reports the real version, not the cached one.
      expect(await store.append('rollout-shared', 6, [ev('rollout.resumed')]).catch((e: unknown) => e)).toMatchObject({ code: 'VERSION_CONFLICT', details: { expected: 6, actual: 7 } });
      // 'no-stream' on a stream this store never saw: assumed new, found to exist.
      await other.append('rollout-elsewhere', 'no-stream', [ev('rollout.created')]);
      expect(await store.append('rollout-elsewhere', 'no-stream', [ev('rollout.created')]).catch((e: unknown) => e)).toMatchObject({ code: 'VERSION_CONFLICT', details: { actual: 1 } });
      expect((await store.readStream('rollout-shared')).map((e) => e.streamPosition)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    } finally {
      await other.close();
    }
  });

  it('close commits the appends already submitted, then refuses new ones', async () => {
    const closing = await EventStore.connect({ url: db.url, poolSize: 1, groupCommit: { maxBatch: 50, maxWaitMs: 1000 } });
    const pending = Array.from({ length: 120 }, (_, i) => closing.append(`node-c${i}`, 'no-stream', [ev()]));
    await closing.close();
    expect((await Promise.all(pending)).every((r) => r.nextExpectedVersion === 1)).toBe(true);
    await expect(closing.append('node-late', 'any', [ev()])).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(await transactionsOf('node-c')).toBe(3);
  });
});
