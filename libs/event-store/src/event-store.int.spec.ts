import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { isChangeoverError } from '@changeover/contracts';
import { createTestDatabase, waitFor, type TestDatabase } from '@changeover/test-kit';
import pg from 'pg';
import { EventStore } from './event-store.js';
import { migrate } from './schema/migrate.js';


// Real engines on a shared 2-core machine: generous deadlines, never sleeps.
jest.setTimeout(60_000);
let db: TestDatabase;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase('es');
  store = await EventStore.connect({ url: db.url, migrate: true, poolSize: 3 });
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
});

const created = (rolloutId: string) => ({ type: 'rollout.created', data: { rolloutId } });

async function rejection(p: Promise<unknown>): Promise<{ code: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    if (isChangeoverError(e)) return { code: e.code, details: e.details };
    throw e;
  }
  throw new Error('expected a rejection');
}

describe('EventStore append and reads', () => {
  it('appends with expected versions and reads the stream back in order', async () => {
    const first = await store.append('rollout-a1', 'no-stream', [created('a1'), { type: 'rollout.proposed', data: { n: 1 }, metadata: { traceparent: '00-abc-def-01', actor: 'ops' } }]);
    expect(first.nextExpectedVersion).toBe(2);
    expect(first.globalPositions).toHaveLength(2);
    expect(first.globalPositions[1]! > first.globalPositions[0]!).toBe(true);
    const second = await store.append('rollout-a1', 2, [{ type: 'rollout.accepted', data: {} }]);
    expect(second.nextExpectedVersion).toBe(3);

    const events = await store.readStream('rollout-a1');
    expect(events.map((e) => [e.streamPosition, e.type])).toEqual([[1, 'rollout.created'], [2, 'rollout.proposed'], [3, 'rollout.accepted']]);
    expect(events[1]!.metadata).toEqual({ traceparent: '00-abc-def-01', actor: 'ops' });
    expect(events[0]!.data).toEqual({ rolloutId: 'a1' });
    expect(typeof events[0]!.globalPosition).toBe('bigint');
    expect(events[0]!.createdAt).toBeInstanceOf(Date);
    expect((await store.readStream('rollout-a1', { after: 1, limit: 1 })).map((e) => e.streamPosition)).toEqual([2]);
    expect(await store.readStream('rollout-none')).toEqual([]);
  });

  it('rejects a stale expected version with a typed conflict that names the versions', async () => {
    await store.append('rollout-c1', 'no-stream', [created('c1')]);
    expect(await rejection(store.append('rollout-c1', 0, [created('c1')]))).toEqual({ code: 'VERSION_CONFLICT', details: { streamId: 'rollout-c1', expected: 0, actual: 1 } });
    expect(await rejection(store.append('rollout-c1', 'no-stream', [created('c1')]))).toMatchObject({ code: 'VERSION_CONFLICT', details: { actual: 1 } });
    expect(await rejection(store.append('rollout-c2', 'stream-exists', [created('c2')]))).toMatchObject({ code: 'VERSION_CONFLICT', details: { actual: 0 } });
    expect((await store.append('rollout-c1', 'any', [created('c1')])).nextExpectedVersion).toBe(2);
    expect(await store.readStream('rollout-c2')).toEqual([]);
  });

  it('treats a retried append with the same event ids as done, and a reused id elsewhere as a conflict', async () => {
    const once = await store.append('node-n1', 'no-stream', [{ id: 'enroll-n1', type: 'node.enrolled', data: { nodeId: 'n1' } }]);
    // The retry carries the same id and the version the caller had: it must not append twice.
    const again = await store.append('node-n1', 'no-stream', [{ id: 'enroll-n1', type: 'node.enrolled', data: { nodeId: 'n1' } }]);
    expect(again).toEqual(once);
    expect(await store.readStream('node-n1')).toHaveLength(1);
    expect(await rejection(store.append('node-n2', 'any', [{ id: 'enroll-n1', type: 'node.enrolled', data: {} }]))).toMatchObject({ code: 'CONFLICT', details: { eventIds: ['enroll-n1'] } });
    expect(await store.readStream('node-n2')).toEqual([]);
  });

  it('gives every public function a typed error for bad input and writes nothing', async () => {
    const bad = async (p: Promise<unknown>) => (await rejection(p)).code;
    const before = await store.headPosition();
    expect(await bad(store.append('', 'any', [created('x')]))).toBe('VALIDATION_FAILED');
    expect(await bad(store.append('rollout-x', -1, [created('x')]))).toBe('VALIDATION_FAILED');
    expect(await bad(store.append('rollout-x', 'latest' as never, [created('x')]))).toBe('VALIDATION_FAILED');
    expect(await bad(store.append('rollout-x', 'any', [{ type: 42 as never, data: {} }]))).toBe('VALIDATION_FAILED');
    expect(await bad(store.append('rollout-x', 'any', [created('x'), { type: 'rollout.proposed', data: { n: 1n } }]))).toBe('VALIDATION_FAILED');
    expect(await bad(store.append('rollout-x', 'any', []))).toBe('VALIDATION_FAILED');
    expect(await bad(store.readStream(''))).toBe('VALIDATION_FAILED');
    expect(await bad(store.readStream('rollout-x', { after: -1 }))).toBe('VALIDATION_FAILED');
    expect(await bad(store.readAll(-1, 10))).toBe('VALIDATION_FAILED');
    expect(await bad(store.readAll(0, 0))).toBe('VALIDATION_FAILED');
    expect(await bad(store.subscribe('bad name', () => undefined))).toBe('VALIDATION_FAILED');
    expect(await bad(store.subscribe('ok', 'nope' as never))).toBe('VALIDATION_FAILED');
    expect(await bad(store.checkpoint(''))).toBe('VALIDATION_FAILED');
    expect(await bad(EventStore.connect({ url: 'mysql://x' }))).toBe('VALIDATION_FAILED');
    expect(await bad(EventStore.connect({ url: db.url, poolSize: 0 }))).toBe('VALIDATION_FAILED');
    expect(await bad(EventStore.connect({ url: db.url, groupCommit: { maxBatch: -3 } }))).toBe('VALIDATION_FAILED');
    expect(await bad(migrate('not a url'))).toBe('VALIDATION_FAILED');
    expect(await store.headPosition()).toBe(before);
    expect(store.stats().invalidInputs).toBe(6);
  });

  it('readAll returns events in global order and pages by position', async () => {
    const all = await store.readAll(0, 1000);
    const positions = all.map((e) => e.globalPosition);
    expect(positions).toEqual([...positions].sort((a, b) => (a < b ? -1 : 1)));
    const page = await store.readAll(positions[1]!, 2);
    expect(page.map((e) => e.globalPosition)).toEqual(positions.slice(2, 4));
  });

  it('readAll never passes a position whose transaction commits late', async () => {
    const early = new pg.Client({ connectionString: db.url });
    const late = new pg.Client({ connectionString: db.url });
    await Promise.all([early.connect(), late.connect()]);
    const insert = `INSERT INTO events (stream_id, stream_position, event_id, event_type, data) VALUES ($1, 1, $2, 'rollout.created', '{}') RETURNING global_position::text AS p`;
    try {
      const head = await store.headPosition();
      // The first transaction takes the lower position but commits after the second.
      await early.query('BEGIN');
      const low = BigInt((await early.query<{ p: string }>(insert, ['rollout-slow', 'slow-1'])).rows[0]!.p);
      await late.query('BEGIN');
      const high = BigInt((await late.query<{ p: string }>(insert, ['rollout-fast', 'fast-1'])).rows[0]!.p);
      await late.query('COMMIT');
      expect(high > low).toBe(true);

      const whileInFlight = await store.readAll(head, 100);
      expect(whileInFlight.map((e) => e.globalPosition)).not.toContain(high);
      expect(whileInFlight.map((e) => e.globalPosition)).not.toContain(low);

      await early.query('COMMIT');
      const after = await waitFor('both late events visible', async () => {
        const events = await store.readAll(head, 100);
        return events.some((e) => e.globalPosition === high) ? events : undefined;
      });
      expect(after.map((e) => e.id)).toEqual(['slow-1', 'fast-1']);
    } finally {
      await Promise.all([early.end(), late.end()]);
    }
  });

  it('migrate is idempotent and safe when several processes run it at once', async () => {
    const other = await createTestDatabase('es_mig');
    try {
      const runs = await Promise.all([migrate(other.url), migrate(other.url), migrate(other.url)]);
      expect(runs.map((r) => r.length).sort()).toEqual([0, 0, 1]);
      expect(await migrate(other.url)).toEqual([]);
      const c = new pg.Client({ connectionString: other.url });
      await c.connect();
      const { rows } = await c.query<{ name: string }>('SELECT name FROM event_store_migrations');
      await c.end();
      expect(rows.map((r) => r.name)).toEqual(['EventStoreSchema1764000000000']);
    } finally {
      await other.drop();
    }
  });
});
