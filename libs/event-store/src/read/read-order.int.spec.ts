import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createTestDatabase, waitFor, type TestDatabase } from '@changeover/test-kit';
import pg from 'pg';
import { EventStore } from '../event-store.js';

// A writer's transaction id and its global positions can come in different orders (ids are taken
// at a transaction's first write, positions at the event insert). A reader that saves the highest
// position it returned must still never skip an event.
let db: TestDatabase;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase('es_order');
  store = await EventStore.connect({ url: db.url, migrate: true, poolSize: 3 });
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
});

const event = (id: string) => ({ id, type: 'rollout.created', data: { rolloutId: id } });

describe('readAll with transaction ids out of position order', () => {
  it('never returns a later position while an earlier committed one is held back', async () => {
    const [a, x, b] = [0, 1, 2].map(() => new pg.Client({ connectionString: db.url }));
    await Promise.all([a!.connect(), x!.connect(), b!.connect()]);
    try {
      await a!.query('CREATE TABLE IF NOT EXISTS scratch (n int)');
      const head = await store.headPosition();
      // A takes a transaction id first (a row of its own), X takes one and stays open.
      await a!.query('BEGIN');
      await a!.query('INSERT INTO scratch VALUES (1)');
      await x!.query('BEGIN');
      await x!.query('INSERT INTO scratch VALUES (2)');
      // B writes its event first (lower position) and commits; then A writes and commits.
      await b!.query('BEGIN');
      await store.appendInTransaction(b!, 'rollout-b', 'any', [event('b-1')]);
      await b!.query('COMMIT');
      await store.appendInTransaction(a!, 'rollout-a', 'any', [event('a-1')]);
      await a!.query('COMMIT');

      // B's transaction is newer than X, A's older: A's event is safe, B's is held back — so is A's.
      const whileXRuns = await store.readAll(head, 100);
      expect(whileXRuns.map((e) => e.id)).toEqual([]);

      await x!.query('COMMIT');
      const after = await waitFor('both events', async () => {
        const events = await store.readAll(head, 100);
        return events.length === 2 ? events : undefined;
      });
      expect(after.map((e) => e.id)).toEqual(['b-1', 'a-1']);
    } finally {
      await Promise.all([a!.end(), x!.end(), b!.end()]);
    }
  });
});
