import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestDatabase, waitFor, type TestDatabase } from '@changeover/test-kit';
import pg from 'pg';
import { EventStore } from '../event-store.js';
import type { StoredEvent } from '../types.js';


// Real engines on a shared 2-core machine: generous deadlines, never sleeps.
jest.setTimeout(60_000);
let db: TestDatabase;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase('es_sub');
  store = await EventStore.connect({ url: db.url, migrate: true, poolSize: 3 });
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
});

const ev = (i: number) => ({ type: 'rollout.node-progressed', data: { i } });

describe('checkpointed subscriptions', () => {
  it('handles events in global order, wakes on commit without polling, and stores its checkpoint per batch', async () => {
    const seen: StoredEvent[] = [];
    const batches: number[] = [];
    // A poll of one hour: only the commit notification can wake it in time.
    const sub = await store.subscribe('projector', (events) => {
      batches.push(events.length);
      seen.push(...events);
    }, { batchSize: 4, pollMs: 3_600_000 });
    try {
      const appended = await Promise.all(Array.from({ length: 10 }, (_, i) => store.append(`rollout-s${i % 3}`, 'any', [ev(i)])));
      const last = appended.flatMap((a) => a.globalPositions).reduce((a, b) => (a > b ? a : b));
      await sub.caughtUpTo(last, 20_000);
      const positions = seen.map((e) => e.globalPosition);
      expect(positions).toEqual([...positions].sort((a, b) => (a < b ? -1 : 1)));
      expect(new Set(positions).size).toBe(10);
      expect(Math.max(...batches)).toBeLessThanOrEqual(4);
      expect(await store.checkpoint('projector')).toBe(last);
      expect(sub.lag()).toBe(0);
    } finally {
      await sub.stop();
    }
  });

  it('resumes after its last processed position after a restart', async () => {
    const before = await store.checkpoint('projector');
    await store.append('rollout-later', 'no-stream', [ev(100), ev(101)]);
    const restarted = await EventStore.connect({ url: db.url, poolSize: 2 });
    const seen: StoredEvent[] = [];
    // Closing the store stops the subscription, storing its checkpoint.
    await restarted.subscribe('projector', (events) => {
      seen.push(...events);
    }, { pollMs: 50 });
    try {
      await waitFor('the two new events', () => seen.length >= 2);
      expect(seen.map((e) => e.data)).toEqual([{ i: 100 }, { i: 101 }]);
      expect(seen.every((e) => e.globalPosition > before)).toBe(true);
    } finally {
      await restarted.close();
    }
    expect(await store.checkpoint('projector')).toBe(seen[1]!.globalPosition);
  });

  it('retries a batch whose handler failed, without skipping or advancing', async () => {
    const head = await store.headPosition();
    await store.append('rollout-flaky', 'no-stream', [ev(1)]);
    let calls = 0;
    const errors: unknown[] = [];
    const handled: bigint[] = [];
    const sub = await store.subscribe('flaky', (events) => {
      calls++;
      if (calls <= 2) throw new Error(`handler failure ${calls}`);
      handled.push(...events.map((e) => e.globalPosition));
    }, { pollMs: 50, retryMs: 10, onError: (e) => errors.push(e) });
    try {
      await waitFor('the third attempt', () => handled.length > 0);
      expect(errors.map(String)).toEqual(['Error: handler failure 1', 'Error: handler failure 2']);
      expect(handled[0]).toBe(1n);
      expect(handled).toContain(head + 1n);
    } finally {
      await sub.stop();
    }
  });

  it('does not pass an event whose transaction commits after later ones, and reports its lag', async () => {
    const slow = new pg.Client({ connectionString: db.url });
    await slow.connect();
    const seen: string[] = [];
    const sub = await store.subscribe('ordered', (events) => {
      seen.push(...events.map((e) => e.id));
    }, { pollMs: 20 });
    try {
      await waitFor('caught up', async () => sub.position() === (await store.headPosition()));
      seen.length = 0;
      await slow.query('BEGIN');
      await slow.query(`INSERT INTO events (stream_id, stream_position, event_id, event_type, data) VALUES ('rollout-slow', 1, 'slow-1', 'rollout.created', '{}')`);
      const fast = await store.append('rollout-fast', 'no-stream', [{ id: 'fast-1', ...ev(1) }]);
      await waitFor('the subscription to learn of the fast event', () => sub.lag() >= 1);
      expect(seen).toEqual([]);
      await slow.query('COMMIT');
      await sub.caughtUpTo(fast.globalPositions[0]!, 20_000);
      expect(seen).toEqual(['slow-1', 'fast-1']);
      expect(sub.lag()).toBe(0);
    } finally {
      await slow.end();
      await sub.stop();
    }
  });

  it('refuses a second reader of the same name in one process', async () => {
    const sub = await store.subscribe('single', () => undefined);
    try {
      await expect(store.subscribe('single', () => undefined)).rejects.toMatchObject({ code: 'CONFLICT' });
    } finally {
      await sub.stop();
    }
    const again = await store.subscribe('single', () => undefined);
    await again.stop();
  });
});
