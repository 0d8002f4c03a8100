import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestDatabase, type TestDatabase } from '@changeover/test-kit';
import { EventStore } from '../event-store.js';
import { handleWithRetry } from './handle-with-retry.js';

jest.setTimeout(60_000);

let db: TestDatabase;
let stores: EventStore[];

beforeAll(async () => {
  db = await createTestDatabase('es_cmd');
  // Two stores: two service instances whose group commits race on one stream.
  stores = [await EventStore.connect({ url: db.url, migrate: true, poolSize: 2 }), await EventStore.connect({ url: db.url, poolSize: 2 })];
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await db?.drop();
});

describe('handleWithRetry against Postgres', () => {
  it('lets concurrent commands on one stream all take effect exactly once', async () => {
    const fold = { initialState: () => 0, evolve: (n: number, e: { data: unknown }) => n + (e.data as { by: number }).by };
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => handleWithRetry(stores[i % 2]!, 'rollout-count', fold, () => [{ type: 'rollout.node-progressed', data: { by: 1 } }], { maxRetries: 20 })),
    );
    const events = await stores[0]!.readStream('rollout-count');
    expect(events).toHaveLength(12);
    expect(results.map((r) => r.state).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(results.some((r) => r.retries > 0)).toBe(true);
  });
});
