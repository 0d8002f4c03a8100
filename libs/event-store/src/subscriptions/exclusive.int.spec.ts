import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestDatabase, waitFor, type TestDatabase } from '@changeover/test-kit';
import pg from 'pg';
import { EventStore } from '../event-store.js';
import type { StoredEvent, Subscription } from '../types.js';

// Two stores on one database stand for two service processes sharing one subscription name.
jest.setTimeout(60_000);
let db: TestDatabase;
let a: EventStore;
let b: EventStore;

beforeAll(async () => {
  db = await createTestDatabase('es_exclusive');
  a = await EventStore.connect({ url: db.url, migrate: true, poolSize: 2 });
  b = await EventStore.connect({ url: db.url, poolSize: 2 });
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await db?.drop();
});

const append = async (store: EventStore, n: number, tag: string) => {
  const r = await store.append(`rollout-${tag}`, 'any', Array.from({ length: n }, (_, i) => ({ type: 'rollout.node-progressed', data: { i } })));
  return r.globalPositions.at(-1)!;
};

describe('exclusive subscriptions', () => {
  it('one process handles the events while the other stands by with a current position, then takes over where it stopped', async () => {
    const handled = new Map<string, StoredEvent[]>([['a', []], ['b', []]]);
    const subscribe = (store: EventStore, who: string) => store.subscribe('relay-x', (events) => void handled.get(who)!.push(...events), { exclusive: true, pollMs: 100, batchSize: 50 });
    const subA = await subscribe(a, 'a');
    await waitFor('a holds the lock', async () => {
      await append(a, 1, 'warm');
      return handled.get('a')!.length > 0;
    });
    const subB: Subscription = await subscribe(b, 'b');
    const first = await append(a, 120, 'one');
    await subA.caughtUpTo(first, 20_000);
    // The standby's position follows the stored checkpoint, so its lag goes to 0 without handling anything.
    await subB.caughtUpTo(first, 20_000);
    expect(subB.lag()).toBe(0);
    expect(handled.get('b')).toEqual([]);

    await subA.stop();
    const second = await append(b, 80, 'two');
    await subB.caughtUpTo(second, 20_000);
    const ids = (who: string) => handled.get(who)!.map((e) => e.id);
    // b took over after a's checkpoint: nothing a handled is handled again, nothing is missed.
    expect(new Set([...ids('a'), ...ids('b')]).size).toBe(ids('a').length + ids('b').length);
    expect(handled.get('b')!.map((e) => e.globalPosition)).toEqual((await b.readAll(first, 1000)).map((e) => e.globalPosition));
    expect(handled.get('b')).toHaveLength(80);
    await subB.stop();
  });

  it('a holder whose process dies (its lock connection ends) is replaced', async () => {
    const c = await EventStore.connect({ url: db.url, poolSize: 2 });
    const seen: string[] = [];
    const subC = await c.subscribe('relay-y', (events) => void seen.push(...events.map(() => 'c')), { exclusive: true, pollMs: 100 });
    await waitFor('c handles', async () => {
      await append(c, 1, 'y');
      return seen.includes('c');
    });
    const subB = await b.subscribe('relay-y', (events) => void seen.push(...events.map(() => 'b')), { exclusive: true, pollMs: 100 });
    // The holder's connections end without a stop: what a crash does to its session.
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await waitFor('b waiting for the lock', async () => (await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_advisory_lock%' AND state = 'active' AND pid <> pg_backend_pid()`)).rows[0].n === 1);
    const killed = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%pg_advisory_lock%' AND state = 'idle'`);
    await admin.end();
    expect(killed.rowCount).toBe(1);
    const last = await append(b, 5, 'y2');
    await subB.caughtUpTo(last, 20_000);
    expect(seen.filter((s) => s === 'b').length).toBeGreaterThanOrEqual(5);
    await subB.stop();
    await subC.stop().catch(() => undefined);
    await c.close().catch(() => undefined);
  });

  it('a standby keeps waiting past a statement_timeout set on its connections, and takes over when the holder stops', async () => {
    const url = new URL(db.url);
    url.searchParams.set('options', '-c statement_timeout=300');
    const d = await EventStore.connect({ url: url.toString(), poolSize: 2 });
    const errors: unknown[] = [];
    const seen: string[] = [];
    const subA = await a.subscribe('relay-t', (events) => void seen.push(...events.map(() => 'a')), { exclusive: true, pollMs: 100 });
    await waitFor('a handles', async () => {
      await append(a, 1, 't');
      return seen.includes('a');
    });
    const subD = await d.subscribe('relay-t', (events) => void seen.push(...events.map(() => 'd')), { exclusive: true, pollMs: 100, onError: (e) => void errors.push(e) });
    // Several statement timeouts long: the wait for the lock is not one of the statements it bounds.
    const mid = await append(a, 3, 't1');
    await subD.caughtUpTo(mid, 20_000);
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await waitFor('d waiting for the lock for over a second', async () => (await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_advisory_lock%' AND state = 'active' AND now() - query_start > interval '1 second' AND pid <> pg_backend_pid()`)).rows[0].n === 1, { timeoutMs: 20_000, intervalMs: 100 });
    } finally {
      await admin.end();
    }
    expect(errors).toEqual([]);
    await subA.stop();
    const last = await append(d, 4, 't3');
    await subD.caughtUpTo(last, 20_000);
    expect(seen.filter((s) => s === 'd').length).toBeGreaterThanOrEqual(4);
    expect(errors).toEqual([]);
    await subD.stop();
    await d.close();
  });

  it('refuses a non-boolean exclusive option', async () => {
    await expect(a.subscribe('relay-z', () => undefined, { exclusive: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });
});
